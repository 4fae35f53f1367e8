//! The payloads the simulated participants send: real VP8 frames and Opus
//! packets made by Debian's ffmpeg once per run (an IVF file and an Ogg
//! file, parsed here), and ffprobe's view of a finished recording.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::RecorderBenchError as Error;

/// Real VP8 frames (with which are keyframes) and Opus packets.
pub struct MediaFiles {
    pub video: Vec<Vec<u8>>,
    pub keyframes: Vec<bool>,
    pub audio: Vec<Vec<u8>>,
}

fn ffmpeg(args: &[&str]) -> Result<(), Error> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .map_err(Error::io("running ffmpeg (apt-get install ffmpeg)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Protocol(format!(
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// 10 s of VP8 (`size`, 30 fps, `kbps`, a keyframe every 2 s: a camera
/// as a browser encodes it) and 10 s of 20 ms Opus frames of a tone.
pub fn make(dir: &Path, size: &str, kbps: u32) -> Result<Arc<MediaFiles>, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("creating the media dir"))?;
    let ivf = dir.join(format!("camera-{size}-{kbps}.ivf"));
    let ivf_s = ivf.to_string_lossy().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30:duration=10"),
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-b:v",
        &format!("{kbps}k"),
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-auto-alt-ref",
        "0",
        "-f",
        "ivf",
        &ivf_s,
    ])?;
    let ogg = dir.join("voice.ogg");
    let ogg_s = ogg.to_string_lossy().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:sample_rate=48000:duration=10",
        "-ac",
        "1",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-frame_duration",
        "20",
        "-f",
        "ogg",
        &ogg_s,
    ])?;
    let video = parse_ivf(&std::fs::read(&ivf).map_err(Error::io("reading the IVF"))?);
    // The first two Ogg packets are OpusHead and OpusTags.
    let audio: Vec<Vec<u8>> =
        parse_ogg(&std::fs::read(&ogg).map_err(Error::io("reading the Ogg"))?)
            .into_iter()
            .skip(2)
            .collect();
    if video.is_empty() || audio.is_empty() {
        return Err(Error::Protocol("ffmpeg made no frames".into()));
    }
    Ok(Arc::new(MediaFiles {
        keyframes: video
            .iter()
            .map(|f| f.first().is_some_and(|b| b & 1 == 0))
            .collect(),
        video,
        audio,
    }))
}

/// The frames of an IVF file.
pub fn parse_ivf(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if bytes.get(0..4) != Some(b"DKIF") {
        return out;
    }
    let Some(header) = bytes
        .get(6..8)
        .map(|h| u16::from_le_bytes([h[0], h[1]]) as usize)
    else {
        return out;
    };
    let mut at = header;
    while let Some(h) = bytes.get(at..at + 12) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let Some(frame) = bytes.get(at + 12..at + 12 + len) else {
            break;
        };
        out.push(frame.to_vec());
        at += 12 + len;
    }
    out
}

/// The packets of an Ogg file (one logical stream).
pub fn parse_ogg(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let mut packets = Vec::new();
    let mut current = Vec::new();
    while let Some(page) = bytes.get(at..at + 27) {
        if &page[0..4] != b"OggS" {
            break;
        }
        let nsegs = page[26] as usize;
        let Some(table) = bytes.get(at + 27..at + 27 + nsegs) else {
            break;
        };
        let mut data_at = at + 27 + nsegs;
        for &len in table {
            let Some(seg) = bytes.get(data_at..data_at + len as usize) else {
                return packets;
            };
            current.extend_from_slice(seg);
            data_at += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data_at;
    }
    packets
}

/// What ffprobe and ffmpeg say of a finished recording.
#[derive(Debug, Clone, Default)]
pub struct FileCheck {
    pub duration: f64,
    pub video_streams: usize,
    pub audio_streams: usize,
    /// Lines ffmpeg printed at level error decoding the whole file.
    pub decode_errors: usize,
    pub bytes: u64,
    pub video_frames: u64,
}

pub fn check(file: &Path) -> FileCheck {
    let mut c = FileCheck {
        bytes: std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        ..FileCheck::default()
    };
    if let Ok(out) = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_type:format=duration", "-of", "json"])
        .arg(file)
        .output()
    {
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let streams = v["streams"].as_array().cloned().unwrap_or_default();
        let count = |kind: &str| streams.iter().filter(|s| s["codec_type"] == kind).count();
        c.video_streams = count("video");
        c.audio_streams = count("audio");
        c.duration = v["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1.0);
    }
    if let Ok(out) = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(file)
        .output()
    {
        c.video_frames = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap_or(0);
    }
    if let Ok(out) = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
    {
        c.decode_errors = String::from_utf8_lossy(&out.stderr)
            .lines()
            // ffmpeg's null-output timing note and its repetitions (see
            // tests/js/jitsi/record.test.js).
            .filter(|l| !l.contains("non monotonically increasing dts"))
            .filter(|l| !l.trim_start().starts_with("Last message repeated"))
            .count();
    }
    c
}
