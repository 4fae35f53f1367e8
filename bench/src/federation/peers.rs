//! One federating server of `bench s2s`: lilt (its release binary),
//! Debian's Prosody 0.12 or Debian's ejabberd serving one of the
//! namespace's domains on its own loopback address: plain-TCP c2s on 5222
//! (SCRAM-SHA-1), s2s on 5269 with TLS required and certificates from the
//! namespace's CA, which each server trusts. Each runs in its own process
//! group, pinned with `taskset`, as the namespace's root (the user
//! namespace maps no other user, so no `runuser`).

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{accounts, procfs};

/// The server software of a federating pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Software {
    Lilt,
    Prosody,
    Ejabberd,
}

impl Software {
    pub const ALL: [Software; 3] = [Software::Lilt, Software::Prosody, Software::Ejabberd];

    pub fn label(self) -> &'static str {
        match self {
            Software::Lilt => "lilt",
            Software::Prosody => "prosody",
            Software::Ejabberd => "ejabberd",
        }
    }

    pub fn parse(s: &str) -> Option<Software> {
        Software::ALL.into_iter().find(|k| k.label() == s)
    }

    /// How its servers authenticate each other (as their logs say: lilt
    /// "incoming s2s authenticated by SASL EXTERNAL", Prosody "Accepting
    /// SASL EXTERNAL identity", ejabberd "Accepted inbound s2s EXTERNAL
    /// authentication"): all three offer EXTERNAL on a valid certificate
    /// and take it; dialback stays loaded in lilt and Prosody as the
    /// fallback, ejabberd has no mod_s2s_dialback.
    pub fn s2s_auth(self) -> &'static str {
        "STARTTLS + SASL EXTERNAL"
    }
}

/// Where a server runs and what it trusts.
pub struct Place<'a> {
    pub domain: &'a str,
    pub ip: &'a str,
    /// Its throw-away directory.
    pub dir: PathBuf,
    /// Where `<domain>.crt` and `.key` are.
    pub certs: &'a Path,
    pub ca: &'a Path,
    /// `taskset -c` list.
    pub cpus: &'a str,
    /// Accounts `accounts::username(0..n)` (made from files for lilt and
    /// Prosody; ejabberd's by in-band registration after start).
    pub accounts: usize,
}

/// A started server.
pub struct Peer {
    pub software: Software,
    pub c2s: SocketAddr,
    /// The process whose CPU is measured (lilt, Prosody's Lua, `beam.smp`).
    pub pid: u32,
    child: Child,
    log: PathBuf,
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", what.display())
}

/// The Lua config lilt and Prosody both read.
fn lua_config(p: &Place) -> String {
    let dir = p.dir.display();
    format!(
        r#"-- Written by bench s2s: the same file for lilt and Prosody.
run_as_root = true
daemonize = false
network_backend = "epoll"
interfaces = {{ "{ip}" }}
c2s_ports = {{ 5222 }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ 5269 }}
s2s_direct_tls_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
pidfile = "{dir}/server.pid"
data_path = "{dir}/data"
certificates = "{certs}"
ssl = {{ cafile = "{ca}" }}
s2s_require_encryption = true
s2s_secure_auth = true
modules_enabled = {{
	"roster";
	"saslauth";
	"tls";
	"disco";
	"ping";
	"dialback";
	"s2s_auth_certs";
}}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
log = {{ info = "{dir}/server.log" }}

VirtualHost "{domain}"
"#,
        ip = p.ip,
        certs = p.certs.display(),
        ca = p.ca.display(),
        domain = p.domain,
    )
}

/// ejabberd.yml: s2s with STARTTLS required, SASL EXTERNAL only.
fn ejabberd_config(p: &Place) -> String {
    let c = |ext: &str| {
        p.certs
            .join(format!("{}.{ext}", p.domain))
            .display()
            .to_string()
    };
    format!(
        r#"# Written by bench s2s.
hosts:
  - "{domain}"
loglevel: info
hide_sensitive_log_data: true
certfiles:
  - "{crt}"
  - "{key}"
ca_file: "{ca}"
s2s_use_starttls: required
listen:
  -
    port: 5222
    ip: "{ip}"
    module: ejabberd_c2s
    starttls_required: false
    backlog: 1024
  -
    port: 5269
    ip: "{ip}"
    module: ejabberd_s2s_in
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
cache_size: 50000
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_register:
    ip_access: all
    access: all
"#,
        domain = p.domain,
        ip = p.ip,
        crt = c("crt"),
        key = c("key"),
        ca = p.ca.display(),
    )
}

/// Writes the server's files and starts it; returns once its c2s port
/// accepts connections.
pub fn start(software: Software, p: &Place, lilt_bin: &Path) -> Result<Peer, String> {
    if p.dir.exists() {
        std::fs::remove_dir_all(&p.dir).map_err(io(&p.dir))?;
    }
    std::fs::create_dir_all(&p.dir).map_err(io(&p.dir))?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", p.cpus]);
    let log = p.dir.join("server.out");
    match software {
        Software::Lilt | Software::Prosody => {
            let cfg = p.dir.join("prosody.cfg.lua");
            std::fs::write(&cfg, lua_config(p)).map_err(io(&cfg))?;
            accounts::write_prosody_accounts(&p.dir.join("data"), p.domain, p.accounts)
                .map_err(|e| e.to_string())?;
            if software == Software::Lilt {
                cmd.arg(lilt_bin).arg("--config").arg(&cfg);
            } else {
                cmd.args(["prosody", "-F", "--config"]).arg(&cfg);
            }
        }
        Software::Ejabberd => {
            let yml = p.dir.join("ejabberd.yml");
            std::fs::write(&yml, ejabberd_config(p)).map_err(io(&yml))?;
            let spool = p.dir.join("spool");
            std::fs::create_dir_all(&spool).map_err(io(&spool))?;
            // Erlang's resolver: the namespace's DNS server.
            let inetrc = p.dir.join("inetrc");
            std::fs::write(&inetrc, "{lookup,[file,dns]}.\n{nameserver,{127,0,0,1}}.\n")
                .map_err(io(&inetrc))?;
            // erl itself: ejabberdctl would switch to the ejabberd user,
            // which the user namespace does not have; no distribution.
            cmd.current_dir(&p.dir)
                .env("HOME", &p.dir)
                .env("EJABBERD_CONFIG_PATH", &yml)
                .env("EJABBERD_LOG_PATH", p.dir.join("ejabberd.log"))
                .env("ERL_INETRC", &inetrc)
                .env("ERL_LIBS", "/usr/lib/x86_64-linux-gnu")
                .env("ERL_CRASH_DUMP_BYTES", "0")
                .args(["erl", "+K", "true", "-noinput", "-mnesia", "dir"])
                .arg(format!("\"{}\"", spool.display()))
                .args(["-s", "ejabberd"]);
        }
    }
    let out = std::fs::File::create(&log).map_err(io(&log))?;
    let err = out.try_clone().map_err(io(&log))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let c2s: SocketAddr = format!("{}:5222", p.ip)
        .parse()
        .map_err(|e| format!("{}: {e}", p.ip))?;
    let mut peer = Peer {
        software,
        c2s,
        pid: child.id(),
        child,
        log: p.dir.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect_timeout(&c2s, Duration::from_millis(200)).is_err() {
        let exited = matches!(peer.child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > deadline {
            let tail = peer.log_tail();
            peer.stop();
            return Err(format!(
                "{} as {} did not listen on {c2s}:\n{tail}",
                software.label(),
                p.domain
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wanted: &[&str] = match software {
        Software::Lilt => &["lilt"],
        Software::Prosody => &["lua", "prosody"],
        Software::Ejabberd => &["beam.smp", "beam"],
    };
    let root = peer.child.id();
    peer.pid = std::iter::once(root)
        .chain(procfs::descendants(root))
        .find(|pid| procfs::comm(*pid).is_some_and(|c| wanted.iter().any(|w| c.starts_with(w))))
        .unwrap_or(root);
    Ok(peer)
}

impl Peer {
    /// The ends of the server's logs.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["server.out", "server.log", "ejabberd.log"] {
            let text = std::fs::read_to_string(self.log.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Stops the server and whatever it started (its process group).
    pub fn stop(mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group this bench started.
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: as above; whatever is left of the group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}
