//! How much CPU one recording of a 4-person conference takes (run by hand:
//! `cargo test -p recorder-component --test integration cpu:: -- --ignored --nocapture`).
//! Four senders of real VP8 (640x360, 30 fps) and Opus, 20 s of virtual
//! time run as fast as the machine goes; the process CPU time is printed
//! per second of recording, and the growth of resident memory.

use crate::support;

use std::fs::File;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use recorder_component::recording::{Media, Recording};
use recorder_component::rtp::build;
use recorder_component::vp8::packetize;
use support::*;

/// Resident memory now, in kB (Linux).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    // SAFETY: initialised by getrusage (zeroed before in any case).
    let u = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

#[test]
#[ignore]
fn cpu_of_one_four_person_recording() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tmp();
    let video = vp8_frames(dir.path(), 10, 60, "640x360");
    let audio = opus_packets(dir.path(), 10, 440);
    let secs = 20u64;
    let file = dir.path().join("cpu.webm");
    let t0 = Instant::now();
    let before = cpu_seconds();
    let rss_before = rss_kb();
    let mut rss_peak = rss_before;
    let mut rec =
        Recording::new(BufWriter::new(File::create(&file).unwrap()), t0, 640, 360).unwrap();
    let endpoints = ["e1", "e2", "e3", "e4"];
    let mut seq = [0u16; 4];
    for ms in (0..secs * 1000).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        if ms % 5_000 == 0 {
            rec.set_speaker(now, endpoints[(ms / 5_000) as usize % 4]);
        }
        for (i, e) in endpoints.iter().enumerate() {
            if ms % 20 == 0 {
                let n = (ms / 20) as usize;
                let p = build(
                    111,
                    false,
                    n as u16,
                    n as u32 * 960,
                    10 + i as u32,
                    &audio[n % audio.len()],
                );
                rec.handle_rtp(now, e, Media::Audio, &p).unwrap();
            }
            let k = (ms * 3).div_ceil(100);
            if (k * 100).div_ceil(3) < ms + 10 {
                let f = &video[(k as usize + i * 15) % video.len()];
                let parts = packetize(&f.data, 1_100);
                let last = parts.len() - 1;
                for (j, part) in parts.iter().enumerate() {
                    let p = build(
                        100,
                        j == last,
                        seq[i],
                        k as u32 * 3_000,
                        20 + i as u32,
                        part,
                    );
                    seq[i] = seq[i].wrapping_add(1);
                    rec.handle_rtp(now, e, Media::Video, &p).unwrap();
                }
            }
        }
        if rec.next_timeout() <= now {
            rec.handle_timeout(now).unwrap();
        }
        if ms % 1_000 == 0 {
            rss_peak = rss_peak.max(rss_kb());
        }
    }
    rec.finish(t0 + Duration::from_secs(secs)).unwrap();
    let used = cpu_seconds() - before;
    println!(
        "one 4-person recording: {:.3} s CPU for {secs} s recorded = {:.2} % of a core",
        used,
        used / secs as f64 * 100.0
    );
    println!(
        "memory: {} kB more resident at the peak than before the recording",
        rss_peak.saturating_sub(rss_before)
    );
    let p = probe(&file);
    assert_eq!((p.video_streams, p.audio_streams), (1, 1));
}
