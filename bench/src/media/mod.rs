//! `bench --media`: the media forwarding benchmark of issue 12. lilt's
//! bridge beside Debian's Janus (VideoRoom) in one run, each pinned to the
//! server core; simulated endpoints are str0m clients in this process with
//! real ICE, DTLS and SRTP over UDP on 127.0.0.1. For each load level
//! (`SENDERSxRECEIVERS`: every sender sends one Opus and one VP8-like
//! stream, every endpoint receives every other sender) the server is
//! started fresh, every endpoint connected, the load run for a warm-up and
//! a measured window, and the figures taken: forwarded packets per second,
//! server CPU per forwarded packet, added latency (send and receive time in
//! this process), memory per endpoint and loss. Levels go up until loss
//! passes 1 %.
//!
//! Start reading at [`run`]; `peer.rs` is one simulated endpoint, `pump.rs`
//! the loop driving them all, `lilt_bridge.rs` and `janus.rs` the two
//! servers' signalling, `report.rs` the results file.

mod allocation;
mod bridge_host;
mod host_latency;
mod janus;
mod lilt_bridge;
mod lilt_xmpp;
mod payload;
mod peer;
mod pump;
mod relay;
mod relay_focus;
mod report;
mod simulcast;
mod tally;

use std::time::{Duration, Instant};

use crate::{Args, procfs, servers};
use payload::VideoShape;
use pump::Pump;

pub use bridge_host::run as run_bridge_host;

/// Why the media benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Usage(String),
}

impl MediaError {
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> MediaError {
        move |source| MediaError::Io { what, source }
    }
}

/// A server of the media table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaServer {
    /// `lilt bridge` logged in to lilt, Colibri2 over XMPP.
    LiltBridge,
    /// lilt's sans-IO `Bridge` in the bench's own loop, Colibri2 over a
    /// pipe: the bridge without its runtime, for comparison.
    LiltCore,
    /// `LiltCore` with bandwidth allocation on: three simulcast layers per
    /// sender, every receiver constrained to 360p (`simulcast.rs`).
    LiltCoreAlloc,
    Janus,
}

impl MediaServer {
    pub fn label(self) -> &'static str {
        match self {
            MediaServer::LiltBridge => "lilt-bridge",
            MediaServer::LiltCore => "lilt-core",
            MediaServer::LiltCoreAlloc => "lilt-core-alloc",
            MediaServer::Janus => "janus",
        }
    }

    fn parse(s: &str) -> Option<MediaServer> {
        [
            MediaServer::LiltBridge,
            MediaServer::LiltCore,
            MediaServer::LiltCoreAlloc,
            MediaServer::Janus,
        ]
        .into_iter()
        .find(|k| k.label() == s)
    }
}

/// One load level: senders and receive-only endpoints in one conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub senders: usize,
    pub receivers: usize,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        let (a, b) = s.trim().split_once('x')?;
        Some(Level {
            senders: a.parse().ok()?,
            receivers: b.parse().ok()?,
        })
    }

    pub fn endpoints(&self) -> usize {
        self.senders + self.receivers
    }

    /// Streams forwarded: each sender's two streams to every other endpoint.
    pub fn forwarded_streams(&self) -> usize {
        2 * self.senders * self.endpoints().saturating_sub(1)
    }

    pub fn forwarded_video_streams(&self) -> usize {
        self.forwarded_streams() / 2
    }

    pub fn label(&self) -> String {
        format!("{}x{}", self.senders, self.receivers)
    }
}

/// What one level measured on one server.
#[derive(Debug, Clone)]
pub struct LevelResult {
    pub level: Level,
    /// Forwarded packets per second the endpoints received.
    pub forwarded_pps: f64,
    /// Forwarded packets the level should give (sent × fan-out) per second.
    pub offered_pps: f64,
    pub loss: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_cpu: f64,
    /// Server CPU microseconds per forwarded packet.
    pub cpu_us_per_packet: f64,
    /// Anonymous memory (heap, stacks: `RssAnon`) added per endpoint.
    pub kib_per_endpoint: f64,
    /// All resident memory (`VmRSS`, which also counts the program's code
    /// pages first touched under load) added per endpoint.
    pub kib_per_endpoint_rss: f64,
    pub rss_before_mib: f64,
    pub rss_mib: f64,
    pub generator_cpu: f64,
    /// Busy share of the server's core not used by the server (other work
    /// on the machine), %.
    pub other_load: f64,
    pub duplicates: u64,
    pub setup_secs: f64,
    /// Datagrams the kernel dropped in the window because a socket's
    /// receive / send buffer was full (the namespace's /proc/net/snmp: only
    /// this run's sockets).
    pub udp_rcvbuf_drops: u64,
    pub udp_sndbuf_drops: u64,
    /// The server's own added latency in the window (the bridge host's
    /// measurement, `host_latency.rs`; lilt-core and lilt-core-alloc).
    pub host_latency: Option<host_latency::HostLatency>,
}

/// `RcvbufErrors` and `SndbufErrors` of /proc/net/snmp.
fn udp_buffer_errors() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return (0, 0);
    };
    let get = |wanted: &str| -> u64 {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == wanted)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    (get("RcvbufErrors"), get("SndbufErrors"))
}

/// A server's run: its levels, and why it stopped early if it did.
#[derive(Debug, Clone, Default)]
pub struct ServerRun {
    pub levels: Vec<LevelResult>,
    pub failure: Option<String>,
}

/// The parameters of the media scenario, from the command line.
#[derive(Debug, Clone)]
pub struct MediaParams {
    pub servers: Vec<MediaServer>,
    pub levels: Vec<Level>,
    pub warmup: Duration,
    pub duration: Duration,
    pub video: VideoShape,
    pub video_kbps: u32,
    pub server_cpus: String,
    pub udp_port: u16,
    pub janus_http_port: u16,
    pub janus_event_loops: usize,
    pub max_loss: f64,
    pub server_cpu: usize,
}

impl MediaParams {
    pub fn from_args(args: &Args) -> Result<MediaParams, MediaError> {
        let servers = args
            .media_servers
            .iter()
            .map(|s| {
                MediaServer::parse(s.trim())
                    .ok_or_else(|| MediaError::Usage(format!("unknown media server {s:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let levels = args
            .media_levels
            .iter()
            .map(|s| {
                Level::parse(s).ok_or_else(|| {
                    MediaError::Usage(format!("bad level {s:?} (SENDERSxRECEIVERS)"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MediaParams {
            servers,
            levels,
            warmup: Duration::from_secs_f64(args.media_warmup),
            duration: Duration::from_secs_f64(args.media_duration),
            video: VideoShape::new(args.media_video_kbps, args.media_fps, args.media_packet),
            video_kbps: args.media_video_kbps,
            server_cpus: args.server_cpu.to_string(),
            udp_port: args.media_udp_port,
            janus_http_port: args.media_janus_port,
            janus_event_loops: args.media_janus_event_loops,
            max_loss: args.media_max_loss / 100.0,
            server_cpu: args.server_cpu,
        })
    }
}

/// A started server of either kind.
enum Started {
    Lilt(lilt_bridge::LiltBridge),
    Janus(janus::Janus),
}

impl Started {
    fn pid(&self) -> u32 {
        match self {
            Started::Lilt(b) => b.pid,
            Started::Janus(j) => j.pid,
        }
    }

    fn stop(self) {
        match self {
            Started::Lilt(b) => b.stop(),
            Started::Janus(j) => j.stop(),
        }
    }
}

fn start(
    server: MediaServer,
    p: &MediaParams,
    level: Level,
    args: &Args,
) -> Result<Started, MediaError> {
    Ok(match server {
        MediaServer::LiltBridge => Started::Lilt(lilt_xmpp::start(&lilt_xmpp::LiltSetup {
            dir: args.work_dir.join("lilt-bridge"),
            lilt_bin: args
                .lilt
                .clone()
                .unwrap_or_else(|| crate::workspace_root().join("target/release/lilt")),
            cpus: p.server_cpus.clone(),
            c2s_port: args.port.saturating_add(20),
            udp_port: p.udp_port,
            http_port: p.udp_port.saturating_add(8090),
        })?),
        MediaServer::LiltCore => Started::Lilt(lilt_bridge::LiltBridge::start_host(
            &p.server_cpus,
            p.udp_port,
            false,
        )?),
        MediaServer::LiltCoreAlloc => Started::Lilt(lilt_bridge::LiltBridge::start_host(
            &p.server_cpus,
            p.udp_port,
            true,
        )?),
        MediaServer::Janus => Started::Janus(janus::Janus::start(
            &args.work_dir.join("janus"),
            &p.server_cpus,
            p.janus_http_port,
            level.senders,
            p.janus_event_loops,
        )?),
    })
}

/// Runs one level on a fresh server.
fn run_level(
    server: MediaServer,
    p: &MediaParams,
    level: Level,
    args: &Args,
) -> Result<LevelResult, MediaError> {
    let mut started = start(server, p, level, args)?;
    let result = measure(&mut started, p, level);
    started.stop();
    result
}

fn measure(
    started: &mut Started,
    p: &MediaParams,
    level: Level,
) -> Result<LevelResult, MediaError> {
    let pid = started.pid();
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = procfs::rss_kib(pid).unwrap_or(0);
    let anon_before = rss_anon_kib(pid).unwrap_or(0);
    let setup_start = Instant::now();
    let mut pump = Pump::new(p.video);
    let fan_out = match started {
        Started::Lilt(b) => b.connect(&mut pump, level.senders, level.receivers)?,
        Started::Janus(j) => j.connect(&mut pump, level.senders, level.receivers)?,
    };
    pump.connect_all(Duration::from_secs(30))?;
    let setup_secs = setup_start.elapsed().as_secs_f64();
    let now = pump.start_sending();
    pump.run(now + p.warmup, |_| false)?;
    let start = Instant::now();
    let window_start = start.saturating_duration_since(pump.epoch);
    pump.tally
        .open(window_start, window_start + p.duration, fan_out);
    let cpu0 = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let gen0 = procfs::own_cpu_seconds();
    let core0 = procfs::cpu_jiffies(p.server_cpu).unwrap_or((0, 0));
    let udp0 = udp_buffer_errors();
    let marked = match started {
        Started::Lilt(b) => b.mark_latency(),
        Started::Janus(_) => false,
    };
    pump.run(start + p.duration, |_| false)?;
    if let Started::Lilt(b) = started
        && marked
    {
        b.mark_latency();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let gen1 = procfs::own_cpu_seconds();
    let core1 = procfs::cpu_jiffies(p.server_cpu).unwrap_or((0, 0));
    let udp1 = udp_buffer_errors();
    let rss = procfs::rss_kib(pid).unwrap_or(0);
    let anon = rss_anon_kib(pid).unwrap_or(0);
    // Late packets of the window still count.
    pump.run(Instant::now() + Duration::from_millis(500), |_| false)?;
    let host_latency = match started {
        Started::Lilt(b) if marked => b.host_latency(2),
        _ => None,
    };
    let f = pump.tally.figures();
    let secs = p.duration.as_secs_f64();
    let cpu = (cpu1 - cpu0).max(0.0);
    Ok(LevelResult {
        level,
        forwarded_pps: f.received as f64 / secs,
        offered_pps: f.expected as f64 / secs,
        loss: f.loss,
        p50_ms: f.p50_ms,
        p99_ms: f.p99_ms,
        server_cpu: 100.0 * cpu / elapsed,
        cpu_us_per_packet: if f.received > 0 {
            cpu * 1e6 / f.received as f64
        } else {
            f64::NAN
        },
        kib_per_endpoint: anon.saturating_sub(anon_before) as f64 / level.endpoints() as f64,
        kib_per_endpoint_rss: rss.saturating_sub(rss_before) as f64 / level.endpoints() as f64,
        rss_before_mib: rss_before as f64 / 1024.0,
        rss_mib: rss as f64 / 1024.0,
        generator_cpu: 100.0 * (gen1 - gen0) / elapsed,
        other_load: other_load(core0, core1, cpu),
        duplicates: pump.tally.duplicates,
        setup_secs,
        udp_rcvbuf_drops: udp1.0.saturating_sub(udp0.0),
        udp_sndbuf_drops: udp1.1.saturating_sub(udp0.1),
        host_latency,
    })
}

/// A process's anonymous resident memory (`RssAnon` of /proc/PID/status).
fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// With the kernel's autogroup scheduling (one group per session), a nice
/// value only orders processes inside their session: builds in other
/// sessions would still take half of the server's core. The run (already
/// alone in its network namespace) becomes a session of its own, and its
/// group gets `nice`.
fn own_autogroup(nice: i32) -> std::io::Result<()> {
    // SAFETY: setsid has no memory preconditions; failing (already a group
    // leader) leaves the process as it was.
    unsafe {
        libc::setsid();
    }
    match std::fs::write("/proc/self/autogroup", nice.to_string()) {
        Ok(()) => Ok(()),
        // No autogroup scheduling in this kernel: nice alone is enough.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The busy share of a core not explained by `server_cpu_secs`, in %.
fn other_load(before: (u64, u64), after: (u64, u64), server_cpu_secs: f64) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total <= 0.0 {
        return 0.0;
    }
    // Jiffies to seconds: total jiffies of one core are its wall time.
    let tick = procfs::ticks_per_second();
    let server = server_cpu_secs * tick;
    (100.0 * (busy - server) / total).max(0.0)
}

/// The whole media run: every server through the levels, then the table.
pub fn run(args: &Args) -> Result<(), MediaError> {
    if std::env::var_os(NETNS_ENV).is_none() {
        return reexec_in_netns();
    }
    if args.media_servers.iter().any(|s| s.trim() == relay::LABEL) {
        return relay::run(args);
    }
    let p = MediaParams::from_args(args)?;
    if p.levels.is_empty() || p.servers.is_empty() {
        return Err(MediaError::Usage("no media servers or levels".into()));
    }
    if p.servers.contains(&MediaServer::Janus) && !program_exists("janus") {
        return Err(MediaError::Usage(
            "janus is not installed (apt-get install janus)".into(),
        ));
    }
    if let Err(e) = procfs::set_nice(servers::NICE) {
        eprintln!("bench: warning: cannot raise the generator's priority: {e}");
    }
    if let Err(e) = own_autogroup(servers::NICE) {
        eprintln!("bench: warning: cannot raise the run's scheduling group: {e}");
    }
    procfs::pin_self(&[args.generator_cpu]).map_err(MediaError::io("pinning the generator"))?;
    let _ = procfs::raise_nofile();
    std::fs::create_dir_all(&args.work_dir).map_err(MediaError::io("creating the work dir"))?;
    let mut runs: Vec<(MediaServer, ServerRun)> = Vec::new();
    for &server in &p.servers {
        let mut run = ServerRun::default();
        for &level in &p.levels {
            eprintln!("media: {} {} ...", server.label(), level.label());
            match run_level(server, &p, level, args) {
                Ok(r) => {
                    eprintln!(
                        "media: {} {}: {:.0} fwd pps, loss {:.2} %, p50 {:.2} ms, p99 {:.2} ms, \
                         server CPU {:.0} % (other load {:.0} %), {:.2} us/pkt, {:.1} KiB/endpoint, \
                         generator {:.0} %, UDP buffer drops {}/{}, server's own latency (us, \
                         p50/p99 from kernel arrival) {}",
                        server.label(),
                        level.label(),
                        r.forwarded_pps,
                        100.0 * r.loss,
                        r.p50_ms,
                        r.p99_ms,
                        r.server_cpu,
                        r.other_load,
                        r.cpu_us_per_packet,
                        r.kib_per_endpoint,
                        r.generator_cpu,
                        r.udp_rcvbuf_drops,
                        r.udp_sndbuf_drops,
                        r.host_latency
                            .map(|h| format!("{:.0}/{:.0}", h.kernel_us[0], h.kernel_us[1]))
                            .unwrap_or_else(|| "-".into())
                    );
                    let over = r.loss > p.max_loss;
                    run.levels.push(r);
                    if over {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("media: {} {}: {e}", server.label(), level.label());
                    run.failure = Some(format!("{}: {e}", level.label()));
                    break;
                }
            }
        }
        runs.push((server, run));
    }
    let doc = report::document(args, &p, &runs);
    println!("{doc}");
    if !args.no_save {
        let file = format!("{}-media.md", crate::report::date());
        let path = crate::report::save(args.results_dir.as_deref(), &file, &doc)
            .map_err(|e| MediaError::io("writing the results")(e.source))?;
        eprintln!("bench: saved {}", path.display());
    }
    Ok(())
}

/// Set in the re-executed bench inside its network namespace.
const NETNS_ENV: &str = "LILT_BENCH_MEDIA_NETNS";
/// The interface carrying 127.0.0.2 in that namespace (Janus gathers ICE
/// candidates on no loopback interface, so it gets one that is not).
pub const NETNS_IFACE: &str = "lb0";
/// Its address: a loopback address (traffic to it never leaves the host).
pub const NETNS_ADDR: &str = "127.0.0.2";

/// Runs this same command again in a network namespace of its own, where
/// the only addresses are loopback ones: `lo` and a veth end `lb0` with
/// 127.0.0.2 (so Janus, which skips loopback interfaces, has a candidate
/// on 127.0.0.0/8), IPv6 off. Both servers and the endpoints run there.
fn reexec_in_netns() -> Result<(), MediaError> {
    for prog in ["unshare", "ip", "taskset"] {
        if !program_exists(prog) {
            return Err(MediaError::Usage(format!("{prog} is not installed")));
        }
    }
    let exe = std::env::current_exe().map_err(MediaError::io("finding bench"))?;
    let script = format!(
        "set -e; ip link set lo up; ip link add {NETNS_IFACE} type veth peer name lb1; \
         ip addr add {NETNS_ADDR}/32 dev {NETNS_IFACE}; ip link set {NETNS_IFACE} up; ip link set lb1 up; \
         sysctl -qw net.ipv6.conf.all.disable_ipv6=1; exec \"$0\" \"$@\""
    );
    let status = std::process::Command::new("unshare")
        .args(["-n", "--", "sh", "-c", &script])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(NETNS_ENV, "1")
        .status()
        .map_err(MediaError::io("running unshare"))?;
    if status.success() {
        Ok(())
    } else {
        Err(MediaError::Protocol(format!(
            "the media run in its network namespace ended with {status}"
        )))
    }
}

fn program_exists(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}
