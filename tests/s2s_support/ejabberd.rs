//! Debian's ejabberd 23.01 as `x.lilt` on 127.0.0.9, run by `erl` directly
//! (no ejabberdctl: it would switch to the ejabberd user, which the user
//! namespace does not map; no Erlang distribution, so no epmd), with a
//! throw-away config and spool directory, certificates from the test CA,
//! and the accounts alice and bob made by in-band registration.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Net;

pub const C2S: &str = "127.0.0.9:5222";
pub const S2S: &str = "127.0.0.9:5269";
pub const S2S_DIRECT_TLS: &str = "127.0.0.9:5271";

fn dir(net: &Net) -> PathBuf {
    net.dir.path().join("ejabberd")
}

pub fn log(net: &Net) -> PathBuf {
    dir(net).join("ejabberd.log")
}

pub fn installed(test: &str) -> bool {
    super::installed("ejabberdctl", test, "ejabberd")
}

/// ejabberd.yml: hosts x.lilt, xs.lilt, xt.lilt and xe.lilt (whose
/// certificate is self-signed); c2s and s2s on
/// 127.0.0.9 (s2s with STARTTLS on 5269 and 5270, direct TLS on 5271, the
/// listener's `tls: true`), STARTTLS required on s2s,
/// peers' certificates checked against the test CA; `dialback` adds
/// mod_s2s_dialback (else SASL EXTERNAL is the only way in).
fn config(net: &Net, dialback: bool) -> String {
    let c = |n: &str| net.certs.join(n).display().to_string();
    let dialback = if dialback {
        "  mod_s2s_dialback: {}\n"
    } else {
        ""
    };
    format!(
        r#"hosts:
  - "x.lilt"
  - "xs.lilt"
  - "xt.lilt"
  - "xe.lilt"
loglevel: info
certfiles:
  - "{crt}"
  - "{key}"
  - "{rcrt}"
  - "{rkey}"
  - "{scrt}"
  - "{skey}"
  - "{tcrt}"
  - "{tkey}"
  - "{ecrt}"
  - "{ekey}"
ca_file: "{ca}"
s2s_use_starttls: required
listen:
  -
    port: 5222
    ip: "127.0.0.9"
    module: ejabberd_c2s
    starttls: true
  -
    port: 5269
    ip: "127.0.0.9"
    module: ejabberd_s2s_in
  -
    port: 5270
    ip: "127.0.0.9"
    module: ejabberd_s2s_in
  -
    port: 5271
    ip: "127.0.0.9"
    module: ejabberd_s2s_in
    tls: true
auth_method: internal
registration_timeout: infinity
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_roster: {{}}
  mod_caps: {{}}
  mod_pubsub:
    plugins: ["flat", "pep"]
  mod_register:
    ip_access: all
    access: all
  mod_muc:
    host: "rooms.x.lilt"
    access: all
    access_create: all
{dialback}"#,
        crt = c("x.lilt.crt"),
        rcrt = c("rooms.x.lilt.crt"),
        rkey = c("rooms.x.lilt.key"),
        key = c("x.lilt.key"),
        scrt = c("xs.lilt.crt"),
        skey = c("xs.lilt.key"),
        tcrt = c("xt.lilt.crt"),
        tkey = c("xt.lilt.key"),
        ecrt = c("xe.lilt.crt"),
        ekey = c("xe.lilt.key"),
        ca = net.ca.display(),
    )
}

/// Starts ejabberd in its own process group (see [`stop`]).
pub fn start(net: &Net, dialback: bool) -> Child {
    let d = dir(net);
    let spool = d.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(d.join("ejabberd.yml"), config(net, dialback)).unwrap();
    // Erlang's resolver: the namespace's DNS server, /etc/hosts first.
    std::fs::write(
        d.join("inetrc"),
        "{lookup,[file,dns]}.\n{nameserver,{127,0,0,1}}.\n",
    )
    .unwrap();
    let mut cmd = Command::new("erl");
    cmd.current_dir(&d)
        .env("HOME", &d)
        .env("EJABBERD_CONFIG_PATH", d.join("ejabberd.yml"))
        .env("EJABBERD_LOG_PATH", log(net))
        .env("ERL_INETRC", d.join("inetrc"))
        .env("ERL_LIBS", "/usr/lib/x86_64-linux-gnu")
        .env("ERL_CRASH_DUMP_BYTES", "0")
        .args(["+K", "true", "-noinput", "-mnesia", "dir"])
        .arg(format!("\"{}\"", spool.display()))
        .args(["-s", "ejabberd"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    cmd.spawn().unwrap()
}

/// Waits (at most 90 s, on a loaded machine ejabberd starts slowly) until
/// ejabberd says it has started, its modules loaded, and its c2s and s2s
/// ports answer. Registering or federating earlier races with its start:
/// the c2s port may answer before mod_register is in place, and the s2s
/// listeners open one after the other.
pub async fn ready(net: &Net) {
    let log = log(net);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("is started in the node") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ejabberd did not start; its log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for port in [C2S, S2S, S2S_DIRECT_TLS] {
        super::wait_for_port(port).await;
    }
}

/// Waits (at most 60 s: ejabberd writes its log asynchronously) until
/// its log has every line of `wanted`; the log as it is then.
pub fn log_with(net: &Net, wanted: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log(net)).unwrap_or_default();
        if wanted.iter().all(|w| text.contains(w)) || std::time::Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops ejabberd and whatever it started (its process group).
pub fn stop(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// Makes `user`@x.lilt (password `secret`) by in-band registration
/// (XEP-0077) over a plain c2s stream.
pub async fn register(user: &str) {
    register_on("x.lilt", user).await
}

/// Makes `user`@`host` (password `secret`), as [`register`].
pub async fn register_on(host: &str, user: &str) {
    super::wait_for_port(C2S).await;
    let mut tcp = TcpStream::connect(C2S).await.unwrap();
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{host}' version='1.0'>"
    );
    tcp.write_all(header.as_bytes()).await.unwrap();
    read_until(&mut tcp, "</stream:features>").await;
    let iq = format!(
        "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>secret</password></query></iq>"
    );
    tcp.write_all(iq.as_bytes()).await.unwrap();
    let got = read_until(&mut tcp, "id='reg'").await;
    assert!(
        got.contains("type='result'"),
        "ejabberd refused to register {user}: {got}"
    );
}

async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !got.contains(needle) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("ejabberd did not send {needle}; got {got}"))
            .unwrap();
        assert!(n > 0, "ejabberd closed the stream; got {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The rest of the element.
    if let Some(i) = got.find(needle) {
        while !got[i..].contains('>') {
            let n = tcp.read(&mut buf).await.unwrap();
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    got
}
