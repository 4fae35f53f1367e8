//! Test helpers: real VP8 and Opus made by ffmpeg at test time (IVF and Ogg
//! parsed here), and ffprobe/ffmpeg checks of a written file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Is ffmpeg (with ffprobe) on this machine? Prints why a test skips.
pub fn have_ffmpeg() -> bool {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok()
        && Command::new("ffmpeg").arg("-version").output().is_ok();
    if !ok {
        eprintln!("SKIP: ffprobe/ffmpeg not installed (apt-get install -y ffmpeg)");
    }
    ok
}

/// One VP8 frame from an IVF file.
pub struct IvfFrame {
    pub pts: u64,
    pub data: Vec<u8>,
}

/// VP8 frames (30 fps, keyframe every `gop` frames) of `secs` seconds.
pub fn vp8_frames(dir: &Path, secs: u32, gop: u32, size: &str) -> Vec<IvfFrame> {
    vp8_frames_from(dir, "testsrc", secs, gop, size)
}

/// VP8 frames from the lavfi source `src` (testsrc, testsrc2, smptebars...).
pub fn vp8_frames_from(dir: &Path, src: &str, secs: u32, gop: u32, size: &str) -> Vec<IvfFrame> {
    let ivf = dir.join(format!("v-{src}-{secs}-{gop}-{size}.ivf"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("{src}=size={size}:rate=30:duration={secs}"))
        .args(["-c:v", "libvpx", "-b:v", "300k", "-g"])
        .arg(gop.to_string())
        .args(["-keyint_min"])
        .arg(gop.to_string())
        .args(["-auto-alt-ref", "0", "-f", "ivf"])
        .arg(&ivf)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make VP8");
    parse_ivf(&std::fs::read(&ivf).unwrap())
}

pub fn parse_ivf(bytes: &[u8]) -> Vec<IvfFrame> {
    assert_eq!(&bytes[0..4], b"DKIF");
    let header = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let mut at = header;
    let mut out = Vec::new();
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let pts = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap());
        let data = bytes[at + 12..at + 12 + len].to_vec();
        out.push(IvfFrame { pts, data });
        at += 12 + len;
    }
    out
}

/// Opus packets (20 ms, mono, 48 kHz) of a `freq` Hz tone, `secs` long.
pub fn opus_packets(dir: &Path, secs: u32, freq: u32) -> Vec<Vec<u8>> {
    let ogg = dir.join(format!("a-{secs}-{freq}.ogg"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency={freq}:sample_rate=48000:duration={secs}"
        ))
        .args([
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
        ])
        .arg(&ogg)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make Opus");
    let packets = parse_ogg(&std::fs::read(&ogg).unwrap());
    // Drop OpusHead and OpusTags.
    packets.into_iter().skip(2).collect()
}

pub fn parse_ogg(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut at = 0;
    let mut packets = Vec::new();
    let mut current = Vec::new();
    while at + 27 <= bytes.len() {
        assert_eq!(&bytes[at..at + 4], b"OggS");
        let nsegs = bytes[at + 26] as usize;
        let table = &bytes[at + 27..at + 27 + nsegs];
        let mut data_at = at + 27 + nsegs;
        for &len in table {
            current.extend_from_slice(&bytes[data_at..data_at + len as usize]);
            data_at += len as usize;
            if len < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = data_at;
    }
    packets
}

/// What ffprobe says about a file.
pub struct Probe {
    pub video_streams: usize,
    pub audio_streams: usize,
    pub duration: f64,
    pub start_time: f64,
    pub raw: String,
}

pub fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name:format=duration,start_time",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let count = |kind: &str| streams.iter().filter(|s| s["codec_type"] == kind).count();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(-1.0);
    let start_time = v["format"]["start_time"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(-1.0);
    Probe {
        start_time,
        video_streams: count("video"),
        audio_streams: count("audio"),
        duration,
        raw: raw + &String::from_utf8_lossy(&out.stderr),
    }
}

/// Decodes the whole file; returns what ffmpeg printed at level error.
/// ffmpeg's null output rounds frame times to the frame rate it guessed,
/// so two camera frames a few ms apart can share a tick under load: its
/// "non monotonically increasing dts to muxer" note (and "Last message
/// repeated" after it) is that, not a decoding error (the file's times do
/// increase), and is left out, as tests/js/jitsi/record.test.js does.
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let mut s: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("non monotonically increasing dts to muxer"))
        .filter(|l| !l.trim_start().starts_with("Last message repeated"))
        .map(|l| format!("{l}\n"))
        .collect();
    if !out.status.success() {
        s.push_str(&format!("\nffmpeg exit {:?}", out.status.code()));
    }
    s
}

/// Mean volume in dB of the audio between `from` and `to` seconds.
pub fn mean_volume(file: &Path, from: f64, to: f64) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-ss"])
        .arg(format!("{from}"))
        .arg("-t")
        .arg(format!("{}", to - from))
        .arg("-i")
        .arg(file)
        .args(["-map", "0:a", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .unwrap_or(-200.0)
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
