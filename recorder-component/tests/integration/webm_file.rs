//! The WebM writer checked by ffprobe and ffmpeg with real VP8 and Opus.

use crate::support;

use std::fs::File;
use std::io::BufWriter;

use recorder_component::webm::{Track, VideoCodec, WebmWriter};
use support::*;

fn vp8_is_key(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// Writes `secs` of VP8 (30 fps) and Opus (20 ms) interleaved by time.
fn write_av(dir: &std::path::Path, secs: u32) -> (WebmWriter<BufWriter<File>>, std::path::PathBuf) {
    let video = vp8_frames(dir, secs, 30, "320x240");
    let audio = opus_packets(dir, secs, 440);
    write_frames(dir, &video, &audio)
}

fn write_frames(
    dir: &std::path::Path,
    video: &[IvfFrame],
    audio: &[Vec<u8>],
) -> (WebmWriter<BufWriter<File>>, std::path::PathBuf) {
    let file = dir.join("out.webm");
    let out = BufWriter::new(File::create(&file).unwrap());
    let mut w = WebmWriter::new(
        out,
        vec![
            Track::Video {
                codec: VideoCodec::Vp8,
                width: 320,
                height: 240,
            },
            Track::Opus {
                channels: 1,
                pre_skip: 312,
            },
        ],
    )
    .unwrap();
    let mut vi = video.iter().peekable();
    let mut ai = audio.iter().enumerate().peekable();
    loop {
        let vt = vi.peek().map(|f| f.pts * 1000 / 30);
        let at = ai.peek().map(|(i, _)| *i as u64 * 20);
        match (vt, at) {
            (Some(v), a) if a.is_none_or(|a| v <= a) => {
                let f = vi.next().unwrap();
                w.write_frame(1, v, 33, vp8_is_key(&f.data), &f.data)
                    .unwrap();
            }
            (_, Some(a)) => {
                let (_, p) = ai.next().unwrap();
                w.write_frame(2, a, 20, true, p).unwrap();
            }
            (None, None) => break,
            _ => unreachable!(),
        }
    }
    (w, file)
}

#[test]
fn vp8_and_opus_play_with_the_right_duration() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let (w, file) = write_av(dir.path(), 5);
    w.finish().unwrap();
    let p = probe(&file);
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
    assert!(
        (p.duration - 5.0).abs() < 0.2,
        "duration {} {}",
        p.duration,
        p.raw
    );
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");
    assert!(mean_volume(&file, 1.0, 4.0) > -40.0);
}

#[test]
fn a_file_cut_without_finish_plays_up_to_its_last_cluster() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let (w, file) = write_av(dir.path(), 4);
    // As after kill -9: no finish; the buffered cluster is lost.
    drop(w);
    let p = probe(&file);
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");
    // Cut in the middle of a cluster too: still no decoding errors at
    // level error is not promised, but ffprobe must still read both tracks.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.webm");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let p = probe(&cut);
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
}

const CHILD_ENV: &str = "LILT_WEBM_KILL_CHILD";

/// In the child process only: writes frames, never finishes, says so in a
/// marker file and waits to be killed.
#[test]
fn kill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // not the child
    };
    let dir = std::path::PathBuf::from(dir);
    let video = parse_ivf(&std::fs::read(dir.join("v.ivf")).unwrap());
    let audio: Vec<Vec<u8>> = parse_ogg(&std::fs::read(dir.join("a.ogg")).unwrap())
        .into_iter()
        .skip(2)
        .collect();
    let (w, _) = write_frames(&dir, &video, &audio);
    std::fs::write(dir.join("written"), b"").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(120));
    drop(w);
}

#[test]
fn a_writer_killed_with_sigkill_leaves_a_playable_file() {
    if !have_ffmpeg() {
        return;
    }
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tmp();
    // Media for the child, made here.
    let frames = vp8_frames(dir.path(), 5, 30, "320x240");
    let mut ivf = vec![0u8; 32];
    ivf[..4].copy_from_slice(b"DKIF");
    ivf[6..8].copy_from_slice(&32u16.to_le_bytes());
    for f in &frames {
        ivf.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        ivf.extend_from_slice(&f.pts.to_le_bytes());
        ivf.extend_from_slice(&f.data);
    }
    std::fs::write(dir.path().join("v.ivf"), ivf).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=5",
        ])
        .args([
            "-ac",
            "1",
            "-c:a",
            "libopus",
            "-frame_duration",
            "20",
            "-f",
            "ogg",
        ])
        .arg(dir.path().join("a.ogg"))
        .status()
        .unwrap();
    assert!(status.success());

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "webm_file::kill_child_writer", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = dir.path().join("written");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !marker.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(marker.exists(), "the child did not write");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let file = dir.path().join("out.webm");
    let p = probe(&file);
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
    // Everything but the cluster in memory (at most 2 s) is there.
    assert!(
        p.duration >= 2.9 && p.duration <= 5.1,
        "duration {} {}",
        p.duration,
        p.raw
    );
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");
}

/// Video frames given the same time (a camera's frames landing in one ms of
/// the recording clock) are written with strictly increasing block times:
/// ffmpeg reports "non monotonically increasing dts" otherwise.
#[test]
fn repeated_frame_times_are_made_increasing() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let video = vp8_frames(dir.path(), 2, 30, "320x240");
    let file = dir.path().join("same.webm");
    let out = BufWriter::new(File::create(&file).unwrap());
    let mut w = WebmWriter::new(
        out,
        vec![Track::Video {
            codec: VideoCodec::Vp8,
            width: 320,
            height: 240,
        }],
    )
    .unwrap();
    for (i, f) in video.iter().enumerate() {
        // Pairs of frames at one time.
        let t = (i as u64 / 2) * 66;
        w.write_frame(1, t, 33, vp8_is_key(&f.data), &f.data)
            .unwrap();
    }
    w.finish().unwrap();
    let errors = decode_errors(&file);
    assert!(errors.is_empty(), "{errors}");
}
