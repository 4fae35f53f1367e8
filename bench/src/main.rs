//! `bench`: lilt beside Debian's Prosody 0.12 and ejabberd on this machine,
//! in one run. Each server is started on 127.0.0.1 pinned to one core, the
//! load generator runs pinned to the other, every scenario is repeated and
//! the medians are printed as a table with lilt's ratio to each peer, and
//! saved under `bench/results/`.
//!
//! `bench --media` is the media forwarding benchmark instead (issue 12):
//! lilt's bridge beside Debian's Janus, simulated str0m endpoints over
//! real ICE/DTLS/SRTP on loopback; start reading at `media/mod.rs`.
//!
//! `bench --recorder` is the recorder benchmark (issue 15): lilt's recorder
//! recording simulated conferences at once; start at `recorder/mod.rs`.
//!
//! `bench soak [--sessions N] [--duration SECONDS] ...` holds lilt under a
//! mixed TCP/BOSH/WebSocket load with churn for a long time and checks
//! that no message is lost and nothing grows (issue 21); see `soak/mod.rs`.
//!
//! `bench storage [--drivers internal,sqlite,postgresql] ...` is the storage
//! benchmark (issue 20): store operations over c2s through lilt and Prosody
//! 0.12 on each driver, as ratios; see `storage/mod.rs`.
//!
//! `bench mam [--servers lilt,prosody,ejabberd] ...` measures archive
//! appends and MAM query latency while 1:1 chat flows, with MAM enabled in
//! all three servers (issue 17); see `scenarios/mam.rs`.
//!
//! `bench s2s [--servers lilt,prosody,ejabberd] ...` measures federation
//! throughput, two servers of each software over s2s in a private network
//! namespace (issue 19); see `scenarios/s2s.rs`.

mod accounts;
mod client;
mod driver;
mod federation;
mod media;
mod procfs;
mod recorder;
mod report;
mod sasl;
mod scenarios;
mod servers;
mod soak;
mod stats;
mod storage;
mod tsung;
mod xml;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::client::Mechanism;
use crate::servers::Kind;

/// Benchmark lilt against Debian's Prosody and ejabberd (run as root).
#[derive(Parser, Debug, Clone)]
#[command(name = "bench", version)]
pub struct Args {
    /// Servers to run, comma-separated: lilt, lilt-2cores, prosody, ejabberd.
    #[arg(
        long,
        default_value = "lilt,lilt-2cores,prosody,ejabberd",
        value_delimiter = ','
    )]
    pub servers: Vec<String>,
    /// Scenarios to run, comma-separated: 1 login rate, 2 one-to-one,
    /// 3 MUC fan-out, 4 join storm, 5 idle memory.
    #[arg(long, default_value = "1,2,3,4,5", value_delimiter = ',')]
    pub scenarios: Vec<u8>,
    /// Runs of each scenario (the table shows medians).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Measured seconds of scenarios 1, 2 and 3.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Warm-up seconds before measuring scenarios 2 and 3.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Scenario 1: clients logging in at once.
    #[arg(long, default_value_t = 50)]
    pub login_clients: usize,
    /// Scenario 2: online users (in pairs).
    #[arg(long, default_value_t = 1000)]
    pub chat_users: usize,
    /// Scenario 2: unacknowledged messages per direction.
    #[arg(long, default_value_t = 5)]
    pub chat_window: u32,
    /// Scenario 3: occupants of the room.
    #[arg(long, default_value_t = 200)]
    pub muc_occupants: usize,
    /// Scenario 3: occupants sending.
    #[arg(long, default_value_t = 10)]
    pub muc_senders: usize,
    /// Scenario 3: messages per sender not yet reflected back.
    #[arg(long, default_value_t = 5)]
    pub muc_window: u32,
    /// Scenario 4: clients joining at once.
    #[arg(long, default_value_t = 500)]
    pub storm_clients: usize,
    /// Scenario 5: sessions held open.
    #[arg(long, default_value_t = 10000)]
    pub idle_sessions: usize,
    /// SASL mechanism: SCRAM-SHA-1 or PLAIN.
    #[arg(long, default_value = "SCRAM-SHA-1")]
    pub mechanism: String,
    /// Logins in flight while setting scenarios up.
    #[arg(long, default_value_t = 100)]
    pub setup_concurrency: usize,
    /// The lilt binary (default: target/release/lilt in this workspace).
    #[arg(long)]
    pub lilt: Option<PathBuf>,
    /// What the lilt binary is, for the results file (default: the
    /// workspace's git commit).
    #[arg(long)]
    pub lilt_commit: Option<String>,
    /// Where the servers' throw-away directories go.
    #[arg(long, default_value = "/tmp/lilt-bench")]
    pub work_dir: PathBuf,
    /// First c2s port (each server gets the next one).
    #[arg(long, default_value_t = 25222)]
    pub port: u16,
    /// CPU of the server under test.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// CPU of the load generator.
    #[arg(long, default_value_t = 1)]
    pub generator_cpu: usize,
    /// Where to save the table (default: bench/results in this workspace).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Also run tsung's scenario 2 (bench/tsung/one_to_one.xml) against
    /// these servers, comma-separated (e.g. prosody,lilt).
    #[arg(long, value_delimiter = ',')]
    pub tsung: Vec<String>,
    /// tsung: messages each user sends.
    #[arg(long, default_value_t = 400)]
    pub tsung_loops: usize,
    /// tsung: seconds between two messages of one user.
    #[arg(long, default_value_t = 0.05)]
    pub tsung_think: f64,
    /// Print the table only.
    #[arg(long)]
    pub no_save: bool,
    /// Run the media forwarding benchmark (lilt's bridge beside Janus)
    /// instead of the XMPP scenarios.
    #[arg(long)]
    pub media: bool,
    /// Media: servers, comma-separated: lilt-bridge (`lilt bridge` behind
    /// lilt), lilt-core (lilt's Bridge in the bench's own loop),
    /// lilt-core-alloc (the same with simulcast allocation), janus; or
    /// lilt-relay alone (two bridges relayed as Jicofo relays them, beside
    /// one bridge with the same load: the relay's cost per packet).
    #[arg(long, default_value = "lilt-bridge,janus", value_delimiter = ',')]
    pub media_servers: Vec<String>,
    /// Media: load levels SENDERSxRECEIVERS, in increasing order.
    #[arg(
        long,
        default_value = "2x2,4x6,6x10,8x16,10x24,11x28,12x32,14x36,16x40",
        value_delimiter = ','
    )]
    pub media_levels: Vec<String>,
    /// Media: measured seconds per level.
    #[arg(long, default_value_t = 5.0)]
    pub media_duration: f64,
    /// Media: warm-up seconds per level. Past 10 s lilt's bridge (as
    /// Videobridge) holds each receiver to its bandwidth estimate, so the
    /// measurement starts after that.
    #[arg(long, default_value_t = 11.0)]
    pub media_warmup: f64,
    /// Media: video bitrate of each sender (kbit/s).
    #[arg(long, default_value_t = 1000)]
    pub media_video_kbps: u32,
    /// Media: video frames per second.
    #[arg(long, default_value_t = 30)]
    pub media_fps: u32,
    /// Media: largest video packet payload (bytes).
    #[arg(long, default_value_t = 1100)]
    pub media_packet: usize,
    /// Media: loss (%) above which the ramp stops.
    #[arg(long, default_value_t = 1.0)]
    pub media_max_loss: f64,
    /// Media: lilt bridge's UDP port.
    #[arg(long, default_value_t = 10000)]
    pub media_udp_port: u16,
    /// Media: Janus's HTTP API port.
    #[arg(long, default_value_t = 18088)]
    pub media_janus_port: u16,
    /// Media: Janus's shared event loops (`event_loops`; 0: Janus's
    /// default, one thread per handle).
    #[arg(long, default_value_t = 1)]
    pub media_janus_event_loops: usize,
    /// Internal: host lilt's bridge on this UDP port (started by `--media`).
    #[arg(long, hide = true)]
    pub media_bridge_host: Option<u16>,
    #[command(flatten)]
    pub recorder: recorder::RecorderBenchArgs,
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

impl Args {
    pub fn kinds(&self) -> Result<Vec<Kind>, String> {
        self.servers
            .iter()
            .map(|s| Kind::parse(s.trim()).ok_or_else(|| format!("unknown server {s:?}")))
            .collect()
    }

    pub fn mechanism(&self) -> Result<Mechanism, String> {
        match self.mechanism.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-1" => Ok(Mechanism::ScramSha1),
            "PLAIN" => Ok(Mechanism::Plain),
            other => Err(format!("unsupported mechanism {other:?}")),
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup)
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("soak") {
        return match soak::main(argv.split_off(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench soak: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("mam") {
        return match scenarios::mam::main(argv.split_off(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench mam: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("s2s") {
        return match scenarios::s2s::main(argv.split_off(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench s2s: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("storage") {
        return match storage::main(argv.split_off(2)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench storage: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    if let Some(port) = args.media_bridge_host {
        return match media::run_bridge_host(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench bridge host: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.recorder.recorder {
        return match recorder::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench --recorder: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.media {
        return match media::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match driver::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
