//! `bench soak`: lilt held under a mixed, churning load for a long time
//! (issue 21). N sessions (TCP, BOSH and WebSocket mixed) log in, send
//! messages to random users, change presence, join and leave MUC rooms and
//! reconnect, for `--duration` seconds; RSS, open file descriptors and
//! threads of lilt are sampled all along. At the end every message sent
//! must have arrived exactly once or come back once as an error, and RSS
//! and descriptors must not have grown past a bound after the warm-up.
//! The report (markdown) is printed and saved in `bench/results/`.
//!
//! Start reading at [`run`]; a session's life is in [`session`], the
//! transports in [`link`] and [`bosh`], the accounting in [`ledger`].

mod bosh;
mod ledger;
mod link;
mod report;
mod session;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use crate::{accounts, procfs, workspace_root};
use ledger::Ledger;
use link::{Endpoints, Transport};
use report::Sample;
use session::{Rates, Shared};

/// Soak lilt: many sessions with churn for a long time.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench soak")]
pub struct SoakArgs {
    /// Sessions held at once.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Seconds of load (after which sessions drain and close).
    #[arg(long, default_value_t = 3600)]
    pub duration: u64,
    /// Seconds of warm-up: growth is measured from its end.
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Share of sessions on TCP, BOSH and WebSocket (percent each).
    #[arg(long, default_value = "60,20,20", value_delimiter = ',')]
    pub mix: Vec<usize>,
    /// Mean seconds between two messages of one session.
    #[arg(long, default_value_t = 30.0)]
    pub message_every: f64,
    /// Mean seconds between two presence changes of one session.
    #[arg(long, default_value_t = 60.0)]
    pub presence_every: f64,
    /// Mean seconds between two MUC joins or leaves of one session.
    #[arg(long, default_value_t = 90.0)]
    pub muc_every: f64,
    /// Mean seconds a session stays before it disconnects and logs in again.
    #[arg(long, default_value_t = 600.0)]
    pub reconnect_every: f64,
    /// Sessions per MUC room.
    #[arg(long, default_value_t = 20)]
    pub per_room: usize,
    /// Seconds between two samples of lilt's RSS and descriptors.
    #[arg(long, default_value_t = 10)]
    pub sample_every: u64,
    /// Allowed RSS growth after the warm-up, percent (plus 16 MiB).
    #[arg(long, default_value_t = 25.0)]
    pub max_rss_growth: f64,
    /// Seconds over which the sessions log in at first.
    #[arg(long)]
    pub ramp: Option<u64>,
    /// The lilt binary (default: target/release/lilt, else target/debug/lilt).
    #[arg(long)]
    pub lilt: Option<PathBuf>,
    /// c2s port; the HTTP port (BOSH, WebSocket) is the next one.
    #[arg(long, default_value_t = 25322)]
    pub port: u16,
    /// Where lilt's throw-away directory goes.
    #[arg(long, default_value = "/tmp/lilt-soak")]
    pub work_dir: PathBuf,
    /// Where to save the report (default: bench/results in this workspace).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Print the report only.
    #[arg(long)]
    pub no_save: bool,
    /// lilt's minimum log level (its log is `lilt.log` in `--work-dir`).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

/// The soak failed to run, or found a fault.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("{0}")]
    Setup(String),
    #[error("soak found a fault: {0}")]
    Fault(String),
}

const DOMAIN: &str = "localhost";
const MUC_DOMAIN: &str = "conference.localhost";

fn config(dir: &std::path::Path, port: u16, http: u16, level: &str) -> String {
    let dir = dir.display();
    format!(
        r#"-- Written by bench soak.
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
pidfile = "{dir}/server.pid"
data_path = "{dir}/data"
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "bosh"; "websocket" }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_bosh_secure = true
consider_websocket_secure = true
cross_domain_websocket = true
log = {{ {{ levels = {{ min = "{level}" }}, to = "console" }} }}
VirtualHost "{DOMAIN}"
Component "{MUC_DOMAIN}" "muc"
	muc_room_locking = false
"#
    )
}

fn lilt_binary(args: &SoakArgs) -> PathBuf {
    if let Some(b) = &args.lilt {
        return b.clone();
    }
    let release = workspace_root().join("target/release/lilt");
    if release.exists() {
        release
    } else {
        workspace_root().join("target/debug/lilt")
    }
}

struct Server {
    child: Child,
    pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        procfs::signal(self.pid, libc::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &SoakArgs, accounts_n: usize) -> Result<(Server, PathBuf), SoakError> {
    let dir = args.work_dir.clone();
    let setup = |e: std::io::Error| SoakError::Setup(format!("{}: {e}", dir.display()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(setup)?;
    }
    std::fs::create_dir_all(&dir).map_err(setup)?;
    let cfg = dir.join("prosody.cfg.lua");
    std::fs::write(
        &cfg,
        config(&dir, args.port, args.port + 1, &args.log_level),
    )
    .map_err(setup)?;
    accounts::write_prosody_accounts(&dir.join("data"), DOMAIN, accounts_n)
        .map_err(|e| SoakError::Setup(e.to_string()))?;
    let bin = lilt_binary(args);
    let log = dir.join("lilt.log");
    let out = std::fs::File::create(&log).map_err(setup)?;
    let err = out.try_clone().map_err(setup)?;
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| SoakError::Setup(format!("starting {}: {e}", bin.display())))?;
    let pid = child.id();
    let server = Server { child, pid };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port + 1));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if std::time::Instant::now() > deadline || !procfs::alive(pid) {
            return Err(SoakError::Setup(format!(
                "lilt did not listen on {addr}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((server, bin))
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn transport_of(i: usize, mix: &[usize]) -> Transport {
    let total: usize = mix.iter().sum::<usize>().max(1);
    let slot = (i * 7919) % total;
    let tcp = mix.first().copied().unwrap_or(100);
    let bosh = mix.get(1).copied().unwrap_or(0);
    if slot < tcp {
        Transport::Tcp
    } else if slot < tcp + bosh {
        Transport::Bosh
    } else {
        Transport::WebSocket
    }
}

/// `bench soak ARGS...` (the arguments after `soak`).
pub fn main(argv: Vec<String>) -> Result<(), SoakError> {
    let args = SoakArgs::parse_from(std::iter::once("bench soak".to_string()).chain(argv));
    let _ = procfs::raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SoakError::Setup(format!("runtime: {e}")))?;
    runtime.block_on(run(args))
}

async fn run(args: SoakArgs) -> Result<(), SoakError> {
    let n = args.sessions.max(2);
    let (server, bin) = start_server(&args, n)?;
    let pid = server.pid;
    let duration = Duration::from_secs(args.duration);
    let warmup = Duration::from_secs(args.warmup.unwrap_or((args.duration / 5).clamp(60, 600)));
    let ramp = Duration::from_secs(args.ramp.unwrap_or((n as u64 / 40).clamp(10, 300)));
    let begin = Instant::now();
    let shared = Arc::new(Shared {
        at: Endpoints {
            c2s: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
            http: std::net::SocketAddr::from(([127, 0, 0, 1], args.port + 1)),
            domain: DOMAIN.into(),
        },
        muc_domain: MUC_DOMAIN.into(),
        password: accounts::PASSWORD.into(),
        users: n,
        rooms: (n / args.per_room.max(1)).max(1),
        rates: Rates {
            message: args.message_every,
            presence: args.presence_every,
            muc: args.muc_every,
            reconnect: args.reconnect_every,
        },
        ledger: Ledger::default(),
        stop_sending: begin + duration,
        close_at: begin + duration + Duration::from_secs(30),
        started: begin,
    });
    let baseline = Sample::take(pid, 0.0, &shared.ledger, fds(pid), threads(pid));
    eprintln!(
        "soak: lilt {} (pid {pid}), {n} sessions, {} s, warm-up {} s, baseline RSS {} KiB",
        bin.display(),
        args.duration,
        warmup.as_secs(),
        baseline.rss_kib
    );
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let start = begin + ramp.mul_f64(i as f64 / n as f64);
        tasks.spawn(session::life(
            shared.clone(),
            i,
            transport_of(i, &args.mix),
            start,
        ));
    }
    let mut samples = vec![baseline];
    let every = Duration::from_secs(args.sample_every.max(1));
    let mut next = begin + every;
    let mut died = false;
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            _ = tokio::time::sleep_until(next) => {
                next += every;
                if !procfs::alive(pid) {
                    died = true;
                    break;
                }
                let s = Sample::take(pid, begin.elapsed().as_secs_f64(), &shared.ledger, fds(pid), threads(pid));
                eprintln!("{}", s.line());
                samples.push(s);
            }
        }
    }
    tasks.abort_all();
    // After every session closed: what lilt holds with nobody connected.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = Sample::take(
        pid,
        begin.elapsed().as_secs_f64(),
        &shared.ledger,
        fds(pid),
        threads(pid),
    );
    samples.push(after);
    drop(server);
    let verdict = shared.ledger.verdict();
    let outcome = report::judge(
        &samples,
        warmup.as_secs_f64(),
        duration.as_secs_f64(),
        args.max_rss_growth,
        &verdict,
        died,
    );
    let doc = report::document(
        &args,
        &bin,
        n,
        &samples,
        &shared.ledger,
        &verdict,
        &outcome,
        warmup,
    );
    println!("{doc}");
    if !args.no_save {
        let file = format!("{}-soak.md", crate::report::date());
        if let Ok(path) = crate::report::save(args.results_dir.as_deref(), &file, &doc) {
            eprintln!("soak: saved {}", path.display());
        }
    }
    match outcome.faults.is_empty() {
        true => Ok(()),
        false => Err(SoakError::Fault(outcome.faults.join("; "))),
    }
}
