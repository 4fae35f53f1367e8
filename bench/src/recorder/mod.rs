//! `bench --recorder`: what one lilt recorder costs per recording (issue
//! 15). lilt runs in this process with its focus and bridge, as the
//! recorder crate's call tests run it; each simulated conference has
//! `--recorder-participants` str0m participants joining through the focus
//! and sending real VP8 (ffmpeg's libvpx, 30 fps) and Opus over UDP on
//! 127.0.0.1 to lilt's bridge. The recorder logs in as Jibri does (the
//! JibriBrewery, the hidden recorder domain) and runs on a thread of its
//! own with a single-threaded tokio runtime, so its CPU is that thread's
//! (`/proc/self/task/TID/stat`). Every conference's first participant
//! starts a file recording through the focus; after a warm-up the window
//! is measured: the recorder thread's CPU per recording (% of one core) and
//! the process's resident memory grown since before the recordings started,
//! per recording (the recorder's buffers, decoders and encoders, plus the
//! bridge's state for one more receiver in each conference). Then the
//! recordings stop and every file is checked with ffprobe/ffmpeg.
//!
//! Start reading at [`run`]; `participant.rs` is a simulated participant,
//! `media.rs` the payloads and the file check, `report.rs` the results.

mod media;
mod participant;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use recorder_component::{RecorderOptions, run_with_links};
use xmpp_core::Jid;
use xmpp_core::client::local;

use crate::{Args, procfs};

/// The options of `bench --recorder`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecorderBenchArgs {
    /// Run the recorder benchmark (lilt's recorder recording simulated
    /// conferences at once) instead of the XMPP scenarios.
    #[arg(long)]
    pub recorder: bool,
    /// Recorder: conferences recorded at once.
    #[arg(long, default_value_t = 20)]
    pub recorder_conferences: usize,
    /// Recorder: participants in each conference (each sends audio and video).
    #[arg(long, default_value_t = 4)]
    pub recorder_participants: usize,
    /// Recorder: measured seconds.
    #[arg(long, default_value_t = 20.0)]
    pub recorder_duration: f64,
    /// Recorder: seconds recorded before the window.
    #[arg(long, default_value_t = 5.0)]
    pub recorder_warmup: f64,
    /// Recorder: camera size each participant sends.
    #[arg(long, default_value = "640x360")]
    pub recorder_video_size: String,
    /// Recorder: camera bitrate (kbit/s).
    #[arg(long, default_value_t = 500)]
    pub recorder_video_kbps: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderBenchError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
}

impl RecorderBenchError {
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RecorderBenchError {
        move |source| RecorderBenchError::Io { what, source }
    }
}

/// lilt with its focus and bridge, HTTP and the recorder domain; errors
/// only in its log.
const CONFIG: testkit::JitsiConfig = testkit::JitsiConfig {
    http: true,
    recorder_domain: true,
    focus_and_bridge: true,
    quiet: true,
};

/// What the run measured.
#[derive(Debug, Clone, Default)]
pub struct RecorderResult {
    pub conferences: usize,
    pub participants: usize,
    pub window_secs: f64,
    /// Recorder thread CPU over the window, % of one core (all recordings).
    pub recorder_cpu: f64,
    /// The whole process (lilt, bridge, focus, participants, recorder).
    pub process_cpu: f64,
    pub rss_before_mib: f64,
    pub rss_during_mib: f64,
    pub setup_secs: f64,
    pub start_secs: f64,
    pub files: Vec<(PathBuf, media::FileCheck)>,
    pub recorded_secs: f64,
}

impl RecorderResult {
    pub fn cpu_per_recording(&self) -> f64 {
        self.recorder_cpu / self.conferences.max(1) as f64
    }

    pub fn mib_per_recording(&self) -> f64 {
        (self.rss_during_mib - self.rss_before_mib) / self.conferences.max(1) as f64
    }
}

/// CPU seconds one thread of this process has used.
fn thread_cpu_seconds(tid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let rest: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((utime + stime) / procfs::ticks_per_second())
}

/// The recorder bench: sets up, measures, writes the results file.
pub fn run(args: &Args) -> Result<(), RecorderBenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RecorderBenchError::io("starting tokio"))?;
    let result = rt.block_on(measure(args))?;
    let text = report::render(args, &result);
    print!("{text}");
    if !args.no_save {
        let file = format!("{}-recorder.md", crate::report::date());
        let file = crate::report::save(args.results_dir.as_deref(), &file, &text)
            .map_err(|e| RecorderBenchError::io("writing the results")(e.source))?;
        eprintln!("recorder: saved {}", file.display());
    }
    Ok(())
}

async fn measure(args: &Args) -> Result<RecorderResult, RecorderBenchError> {
    let a = &args.recorder;
    let perr = |e: &dyn std::fmt::Display| RecorderBenchError::Protocol(e.to_string());
    let work = args.work_dir.join("recorder");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(RecorderBenchError::io("creating the work dir"))?;
    let _ = procfs::raise_nofile();
    eprintln!("recorder: making the media with ffmpeg ...");
    let media = media::make(
        &work.join("media"),
        &a.recorder_video_size,
        a.recorder_video_kbps,
    )?;

    let testkit::Lilt { server, running } =
        testkit::jitsi::start(&CONFIG, "bench-recorder.cfg.lua")
            .await
            .map_err(|e| perr(&e))?;

    // The recorder on a thread of its own; its links are made here, so
    // the server's side of them runs on this runtime.
    let rec_dir = work.join("recordings");
    let control = local(&server, &jid("jibri@auth.example.com/jibri1")?).map_err(|e| perr(&e))?;
    let call = local(&server, &jid("recorder@recorder.example.com/rec1")?).map_err(|e| perr(&e))?;
    let mut options = RecorderOptions::new(
        "",
        "jibribrewery@internal.auth.example.com",
        "",
        rec_dir.clone(),
    );
    options.brewery_nick = "jibri1".into();
    options.min_free_bytes = 0;
    options.max_concurrent = a.recorder_conferences + 1;
    let tid = Arc::new(AtomicI32::new(0));
    let tid_w = tid.clone();
    let recorder = std::thread::Builder::new()
        .name("recorder".into())
        .spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_w.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run_with_links(control, call, options, None)),
                Err(e) => eprintln!("recorder: no runtime: {e}"),
            }
        })
        .map_err(RecorderBenchError::io("starting the recorder thread"))?;

    let setup = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut moderators = Vec::new();
    let mut senders = Vec::new();
    let rooms: Vec<String> = (0..a.recorder_conferences)
        .map(|i| format!("bench{i}@conference.example.com"))
        .collect();
    for (c, room) in rooms.iter().enumerate() {
        for p in 0..a.recorder_participants {
            let user = format!("c{c}p{p}");
            let ssrc = 10_000_000 + (c * 100 + p * 10) as u32;
            let (peer, sender) = participant::join(&server, room, &user, ssrc).await?;
            // One participant talks loudly, the others quietly.
            let level = if p == 0 { -20 } else { -50 };
            senders.push(tokio::spawn(participant::send_media(
                sender,
                media.clone(),
                level,
                c * 7 + p * 13,
                stop.clone(),
            )));
            if p == 0 {
                moderators.push(peer);
            } else {
                tokio::spawn(keep_acking(peer, stop.clone()));
            }
        }
        eprintln!("recorder: conference {} of {} joined", c + 1, rooms.len());
    }
    let setup_secs = setup.elapsed().as_secs_f64();
    // Long enough for the bridge's and the participants' retransmission
    // caches to fill, so that the memory measured next is the recordings'.
    idle(&mut moderators, Duration::from_secs(6)).await?;
    let pid = std::process::id();
    let rss_before = procfs::rss_kib(pid).unwrap_or(0);

    let started = Instant::now();
    for (p, room) in moderators.iter_mut().zip(&rooms) {
        p.start_recording(room).await?;
    }
    let start_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "recorder: {} recordings on in {start_secs:.1} s",
        rooms.len()
    );
    idle(&mut moderators, Duration::from_secs_f64(a.recorder_warmup)).await?;

    let tid = tid.load(Ordering::SeqCst);
    let window = Instant::now();
    let rec0 = thread_cpu_seconds(tid).unwrap_or(0.0);
    let proc0 = procfs::own_cpu_seconds();
    idle(
        &mut moderators,
        Duration::from_secs_f64(a.recorder_duration),
    )
    .await?;
    let rec1 = thread_cpu_seconds(tid).unwrap_or(0.0);
    let proc1 = procfs::own_cpu_seconds();
    let window_secs = window.elapsed().as_secs_f64();
    let rss_during = procfs::rss_kib(pid).unwrap_or(0);

    for (p, room) in moderators.iter_mut().zip(&rooms) {
        p.stop_recording(room).await?;
    }
    let recorded_secs = started.elapsed().as_secs_f64();
    let files = finished_files(&rec_dir, rooms.len()).await;
    stop.store(true, Ordering::Relaxed);
    let mut connected = 0;
    for s in senders {
        connected += usize::from(s.await.unwrap_or(false));
    }
    eprintln!(
        "recorder: {connected} participants connected; checking {} files ...",
        files.len()
    );
    let files = files
        .into_iter()
        .map(|f| {
            let c = media::check(&f);
            (f, c)
        })
        .collect();
    drop(moderators);
    drop(running);
    // The recorder ends with its links (the server is gone).
    drop(recorder);
    Ok(RecorderResult {
        conferences: rooms.len(),
        participants: a.recorder_participants,
        window_secs,
        recorder_cpu: 100.0 * (rec1 - rec0).max(0.0) / window_secs,
        process_cpu: 100.0 * (proc1 - proc0).max(0.0) / window_secs,
        rss_before_mib: rss_before as f64 / 1024.0,
        rss_during_mib: rss_during as f64 / 1024.0,
        setup_secs,
        start_secs,
        files,
        recorded_secs,
    })
}

fn jid(s: &str) -> Result<Jid, RecorderBenchError> {
    Jid::parse(s).map_err(|e| RecorderBenchError::Protocol(format!("{s}: {e}")))
}

/// Keeps a participant's session answering the focus's IQs (source-add).
async fn keep_acking(mut peer: participant::Peer, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if peer.ack_pending().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits `d`, the moderators' sessions answering IQs meanwhile.
async fn idle(moderators: &mut [participant::Peer], d: Duration) -> Result<(), RecorderBenchError> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for p in moderators.iter_mut() {
            p.ack_pending().await?;
        }
    }
    Ok(())
}

/// The WebM files of the finished recordings (those with metadata.json),
/// once there are `n` or after 30 s.
async fn finished_files(dir: &std::path::Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|dirs| {
                dirs.filter_map(|d| d.ok())
                    .map(|d| d.path())
                    .filter(|d| d.join("metadata.json").exists())
                    .filter_map(|d| {
                        std::fs::read_dir(&d)
                            .ok()?
                            .filter_map(|e| e.ok())
                            .map(|e| e.path())
                            .find(|p| p.extension().is_some_and(|x| x == "webm"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if files.len() >= n || Instant::now() > deadline {
            return files;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
