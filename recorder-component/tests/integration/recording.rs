//! A recording driven with RTP of real VP8 and Opus (made by ffmpeg) from
//! simulated participants on virtual time, the file checked by ffprobe and
//! ffmpeg: a speaker switch, a late joiner, packet loss and reordering.

use crate::support;

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use recorder_component::recording::{Media, Recording};
use recorder_component::rtp::build;
use recorder_component::vp8::packetize;
use support::*;

/// One simulated participant: what it sends and from when.
struct Sender {
    endpoint: &'static str,
    video: Vec<IvfFrame>,
    audio: Vec<Vec<u8>>,
    join_ms: u64,
    /// First video frame sent (to start mid-GOP).
    video_offset: usize,
    vseq: u16,
    aseq: u16,
    vts: u32,
    ats: u32,
    /// Microphone muted in [from, to) ms of the run: no audio packets, the
    /// RTP clock goes on (as a browser's does).
    mic_off: Option<(u64, u64)>,
    /// Camera off in [from, to): no video; it comes back at a keyframe.
    camera_off: Option<(u64, u64)>,
    gop: u64,
}

impl Sender {
    fn new(
        endpoint: &'static str,
        video: Vec<IvfFrame>,
        audio: Vec<Vec<u8>>,
        join_ms: u64,
    ) -> Sender {
        Sender {
            endpoint,
            video,
            audio,
            join_ms,
            video_offset: 0,
            vseq: 65_400, // wraps during the test
            aseq: 65_500,
            vts: 4_294_000_000,
            ats: 123_456,
            mic_off: None,
            camera_off: None,
            gop: 30,
        }
    }
}

/// Runs the senders from 0 to `end_ms` in 10 ms steps. `drop` decides
/// per packet (endpoint, media, packet number) whether it is lost; `swap`
/// whether it is delayed behind the next one.
fn run(
    senders: &mut [Sender],
    end_ms: u64,
    on_tick: impl FnMut(u64, &mut Recording<BufWriter<File>>, Instant),
    drop: impl Fn(&str, Media, u64) -> bool,
    swap: impl Fn(&str, Media, u64) -> bool,
    file: &std::path::Path,
) -> (Recording<BufWriter<File>>, Instant) {
    run_with(senders, end_ms, on_tick, drop, swap, file, None)
}

#[allow(clippy::too_many_arguments)]
fn run_with(
    senders: &mut [Sender],
    end_ms: u64,
    mut on_tick: impl FnMut(u64, &mut Recording<BufWriter<File>>, Instant),
    drop: impl Fn(&str, Media, u64) -> bool,
    swap: impl Fn(&str, Media, u64) -> bool,
    file: &std::path::Path,
    participant_dir: Option<&std::path::Path>,
) -> (Recording<BufWriter<File>>, Instant) {
    let t0 = Instant::now();
    let out = BufWriter::new(File::create(file).unwrap());
    let mut rec = Recording::new(out, t0, 320, 240).unwrap();
    if let Some(dir) = participant_dir {
        rec = rec.with_participant_files(dir);
    }
    let mut counter = 0u64;
    let mut delayed: Option<(&'static str, Media, Vec<u8>)> = None;
    for ms in (0..end_ms).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        on_tick(ms, &mut rec, now);
        for s in senders.iter_mut() {
            if ms < s.join_ms {
                continue;
            }
            let local = ms - s.join_ms;
            let mut packets = Vec::new();
            let muted = s.mic_off.is_some_and(|(a, b)| ms >= a && ms < b);
            if local % 20 == 0 && !s.audio.is_empty() && !muted {
                let i = (local / 20) as usize % s.audio.len();
                let ts = s.ats.wrapping_add((local / 20) as u32 * 960);
                packets.push((Media::Audio, build(111, false, s.aseq, ts, 1, &s.audio[i])));
                s.aseq = s.aseq.wrapping_add(1);
            }
            // Frame k is due at k*100/3 ms: send those due in this step.
            let mut k = (local * 3).div_ceil(100);
            while !s.video.is_empty() && (k * 100).div_ceil(3) < local + 10 {
                let frame_ms = s.join_ms + (k * 100).div_ceil(3);
                let (gop, offset, join) = (s.gop, s.video_offset as u64, s.join_ms);
                let cam_off = s.camera_off.is_some_and(|(a, b)| {
                    // Off from `a`; back on at the first keyframe from `b`.
                    let mut kb = (b.saturating_sub(join) * 3).div_ceil(100);
                    while (kb + offset) % gop != 0 {
                        kb += 1;
                    }
                    frame_ms >= a && k < kb
                });
                if cam_off {
                    k += 1;
                    continue;
                }
                let f = &s.video[(k as usize + s.video_offset) % s.video.len()];
                let ts = s.vts.wrapping_add(k as u32 * 3000);
                let parts = packetize(&f.data, 1_100);
                let n = parts.len();
                for (j, p) in parts.into_iter().enumerate() {
                    packets.push((Media::Video, build(100, j + 1 == n, s.vseq, ts, 2, &p)));
                    s.vseq = s.vseq.wrapping_add(1);
                }
                k += 1;
            }
            for (media, p) in packets {
                counter += 1;
                if drop(s.endpoint, media, counter) {
                    continue;
                }
                if swap(s.endpoint, media, counter) && delayed.is_none() {
                    delayed = Some((s.endpoint, media, p));
                    continue;
                }
                rec.handle_rtp(now, s.endpoint, media, &p).unwrap();
                if let Some((e, m, d)) = delayed.take() {
                    rec.handle_rtp(now, e, m, &d).unwrap();
                }
            }
        }
        if rec.next_timeout() <= now {
            rec.handle_timeout(now).unwrap();
        }
    }
    (rec, t0)
}

fn check_file(file: &std::path::Path, secs: f64) {
    let p = probe(file);
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
    assert!(
        (p.duration - secs).abs() < 0.3,
        "duration {} {}",
        p.duration,
        p.raw
    );
    let errors = decode_errors(file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");
}

#[test]
fn speaker_switch_happens_at_the_new_speakers_keyframe() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let va = vp8_frames_from(dir.path(), "testsrc", 6, 30, "320x240");
    let vb = vp8_frames_from(dir.path(), "testsrc2", 7, 30, "320x240");
    let aa = opus_packets(dir.path(), 6, 440);
    let ab = opus_packets(dir.path(), 6, 660);
    let mut b = Sender::new("bbbb", vb, ab, 0);
    b.video_offset = 15; // B's keyframes at 0.5 s, 1.5 s, 2.5 s, ...
    let mut senders = [Sender::new("aaaa", va, aa, 0), b];
    let file = dir.path().join("switch.webm");
    let mut requested = Vec::new();
    let (rec, t0) = run(
        &mut senders,
        6_000,
        |ms, rec, now| {
            if ms == 2_200 {
                rec.set_speaker(now, "bbbb");
            }
            if ms == 4_200 {
                rec.set_speaker(now, "aaaa");
            }
            while let Some(e) = rec.poll_keyframe_request() {
                requested.push((ms, e));
            }
        },
        |_, _, _| false,
        |_, _, _| false,
        &file,
    );
    let stats = rec.stats().clone();
    rec.finish(t0 + Duration::from_millis(6_000)).unwrap();
    let who: Vec<&str> = stats.switches.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(who, ["aaaa", "bbbb", "aaaa"], "{:?}", stats.switches);
    assert!(stats.switches[0].0 < 40, "{:?}", stats.switches);
    // Asked at 2.2 s, B's next keyframe is at 2.5 s; A's after 4.2 s at 5 s.
    assert!(
        (2_480..=2_540).contains(&stats.switches[1].0),
        "{:?}",
        stats.switches
    );
    assert!(
        (4_980..=5_040).contains(&stats.switches[2].0),
        "{:?}",
        stats.switches
    );
    assert!(
        requested.iter().any(|(ms, e)| *ms >= 2_200 && e == "bbbb"),
        "{requested:?}"
    );
    assert_eq!(stats.video_frames_lost, 0);
    check_file(&file, 6.0);
}

#[test]
fn a_late_joiner_is_heard_from_when_it_joined() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let va = vp8_frames_from(dir.path(), "testsrc", 6, 30, "320x240");
    let vb = vp8_frames_from(dir.path(), "testsrc2", 4, 30, "320x240");
    let ab = opus_packets(dir.path(), 4, 660);
    // A: video only (its microphone muted); B joins at 3 s with a tone.
    let mut senders = [
        Sender::new("aaaa", va, Vec::new(), 0),
        Sender::new("bbbb", vb, ab, 3_000),
    ];
    let file = dir.path().join("late.webm");
    let (rec, t0) = run(
        &mut senders,
        6_000,
        |ms, rec, now| {
            if ms == 3_100 {
                rec.set_speaker(now, "bbbb");
            }
        },
        |_, _, _| false,
        |_, _, _| false,
        &file,
    );
    let stats = rec.stats().clone();
    rec.finish(t0 + Duration::from_millis(6_000)).unwrap();
    check_file(&file, 6.0);
    let before = mean_volume(&file, 0.5, 2.8);
    let after = mean_volume(&file, 3.3, 5.5);
    assert!(before < -60.0, "silence before B joined: {before} dB");
    assert!(after > -35.0, "B's tone after it joined: {after} dB");
    // B joined with a keyframe at 3 s, asked for at 3.1 s: on screen then.
    assert_eq!(stats.switches.last().map(|s| s.1.as_str()), Some("bbbb"));
    assert!(stats.switches.last().unwrap().0 >= 3_000);
}

#[test]
fn packet_loss_and_reordering_leave_gaps_not_corruption() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let va = vp8_frames_from(dir.path(), "testsrc", 6, 15, "320x240");
    let aa = opus_packets(dir.path(), 6, 440);
    let mut senders = [Sender::new("aaaa", va, aa, 0)];
    let file = dir.path().join("loss.webm");
    let mut requests = 0;
    let (mut rec, t0) = run(
        &mut senders,
        6_000,
        |_, rec, now| {
            while rec.poll_keyframe_request().is_some() {
                requests += 1;
            }
            // A broken peer stream: garbage and truncated packets.
            rec.handle_rtp(now, "aaaa", Media::Video, &[0x80, 100, 1])
                .unwrap();
            rec.handle_rtp(now, "aaaa", Media::Audio, b"not rtp at all")
                .unwrap();
        },
        |_, m, n| match m {
            Media::Video => n % 41 == 0,
            Media::Audio => n % 13 == 0,
        },
        |_, _, n| n % 29 == 0,
        &file,
    );
    // And a VP8 packet whose payload is cut inside its descriptor.
    let bad = build(100, true, 1, 1, 2, &[0x90, 0x80]);
    rec.handle_rtp(
        t0 + Duration::from_millis(5_990),
        "aaaa",
        Media::Video,
        &bad,
    )
    .unwrap();
    let stats = rec.stats().clone();
    rec.finish(t0 + Duration::from_millis(6_000)).unwrap();
    assert!(stats.video_frames_lost > 0, "{stats:?}");
    assert!(stats.bad_packets > 0, "{stats:?}");
    assert!(requests > 0);
    assert!(stats.video_frames > 60, "{stats:?}");
    check_file(&file, 6.0);
    assert!(mean_volume(&file, 1.0, 5.0) > -40.0);
}

#[test]
fn mute_and_camera_off_leave_silence_and_a_held_picture() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let va = vp8_frames_from(dir.path(), "testsrc", 8, 30, "320x240");
    let aa = opus_packets(dir.path(), 8, 440);
    let mut a = Sender::new("aaaa", va, aa, 0);
    a.mic_off = Some((2_000, 4_000));
    a.camera_off = Some((3_000, 6_000));
    let mut senders = [a];
    let file = dir.path().join("mute.webm");
    let (rec, t0) = run(
        &mut senders,
        8_000,
        |_, _, _| {},
        |_, _, _| false,
        |_, _, _| false,
        &file,
    );
    let stats = rec.stats().clone();
    rec.finish(t0 + Duration::from_millis(8_000)).unwrap();
    check_file(&file, 8.0);
    assert!(mean_volume(&file, 0.5, 1.8) > -35.0);
    let muted = mean_volume(&file, 2.2, 3.8);
    assert!(muted < -60.0, "muted: {muted} dB");
    // Unmuted: the tone is back at its own time (the RTP clock jumped).
    assert!(mean_volume(&file, 4.2, 7.5) > -35.0);
    // 3 s of camera off: about 90 frames fewer than 240, none lost.
    assert!((130..=160).contains(&stats.video_frames), "{stats:?}");
    assert_eq!(stats.video_frames_lost, 0);
}

#[test]
fn per_participant_files_line_up_on_one_clock() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let va = vp8_frames_from(dir.path(), "testsrc", 6, 30, "320x240");
    let aa = opus_packets(dir.path(), 6, 440);
    let vb = vp8_frames_from(dir.path(), "testsrc2", 3, 30, "320x240");
    let ab = opus_packets(dir.path(), 3, 660);
    let mut senders = [
        Sender::new("aaaa", va, aa, 0),
        Sender::new("bbbb", vb, ab, 3_000),
    ];
    let file = dir.path().join("mixed.webm");
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    let (rec, t0) = run_with(
        &mut senders,
        6_000,
        |_, _, _| {},
        |_, _, _| false,
        |_, _, _| false,
        &file,
        Some(&parts),
    );
    let (_, files) = rec.finish_all(t0 + Duration::from_millis(6_000)).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    check_file(&file, 6.0);
    for f in &files {
        let p = probe(f);
        assert_eq!((p.video_streams, p.audio_streams), (1, 1), "{}", p.raw);
        // Both end at 6 s on the one clock; B's starts at 3 s.
        assert!((p.duration - 6.0).abs() < 0.3, "{f:?} {}", p.raw);
        let errors = decode_errors(f);
        assert!(errors.trim().is_empty(), "{f:?}: {errors}");
    }
    let b = files
        .iter()
        .find(|f| f.to_string_lossy().contains("bbbb"))
        .unwrap();
    // B's file starts at 3 s on the one clock (ffmpeg's seeks count from
    // there), and holds its tone.
    let p = probe(b);
    assert!((p.start_time - 3.0).abs() < 0.1, "{}", p.raw);
    assert!(mean_volume(b, 0.5, 2.5) > -35.0);
}
