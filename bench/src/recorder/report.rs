//! The recorder run's results file: what ran, the figures per recording
//! against issue 15's targets, every file's check, and Jibri's side (no
//! peer was run beside lilt: see the note written into the file).

use std::fmt::Write as _;

use super::RecorderResult;
use crate::report::date;
use crate::{Args, procfs};

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub fn render(args: &Args, r: &RecorderResult) -> String {
    let a = &args.recorder;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# bench --recorder: {} conferences of {} recorded at once by one lilt ({})\n",
        r.conferences,
        r.participants,
        date()
    );
    let _ = writeln!(s, "- Machine: {}", procfs::machine_description());
    let _ = writeln!(
        s,
        "- lilt {} ({} build), in this process with its focus and bridge (`jitsi_focus`, \
         `jitsi_videobridge`); the recorder (`recorder_component::run_with_links`, as `lilt recorder` \
         and `jitsi_recorder` run it) on a thread of its own with a single-threaded tokio runtime, \
         logged in as jibri@auth (JibriBrewery) and recorder@recorder (the hidden domain)",
        commit(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        s,
        "- Each conference: {} str0m participants joined through the focus (conference IQ, Jingle \
         offer answered with ICE/DTLS/SRTP over UDP on 127.0.0.1), each sending Opus (20 ms, 32 kbit/s \
         tone; one participant at -20 dBov, the others at -50) and VP8 ({} at 30 fps, {} kbit/s, \
         keyframe every 2 s, made by ffmpeg's libvpx); each participant receives the others' audio \
         through lilt's bridge and asks for no video on its bridge channel (ReceiverVideoConstraints \
         lastN 0), so the bridge forwards video to the recorder only and the machine's CPU goes to \
         the recordings, not to 3 simulated receivers per sender",
        r.participants, a.recorder_video_size, a.recorder_video_kbps
    );
    let _ = writeln!(
        s,
        "- Every conference's first participant starts a file recording through the focus \
         (`<jibri action='start' recording_mode='file'/>`); all {} started in {:.1} s (set-up of the \
         participants {:.1} s); warm-up {:.0} s, measured {:.1} s, then stopped",
        r.conferences, r.start_secs, r.setup_secs, a.recorder_warmup, r.window_secs
    );
    let _ = writeln!(
        s,
        "- Command: `bench --recorder --recorder-conferences {} --recorder-participants {} \
         --recorder-duration {} --recorder-warmup {}`\n",
        r.conferences, r.participants, a.recorder_duration, a.recorder_warmup
    );

    let ok = |b: bool| if b { "met" } else { "not met" };
    let cpu = r.cpu_per_recording();
    let mib = r.mib_per_recording();
    let _ = writeln!(s, "| figure | measured | target (issue 15) | |");
    let _ = writeln!(s, "|---|---:|---|---|");
    let _ = writeln!(
        s,
        "| recordings at once | {} | 20 | {} |",
        r.conferences,
        ok(r.conferences >= 20)
    );
    let _ = writeln!(
        s,
        "| recorder CPU, all recordings (% of one core) | {:.2} | | |",
        r.recorder_cpu
    );
    let _ = writeln!(
        s,
        "| recorder CPU per recording (% of one core) | {:.3} | < 2 % | {} |",
        cpu,
        ok(cpu < 2.0)
    );
    let _ = writeln!(
        s,
        "| resident memory grown per recording (MiB) | {:.2} | < 30 MB | {} |",
        mib,
        ok(mib < 28.6)
    );
    let _ = writeln!(
        s,
        "| process RSS before the recordings → during (MiB) | {:.1} → {:.1} | | |",
        r.rss_before_mib, r.rss_during_mib
    );
    let _ = writeln!(
        s,
        "| whole process CPU (lilt, focus, bridge, {} participants, recorder; % of one core) | {:.1} | | |\n",
        r.conferences * r.participants,
        r.process_cpu
    );

    let _ = writeln!(
        s,
        "| file | size (MiB) | duration (s) | video/audio tracks | video frames | decoding errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
    for (f, c) in &r.files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "| {name} | {:.2} | {:.1} | {}/{} | {} | {} |",
            c.bytes as f64 / 1_048_576.0,
            c.duration,
            c.video_streams,
            c.audio_streams,
            c.video_frames,
            c.decode_errors
        );
    }
    let good = r
        .files
        .iter()
        .filter(|(_, c)| {
            c.video_streams == 1
                && c.audio_streams == 1
                && c.decode_errors == 0
                && c.video_frames > 0
        })
        .count();
    let _ = writeln!(
        s,
        "\n{good} of {} files have one video and one audio track, video frames, and decode without errors \
         (`ffmpeg -v error -i F -f null -`; its null-output note \"non monotonically increasing dts\" \
         is not counted, as in tests/js/jitsi/record.test.js); recordings lasted about {:.0} s from the \
         first start to the last stop.\n",
        r.files.len(),
        r.recorded_secs
    );
    let _ = writeln!(s, "## How it was measured\n");
    let _ = writeln!(
        s,
        "- CPU per recording: the recorder thread's utime + stime (`/proc/self/task/TID/stat`) over \
         the window, divided by the window and by the recordings. That thread does all of the \
         recorder's work: ICE/DTLS/SRTP of each media link (str0m), RTP and RTCP, VP8 \
         depacketization, Opus decoding of every participant, the mix and its Opus encoding, the WebM \
         writing, the bridge channels (colibri-ws) and the Jibri protocol. lilt's routing of its \
         stanzas is lilt's, not counted."
    );
    let _ = writeln!(
        s,
        "- Memory per recording: the process's VmRSS at the end of the window minus VmRSS just before \
         the first recording started (all participants already sending), divided by the recordings. \
         It also holds what the bridge needs for one more receiver per conference (the recorder's \
         endpoint: its str0m `Rtc` and the retransmission caches of the streams forwarded to it), so \
         the recorder's own share is smaller."
    );
    let _ = writeln!(
        s,
        "- Everything ran on this 2-core machine beside other work (other builds); the recorder \
         thread's CPU counts only that thread's time, so others' load slows it but is not counted in \
         it.\n"
    );
    let _ = writeln!(s, "## Jibri (not run beside it)\n");
    let _ = writeln!(
        s,
        "No peer was run side by side. Jibri records by joining the meeting in Chrome on a virtual X \
         display (Xvfb), with an ALSA loopback, and screen-capturing it with ffmpeg (x11grab, \
         re-encoding to H.264): one recording per Jibri, so one machine (or VM/container with its own \
         display and sound card) per concurrent recording; its documentation asks for several cores \
         and about 8 GB of memory per Jibri. It needs Chrome and a virtual display, which this \
         benchmark machine (2 cores, shared) cannot run 20 of; running even one would only show the \
         order of magnitude already documented. lilt records from the media itself (no decoding of \
         video, no browser), so {} recordings ran in one process on one thread.",
        r.conferences
    );
    s
}
