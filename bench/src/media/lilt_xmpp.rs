//! lilt's bridge as deployed: lilt (`target/release/lilt`) with a minimal
//! Jitsi-like config (a VirtualHost for the component accounts, the
//! internal MUC with the brewery), and `lilt bridge --xmpp ... --brewery
//! ...` logging in to it, both pinned to the server core. The driver logs
//! in as the focus would (the bench's XMPP client), joins the brewery
//! first, learns the bridge's full JID from its brewery presence and sends
//! the Colibri2 IQs there.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts;
use crate::client::{Conn, Mechanism, Target};
use crate::sasl::SaltCache;

use super::MediaError;
use super::lilt_bridge::LiltBridge;

const AUTH_DOMAIN: &str = "auth.localhost";
const INTERNAL_MUC: &str = "internal.auth.localhost";
const BREWERY: &str = "jvbbrewery@internal.auth.localhost";

/// Where and how to start lilt and its bridge.
#[derive(Debug, Clone)]
pub struct LiltSetup {
    pub dir: PathBuf,
    pub lilt_bin: PathBuf,
    pub cpus: String,
    pub c2s_port: u16,
    pub udp_port: u16,
    pub http_port: u16,
}

/// The focus's XMPP session and the bridge it talks to.
pub struct Focus {
    rt: tokio::runtime::Runtime,
    conn: Conn,
    bridge: String,
}

impl Focus {
    /// Sends a Colibri2 IQ with this id and body to the bridge; returns the
    /// answer's XML.
    pub fn request(&mut self, id: &str, body: &str) -> Result<String, MediaError> {
        let iq = format!("<iq type='set' id='{id}' to='{}'>{body}</iq>", self.bridge);
        let conn = &mut self.conn;
        let answer = self.rt.block_on(async {
            conn.send(iq.as_bytes(), "colibri2").await?;
            conn.wait_iq(id, "colibri2").await
        });
        let answer = answer.map_err(|e| MediaError::Protocol(format!("focus: {e}")))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }
}

fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"-- Written by lilt's bench (media): the Jitsi shape, reduced.
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
pidfile = "{dir}/server.pid"
data_path = "{dir}/data"
modules_enabled = {{ "saslauth"; "disco"; "ping"; }}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
unlimited_jids = {{ "focus@{AUTH_DOMAIN}", "jvb@{AUTH_DOMAIN}" }}
log = {{ {{ levels = {{ min = "warn" }}, to = "console" }}; }}

VirtualHost "{AUTH_DOMAIN}"

Component "{INTERNAL_MUC}" "muc"
	admins = {{ "focus@{AUTH_DOMAIN}", "jvb@{AUTH_DOMAIN}" }}
	muc_room_locking = false
	muc_room_default_public_jids = true
"#
    )
}

fn prepare(dir: &Path, port: u16) -> Result<(), MediaError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(MediaError::io("clearing lilt's directory"))?;
    }
    let accounts_dir = dir.join("data").join("auth%2elocalhost").join("accounts");
    std::fs::create_dir_all(&accounts_dir).map_err(MediaError::io("creating lilt's data"))?;
    let record = accounts::account_record(accounts::PASSWORD);
    for name in ["focus", "jvb"] {
        std::fs::write(accounts_dir.join(format!("{name}.dat")), &record)
            .map_err(MediaError::io("writing an account"))?;
    }
    std::fs::write(dir.join("jvb.password"), accounts::PASSWORD)
        .map_err(MediaError::io("writing the bridge's password"))?;
    std::fs::write(dir.join("prosody.cfg.lua"), config(dir, port))
        .map_err(MediaError::io("writing lilt's config"))?;
    Ok(())
}

fn spawn(cmd: &mut Command, log: &Path) -> Result<Child, MediaError> {
    let out = std::fs::File::create(log).map_err(MediaError::io("creating a log"))?;
    let err = out.try_clone().map_err(MediaError::io("creating a log"))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(MediaError::io("starting lilt"))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Starts lilt, logs the focus in, starts `lilt bridge`, waits for its
/// brewery presence.
pub fn start(s: &LiltSetup) -> Result<LiltBridge, MediaError> {
    if !s.lilt_bin.is_file() {
        return Err(MediaError::Usage(format!(
            "{} not found: cargo build --release -p lilt",
            s.lilt_bin.display()
        )));
    }
    prepare(&s.dir, s.c2s_port)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], s.c2s_port));
    let mut server = spawn(
        Command::new("taskset")
            .args(["-c", &s.cpus])
            .arg(&s.lilt_bin)
            .arg("--config")
            .arg(s.dir.join("prosody.cfg.lua")),
        &s.dir.join("lilt.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline || matches!(server.try_wait(), Ok(Some(_))) {
            let _ = server.kill();
            let _ = server.wait();
            return Err(MediaError::Protocol(format!(
                "lilt did not listen on {addr}:\n{}",
                log_tail(&s.dir.join("lilt.log"))
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut children = vec![server];
    match start_bridge(s, addr, &mut children) {
        Ok((focus, pid)) => Ok(LiltBridge::with_focus(focus, children, pid)),
        Err(e) => {
            for mut c in children.into_iter().rev() {
                let _ = c.kill();
                let _ = c.wait();
            }
            Err(e)
        }
    }
}

fn start_bridge(
    s: &LiltSetup,
    addr: SocketAddr,
    children: &mut Vec<Child>,
) -> Result<(Focus, u32), MediaError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(MediaError::io("starting a runtime"))?;
    let target = Target {
        addr,
        domain: AUTH_DOMAIN.to_string(),
        mechanism: Mechanism::ScramSha1,
        cache: SaltCache::default(),
        step_timeout: Duration::from_secs(20),
    };
    let mut conn = rt
        .block_on(Conn::login(&target, "focus", accounts::PASSWORD, true))
        .map_err(|e| MediaError::Protocol(format!("focus login: {e}")))?;
    // The focus is in the brewery before the bridge, as Jicofo usually is.
    let join = format!(
        "<presence to='{BREWERY}/focus'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    );
    rt.block_on(conn.send(join.as_bytes(), "brewery join"))
        .map_err(|e| MediaError::Protocol(format!("focus: {e}")))?;
    let bridge = spawn(
        Command::new("taskset")
            .args(["-c", &s.cpus])
            .arg(&s.lilt_bin)
            .arg("bridge")
            .arg("--xmpp")
            .arg(addr.to_string())
            .arg("--jid")
            .arg(format!("jvb@{AUTH_DOMAIN}"))
            .arg("--password-file")
            .arg(s.dir.join("jvb.password"))
            .arg("--brewery")
            .arg(BREWERY)
            .arg("--nick")
            .arg("bench-jvb")
            .arg("--udp-port")
            .arg(s.udp_port.to_string())
            .arg("--address")
            .arg("127.0.0.1")
            .arg("--http")
            .arg(format!("127.0.0.1:{}", s.http_port)),
        &s.dir.join("bridge.log"),
    )?;
    let pid = bridge.id();
    children.push(bridge);
    let deadline = Instant::now() + Duration::from_secs(30);
    let full = loop {
        if Instant::now() > deadline {
            return Err(MediaError::Protocol(format!(
                "no bridge presence in the brewery within 30 s; bridge log:\n{}",
                log_tail(&s.dir.join("bridge.log"))
            )));
        }
        let el = match rt.block_on(conn.wait_element("brewery presence")) {
            Ok(el) => el,
            Err(e) => {
                return Err(MediaError::Protocol(format!(
                    "focus: {e}; bridge log:\n{}",
                    log_tail(&s.dir.join("bridge.log"))
                )));
            }
        };
        let text = String::from_utf8_lossy(&el).into_owned();
        if let Some(jid) = bridge_jid(&text) {
            break jid;
        }
    };
    Ok((
        Focus {
            rt,
            conn,
            bridge: full,
        },
        pid,
    ))
}

/// The real JID of the bridge in a brewery presence, if it is one.
fn bridge_jid(presence: &str) -> Option<String> {
    let el = xmpp_core::stream::parse_element(presence).ok()?;
    if el.name() != "presence" || el.type_().is_some() {
        return None;
    }
    let from = el.get_attr("from")?;
    if !from.starts_with(BREWERY) || from.ends_with("/focus") {
        return None;
    }
    let x = el.get_child("x", "http://jabber.org/protocol/muc#user")?;
    let item = x.children().find(|c| c.name() == "item")?;
    item.get_attr("jid")
        .filter(|j| j.starts_with(&format!("jvb@{AUTH_DOMAIN}/")))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bridge_in_its_brewery_presence() {
        let p = "<presence xmlns='jabber:client' from='jvbbrewery@internal.auth.localhost/bench-jvb' \
                 to='focus@auth.localhost/x'><x xmlns='http://jabber.org/protocol/muc#user'>\
                 <item affiliation='owner' role='moderator' jid='jvb@auth.localhost/abc'/></x></presence>";
        assert_eq!(bridge_jid(p).as_deref(), Some("jvb@auth.localhost/abc"));
        let own = p.replace("/bench-jvb", "/focus");
        assert_eq!(bridge_jid(&own), None);
    }
}
