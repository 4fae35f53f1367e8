//! The servers under test: lilt (release build), Debian's Prosody 0.12 and
//! Debian's ejabberd, each started by the driver on 127.0.0.1 with its own
//! throw-away directory, pinned with `taskset`, and stopped afterwards.

mod ejabberd;
mod prosody;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;

/// The domain every server serves, and its MUC component.
pub const DOMAIN: &str = "localhost";
pub const MUC_DOMAIN: &str = "conference.localhost";

/// A server variant in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// lilt pinned to the server core.
    Lilt,
    /// lilt allowed on both cores (the generator's too).
    LiltBothCores,
    Prosody,
    Ejabberd,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Lilt,
        Kind::LiltBothCores,
        Kind::Prosody,
        Kind::Ejabberd,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Lilt => "lilt",
            Kind::LiltBothCores => "lilt-2cores",
            Kind::Prosody => "prosody",
            Kind::Ejabberd => "ejabberd",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.label() == s)
    }
}

/// Starting or driving a server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} exited with {status}: {output}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        output: String,
    },
    #[error("{server} did not accept connections on {addr} within {secs} s; log tail:\n{log}")]
    NotReady {
        server: &'static str,
        addr: SocketAddr,
        secs: u64,
        log: String,
    },
    #[error(
        "{server}: something already listens on {addr} (a server left from an interrupted run?)"
    )]
    PortBusy {
        server: &'static str,
        addr: SocketAddr,
    },
    #[error("{server}: cannot find its main process under pid {pid}")]
    NoProcess { server: &'static str, pid: u32 },
    #[error(transparent)]
    Accounts(#[from] crate::accounts::AccountsError),
}

/// How to set servers up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Where each server's throw-away directory is made.
    pub base: PathBuf,
    /// The c2s port of the first server; the others follow.
    pub port: u16,
    /// How many accounts to create.
    pub accounts: usize,
    /// Accounts for the tsung cross-check (tsung1 ... tsungN).
    pub tsung_accounts: usize,
    /// The lilt binary (release build).
    pub lilt_bin: PathBuf,
    /// The CPU list (`taskset -c`) of the server under test.
    pub server_cpus: String,
    /// Both CPUs, for [`Kind::LiltBothCores`].
    pub all_cpus: String,
}

/// A started server.
pub struct Running {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// The process whose memory and CPU are measured.
    pub pid: u32,
    /// Accounts are created over XMPP (in-band registration) after start.
    pub needs_registration: bool,
    child: Child,
    log: PathBuf,
}

pub(crate) fn io_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_path_buf();
    move |source| ServerError::Io { what, path, source }
}

/// Priority (nice value) of the generator, set on itself at start and so
/// inherited by the servers it starts: above other work on the machine
/// (builds, say), which would otherwise take turns on the pinned cores and
/// show up as noise.
pub const NICE: i32 = -10;

/// `taskset -c CPUS`, to which the server's command is added.
pub(crate) fn pinned(cpus: &str) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", cpus]);
    cmd
}

/// Runs a command to completion; its output is the error on failure.
pub(crate) fn run(cmd: &mut Command) -> Result<(), ServerError> {
    let program = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| ServerError::Spawn {
        program: program.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServerError::Failed {
            program,
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn port_of(kind: Kind, setup: &Setup) -> u16 {
    let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    setup.port + index as u16
}

fn dir_of(kind: Kind, setup: &Setup) -> PathBuf {
    setup.base.join(kind.label())
}

/// Makes the server's fresh directory: config files and (for Prosody and
/// lilt) the account files.
pub fn prepare(kind: Kind, setup: &Setup) -> Result<(), ServerError> {
    let dir = dir_of(kind, setup);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err("removing old run directory", &dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io_err("creating run directory", &dir))?;
    let port = port_of(kind, setup);
    match kind {
        Kind::Lilt | Kind::LiltBothCores | Kind::Prosody => {
            prosody::prepare(&dir, port, setup.accounts, setup.tsung_accounts)
        }
        Kind::Ejabberd => ejabberd::prepare(&dir, port),
    }
}

/// Starts a prepared server, waits until it accepts connections.
pub fn start(kind: Kind, setup: &Setup) -> Result<Running, ServerError> {
    let port = port_of(kind, setup);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = dir_of(kind, setup);
    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        return Err(ServerError::PortBusy {
            server: kind.label(),
            addr,
        });
    }
    let (mut cmd, log, needs_registration) = match kind {
        Kind::Lilt | Kind::LiltBothCores => {
            let cpus = if kind == Kind::Lilt {
                &setup.server_cpus
            } else {
                &setup.all_cpus
            };
            let mut cmd = pinned(cpus);
            cmd.arg(&setup.lilt_bin)
                .arg("--config")
                .arg(dir.join("prosody.cfg.lua"));
            (cmd, dir.join("lilt.log"), false)
        }
        Kind::Prosody => (
            prosody::command(&dir, &setup.server_cpus)?,
            dir.join("prosody.log"),
            false,
        ),
        Kind::Ejabberd => (
            ejabberd::command(&dir, &setup.server_cpus),
            dir.join("ejabberd.out"),
            true,
        ),
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(io_err("creating log", &log))?;
    let err = out.try_clone().map_err(io_err("creating log", &log))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| ServerError::Spawn {
            program: format!("{cmd:?}"),
            source,
        })?;
    let mut running = Running {
        kind,
        addr,
        pid: child.id(),
        needs_registration,
        child,
        log,
    };
    let secs = 90;
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        let exited = matches!(running.child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > deadline {
            let log = tail(&running.log, 30);
            running.stop();
            return Err(ServerError::NotReady {
                server: kind.label(),
                addr,
                secs,
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.pid = running.main_pid()?;
    Ok(running)
}

impl Running {
    /// The process to measure: lilt itself, Prosody's Lua interpreter,
    /// ejabberd's Erlang VM (`beam.smp`).
    fn main_pid(&self) -> Result<u32, ServerError> {
        let root = self.child.id();
        let wanted: &[&str] = match self.kind {
            Kind::Lilt | Kind::LiltBothCores => return Ok(root),
            Kind::Prosody => &["lua", "prosody"],
            Kind::Ejabberd => &["beam.smp", "beam"],
        };
        procfs::descendants(root)
            .into_iter()
            .find(|p| procfs::comm(*p).is_some_and(|c| wanted.iter().any(|w| c.starts_with(w))))
            .ok_or(ServerError::NoProcess {
                server: self.kind.label(),
                pid: root,
            })
    }

    /// Resident memory of the measured process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        procfs::rss_kib(self.pid).unwrap_or(0)
    }

    /// Whether the server is still running.
    pub fn alive(&self) -> bool {
        procfs::alive(self.pid)
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 20)
    }

    /// Stops the server: SIGTERM to the measured process, then whatever is
    /// left of the tree is killed.
    pub fn stop(mut self) {
        let tree: Vec<u32> = procfs::descendants(self.child.id());
        procfs::signal(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while procfs::alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in tree.into_iter().rev() {
            if procfs::alive(p) {
                procfs::signal(p, libc::SIGKILL);
            }
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(300));
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// The installed version of a Debian package, for the results header.
pub fn package_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
