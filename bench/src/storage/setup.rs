//! The servers and databases of `bench storage`: one `prosody.cfg.lua` per
//! (server, driver) with the `private` and `archive` stores on the driver
//! under test (accounts and rosters stay internal, so both servers read
//! the same account files), a throw-away PostgreSQL cluster on 127.0.0.1
//! shared by both servers (a fresh database per run), and the start and
//! stop of lilt and Debian's Prosody 0.12.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::{ServerError, io_err, pinned, run};
use crate::{accounts, procfs};

pub const DOMAIN: &str = "localhost";

/// The storage driver the measured stores are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Driver {
    Internal,
    Sqlite,
    Postgresql,
}

impl Driver {
    pub fn parse(s: &str) -> Option<Driver> {
        match s {
            "internal" => Some(Driver::Internal),
            "sqlite" | "sql" => Some(Driver::Sqlite),
            "postgresql" | "pg" => Some(Driver::Postgresql),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Driver::Internal => "internal",
            Driver::Sqlite => "sqlite",
            Driver::Postgresql => "postgresql",
        }
    }
}

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Server {
    Lilt,
    Prosody,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Server::Lilt => "lilt",
            Server::Prosody => "prosody",
        })
    }
}

/// The `sql` table of a run, if its driver is sql.
fn sql_option(driver: Driver, pg: Option<(&PgCluster, &str)>) -> String {
    match (driver, pg) {
        (Driver::Internal, _) => String::new(),
        (Driver::Sqlite, _) => {
            "sql = { driver = \"SQLite3\"; database = \"prosody.sqlite\" }\n".into()
        }
        (Driver::Postgresql, Some((pg, db))) => format!(
            "sql = {{ driver = \"PostgreSQL\"; database = \"{db}\"; username = \"postgres\"; host = \"127.0.0.1\"; port = {} }}\n",
            pg.port
        ),
        (Driver::Postgresql, None) => String::new(),
    }
}

/// The configuration of one run (the same file for Prosody and lilt);
/// `lilt_sync` is lilt's `internal_storage_sync`, if given.
pub fn config(
    dir: &Path,
    port: u16,
    driver: Driver,
    pg: Option<(&PgCluster, &str)>,
    lilt_sync: Option<&str>,
) -> String {
    let store_driver = match driver {
        Driver::Internal => "internal",
        Driver::Sqlite | Driver::Postgresql => "sql",
    };
    let sql = sql_option(driver, pg);
    let sync = lilt_sync
        .map(|m| format!("internal_storage_sync = {m:?}\n"))
        .unwrap_or_default();
    let dir = dir.display();
    format!(
        r#"-- Written by bench storage: the same file for Prosody and lilt.
network_backend = "epoll"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
pidfile = "{dir}/server.pid"
data_path = "{dir}/data"

modules_enabled = {{
	"roster";
	"saslauth";
	"disco";
	"ping";
	"private";
	"mam";
}}
modules_disabled = {{ "s2s" }}

authentication = "internal_hashed"
default_storage = "internal"
storage = {{ private = "{store_driver}"; archive = "{store_driver}" }}
{sql}{sync}
default_archive_policy = true
archive_expires_after = "never"
max_archive_query_results = 50
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

log = {{
	{{ levels = {{ min = "warn" }}, to = "console" }};
}}

VirtualHost "{DOMAIN}"
"#
    )
}

/// A throw-away PostgreSQL cluster (Debian's `postgresql`), run as the
/// `postgres` user on 127.0.0.1; stopped on drop.
pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
}

impl PgCluster {
    pub fn start(base: &Path, port: u16) -> Result<PgCluster, ServerError> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(io_err(
                "looking for PostgreSQL (apt-get install postgresql)",
                Path::new("/usr/lib/postgresql"),
            ))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .ok_or_else(|| ServerError::Io {
                what: "looking for initdb (apt-get install postgresql)",
                path: "/usr/lib/postgresql".into(),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        let dir = base.join("pg");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("removing old cluster", &dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_err("creating cluster directory", &dir))?;
        run(Command::new("chmod").arg("755").arg(base))?;
        run(Command::new("chown").arg("postgres").arg(&dir))?;
        let data = dir.join("data");
        run(as_postgres(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data))?;
        run(as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {port} -k {}",
                dir.display()
            ))
            .arg("start"))?;
        Ok(PgCluster { port, bin, data })
    }

    /// A new empty database.
    pub fn create_database(&self, name: &str) -> Result<(), ServerError> {
        run(Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!("CREATE DATABASE {name}"))
            .arg("-p")
            .arg(self.port.to_string()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "stop"])
            .output();
    }
}

/// A command run as `postgres` when this is root.
fn as_postgres(program: &Path) -> Command {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A started server; stopped (its whole process tree) on drop.
pub struct Running {
    child: Child,
    pub log: PathBuf,
}

/// One run: a server on a driver.
pub struct RunSpec<'a> {
    pub server: Server,
    pub driver: Driver,
    /// The run's throw-away directory.
    pub dir: &'a Path,
    pub port: u16,
    /// The cluster and database name when the driver is PostgreSQL.
    pub pg: Option<(&'a PgCluster, &'a str)>,
    /// Accounts to write (`bench0` ...).
    pub accounts: usize,
    pub lilt: &'a Path,
    /// `taskset -c` CPU list of the server.
    pub cpus: &'a str,
    /// lilt's `internal_storage_sync`, if given.
    pub lilt_sync: Option<&'a str>,
}

/// Writes the run directory (config, accounts) and starts the server.
pub fn start(spec: &RunSpec<'_>) -> Result<Running, ServerError> {
    let RunSpec {
        server,
        driver,
        dir,
        port,
        pg,
        accounts,
        lilt,
        cpus,
        lilt_sync,
    } = *spec;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_err("removing old run directory", dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io_err("creating run directory", dir))?;
    let cfg = dir.join("prosody.cfg.lua");
    std::fs::write(&cfg, config(dir, port, driver, pg, lilt_sync))
        .map_err(io_err("writing config", &cfg))?;
    accounts::write_prosody_accounts(&dir.join("data"), DOMAIN, accounts)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        return Err(ServerError::PortBusy {
            server: "bench storage",
            addr,
        });
    }
    let mut cmd = pinned(cpus);
    match server {
        Server::Lilt => {
            cmd.arg(lilt).arg("--config").arg(&cfg);
        }
        Server::Prosody => {
            run(Command::new("chown").arg("-R").arg("prosody").arg(dir))?;
            cmd.args(["runuser", "-u", "prosody", "--", "sh", "-c"])
                .arg(format!(
                    "ulimit -n $(ulimit -Hn); exec prosody -F --config '{}'",
                    cfg.display()
                ));
        }
    }
    let log = dir.join("server.log");
    let out = std::fs::File::create(&log).map_err(io_err("creating log", &log))?;
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
    let mut running = Running { child, log };
    let secs = 60;
    let deadline = Instant::now() + Duration::from_secs(secs);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        let exited = matches!(running.child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > deadline {
            return Err(ServerError::NotReady {
                server: "bench storage",
                addr,
                secs,
                log: running.log_tail(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(running)
}

impl Running {
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let tree = procfs::descendants(self.child.id());
        for p in tree.iter().rev() {
            procfs::signal(*p, libc::SIGTERM);
        }
        procfs::signal(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tree.iter().any(|p| procfs::alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in tree.iter().rev() {
            if procfs::alive(*p) {
                procfs::signal(*p, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
