//! VP9 and AV1 copied into the recording, not re-encoded: ffmpeg encodes
//! real VP9 (libvpx-vp9) and AV1 (libaom-av1, realtime) at test time into
//! IVF files; each frame (temporal unit) is sent as RTP in the codec's
//! payload format (the crate's packetizers: VP9 non-flexible mode, AV1
//! aggregation headers with OBU fragments across packets), the recording
//! learns the payload type from a Jingle description as the focus sends
//! it, and ffprobe/ffmpeg check the file: the codec (and for AV1 the
//! `av1C` CodecPrivate ffmpeg reads), every frame, no decoding error. With
//! a packet lost, the frames up to the next keyframe are left out and the
//! file still decodes cleanly.

use crate::support;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use recorder_component::recording::{Media, Recording};
use recorder_component::rtp::build;
use support::*;
use xmpp_core::stream::parse_element;

fn encode(dir: &Path, codec: &str, gop: u32) -> Vec<IvfFrame> {
    let ivf = dir.join(format!("{codec}-{gop}.ivf"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30:duration=3");
    match codec {
        "vp9" => cmd.args([
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-auto-alt-ref",
            "0",
            "-lag-in-frames",
            "0",
        ]),
        _ => cmd.args(["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"]),
    };
    let status = cmd
        .args(["-b:v", "300k", "-g"])
        .arg(gop.to_string())
        .arg("-keyint_min")
        .arg(gop.to_string())
        .args(["-f", "ivf"])
        .arg(&ivf)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make {codec}");
    parse_ivf(&std::fs::read(&ivf).unwrap())
}

/// The focus's video description naming `codec` as payload type `pt`.
fn jingle(codec: &str, pt: u8) -> xmpp_core::Element {
    parse_element(&format!(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content creator='initiator' name='video'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
         <payload-type id='{pt}' name='{codec}' clockrate='90000'/>\
         </description></content></jingle>"
    ))
    .unwrap()
}

/// Sends the frames as RTP (dropping packet `lose` if given) into a
/// recording; returns the file and the frames the recording lost.
fn record(
    dir: &Path,
    codec: &str,
    frames: &[IvfFrame],
    lose: Option<usize>,
) -> (std::path::PathBuf, u64) {
    let pt = if codec == "vp9" { 98 } else { 45 };
    let file = dir.join(format!("{codec}-{}.webm", lose.is_some()));
    let t0 = Instant::now();
    let mut rec =
        Recording::new(BufWriter::new(File::create(&file).unwrap()), t0, 320, 240).unwrap();
    rec.handle_jingle(&jingle(&codec.to_uppercase(), pt));
    let mut seq = 0u16;
    let mut n = 0;
    for (i, f) in frames.iter().enumerate() {
        let now = t0 + Duration::from_micros(i as u64 * 33_333);
        let parts = match codec {
            "vp9" => recorder_component::vp9::packetize(&f.data, i as u16, 1_000),
            _ => recorder_component::av1::packetize(&f.data, 1_000),
        };
        let last = parts.len() - 1;
        for (j, p) in parts.iter().enumerate() {
            n += 1;
            if Some(n) != lose {
                let pkt = build(pt, j == last, seq, i as u32 * 3_000, 77, p);
                rec.handle_rtp(now, "ep1", Media::Video, &pkt).unwrap();
            }
            seq = seq.wrapping_add(1);
        }
        if rec.next_timeout() <= now {
            rec.handle_timeout(now).unwrap();
        }
    }
    let lost = rec.stats().video_frames_lost;
    rec.finish(t0 + Duration::from_secs(3)).unwrap();
    (file, lost)
}

fn video_codec_and_frames(file: &Path) -> (String, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut it = text.split(',');
    let name = it.next().unwrap_or_default().to_string();
    let frames = it.next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    (name, frames)
}

fn copied_whole_and_through_loss(codec: &str) {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let frames = encode(dir.path(), codec, 30);
    assert_eq!(frames.len(), 90);

    let (file, lost) = record(dir.path(), codec, &frames, None);
    assert_eq!(lost, 0);
    let (name, decoded) = video_codec_and_frames(&file);
    assert_eq!(name, codec, "{}", probe(&file).raw);
    assert_eq!(decoded, 90, "every frame decoded");
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");

    // A packet of frame ~10 lost: frames until the keyframe at 30 go.
    let packets_before: usize = frames[..10]
        .iter()
        .enumerate()
        .map(|(i, f)| match codec {
            "vp9" => recorder_component::vp9::packetize(&f.data, i as u16, 1_000).len(),
            _ => recorder_component::av1::packetize(&f.data, 1_000).len(),
        })
        .sum();
    let (file, lost) = record(dir.path(), codec, &frames, Some(packets_before + 1));
    assert!(lost >= 15, "{lost} frames lost");
    let (_, decoded) = video_codec_and_frames(&file);
    assert!((50..90).contains(&decoded), "{decoded} frames");
    let errors = decode_errors(&file);
    assert!(
        errors.trim().is_empty(),
        "decoding errors after a loss: {errors}"
    );
}

#[test]
fn vp9_is_copied_into_the_file() {
    copied_whole_and_through_loss("vp9");
}

#[test]
fn av1_is_copied_into_the_file_with_its_av1c() {
    copied_whole_and_through_loss("av1");
    if !have_ffmpeg() {
        return;
    }
    // ffmpeg reads the sequence header from the CodecPrivate: profile and
    // size known before any frame is decoded.
    let dir = tmp();
    let frames = encode(dir.path(), "av1", 30);
    let (file, _) = record(dir.path(), "av1", &frames[..31], None);
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=profile,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Main"), "{text}");
    assert!(text.contains("320,240"), "{text}");
}
