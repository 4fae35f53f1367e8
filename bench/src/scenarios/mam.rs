//! `bench mam`: Message Archive Management under load (issue 17), lilt
//! beside Debian's Prosody 0.12 and ejabberd, with MAM enabled in all
//! three (lilt and Prosody: `mam` in `modules_enabled`; ejabberd: `mod_mam`
//! with `default: always`), each pinned to the server core as `bench` runs
//! them ([`crate::servers`]).
//!
//! Online users in pairs chat as scenario 2 does ([`super::one_to_one`]'s
//! pairs, each direction keeping `window` messages in flight), so every
//! message is archived twice (the sender's and the recipient's archive).
//! Meanwhile `queriers` more sessions of the first accounts (no presence,
//! so they get no chat) each ask in a loop for the newest page of their
//! account's growing archive (`<max>page</max><before/>`, what a client
//! asks on reconnecting), one query every `query_interval_ms`.
//!
//! Figures, medians of `repeat` runs on one started server: messages
//! delivered per second and the archive appends that makes (two per
//! message), the items the archives actually hold at the end counted by
//! MAM (`<max>0</max>`, the RSM count) against the messages sent, and the
//! query latency (send to the `<fin/>` IQ, p50 and p99) and rate, with the
//! server's CPU use. `bench storage` measures appends and queries each on
//! its own, per storage driver; this is both at once, with chat flowing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::one_to_one::{Flow, pair};
use super::{Window, close_all, login_many, register_all};
use crate::client::{ClientError, Conn, Mechanism, Target};
use crate::sasl::SaltCache;
use crate::servers::{self, DOMAIN, Kind, Running, Setup};
use crate::stats::{CpuWindow, percentile};
use crate::{accounts, procfs, report, workspace_root, xml};

const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// MAM under load: lilt, Prosody 0.12 and ejabberd with MAM enabled.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench mam")]
pub struct MamArgs {
    /// Servers, comma-separated: lilt, prosody, ejabberd.
    #[arg(long, default_value = "lilt,prosody,ejabberd", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Online users chatting (in pairs).
    #[arg(long, default_value_t = 200)]
    pub users: usize,
    /// Messages in flight per direction of a pair.
    #[arg(long, default_value_t = 2)]
    pub window: u32,
    /// Sessions querying their account's archive.
    #[arg(long, default_value_t = 10)]
    pub queriers: usize,
    /// Items per MAM page.
    #[arg(long, default_value_t = 20)]
    pub page: usize,
    /// Pause between two queries of one querier.
    #[arg(long, default_value_t = 100)]
    pub query_interval_ms: u64,
    /// Warm-up seconds (chat and queries run, nothing counted).
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Runs on each server (the table shows medians).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The lilt binary (default: target/release/lilt in this workspace).
    #[arg(long)]
    pub lilt: Option<PathBuf>,
    /// Where the servers' throw-away directories go.
    #[arg(long, default_value = "/tmp/lilt-bench-mam")]
    pub work_dir: PathBuf,
    /// First c2s port (each server gets its own after it).
    #[arg(long, default_value_t = 25622)]
    pub port: u16,
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    #[arg(long, default_value_t = 1)]
    pub generator_cpu: usize,
    /// Where to save the results (default: bench/results in this workspace).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Print the results only.
    #[arg(long)]
    pub no_save: bool,
}

/// The rows of the table: key, label, whether higher is better.
const ROWS: [(&str, &str, bool); 9] = [
    ("chat", "chat messages delivered/s", true),
    ("appends", "archive appends/s (2 per message)", true),
    ("archived", "items archived/s (whole run, RSM count)", true),
    ("queries", "MAM queries/s", true),
    ("empty", "MAM queries answered with an empty page", false),
    ("q50", "MAM query p50 (ms)", false),
    ("q99", "MAM query p99 (ms)", false),
    ("chat99", "chat delivery p99 (ms)", false),
    ("cpu", "server CPU (% of a core)", false),
];

/// One run's figures, by row key.
use crate::report::Run;

/// What the queriers measured.
#[derive(Default)]
struct Queries {
    done: u64,
    empty: u64,
    latencies_us: Vec<u32>,
}

/// Makes the stock bench config archive: `mam` for lilt and Prosody
/// (after `ping` in `modules_enabled`), `mod_mam` for ejabberd.
fn enable_mam(kind: Kind, dir: &std::path::Path) -> Result<(), String> {
    let (file, anchor, with) = match kind {
        Kind::Ejabberd => (
            "ejabberd.yml",
            "modules:\n",
            "modules:\n  mod_mam:\n    default: always\n",
        ),
        _ => (
            "prosody.cfg.lua",
            "\t\"ping\";\n",
            "\t\"ping\";\n\t\"mam\";\n",
        ),
    };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !text.contains(anchor) {
        return Err(format!(
            "{}: no {anchor:?} to add MAM after (the bench config changed?)",
            path.display()
        ));
    }
    std::fs::write(&path, text.replacen(anchor, with, 1))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn query_text(id: &str, page: usize) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'><set xmlns='{NS_RSM}'><max>{page}</max><before/></set></query></iq>"
    )
}

/// Sends a query and reads up to its reply; the number of results, the
/// `<count/>` and the reply.
async fn one_query(
    conn: &mut Conn,
    id: &str,
    page: usize,
) -> Result<(usize, Option<u64>, Vec<u8>), ClientError> {
    conn.send(query_text(id, page).as_bytes(), "MAM query")
        .await?;
    let mut results = 0;
    loop {
        let el = conn.wait_element("MAM query").await?;
        if xml::name(&el) == b"message" && xml::has_child(&el, "result") {
            results += 1;
        } else if xml::name(&el) == b"iq" && xml::attr(&el, "id") == Some(id.as_bytes()) {
            if xml::attr(&el, "type") != Some(b"result") {
                return Err(ClientError::Refused {
                    user: conn.jid.clone(),
                    step: "MAM query",
                    stanza: String::from_utf8_lossy(&el).into_owned(),
                });
            }
            let count = xml::child_text(&el, "count")
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.trim().parse().ok());
            return Ok((results, count, el));
        }
    }
}

/// One querier until the window closes.
async fn querier(
    mut conn: Conn,
    page: usize,
    interval: Duration,
    window: Window,
) -> Result<(Conn, Queries), ClientError> {
    let mut q = Queries::default();
    let mut n = 0u64;
    loop {
        let start = Instant::now();
        if !window.sending(start) {
            break;
        }
        n += 1;
        let (results, _, reply) = one_query(&mut conn, &format!("mq{n}"), page).await?;
        let end = Instant::now();
        // An empty page is counted, not an error: early in the first run
        // an archive may still be empty, and a server that archives
        // nothing shows as such in the table.
        let _ = reply;
        if results == 0 && window.contains(start) {
            q.empty += 1;
        }
        if window.contains(start) && window.contains(end) {
            q.done += 1;
            let us = (end - start).as_micros().min(u128::from(u32::MAX)) as u32;
            q.latencies_us.push(us);
        }
        tokio::time::sleep(interval).await;
    }
    Ok((conn, q))
}

/// The archive sizes of the accounts behind `conns` (RSM count of an
/// empty page), summed.
async fn archived_total(conns: &mut [Conn]) -> Result<u64, ClientError> {
    let mut total = 0;
    for (i, c) in conns.iter_mut().enumerate() {
        let (_, count, _) = one_query(c, &format!("count{i}"), 0).await?;
        total += count.unwrap_or(0);
    }
    Ok(total)
}

/// One run on a started server.
async fn run_once(args: &MamArgs, target: &Target, pid: u32) -> Result<Run, String> {
    let users = args.users & !1;
    let err = |e: ClientError| e.to_string();
    let mut queriers = Vec::new();
    for i in 0..args.queriers.min(users) {
        queriers.push(
            Conn::login(target, &accounts::username(i), accounts::PASSWORD, false)
                .await
                .map_err(err)?,
        );
    }
    let conns = login_many(target, 0, users, 50).await.map_err(err)?;
    let mut counted = conns;
    let before = archived_total(&mut counted).await.map_err(err)?;
    let base = Instant::now();
    let window = Window::new(
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.duration),
    );
    let mut chat = JoinSet::new();
    let mut it = counted.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        chat.spawn(pair(a, b, args.window, base, window));
    }
    let mut asking = JoinSet::new();
    let interval = Duration::from_millis(args.query_interval_ms);
    for c in queriers {
        asking.spawn(querier(c, args.page, interval, window));
    }
    sleep_until(window.measure_from.into()).await;
    let cpu = CpuWindow::start(pid);
    sleep_until(window.measure_until.into()).await;
    let cpu = cpu.finish();
    let mut delivered = 0u64;
    let mut chat_lat = Vec::new();
    let mut conns = Vec::new();
    let mut first_err: Option<String> = None;
    while let Some(joined) = chat.join_next().await {
        match joined {
            Ok(Ok((f1, f2, a, b))) => {
                for f in [f1, f2] {
                    let f: Flow = f;
                    delivered += f.delivered;
                    chat_lat.extend(f.latencies_us);
                }
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
    let mut q = Queries::default();
    let mut queriers = Vec::new();
    while let Some(joined) = asking.join_next().await {
        match joined {
            Ok(Ok((c, got))) => {
                q.done += got.done;
                q.empty += got.empty;
                q.latencies_us.extend(got.latencies_us);
                queriers.push(c);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e.to_string());
            }
            Err(e) => {
                first_err.get_or_insert(e.to_string());
            }
        }
    }
    if let Some(e) = first_err {
        close_all(conns).await;
        close_all(queriers).await;
        return Err(e);
    }
    // Everything sent has been archived by now (the pairs drained).
    let chat_secs = base.elapsed().as_secs_f64();
    let after = archived_total(&mut conns).await.map_err(err)?;
    close_all(conns).await;
    close_all(queriers).await;
    let secs = args.duration as f64;
    let mut run = vec![
        ("chat", delivered as f64 / secs),
        ("appends", 2.0 * delivered as f64 / secs),
        ("queries", q.done as f64 / secs),
        ("empty", q.empty as f64),
        ("cpu", cpu.server),
    ];
    run.push((
        "archived",
        after.saturating_sub(before) as f64 / chat_secs.max(1e-9),
    ));
    for (key, p) in [("q50", 50.0), ("q99", 99.0)] {
        if let Some(v) = percentile(&mut q.latencies_us, p) {
            run.push((key, f64::from(v) / 1000.0));
        }
    }
    if let Some(v) = percentile(&mut chat_lat, 99.0) {
        run.push(("chat99", f64::from(v) / 1000.0));
    }
    Ok(run)
}

/// Prepares, starts and measures one server.
fn bench_server(
    args: &MamArgs,
    setup: &Setup,
    kind: Kind,
    rt: &tokio::runtime::Runtime,
) -> Result<Vec<Run>, String> {
    servers::prepare(kind, setup).map_err(|e| e.to_string())?;
    enable_mam(kind, &setup.base.join(kind.label()))?;
    let running: Running = servers::start(kind, setup).map_err(|e| e.to_string())?;
    let target = Target {
        addr: running.addr,
        domain: DOMAIN.to_string(),
        mechanism: Mechanism::ScramSha1,
        cache: SaltCache::default(),
        step_timeout: Duration::from_secs(60),
    };
    let result = (|| {
        if running.needs_registration {
            let list = (0..setup.accounts)
                .map(|i| (accounts::username(i), accounts::PASSWORD.to_string()))
                .collect();
            rt.block_on(register_all(&target, list, 50))
                .map_err(|e| format!("registration: {e}"))?;
        }
        let mut runs = Vec::new();
        for rep in 0..args.repeat.max(1) {
            let run = rt.block_on(run_once(args, &target, running.pid))?;
            eprintln!(
                "  {} run {}: {}",
                kind.label(),
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
        eprintln!("{}", running.log_tail());
    }
    running.stop();
    result
}

/// The table: medians per server, and lilt's advantage over each peer.
fn table(kinds: &[Kind], runs: &[(Kind, Vec<Run>)]) -> String {
    let servers: Vec<(Kind, String, String)> = kinds
        .iter()
        .map(|k| (*k, k.label().to_string(), k.label().to_string()))
        .collect();
    report::median_table(
        &servers,
        Kind::Lilt,
        runs,
        &ROWS,
        |peer| format!("lilt vs {peer}"),
        |l, o, higher_better| {
            let r = if higher_better { l / o } else { o / l };
            format!("{r:.2}×")
        },
    )
}

pub fn main(argv: Vec<String>) -> Result<(), String> {
    let args = MamArgs::parse_from(std::iter::once("bench mam".to_string()).chain(argv));
    let kinds = args
        .servers
        .iter()
        .map(|s| match Kind::parse(s.trim()) {
            Some(k @ (Kind::Lilt | Kind::Prosody | Kind::Ejabberd)) => Ok(k),
            _ => Err(format!("unknown server {s:?} (lilt, prosody, ejabberd)")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lilt_bin = args
        .lilt
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/lilt"));
    if kinds.contains(&Kind::Lilt) && !lilt_bin.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p lilt",
            lilt_bin.display()
        ));
    }
    crate::stats::SERVER_CPU.store(args.server_cpu, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = procfs::set_nice(servers::NICE) {
        eprintln!("bench mam: warning: cannot raise the generator's priority: {e}");
    }
    procfs::pin_self(&[args.generator_cpu]).map_err(|e| format!("pinning: {e}"))?;
    let _ = procfs::raise_nofile();
    std::fs::create_dir_all(&args.work_dir)
        .map_err(|e| format!("{}: {e}", args.work_dir.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let setup = Setup {
        base: args.work_dir.clone(),
        port: args.port,
        accounts: args.users.max(args.queriers),
        tsung_accounts: 0,
        lilt_bin: lilt_bin.clone(),
        server_cpus: args.server_cpu.to_string(),
        all_cpus: format!("{},{}", args.server_cpu, args.generator_cpu),
    };
    let load_before = report::load_average();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for kind in &kinds {
        eprintln!("== {}", kind.label());
        match bench_server(&args, &setup, *kind, &rt) {
            Ok(r) => runs.push((*kind, r)),
            Err(e) => {
                eprintln!("bench mam: {}: {e}", kind.label());
                failures.push(format!("{}: {}", kind.label(), e.replace('\n', " ")));
            }
        }
    }
    let load_after = report::load_average();
    let version = |p: &str| servers::package_version(p).unwrap_or_else(|| "not installed".into());
    let date = report::date();
    let mut doc = format!(
        "# MAM benchmark {date}\n\n\
         - Machine: {}; load average before {load_before}, after {load_after}\n\
         - lilt {} (release build); Prosody {} (Debian, epoll, internal storage, `mam`); \
           ejabberd {} (Debian, mnesia, `mod_mam` default always)\n\
         - Server pinned to CPU {}, generator to CPU {}; SCRAM-SHA-1 over plain TCP\n\
         - Command: `bench mam {}`\n\
         - {} users chatting in pairs ({} in flight per direction), {} sessions asking for the \
           newest {}-item page of their archive every {} ms; {} s warm-up, {} s measured; \
           medians of {} runs on one server (the archives grow from run to run). \
           \"lilt vs X\": above 1, lilt is better (for times and CPU, X's figure ÷ lilt's).\n\n",
        procfs::machine_description(),
        lilt_bin.display(),
        version("prosody"),
        version("ejabberd"),
        args.server_cpu,
        args.generator_cpu,
        std::env::args().skip(2).collect::<Vec<_>>().join(" "),
        args.users & !1,
        args.window,
        args.queriers,
        args.page,
        args.query_interval_ms,
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
        &format!("{date}-mam.md"),
        "bench mam",
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mam_is_added_to_the_stock_configs() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let setup = Setup {
            base: base.clone(),
            port: 25999,
            accounts: 2,
            tsung_accounts: 0,
            lilt_bin: PathBuf::from("lilt"),
            server_cpus: "0".into(),
            all_cpus: "0,1".into(),
        };
        servers::prepare(Kind::Prosody, &setup).unwrap();
        let dir = base.join(Kind::Prosody.label());
        enable_mam(Kind::Prosody, &dir).unwrap();
        let text = std::fs::read_to_string(dir.join("prosody.cfg.lua")).unwrap();
        assert!(text.contains("\t\"mam\";\n"), "{text}");
        assert_eq!(text.matches("\"mam\"").count(), 1);
    }
}
