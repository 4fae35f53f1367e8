//! A real call recorded to a playable WebM: lilt in-process with its own
//! focus and bridge (`jitsi_focus`, `jitsi_videobridge` on 127.0.0.1), two
//! str0m participants (ICE controlled, DTLS active, as browsers) that
//! join through the focus, answer its Jingle offer and send real VP8
//! (ffmpeg's libvpx) and Opus over UDP through lilt's bridge, and the
//! recorder (`run_with_links`). The first participant (the moderator)
//! starts a file recording through the focus; the recorder answers the
//! focus's offer as a receive-only browser and receives the media from the
//! bridge; the second participant joins 2 s later (its sources come in
//! the focus's source-add), speaks louder and becomes the bridge's
//! dominant speaker, whose keyframe the recorder asks for (a PLI through
//! the bridge). A third participant joins and leaves in between. After
//! 10 s the moderator stops it. The WebM must have one
//! video and one audio track, last about 10 s, decode without errors and
//! end on the dominant speaker's video; the mixed audio is not silent.

use crate::call;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use call::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_call_recorded_to_a_playable_webm() {
    if !have_ffmpeg() {
        return;
    }
    let work = tmp();
    // Alice's camera is 176x144, Bob's 320x240: the file shows whose
    // video it follows.
    let alice_media = media_of(work.path(), "176x144", 440);
    let bob_media = media_of(work.path(), "320x240", 660);
    let carol_media = alice_media.clone();
    let (server, running) = start_lilt().await;
    let rec_dir = work.path().join("recordings");
    let recorder = start_recorder(&server, &rec_dir, 4);

    // Two participants sending VP8 and Opus through lilt's bridge. Alice
    // is there when the recording starts; Bob joins 2 s later (his sources
    // reach the recorder in the focus's source-add) and speaks louder: the
    // bridge makes him the dominant speaker and says so on the recorder's
    // bridge channel, so the file ends on his video (asked for with a PLI).
    let stop = Arc::new(AtomicBool::new(false));
    let (mut a, sender_a) = join(&server, "alice", "alice1", 1111_0000).await;
    let media_a = tokio::spawn(send_media(sender_a, alice_media, -90, stop.clone()));

    // The moderator starts a file recording (the recorder may still be
    // joining the brewery: retry while the focus has none).
    start_recording(&mut a, ROOM).await;
    let t_on = Instant::now();
    while t_on.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        a.ack_pending().await;
    }
    let (mut b, sender_b) = join(&server, "bob", "bob2", 2222_0000).await;
    let media_b = tokio::spawn(send_media(sender_b, bob_media, -20, stop.clone()));
    // Carol joins, sends for 3 s and leaves: her sources come and go
    // (source-add, source-remove) while the file is written.
    let (mut c, sender_c) = join(&server, "carol", "carol3", 3333_0000).await;
    let carol_stop = Arc::new(AtomicBool::new(false));
    let media_c = tokio::spawn(send_media(sender_c, carol_media, -80, carol_stop.clone()));
    let carol_joined = Instant::now();
    while carol_joined.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        a.ack_pending().await;
        b.ack_pending().await;
        c.ack_pending().await;
    }
    c.send(&format!(
        "<presence type='unavailable' to='{ROOM}/carol3'/>"
    ));
    carol_stop.store(true, Ordering::Relaxed);
    let (c_connected, _) = media_c.await.unwrap();
    assert!(c_connected);
    assert!(
        t_on.elapsed() < RECORD_FOR - Duration::from_secs(2),
        "the joins took too long for the test's plan"
    );
    while t_on.elapsed() < RECORD_FOR {
        tokio::time::sleep(Duration::from_millis(200)).await;
        a.ack_pending().await;
        b.ack_pending().await;
    }
    stop_recording(&mut a, ROOM).await;
    let file = finished_files(&rec_dir, 1).await.remove(0);
    stop.store(true, Ordering::Relaxed);
    let (a_connected, _) = media_a.await.unwrap();
    let (b_connected, b_keyframe_requests) = media_b.await.unwrap();
    assert!(a_connected && b_connected);
    assert!(
        b_keyframe_requests >= 1,
        "the recorder asked Bob for a keyframe through the bridge"
    );
    recorder.abort();

    let p = probe(&file);
    eprintln!(
        "{} bytes: {}",
        std::fs::metadata(&file).unwrap().len(),
        p.raw
    );
    assert_eq!(p.video_streams, 1, "{}", p.raw);
    assert_eq!(p.audio_streams, 1, "{}", p.raw);
    assert!(
        (p.duration - RECORD_FOR.as_secs_f64()).abs() <= 1.5,
        "duration {} s: {}",
        p.duration,
        p.raw
    );
    let errors = decode_errors(&file);
    assert!(errors.trim().is_empty(), "decoding errors: {errors}");
    let frames = count_video_frames(&file);
    assert!(frames > 150, "only {frames} video frames in 10 s");
    let widths = frame_widths(&file, 5.0, 9.0);
    assert!(!widths.is_empty());
    assert!(
        widths.iter().all(|w| *w == 320),
        "the last seconds show Bob (the dominant speaker, 320 wide): {widths:?}"
    );
    let volume = mean_volume(&file, 2.0, 8.0);
    assert!(volume > -50.0, "the mixed audio is silent: {volume} dB");
    drop(running);
}
