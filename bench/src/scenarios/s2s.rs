//! `bench s2s`: server-to-server throughput (issue 19). For each software
//! (lilt, Debian's Prosody 0.12, Debian's ejabberd) two servers of it,
//! `a.lilt` and `b.lilt`, federate over s2s with TLS on loopback inside a
//! private namespace with its own DNS ([`crate::federation`]); `pairs`
//! client pairs, a user on A with a user on B, chat as scenario 2 does
//! ([`super::one_to_one`]'s pairs: each direction keeps `window` messages
//! sent but not yet delivered), so every message crosses the s2s link.
//!
//! Figures, medians of `repeat` runs on one started pair of servers:
//! messages delivered across per second (both directions), delivery
//! latency p50/p99 (client send to client read, through both servers),
//! the CPU both servers used together, and that CPU per 1000 messages.
//! Both servers are pinned to the server core, the generator to the other;
//! the s2s streams are opened during the warm-up, which is not counted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::one_to_one::pair;
use super::{Window, close_all, login_many, register_all};
use crate::client::{ClientError, Mechanism, Target};
use crate::federation::peers::{self, Peer, Place, Software};
use crate::federation::{self, DOMAINS};
use crate::sasl::SaltCache;
use crate::stats::percentile;
use crate::{accounts, procfs, report, servers, workspace_root};

/// s2s throughput: lilt↔lilt beside Prosody↔Prosody and ejabberd↔ejabberd.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench s2s")]
pub struct S2sArgs {
    /// Software of the pairs, comma-separated: lilt, prosody, ejabberd.
    #[arg(long, default_value = "lilt,prosody,ejabberd", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Client pairs (a user on A with a user on B).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Messages in flight per direction of a pair.
    #[arg(long, default_value_t = 5)]
    pub window: u32,
    /// Warm-up seconds (s2s streams open, chat flows, nothing counted).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Runs on each pair of servers (the table shows medians).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The lilt binary (default: target/release/lilt in this workspace).
    #[arg(long)]
    pub lilt: Option<PathBuf>,
    /// Where the servers' throw-away directories go.
    #[arg(long, default_value = "/tmp/lilt-bench-s2s")]
    pub work_dir: PathBuf,
    /// CPU both servers are pinned to.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// CPU of the load generator.
    #[arg(long, default_value_t = 1)]
    pub generator_cpu: usize,
    /// Where to save the results (default: bench/results in this workspace).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Print the results only.
    #[arg(long)]
    pub no_save: bool,
    /// A note for the results file (what the lilt binary is, the build).
    #[arg(long, default_value = "")]
    pub note: String,
}

/// The rows of the table: key, label, whether higher is better.
const ROWS: [(&str, &str, bool); 7] = [
    (
        "rate",
        "messages delivered across/s (both directions)",
        true,
    ),
    ("ab", "of which a.lilt → b.lilt /s", true),
    ("p50", "delivery p50 (ms)", false),
    ("p99", "delivery p99 (ms)", false),
    ("cpu", "CPU of both servers (% of a core)", false),
    (
        "cpu_per_k",
        "CPU ms per 1000 messages (both servers)",
        false,
    ),
    ("gen", "generator CPU (% of a core)", false),
];

/// One run's figures, by row key.
use crate::report::Run;

fn cpu_of(peers: &[Peer]) -> f64 {
    peers
        .iter()
        .map(|p| procfs::cpu_seconds(p.pid).unwrap_or(0.0))
        .sum()
}

/// One measured run on started servers.
async fn run_once(args: &S2sArgs, targets: &[Target; 2], peers: &[Peer]) -> Result<Run, String> {
    let err = |e: ClientError| e.to_string();
    let on_a = login_many(&targets[0], 0, args.pairs, 50)
        .await
        .map_err(err)?;
    let on_b = login_many(&targets[1], 0, args.pairs, 50)
        .await
        .map_err(err)?;
    let base = Instant::now();
    let window = Window::new(
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
    );
    let mut set = JoinSet::new();
    for (a, b) in on_a.into_iter().zip(on_b) {
        set.spawn(pair(a, b, args.window, base, window));
    }
    sleep_until(window.measure_from.into()).await;
    let (cpu0, own0, t0) = (cpu_of(peers), procfs::own_cpu_seconds(), Instant::now());
    sleep_until(window.measure_until.into()).await;
    let wall = t0.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu_of(peers) - cpu0;
    let own = procfs::own_cpu_seconds() - own0;
    let (mut ab, mut ba, mut lat) = (0u64, 0u64, Vec::new());
    let mut conns = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((a_to_b, b_to_a, a, b))) => {
                ab += a_to_b.delivered;
                ba += b_to_a.delivered;
                lat.extend(a_to_b.latencies_us);
                lat.extend(b_to_a.latencies_us);
                conns.push(a);
                conns.push(b);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e.to_string());
            }
            Err(e) => {
                first_err.get_or_insert(e.to_string());
            }
        }
    }
    close_all(conns).await;
    if let Some(e) = first_err {
        return Err(e);
    }
    let secs = args.duration as f64;
    let delivered = ab + ba;
    if delivered == 0 {
        return Err("no message crossed between the servers in the measured window".into());
    }
    let mut run = vec![
        ("rate", delivered as f64 / secs),
        ("ab", ab as f64 / secs),
        ("cpu", 100.0 * cpu / wall),
        ("cpu_per_k", 1e6 * cpu / delivered as f64),
        ("gen", 100.0 * own / wall),
    ];
    for (key, p) in [("p50", 50.0), ("p99", 99.0)] {
        if let Some(v) = percentile(&mut lat, p) {
            run.push((key, f64::from(v) / 1000.0));
        }
    }
    Ok(run)
}

/// Starts the two servers of `software`, measures, stops them.
fn bench_software(
    args: &S2sArgs,
    software: Software,
    net: &Net,
    lilt_bin: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> Result<Vec<Run>, String> {
    let cpus = args.server_cpu.to_string();
    let mut started: Vec<Peer> = Vec::new();
    let mut targets = Vec::new();
    for (domain, ip) in DOMAINS {
        let place = Place {
            domain,
            ip,
            dir: args.work_dir.join(format!("{}-{domain}", software.label())),
            certs: &net.certs,
            ca: &net.ca,
            cpus: &cpus,
            accounts: args.pairs,
        };
        match peers::start(software, &place, lilt_bin) {
            Ok(p) => {
                targets.push(Target {
                    addr: p.c2s,
                    domain: domain.to_string(),
                    mechanism: Mechanism::ScramSha1,
                    cache: SaltCache::default(),
                    step_timeout: Duration::from_secs(60),
                });
                started.push(p);
            }
            Err(e) => {
                started.into_iter().for_each(Peer::stop);
                return Err(e);
            }
        }
    }
    let result = (|| {
        let targets: [Target; 2] = targets
            .try_into()
            .map_err(|_| "two servers expected".to_string())?;
        if software == Software::Ejabberd {
            for t in &targets {
                let list = (0..args.pairs)
                    .map(|i| (accounts::username(i), accounts::PASSWORD.to_string()))
                    .collect();
                rt.block_on(register_all(t, list, 20))
                    .map_err(|e| format!("registration on {}: {e}", t.domain))?;
            }
        }
        let mut runs = Vec::new();
        for rep in 0..args.repeat.max(1) {
            let run = rt.block_on(run_once(args, &targets, &started))?;
            eprintln!(
                "  {} run {}: {}",
                software.label(),
                rep + 1,
                run.iter()
                    .map(|(k, v)| format!("{k}={v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            runs.push(run);
            std::thread::sleep(Duration::from_secs(1));
        }
        Ok(runs)
    })();
    if result.is_err() {
        for p in &started {
            eprintln!("{} log:\n{}", p.software.label(), p.log_tail());
        }
    }
    started.into_iter().for_each(Peer::stop);
    result
}

/// The namespace's certificates.
struct Net {
    certs: PathBuf,
    ca: PathBuf,
}

/// The table: medians per software, and lilt's ratio to each peer.
fn table(kinds: &[Software], runs: &[(Software, Vec<Run>)]) -> String {
    let servers: Vec<(Software, String, String)> = kinds
        .iter()
        .map(|k| (*k, format!("{0}↔{0}", k.label()), k.label().to_string()))
        .collect();
    report::median_table(
        &servers,
        Software::Lilt,
        runs,
        &ROWS,
        |peer| format!("lilt ÷ {peer}"),
        |l, o, _| format!("{:.2}", l / o),
    )
}

/// `bench s2s [options]`: re-runs itself inside the namespace, measures
/// each software, prints and saves the table.
pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = S2sArgs::parse_from(std::iter::once("bench s2s".to_string()).chain(argv.clone()));
    if !federation::inside() {
        // Raised here, outside the user namespace (which may not raise
        // it), and inherited by the generator and the servers in it.
        if let Err(e) = procfs::set_nice(servers::NICE) {
            eprintln!("bench s2s: warning: cannot raise the priority: {e}");
        }
        let mut again = vec!["s2s".to_string()];
        again.extend(argv);
        return federation::run_inside(&again);
    }
    let kinds = args
        .servers
        .iter()
        .map(|s| {
            Software::parse(s.trim())
                .ok_or_else(|| format!("unknown server {s:?} (lilt, prosody, ejabberd)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lilt_bin = args
        .lilt
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/lilt"));
    if kinds.contains(&Software::Lilt) && !lilt_bin.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p lilt",
            lilt_bin.display()
        ));
    }
    procfs::pin_self(&[args.generator_cpu]).map_err(|e| format!("pinning: {e}"))?;
    let _ = procfs::raise_nofile();
    let wd = &args.work_dir;
    std::fs::create_dir_all(wd).map_err(|e| format!("{}: {e}", wd.display()))?;
    federation::set_up_resolution(wd)?;
    let certs = wd.join("certs");
    let ca = federation::make_certificates(&certs)?;
    let net = Net { certs, ca };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let load_before = report::load_average();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for kind in &kinds {
        eprintln!("== {0}↔{0}", kind.label());
        match bench_software(&args, *kind, &net, &lilt_bin, &rt) {
            Ok(r) => runs.push((*kind, r)),
            Err(e) => {
                eprintln!("bench s2s: {}: {e}", kind.label());
                failures.push(format!("{}: {}", kind.label(), e.replace('\n', " ")));
            }
        }
    }
    let load_after = report::load_average();
    let version = |p: &str| servers::package_version(p).unwrap_or_else(|| "not installed".into());
    let date = report::date();
    let mut auth: Vec<&str> = kinds.iter().map(|k| k.s2s_auth()).collect();
    auth.dedup();
    let mut doc = format!(
        "# s2s benchmark {date}\n\n\
         - Machine: {}; load average before {load_before}, after {load_after}\n\
         - lilt {}{}; Prosody {} (Debian, epoll, internal storage); ejabberd {} (Debian, mnesia)\n\
         - Two servers per software, `a.lilt` (127.0.0.2) and `b.lilt` (127.0.0.3), in a \
           user+network+mount namespace with its own DNS (A records) and CA, whose certificates all servers trust; s2s: {} (as the \
           servers' logs say)\n\
         - Both servers pinned to CPU {}, generator to CPU {}; clients log in with SCRAM-SHA-1 \
           over plain TCP\n\
         - Command: `bench s2s {}`\n\
         - {} client pairs (user N on a.lilt with user N on b.lilt), {} messages in flight per \
           direction; {} s warm-up (s2s streams opened there), {} s measured; medians of {} runs. \
           \"lilt ÷ X\": lilt's figure divided by X's (above 1 is better for rates, below 1 \
           for times and CPU).\n\n",
        procfs::machine_description(),
        lilt_bin.display(),
        if args.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", args.note)
        },
        version("prosody"),
        version("ejabberd"),
        auth.join("; "),
        args.server_cpu,
        args.generator_cpu,
        std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        args.pairs,
        args.window,
        args.warmup,
        args.duration,
        args.repeat,
    );
    doc.push_str(&table(&kinds, &runs));
    report::publish(
        doc,
        &failures,
        args.no_save,
        args.results_dir.as_deref(),
        &format!("{date}-s2s.md"),
        "bench s2s",
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_ratios_to_each_peer() {
        let runs = vec![
            (Software::Lilt, vec![vec![("rate", 2000.0), ("p99", 5.0)]]),
            (
                Software::Prosody,
                vec![vec![("rate", 1000.0), ("p99", 10.0)]],
            ),
        ];
        let t = table(&[Software::Lilt, Software::Prosody], &runs);
        assert!(t.contains("| lilt ÷ prosody |"), "{t}");
        assert!(
            t.contains("| messages delivered across/s (both directions) | 2000 | 1000 | 2.00 |"),
            "{t}"
        );
        assert!(
            t.contains("| delivery p99 (ms) | 5.00 | 10.00 | 0.50 |"),
            "{t}"
        );
    }
}
