//! The media run's results file: a header (machine, versions, load shape,
//! the command), one table of every level per server, and a summary with
//! lilt's ratio to Janus and the targets.

use std::fmt::Write as _;
use std::process::Command;

use super::{LevelResult, MediaParams, MediaServer, ServerRun};
use crate::report::date;
use crate::{Args, procfs};

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    crate::report::fmt_value(v)
}

/// Forwarded packets per second per core: the rate over the CPU share.
pub fn pps_per_core(r: &LevelResult) -> f64 {
    if r.server_cpu > 0.0 {
        r.forwarded_pps / (r.server_cpu / 100.0)
    } else {
        f64::NAN
    }
}

/// The highest level with loss within the limit.
fn best(run: &ServerRun, max_loss: f64) -> Option<&LevelResult> {
    run.levels
        .iter()
        .filter(|r| r.loss <= max_loss)
        .max_by(|a, b| a.forwarded_pps.total_cmp(&b.forwarded_pps))
}

/// The passing level whose load is nearest half of the best one's.
fn half(run: &ServerRun, max_loss: f64) -> Option<&LevelResult> {
    let target = best(run, max_loss)?.forwarded_pps / 2.0;
    run.levels
        .iter()
        .filter(|r| r.loss <= max_loss)
        .min_by(|a, b| {
            (a.forwarded_pps - target)
                .abs()
                .total_cmp(&(b.forwarded_pps - target).abs())
        })
}

fn ratio(lilt: Option<f64>, janus: Option<f64>, higher_better: bool) -> String {
    match (lilt, janus) {
        (Some(l), Some(j)) if l.is_finite() && j.is_finite() && l > 0.0 && j > 0.0 => {
            format!("{:.2}×", if higher_better { l / j } else { j / l })
        }
        _ => String::new(),
    }
}

pub fn document(args: &Args, p: &MediaParams, runs: &[(MediaServer, ServerRun)]) -> String {
    let mut d = String::new();
    let commit = args.lilt_commit.clone().unwrap_or_else(|| {
        output(
            Command::new("git")
                .arg("-C")
                .arg(crate::workspace_root())
                .args(["rev-parse", "--short", "HEAD"]),
        )
        .unwrap_or_else(|| "unknown".into())
    });
    let janus = crate::servers::package_version("janus").unwrap_or_else(|| "not installed".into());
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(d, "# Media benchmark run {}\n", date());
    let _ = writeln!(d, "- Machine: {}", procfs::machine_description());
    let _ = writeln!(
        d,
        "- lilt at commit {commit}. lilt-bridge: `lilt bridge` (release build) logged in to lilt (release build, a \
         Jitsi-like config: auth VirtualHost, internal MUC with the brewery), both pinned; the driver logs in as the \
         focus, finds the bridge in the brewery and allocates with Colibri2 over XMPP; CPU and memory are the \
         bridge process's. lilt-core: the same `sfu_component::bridge::Bridge` in `bench --media-bridge-host` \
         (the bench's own thin loop: one UDP socket, Colibri2 over a pipe). Janus {janus} (Debian), VideoRoom \
         plugin, HTTP API, `event_loops = {}` (0: one thread per handle)",
        p.janus_event_loops
    );
    let _ = writeln!(
        d,
        "- Server pinned to CPU {}, generator (all str0m endpoints, one thread) pinned to CPU {}; a fresh server for each level",
        args.server_cpu, args.generator_cpu
    );
    let _ = writeln!(
        d,
        "- Each sender: Opus-sized audio 50 packets/s of {} bytes, VP8-like video {} kbit/s at {} fps in {} packets of {} bytes a frame ({} packets/s); every endpoint receives every other sender (SENDERSxRECEIVERS: receivers send nothing)",
        super::peer::AUDIO_PAYLOAD,
        p.video_kbps,
        p.video.fps,
        p.video.packets_per_frame,
        p.video.packet_size,
        p.video.packets_per_second()
    );
    let _ = writeln!(
        d,
        "- Warm-up {:.0} s, measured {:.0} s per level; levels go up until loss passes {:.0} %",
        p.warmup.as_secs_f64(),
        p.duration.as_secs_f64(),
        p.max_loss * 100.0
    );
    let _ = writeln!(d, "- Command: `bench {}`\n", argv.join(" "));
    let _ = writeln!(
        d,
        "| server | level | endpoints | fwd streams (video) | offered pps | forwarded pps | loss % | latency p50 (ms) | p99 (ms) | server CPU % | CPU µs/pkt | fwd pps per core | KiB/endpoint anon (all RSS) | RSS before → during (MiB) | generator CPU % | other load on server core % | UDP drops rcvbuf/sndbuf | duplicates | setup (s) |"
    );
    let _ = writeln!(
        d,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (server, run) in runs {
        for r in &run.levels {
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} ({}) | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} ({}) | {} → {} | {} | {} | {}/{} | {} | {} |",
                server.label(),
                r.level.label(),
                r.level.endpoints(),
                r.level.forwarded_streams(),
                r.level.forwarded_video_streams(),
                num(r.offered_pps),
                num(r.forwarded_pps),
                100.0 * r.loss,
                num(r.p50_ms),
                num(r.p99_ms),
                num(r.server_cpu),
                num(r.cpu_us_per_packet),
                num(pps_per_core(r)),
                num(r.kib_per_endpoint),
                num(r.kib_per_endpoint_rss),
                num(r.rss_before_mib),
                num(r.rss_mib),
                num(r.generator_cpu),
                num(r.other_load),
                r.udp_rcvbuf_drops,
                r.udp_sndbuf_drops,
                r.duplicates,
                num(r.setup_secs),
            );
        }
        if let Some(f) = &run.failure {
            let _ = writeln!(d, "| {} | failed | {f} |||||||||||||", server.label());
        }
    }
    let find = |s: MediaServer| runs.iter().find(|(k, _)| *k == s).map(|(_, r)| r);
    let lilt = find(MediaServer::LiltBridge).or_else(|| find(MediaServer::LiltCore));
    let janus = find(MediaServer::Janus);
    let pick = |run: Option<&ServerRun>, f: &dyn Fn(&ServerRun) -> Option<f64>| run.and_then(f);
    type Getter = Box<dyn Fn(&ServerRun) -> Option<f64>>;
    let ml = p.max_loss;
    // Latency is compared at one level for both: the one nearest half of
    // lilt's highest load (the "at half that load").
    let half_level = lilt.or(janus).and_then(|r| half(r, ml)).map(|r| r.level);
    // A run without that level (another scenario) uses its own half.
    let at_half = move |r: &ServerRun| -> Option<LevelResult> {
        half_level
            .and_then(|level| r.levels.iter().find(|x| x.level == level))
            .or_else(|| half(r, ml))
            .cloned()
    };
    let half_name = half_level.map(|l| l.label()).unwrap_or_default();
    let p50_name = format!("latency p50 (ms) at about half that load ({half_name})");
    let p99_name = format!("latency p99 (ms) at about half that load ({half_name})");
    let rows: Vec<(&str, Getter, Option<bool>, &str)> = vec![
        (
            "highest forwarded pps with loss ≤ limit",
            Box::new(move |r| best(r, ml).map(|b| b.forwarded_pps)),
            Some(true),
            "",
        ),
        (
            "its level: forwarded video streams",
            Box::new(move |r| best(r, ml).map(|b| b.level.forwarded_video_streams() as f64)),
            Some(true),
            "≥ 2,000 per core",
        ),
        (
            "its level: server CPU %",
            Box::new(move |r| best(r, ml).map(|b| b.server_cpu)),
            None,
            "",
        ),
        (
            "its level: generator CPU % (near 100: the generator, not the server, is the limit)",
            Box::new(move |r| best(r, ml).map(|b| b.generator_cpu)),
            None,
            "",
        ),
        (
            "forwarded pps per core (rate / CPU share, at that level)",
            Box::new(move |r| best(r, ml).map(pps_per_core)),
            Some(true),
            "≥ 100,000",
        ),
        (
            "server CPU µs per forwarded packet (at that level)",
            Box::new(move |r| best(r, ml).map(|b| b.cpu_us_per_packet)),
            Some(false),
            "",
        ),
        (
            &p50_name,
            Box::new(move |r| at_half(r).map(|b| b.p50_ms)),
            Some(false),
            "",
        ),
        (
            &p99_name,
            Box::new(move |r| at_half(r).map(|b| b.p99_ms)),
            Some(false),
            "< 1 ms",
        ),
        (
            "server's own added latency p99 (µs, kernel arrival → send, at about half load)",
            Box::new(move |r| {
                at_half(r)
                    .and_then(|b| b.host_latency)
                    .map(|h| h.kernel_us[1])
            }),
            Some(false),
            "< 1,000 µs",
        ),
        (
            "KiB per endpoint, anonymous memory (at the highest level)",
            Box::new(move |r| best(r, ml).map(|b| b.kib_per_endpoint)),
            Some(false),
            "< 50",
        ),
        (
            "the same per forwarded video stream (anonymous KiB × endpoints / video streams)",
            Box::new(move |r| {
                best(r, ml).map(|b| {
                    b.kib_per_endpoint * b.level.endpoints() as f64
                        / b.level.forwarded_video_streams().max(1) as f64
                })
            }),
            Some(false),
            "",
        ),
        (
            "KiB per endpoint, all RSS (at the highest level)",
            Box::new(move |r| best(r, ml).map(|b| b.kib_per_endpoint_rss)),
            Some(false),
            "",
        ),
    ];
    let _ = write!(d, "\n| figure |");
    for (server, _) in runs {
        let _ = write!(d, " {} |", server.label());
    }
    let _ = writeln!(d, " lilt vs janus | target |");
    let _ = write!(d, "|---|");
    for _ in runs {
        let _ = write!(d, "---:|");
    }
    let _ = writeln!(d, "---:|---|");
    let cell = |v: Option<f64>| v.map(num).unwrap_or_else(|| "—".into());
    for (name, get, higher, target) in &rows {
        let l = pick(lilt, get.as_ref());
        let j = pick(janus, get.as_ref());
        let _ = write!(d, "| {name} |");
        for (_, run) in runs {
            let _ = write!(d, " {} |", cell(get(run)));
        }
        let _ = writeln!(
            d,
            " {} | {target} |",
            higher.map(|h| ratio(l, j, h)).unwrap_or_default()
        );
    }
    host_latency_table(&mut d, runs);
    let _ = writeln!(
        d,
        "\n\"lilt vs janus\" is lilt's advantage (above 1: lilt better). Latency is send time to receive time of the \
         same probe in the driver process, so it includes both endpoints' SRTP work and the generator's scheduling, \
         not only the server's (the server's own is in the table above it, where measured). \"fwd pps per core\" \
         divides the measured rate by the server's CPU share; \"lilt vs janus\" compares lilt-bridge (else \
         lilt-core) with Janus."
    );
    d
}

/// The bridge host's own measurement of its added latency, per level.
fn host_latency_table(d: &mut String, runs: &[(MediaServer, ServerRun)]) {
    let measured: Vec<(MediaServer, &LevelResult)> = runs
        .iter()
        .flat_map(|(s, run)| run.levels.iter().map(move |r| (*s, r)))
        .filter(|(_, r)| r.host_latency.is_some())
        .collect();
    if measured.is_empty() {
        return;
    }
    let _ = writeln!(
        d,
        "\n### The server's own added latency (inside the bridge host, µs)\n\n\
         From the kernel's receive timestamp of a packet (`SO_TIMESTAMPNS`: the wait in the socket's \
         queue counts) or from the bridge host's read of it, to the send of each forwarded copy; \
         packets matched by RTP sequence number and timestamp (RTCP, RTX, padding and renumbered \
         packets are \"unmatched\").\n"
    );
    let _ = writeln!(
        d,
        "| server | level | forwarded packets matched | unmatched RTP out | arrival→send p50 | p99 | p99.9 | max | read→send p50 | p99 | p99.9 | max |"
    );
    let _ = writeln!(
        d,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (server, r) in measured {
        let Some(h) = r.host_latency else { continue };
        let _ = writeln!(
            d,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            server.label(),
            r.level.label(),
            num(h.matched as f64),
            num(h.unmatched as f64),
            num(h.kernel_us[0]),
            num(h.kernel_us[1]),
            num(h.kernel_us[2]),
            num(h.kernel_us[3]),
            num(h.read_us[0]),
            num(h.read_us[1]),
            num(h.read_us[2]),
            num(h.read_us[3]),
        );
    }
}
