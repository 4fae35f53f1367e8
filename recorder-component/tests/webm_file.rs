//! The WebM writer checked by ffprobe and ffmpeg with real VP8 and Opus.

mod support;

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
