//! A throw-away PostgreSQL cluster for tests: Debian's `initdb` in a
//! temporary directory, `postgres` on 127.0.0.1 and a free port, trust
//! authentication, stopped (immediately) when dropped. As root, the server
//! runs as the `postgres` user, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct PgCluster {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    bin: PathBuf,
    as_user: Option<String>,
}

/// Where Debian's PostgreSQL binaries are (`None`: not installed).
pub fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_root() -> bool {
    // SAFETY-free: read the effective uid from /proc.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    /// Starts a cluster with a database `db` (`None` with a message when
    /// PostgreSQL is not installed).
    pub fn start(db: &str) -> Result<PgCluster, String> {
        let bin = pg_bin_dir().ok_or("PostgreSQL is not installed (apt-get install postgresql)")?;
        let dir = tempfile::Builder::new()
            .prefix("lilt-pg")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let as_user = is_root().then(|| "postgres".to_string());
        if as_user.is_some() {
            let _ = std::fs::set_permissions(
                dir.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o777),
            );
            let _ = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status();
        }
        let data = dir.path().join("data");
        let mut cluster = PgCluster {
            port: 0,
            dir,
            child: None,
            bin,
            as_user,
        };
        let out = cluster
            .command("initdb")
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
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port().map_err(|e| e.to_string())?;
        let log = std::fs::File::create(cluster.dir.path().join("postgres.log"))
            .map_err(|e| e.to_string())?;
        let child = cluster
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-p"])
            .arg(port.to_string())
            .arg("-k")
            .arg(cluster.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        cluster.child = Some(child);
        cluster.port = port;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = cluster
                .command("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(port.to_string())
                .args(["-d", "postgres", "-Atc"])
                .arg(format!("CREATE DATABASE \"{db}\""))
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not come up: {}",
                    std::fs::read_to_string(cluster.dir.path().join("postgres.log"))
                        .unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let path = if path.exists() {
            path
        } else {
            Path::new(program).to_path_buf()
        };
        match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Runs SQL through `psql`; its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .command("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The `sql` option (Lua) for this cluster's database `db`.
    pub fn sql_option(&self, db: &str) -> String {
        format!(
            r#"{{ driver = "PostgreSQL", database = "{db}", username = "postgres", host = "127.0.0.1", port = {} }}"#,
            self.port
        )
    }

    /// Stops the server (fast shutdown), e.g. to test an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self
                .command("pg_ctl")
                .args(["stop", "-m", "fast", "-w", "-D"])
                .arg(self.dir.path().join("data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .map_err(|e| e.to_string())?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| e.to_string())?;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
