//! `bench --media --media-servers lilt-relay`: the relay scenario of the
//! media benchmark (issue 22). For each level `NxM`, in the same run:
//!
//! - **single**: one lilt bridge (`bench --media-bridge-host`, lilt's
//!   sans-IO `Bridge` in the bench's thin loop, as `lilt-core`) with all
//!   N senders and M receivers;
//! - **relay**: bridge A with the N senders, bridge B with the M
//!   receivers, the two relayed with Colibri2 `<relay>` as Jicofo relays
//!   them (`relay_focus.rs`).
//!
//! Every endpoint receives every other sender, so both setups deliver the
//! same packets: the senders' streams to the N − 1 other senders (on A,
//! no relay crossed) and to the M receivers (across the relay). The
//! relay's cost per delivered packet is (CPU of A + CPU of B) / delivered
//! − CPU of the single bridge / delivered.
//!
//! Cores: bridge A, bridge B and the single bridge on `--server-cpu`, the
//! endpoints on `--generator-cpu`, unless `LILT_BENCH_RELAY_CPUS=A,B`
//! pins the bridges elsewhere (e.g. `0,1`: B shares the generator's core).
//! UDP ports: A (and the single bridge) on `--media-udp-port`, B on the
//! next one.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::payload::VideoShape;
use super::pump::Pump;
use super::relay_focus::{Conference, Host};
use super::{Level, MediaError};
use crate::{Args, procfs, servers};

/// The `--media-servers` name of this scenario.
pub const LABEL: &str = "lilt-relay";

/// The scenario's parameters, from the media flags.
struct Params {
    levels: Vec<Level>,
    warmup: Duration,
    duration: Duration,
    video: VideoShape,
    port: u16,
    cpus: [usize; 2],
    max_loss: f64,
}

/// What one setup measured at one level.
#[derive(Debug, Clone, Default)]
struct Figures {
    delivered_pps: f64,
    offered_pps: f64,
    loss: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU % of each bridge (one for single, A and B for relay).
    cpu: Vec<f64>,
    /// CPU µs of each bridge per delivered packet.
    us_per_pkt: Vec<f64>,
    generator_cpu: f64,
    other_load: f64,
    udp_drops: (u64, u64),
    duplicates: u64,
    setup_secs: f64,
}

impl Figures {
    fn total_us(&self) -> f64 {
        self.us_per_pkt.iter().sum()
    }
}

/// One level: the single bridge and the relayed pair.
struct Row {
    level: Level,
    single: Result<Figures, String>,
    relay: Result<Figures, String>,
}

fn params(args: &Args) -> Result<Params, MediaError> {
    let levels = args
        .media_levels
        .iter()
        .map(|s| {
            Level::parse(s)
                .ok_or_else(|| MediaError::Usage(format!("bad level {s:?} (SENDERSxRECEIVERS)")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cpus = match std::env::var("LILT_BENCH_RELAY_CPUS") {
        Ok(v) => {
            let parsed: Vec<usize> = v.split(',').filter_map(|c| c.trim().parse().ok()).collect();
            match parsed.as_slice() {
                [a, b] => [*a, *b],
                _ => {
                    return Err(MediaError::Usage(format!(
                        "LILT_BENCH_RELAY_CPUS={v:?}: want A,B"
                    )));
                }
            }
        }
        Err(_) => [args.server_cpu, args.server_cpu],
    };
    Ok(Params {
        levels,
        warmup: Duration::from_secs_f64(args.media_warmup),
        duration: Duration::from_secs_f64(args.media_duration),
        video: VideoShape::new(args.media_video_kbps, args.media_fps, args.media_packet),
        port: args.media_udp_port,
        cpus,
        max_loss: args.media_max_loss / 100.0,
    })
}

/// The whole scenario (already inside the media run's network namespace).
pub fn run(args: &Args) -> Result<(), MediaError> {
    let p = params(args)?;
    if p.levels.is_empty() {
        return Err(MediaError::Usage("no media levels".into()));
    }
    if let Err(e) = procfs::set_nice(servers::NICE) {
        eprintln!("bench: warning: cannot raise the generator's priority: {e}");
    }
    if let Err(e) = super::own_autogroup(servers::NICE) {
        eprintln!("bench: warning: cannot raise the run's scheduling group: {e}");
    }
    procfs::pin_self(&[args.generator_cpu]).map_err(MediaError::io("pinning the generator"))?;
    let _ = procfs::raise_nofile();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows = Vec::new();
    for &level in &p.levels {
        eprintln!("media relay: {} ...", level.label());
        let single = measure(&p, level, false).map_err(|e| e.to_string());
        say(level, "single", &single);
        let relay = measure(&p, level, true).map_err(|e| e.to_string());
        say(level, "relay", &relay);
        let over = [&single, &relay]
            .iter()
            .any(|r| r.as_ref().map(|f| f.loss > p.max_loss).unwrap_or(true));
        rows.push(Row {
            level,
            single,
            relay,
        });
        if over {
            break;
        }
    }
    let doc = document(args, &p, &rows, load.trim());
    println!("{doc}");
    if !args.no_save {
        let file = format!("{}-media-relay.md", crate::report::date());
        let path = crate::report::save(args.results_dir.as_deref(), &file, &doc)
            .map_err(|e| MediaError::io("writing the results")(e.source))?;
        eprintln!("bench: saved {}", path.display());
    }
    Ok(())
}

fn say(level: Level, setup: &str, r: &Result<Figures, String>) {
    match r {
        Ok(f) => eprintln!(
            "media relay: {} {setup}: {:.0} delivered pps, loss {:.2} %, p50 {:.2} ms, p99 {:.2} ms, \
             bridge CPU {:?} %, {:?} us/pkt, generator {:.0} %, other load {:.0} %, UDP drops {}/{}",
            level.label(),
            f.delivered_pps,
            100.0 * f.loss,
            f.p50_ms,
            f.p99_ms,
            f.cpu.iter().map(|c| c.round()).collect::<Vec<_>>(),
            f.us_per_pkt
                .iter()
                .map(|u| (u * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            f.generator_cpu,
            f.other_load,
            f.udp_drops.0,
            f.udp_drops.1,
        ),
        Err(e) => eprintln!("media relay: {} {setup}: {e}", level.label()),
    }
}

/// One setup at one level on fresh bridges.
fn measure(p: &Params, level: Level, relayed: bool) -> Result<Figures, MediaError> {
    let mut hosts = vec![Host::start(&p.cpus[0].to_string(), p.port)?];
    if relayed {
        match Host::start(&p.cpus[1].to_string(), p.port.saturating_add(1)) {
            Ok(h) => hosts.push(h),
            Err(e) => {
                hosts.into_iter().for_each(Host::stop);
                return Err(e);
            }
        }
    }
    let result = measure_on(&mut hosts, p, level);
    hosts.into_iter().for_each(Host::stop);
    result
}

fn measure_on(hosts: &mut [Host], p: &Params, level: Level) -> Result<Figures, MediaError> {
    std::thread::sleep(Duration::from_millis(300));
    let pids: Vec<u32> = hosts.iter().map(|h| h.pid).collect();
    let setup_start = Instant::now();
    let mut pump = Pump::new(p.video);
    let mut conference = Conference::new();
    let last = hosts.len().saturating_sub(1);
    for i in 0..level.senders {
        let host = hosts
            .first_mut()
            .ok_or_else(|| MediaError::Protocol("no bridge".into()))?;
        conference.join(0, host, &mut pump, &format!("s{i:07x}"), Some(i))?;
    }
    for i in 0..level.receivers {
        let host = hosts
            .get_mut(last)
            .ok_or_else(|| MediaError::Protocol("no bridge".into()))?;
        conference.join(last, host, &mut pump, &format!("r{i:07x}"), None)?;
    }
    if hosts.len() == 2 {
        conference.relay(hosts)?;
    }
    let fan_out = conference.expect_all(&mut pump);
    pump.connect_all(Duration::from_secs(30))?;
    let setup_secs = setup_start.elapsed().as_secs_f64();
    let now = pump.start_sending();
    pump.run(now + p.warmup, |_| false)?;
    let start = Instant::now();
    let window_start = start.saturating_duration_since(pump.epoch);
    pump.tally
        .open(window_start, window_start + p.duration, fan_out);
    let cpu0: Vec<f64> = pids
        .iter()
        .map(|&pid| procfs::cpu_seconds(pid).unwrap_or(0.0))
        .collect();
    let gen0 = procfs::own_cpu_seconds();
    let cores = cores(p, hosts.len());
    let core0: Vec<(u64, u64)> = cores
        .iter()
        .map(|&c| procfs::cpu_jiffies(c).unwrap_or((0, 0)))
        .collect();
    let udp0 = super::udp_buffer_errors();
    pump.run(start + p.duration, |_| false)?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1: Vec<f64> = pids
        .iter()
        .map(|&pid| procfs::cpu_seconds(pid).unwrap_or(0.0))
        .collect();
    let gen1 = procfs::own_cpu_seconds();
    let core1: Vec<(u64, u64)> = cores
        .iter()
        .map(|&c| procfs::cpu_jiffies(c).unwrap_or((0, 0)))
        .collect();
    let udp1 = super::udp_buffer_errors();
    // Late packets of the window still count.
    pump.run(Instant::now() + Duration::from_millis(500), |_| false)?;
    let f = pump.tally.figures();
    let secs = p.duration.as_secs_f64();
    let used: Vec<f64> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| (b - a).max(0.0))
        .collect();
    // Other load: each core's busy time not explained by its bridges.
    let mut other = 0.0;
    for (i, &core) in cores.iter().enumerate() {
        let on_core: f64 = used
            .iter()
            .enumerate()
            .filter(|(b, _)| p.cpus.get(*b).copied().unwrap_or(p.cpus[0]) == core)
            .map(|(_, u)| u)
            .sum();
        let (Some(before), Some(after)) = (core0.get(i), core1.get(i)) else {
            continue;
        };
        other += super::other_load(*before, *after, on_core) / cores.len() as f64;
    }
    let per_packet = |u: f64| {
        if f.received > 0 {
            u * 1e6 / f.received as f64
        } else {
            f64::NAN
        }
    };
    Ok(Figures {
        delivered_pps: f.received as f64 / secs,
        offered_pps: f.expected as f64 / secs,
        loss: f.loss,
        p50_ms: f.p50_ms,
        p99_ms: f.p99_ms,
        cpu: used.iter().map(|u| 100.0 * u / elapsed).collect(),
        us_per_pkt: used.iter().map(|&u| per_packet(u)).collect(),
        generator_cpu: 100.0 * (gen1 - gen0) / elapsed,
        other_load: other,
        udp_drops: (udp1.0.saturating_sub(udp0.0), udp1.1.saturating_sub(udp0.1)),
        duplicates: pump.tally.duplicates,
        setup_secs,
    })
}

/// The distinct cores the bridges of a setup run on.
fn cores(p: &Params, bridges: usize) -> Vec<usize> {
    let mut c: Vec<usize> = p.cpus.iter().take(bridges).copied().collect();
    c.dedup();
    c
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Share of delivered packets that cross the relay: to the M receivers
/// out of the N − 1 + M endpoints each stream goes to.
fn relayed_share(level: Level) -> f64 {
    let fan = level.endpoints().saturating_sub(1);
    if fan == 0 {
        0.0
    } else {
        level.receivers as f64 / fan as f64
    }
}

/// The relay's extra CPU (µs) per packet that crossed it: the extra CPU
/// of the relayed run over the packets the senders sent in its window
/// (delivered packets over the fan-out of each stream).
fn per_crossing(level: Level, single: &Figures, relay: &Figures) -> f64 {
    let fan = level.endpoints().saturating_sub(1) as f64;
    if fan <= 0.0 {
        return f64::NAN;
    }
    (relay.total_us() - single.total_us()) * fan
}

fn document(args: &Args, p: &Params, rows: &[Row], load: &str) -> String {
    let mut d = String::new();
    let _ = writeln!(
        d,
        "# Media relay benchmark run {} (issue 22)\n",
        crate::report::date()
    );
    let _ = writeln!(d, "- Machine: {}", procfs::machine_description());
    let commit = args.lilt_commit.clone().unwrap_or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(crate::workspace_root())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    });
    let _ = writeln!(
        d,
        "- lilt: {} build of `bench` at {commit}; each bridge is `bench --media-bridge-host` \
         (lilt's sans-IO `Bridge` in the bench's thin loop, Colibri2 over a pipe: the `lilt-core` \
         server of the media table), a fresh process per setup and level",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    let _ = writeln!(
        d,
        "- single: all endpoints on one bridge. relay: the N senders on bridge A, the M receivers \
         on bridge B, relayed with Colibri2 `<relay>` as Jicofo sends it (create with the peer's \
         endpoints and sources on both sides, A initiator / ICE controlling / DTLS client given B's \
         relay web-socket URL, then each answered transport copied to the other side; the bench's \
         bridge host has no HTTP, so the relay bridge channel is not connected: media only)"
    );
    let _ = writeln!(
        d,
        "- Cores: bridge A and the single bridge on CPU {}, bridge B on CPU {}, the generator (all \
         str0m endpoints, one thread) on CPU {}",
        p.cpus[0], p.cpus[1], args.generator_cpu
    );
    let _ = writeln!(
        d,
        "- Each sender: Opus-sized audio 50 packets/s, VP8-like video {} kbit/s at {} fps; every \
         endpoint receives every other sender (the senders each other's on A, the receivers all \
         senders' across the relay); receivers send nothing",
        args.media_video_kbps, args.media_fps
    );
    let _ = writeln!(
        d,
        "- Warm-up {} s, measured {} s per setup and level; levels stop when a setup's loss passes {} %",
        p.warmup.as_secs_f64(),
        p.duration.as_secs_f64(),
        100.0 * p.max_loss
    );
    let _ = writeln!(d, "- Load average at the start: {load}");
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(d, "- Command: `bench {}`\n", argv.join(" "));
    d.push_str(
        "| level | relayed share % | setup | delivered pps | offered pps | loss % | p50 (ms) | p99 (ms) \
         | CPU % (A / B) | µs/pkt (A / B) | µs/pkt total | generator CPU % | other load % | UDP drops rcv/snd | dup | setup (s) |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        for (name, r) in [("single", &row.single), ("relay", &row.relay)] {
            match r {
                Ok(f) => {
                    let _ = writeln!(
                        d,
                        "| {} | {:.0} | {name} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {}/{} | {} | {:.2} |",
                        row.level.label(),
                        100.0 * relayed_share(row.level),
                        num(f.delivered_pps),
                        num(f.offered_pps),
                        100.0 * f.loss,
                        num(f.p50_ms),
                        num(f.p99_ms),
                        f.cpu
                            .iter()
                            .map(|c| num(*c))
                            .collect::<Vec<_>>()
                            .join(" / "),
                        f.us_per_pkt
                            .iter()
                            .map(|c| num(*c))
                            .collect::<Vec<_>>()
                            .join(" / "),
                        num(f.total_us()),
                        f.generator_cpu,
                        f.other_load,
                        f.udp_drops.0,
                        f.udp_drops.1,
                        f.duplicates,
                        f.setup_secs,
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        d,
                        "| {} | | {name} | failed: {} | | | | | | | | | | | | |",
                        row.level.label(),
                        e.replace('|', "/")
                    );
                }
            }
        }
    }
    d.push_str(
        "\n### The relay's cost\n\nPer delivered packet: (CPU of A + CPU of B) / delivered − CPU of the \
         single bridge / delivered; per packet crossing the relay: the same extra CPU over the packets \
         that crossed it (each sender packet crosses once; B copies it to its receivers); latency added: relay run minus single run (all delivered packets, \
         of which the relayed share crossed the relay).\n\n\
         | level | single µs/pkt | A+B µs/pkt | relay cost µs/pkt | A+B / single | relay cost µs per packet crossing | p50 added (ms) | p99 added (ms) | loss single / relay % |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        if let (Ok(s), Ok(r)) = (&row.single, &row.relay) {
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} | {:.2}× | {} | {} | {} | {:.2} / {:.2} |",
                row.level.label(),
                num(s.total_us()),
                num(r.total_us()),
                num(r.total_us() - s.total_us()),
                r.total_us() / s.total_us(),
                num(per_crossing(row.level, s, r)),
                num(r.p50_ms - s.p50_ms),
                num(r.p99_ms - s.p99_ms),
                100.0 * s.loss,
                100.0 * r.loss,
            );
        }
    }
    d
}
