//! The client link lilt's components log in with (`xmpp_core::client`),
//! against real servers: lilt started in-process (STARTTLS with a test CA's
//! certificate, SCRAM-SHA-1 against internal_hashed accounts), the same
//! lilt through the in-process `local()` session, and Debian's Prosody 0.12
//! (through `../shared/tools/reference-prosody`; skipped with a message
//! when `../shared` is absent).
//!
//! Each link pings the server, exchanges a message with a second link,
//! and joins a MUC room, where the other link sees it arrive (and, for a
//! dropped local link, leave).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xmpp_core::client::{ClientError, ClientLink, ConnectOptions, connect, local};
use xmpp_core::{Clock, Element, Jid};

const NS_CLIENT: &str = "jabber:client";
const NS_MUC: &str = "http://jabber.org/protocol/muc";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
authentication = "internal_hashed"
storage = "memory"
modules_enabled = { "ping"; "roster"; "disco" }
muc_room_locking = false
VirtualHost "localhost"
Component "conference.localhost" "muc"
"#;

/// A test CA and a certificate for `localhost` it signed, in `dir`:
/// `ca.pem`, `localhost.crt`, `localhost.key`.
fn make_certificates(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lilt client_link test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("localhost.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("localhost.key"), key.serialize_pem()).unwrap();
    dir.join("ca.pem")
}

struct Lilt {
    running: lilt::startup::RunningServer,
    addr: SocketAddr,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start_lilt() -> Lilt {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = make_certificates(&certs);
    let text = format!("certificates = {:?}\n{CONFIG}", certs.to_str().unwrap());
    let config = lua_compat::config::load_str(&text, &dir.path().join("lilt.cfg.lua")).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    provider.create_user("focus", Some("focus-secret")).unwrap();
    provider.create_user("jvb", Some("jvb-secret")).unwrap();
    let running = lilt::startup::start(server).await.unwrap();
    let addr = running
        .listening
        .iter()
        .find(|l| l.kind == "c2s")
        .map(|l| l.addr)
        .expect("a c2s listener");
    Lilt {
        running,
        addr,
        ca,
        _dir: dir,
    }
}

fn options(addr: SocketAddr, jid: &str, password: &str, ca: Option<&Path>) -> ConnectOptions {
    ConnectOptions {
        address: addr.to_string(),
        jid: Jid::parse(jid).unwrap(),
        password: password.to_string(),
        insecure_tls: ca.is_none(),
        ca_file: ca.map(Path::to_path_buf),
    }
}

/// The next stanza `pick` accepts (others are skipped), within 10 s.
async fn wait_for(link: &mut ClientLink, what: &str, pick: impl Fn(&Element) -> bool) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, link.recv()).await {
            Ok(Some(e)) if pick(&e) => return e,
            Ok(Some(e)) => seen.push(e.to_xml()),
            Ok(None) => panic!("{}: link ended waiting for {what}; got {seen:#?}", link.jid),
            Err(_) => panic!("{}: timed out waiting for {what}; got {seen:#?}", link.jid),
        }
    }
}

fn is_muc_presence_of(e: &Element, occupant: &str, with_status: Option<&str>) -> bool {
    e.name() == "presence"
        && e.from() == Some(occupant)
        && e.get_child("x", NS_MUC_USER).is_some_and(|x| {
            with_status.is_none_or(|code| {
                x.children()
                    .any(|c| c.name() == "status" && c.get_attr("code") == Some(code))
            })
        })
}

/// Ping, a message from `a` to `b`, both join `room@muc`: what every
/// kind of link must do.
async fn exercise(a: &mut ClientLink, b: &mut ClientLink, domain: &str, room: &str) {
    // IQ ping to the server.
    assert!(
        a.sender().send(
            Element::new("iq", NS_CLIENT)
                .attr("type", "get")
                .attr("id", "ping-1")
                .attr("to", domain)
                .child(Element::new("ping", "urn:xmpp:ping"))
        )
    );
    let pong = wait_for(a, "the ping's result", |e| e.id() == Some("ping-1")).await;
    assert_eq!(pong.type_(), Some("result"), "{pong}");
    assert_eq!(pong.from(), Some(domain), "{pong}");

    // A message between the two links; its from is stamped by the server.
    let body = format!("hello from {}", a.jid);
    assert!(
        a.sender().send(
            Element::new("message", NS_CLIENT)
                .attr("type", "chat")
                .attr("to", b.jid.to_string())
                .text_tag("body", body.clone())
        )
    );
    let msg = wait_for(b, "the message", |e| e.name() == "message").await;
    assert_eq!(msg.get_child_text("body", NS_CLIENT), Some(body), "{msg}");
    assert_eq!(msg.from(), Some(a.jid.to_string().as_str()), "{msg}");

    // Both join a room; each sees its own presence (110) and the other's.
    let join = |link: &ClientLink, nick: &str| {
        link.sender().send(
            Element::new("presence", NS_CLIENT)
                .attr("to", format!("{room}/{nick}"))
                .child(Element::new("x", NS_MUC)),
        )
    };
    let (a_nick, b_nick) = (format!("{room}/a"), format!("{room}/b"));
    assert!(join(a, "a"));
    wait_for(a, "a's own room presence", |e| {
        is_muc_presence_of(e, &a_nick, Some("110"))
    })
    .await;
    assert!(join(b, "b"));
    wait_for(b, "b's own room presence", |e| {
        is_muc_presence_of(e, &b_nick, Some("110"))
    })
    .await;
    wait_for(a, "b arriving in the room", |e| {
        is_muc_presence_of(e, &b_nick, None) && e.type_().is_none()
    })
    .await;
}

#[tokio::test]
async fn connect_over_starttls_with_scram_to_lilt() {
    let lilt = start_lilt().await;
    // One link verifies the certificate against the test CA, the other
    // does not verify (insecure_tls).
    let mut a = connect(&options(
        lilt.addr,
        "focus@localhost/focus",
        "focus-secret",
        Some(&lilt.ca),
    ))
    .await
    .unwrap();
    let mut b = connect(&options(lilt.addr, "jvb@localhost", "jvb-secret", None))
        .await
        .unwrap();
    assert_eq!(a.jid.to_string(), "focus@localhost/focus");
    assert_eq!(b.jid.to_bare().to_string(), "jvb@localhost");
    assert!(b.jid.resource().is_some());
    for link in [&a, &b] {
        let session = lilt.running.server.sessions.get_full(&link.jid).unwrap();
        let st = session.state();
        assert!(st.secure, "{} is not on TLS", link.jid);
        assert_eq!(st.auth_mechanism.as_deref(), Some("SCRAM-SHA-1"));
    }
    exercise(&mut a, &mut b, "localhost", "room1@conference.localhost").await;

    // Dropping a connected link closes its stream: the server unbinds it
    // and the room sees it leave.
    let b_jid = b.jid.clone();
    drop(b);
    wait_for(&mut a, "b leaving the room", |e| {
        is_muc_presence_of(e, "room1@conference.localhost/b", None)
            && e.type_() == Some("unavailable")
    })
    .await;
    assert!(lilt.running.server.sessions.get_full(&b_jid).is_none());

    // The server going away ends the links.
    lilt.running.shutdown().await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while a.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the link did not end with the server");
    assert!(!a.sender().send(Element::new("presence", NS_CLIENT)));
}

#[tokio::test]
async fn certificates_are_verified_and_passwords_checked() {
    let lilt = start_lilt().await;
    // Without the test CA, the certificate is not trusted.
    match connect(&options(lilt.addr, "focus@localhost", "focus-secret", None).with_verification())
        .await
    {
        Err(ClientError::Tls { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // A wrong password.
    match connect(&options(
        lilt.addr,
        "focus@localhost",
        "wrong",
        Some(&lilt.ca),
    ))
    .await
    {
        Err(ClientError::Auth { jid, condition }) => {
            assert_eq!(jid, "focus@localhost");
            assert!(condition.contains("not-authorized"), "{condition}");
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
    lilt.running.shutdown().await;
}

trait Verified {
    fn with_verification(self) -> Self;
}

impl Verified for ConnectOptions {
    fn with_verification(mut self) -> Self {
        self.insecure_tls = false;
        self
    }
}

#[tokio::test]
async fn local_links_are_clients_like_any_other() {
    let lilt = start_lilt().await;
    let server = lilt.running.server.clone();
    // A local link (no password, no socket) and a connected one.
    let mut a = local(&server, &Jid::parse("focus@localhost/focus").unwrap()).unwrap();
    assert_eq!(a.jid.to_string(), "focus@localhost/focus");
    let mut b = connect(&options(
        lilt.addr,
        "jvb@localhost/jvb",
        "jvb-secret",
        Some(&lilt.ca),
    ))
    .await
    .unwrap();
    assert!(server.sessions.get_full(&a.jid).is_some());
    exercise(&mut a, &mut b, "localhost", "room2@conference.localhost").await;
    // And the other way round (MUC broadcasts reach the local link too).
    let body = "to the local link";
    b.sender().send(
        Element::new("message", NS_CLIENT)
            .attr("to", "room2@conference.localhost")
            .attr("type", "groupchat")
            .text_tag("body", body),
    );
    let groupchat = wait_for(&mut a, "the groupchat message", |e| {
        e.name() == "message" && e.type_() == Some("groupchat")
    })
    .await;
    assert_eq!(
        groupchat.from(),
        Some("room2@conference.localhost/b"),
        "{groupchat}"
    );
    assert_eq!(
        groupchat.get_child_text("body", NS_CLIENT).as_deref(),
        Some(body)
    );

    // Dropping the local link unbinds it, and the room sees it leave.
    let a_jid = a.jid.clone();
    drop(a);
    wait_for(&mut b, "a leaving the room", |e| {
        is_muc_presence_of(e, "room2@conference.localhost/a", None)
            && e.type_() == Some("unavailable")
    })
    .await;
    assert!(server.sessions.get_full(&a_jid).is_none());

    // A newer session on the same full JID replaces a local link (as
    // Prosody's kick_old): the old link ends.
    let jid = Jid::parse("focus@localhost/twice").unwrap();
    let mut first = local(&server, &jid).unwrap();
    let second = local(&server, &jid).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while first.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the replaced link did not end");
    assert!(!first.sender().send(Element::new("presence", NS_CLIENT)));
    let bound = server.sessions.get_full(&jid).unwrap();
    assert_eq!(bound.full_jid(), Some(second.jid.clone()));
    assert!(second.sender().send(Element::new("presence", NS_CLIENT)));

    // Hosts that are not local VirtualHosts are refused.
    assert!(matches!(
        local(&server, &Jid::parse("x@conference.localhost").unwrap()),
        Err(ClientError::UnknownHost(_))
    ));
    assert!(matches!(
        local(&server, &Jid::parse("x@elsewhere.example").unwrap()),
        Err(ClientError::UnknownHost(_))
    ));
    lilt.running.shutdown().await;
}

/// `../shared`, next to the repository (or the worktree).
fn shared_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [root.join("../shared"), PathBuf::from("/work/shared")];
    candidates
        .into_iter()
        .find(|p| p.join("tools/reference-prosody").is_file())
}

/// Debian's Prosody, stopped when dropped.
struct Prosody {
    tool: PathBuf,
    pid: String,
    dir: tempfile::TempDir,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.tool)
            .args(["stop", &self.pid])
            .status();
    }
}

impl Prosody {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prosody.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn connect_to_prosody_0_12() {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared (with tools/reference-prosody) not found");
        return;
    };
    let tool = shared.join("tools/reference-prosody");
    let dir = tempfile::Builder::new()
        .prefix("client-link-prosody")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(path.join("data")).unwrap();
    let ca = make_certificates(&path.join("certs"));
    let port = free_port();
    let p = path.display();
    let config = format!(
        r#"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
data_path = "{p}/data"
pidfile = "{p}/prosody.pid"
certificates = "{p}/certs"
daemonize = false
authentication = "internal_hashed"
muc_room_locking = false
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping" }}
modules_disabled = {{ "s2s" }}
log = {{
    {{ levels = {{ min = "debug" }}, to = "file", filename = "{p}/debug.log" }};
    {{ levels = {{ min = "info" }}, to = "console" }};
}}
VirtualHost "localhost"
Component "conference.localhost" "muc"
"#
    );
    std::fs::write(path.join("prosody.cfg.lua"), config).unwrap();
    for (user, password) in [("focus", "focus-secret"), ("jvb", "jvb-secret")] {
        let out = std::process::Command::new("bash")
            .arg(&tool)
            .args([
                "ctl",
                path.to_str().unwrap(),
                "register",
                user,
                "localhost",
                password,
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipping: prosodyctl register failed (is Prosody installable here?): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
    }
    let out = std::process::Command::new("bash")
        .arg(&tool)
        .args(["start", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let prosody = Prosody {
        tool: tool.clone(),
        pid: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        dir,
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "Prosody did not start:\n{}", prosody.log());

    let mut a = connect(&options(
        addr,
        "focus@localhost/focus",
        "focus-secret",
        Some(&ca),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", prosody.log()));
    let mut b = connect(&options(addr, "jvb@localhost", "jvb-secret", None))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prosody.log()));
    assert_eq!(a.jid.to_string(), "focus@localhost/focus");
    exercise(&mut a, &mut b, "localhost", "room3@conference.localhost").await;
    match connect(&options(addr, "focus@localhost", "wrong", None)).await {
        Err(ClientError::Auth { condition, .. }) => {
            assert!(condition.contains("not-authorized"), "{condition}")
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
    // Prosody's own log: TLS, then SCRAM-SHA-1 (it offered PLAIN too).
    let debug = std::fs::read_to_string(prosody.dir.path().join("debug.log")).unwrap_or_default();
    assert!(
        debug.contains("Stream encrypted"),
        "no TLS in Prosody's log"
    );
    let auths: Vec<&str> = debug.lines().filter(|l| l.contains("]: <auth ")).collect();
    assert_eq!(auths.len(), 3, "{auths:?}");
    assert!(
        auths.iter().all(|l| l.contains("mechanism='SCRAM-SHA-1'")),
        "not SCRAM-SHA-1 in Prosody's log: {auths:?}"
    );
    drop(a);
    drop(b);
}
