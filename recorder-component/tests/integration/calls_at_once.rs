//! Three calls through lilt recorded at the same time by one recorder: in
//! each room a participant (str0m, real VP8 and Opus through lilt's
//! bridge) starts a file recording through the focus; the three recordings
//! run together, each on its own media link, and stop; each WebM has one
//! video and one audio track of the right length, decodes without errors
//! and shows its own room's camera (the rooms' cameras differ in size).

use crate::call;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use call::*;
use support::*;

const ROOMS: [&str; 3] = [
    "alpha@conference.example.com",
    "beta@conference.example.com",
    "gamma@conference.example.com",
];
const SIZES: [(&str, u32); 3] = [("176x144", 176), ("320x240", 320), ("240x180", 240)];
const RECORD: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_calls_recorded_at_once() {
    if !have_ffmpeg() {
        return;
    }
    let work = tmp();
    let (server, running) = start_lilt().await;
    let rec_dir = work.path().join("recordings");
    let recorder = start_recorder(&server, &rec_dir, 4);

    let stop = Arc::new(AtomicBool::new(false));
    let mut moderators = Vec::new();
    let mut senders = Vec::new();
    for (i, room) in ROOMS.iter().enumerate() {
        let media = media_of(work.path(), SIZES[i].0, 440 + 220 * i as u32);
        let user = format!("user{i}");
        let (p, sender) = join_room(
            &server,
            room,
            &user,
            &format!("nick{i}"),
            5000_0000 + i as u32 * 100,
        )
        .await;
        senders.push(tokio::spawn(send_media(sender, media, -20, stop.clone())));
        moderators.push(p);
    }
    for (p, room) in moderators.iter_mut().zip(ROOMS) {
        start_recording(p, room).await;
    }
    let t_on = Instant::now();
    while t_on.elapsed() < RECORD {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for p in &mut moderators {
            p.ack_pending().await;
        }
    }
    for (p, room) in moderators.iter_mut().zip(ROOMS) {
        stop_recording(p, room).await;
    }
    let files = finished_files(&rec_dir, ROOMS.len()).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        assert!(s.await.unwrap().0, "a participant connected");
    }
    recorder.abort();

    let mut widths_seen = Vec::new();
    for file in &files {
        let p = probe(file);
        assert_eq!(p.video_streams, 1, "{}", p.raw);
        assert_eq!(p.audio_streams, 1, "{}", p.raw);
        assert!(
            (p.duration - RECORD.as_secs_f64()).abs() <= 1.5,
            "{}: duration {} s",
            file.display(),
            p.duration
        );
        let errors = decode_errors(file);
        assert!(errors.trim().is_empty(), "decoding errors: {errors}");
        assert!(count_video_frames(file) > 90, "{}", file.display());
        let widths = frame_widths(file, 1.0, 5.0);
        assert!(!widths.is_empty());
        let w = widths[0];
        assert!(
            widths.iter().all(|x| *x == w),
            "one room's camera only: {widths:?}"
        );
        // The file of each room is named after it, and shows its camera.
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let room = ROOMS
            .iter()
            .position(|r| name.starts_with(r.split('@').next().unwrap()))
            .unwrap();
        assert_eq!(w, SIZES[room].1, "{name} shows its own room's camera");
        widths_seen.push(w);
    }
    widths_seen.sort();
    assert_eq!(widths_seen, [176, 240, 320]);
    drop(running);
}
