//! The standalone focus against Debian's Prosody 0.12 (through
//! `../shared/tools/reference-prosody`; skipped with a message where it is
//! absent or cannot be installed): the focus, a stub Colibri2 bridge and a
//! participant log in over c2s; the participant's conference IQ (to the
//! focus's JID: Debian's Prosody has no client_proxy) is answered, the
//! session-initiate comes through Prosody's MUC from the focus's occupant
//! JID, and the participant's session-accept reaches the bridge.

use std::path::PathBuf;
use std::time::Duration;

use focus_component::{FocusOptions, run_with_link};
use testkit::Peer;
use xmpp_core::Jid;
use xmpp_core::client::{ClientLink, ConnectOptions, connect};

fn shared_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    [root.join("../shared"), PathBuf::from("/work/shared")]
        .into_iter()
        .find(|p| p.join("tools/reference-prosody").is_file())
}

struct Prosody {
    tool: PathBuf,
    pid: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(&self.tool)
            .args(["stop", &self.pid])
            .status();
    }
}

fn certificates(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("localhost.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("localhost.key"), key.serialize_pem()).unwrap();
}

fn start_prosody() -> Option<(Prosody, u16)> {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared (with tools/reference-prosody) not found");
        return None;
    };
    let tool = shared.join("tools/reference-prosody");
    let dir = tempfile::Builder::new()
        .prefix("focus-prosody")
        .tempdir_in("/tmp")
        .unwrap();
    let path = dir.path();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(path.join("data")).unwrap();
    certificates(&path.join("certs"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence" }}
modules_disabled = {{ "s2s" }}
log = {{ {{ levels = {{ min = "info" }}, to = "console" }}; }}
VirtualHost "localhost"
Component "conference.localhost" "muc"
"#
    );
    std::fs::write(path.join("prosody.cfg.lua"), config).unwrap();
    for user in ["focus", "jvb", "alice"] {
        let out = std::process::Command::new("bash")
            .arg(&tool)
            .args([
                "ctl",
                path.to_str().unwrap(),
                "register",
                user,
                "localhost",
                "pw",
            ])
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "skipping: prosodyctl register failed (is Prosody installable here?): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    }
    let out = std::process::Command::new("bash")
        .arg(&tool)
        .args(["start", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let prosody = Prosody {
        tool,
        pid: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _dir: dir,
    };
    Some((prosody, port))
}

async fn login(port: u16, user: &str, resource: &str) -> ClientLink {
    let options = ConnectOptions {
        address: format!("127.0.0.1:{port}"),
        jid: Jid::parse(&format!("{user}@localhost/{resource}")).unwrap(),
        password: "pw".into(),
        insecure_tls: true,
        ca_file: None,
    };
    for _ in 0..50 {
        match connect(&options).await {
            Ok(link) => return link,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!("cannot log in as {user} on Prosody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_through_prosody() {
    let Some((_prosody, port)) = start_prosody() else {
        return;
    };
    let brewery = "jvbbrewery@conference.localhost";
    let room = "room1@conference.localhost";

    let mut bridge = Peer::new(login(port, "jvb", "jvb").await);
    bridge.send("<presence/>");
    bridge.send(&format!(
        "<presence to='{brewery}/jvb1'><x xmlns='http://jabber.org/protocol/muc'/>\
         <stats xmlns='http://jitsi.org/protocol/colibri'><stat name='stress_level' value='0.1'/></stats></presence>"
    ));
    bridge
        .expect("own brewery presence", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{brewery}/jvb1"))
        })
        .await;

    let focus_link = login(port, "focus", "focus").await;
    let focus_jid = focus_link.jid.to_string();
    let mut options = FocusOptions::new(&focus_jid, "localhost");
    options.muc = "conference.localhost".into();
    options.brewery = brewery.into();
    options.client_proxy = None;
    let focus = tokio::spawn(run_with_link(focus_link, options));
    bridge
        .expect("the focus in the brewery", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{brewery}/focus"))
        })
        .await;

    let mut alice = Peer::new(login(port, "alice", "web").await);
    alice.send("<presence/>");
    alice.send(&format!(
        "<iq type='set' id='c1' to='{focus_jid}'><conference xmlns='http://jitsi.org/protocol/focus' room='{room}' machine-uid='m'/></iq>"
    ));
    let answer = alice
        .expect("conference IQ answer", |s| s.id() == Some("c1"))
        .await;
    assert_eq!(answer.type_(), Some("result"), "{answer}");
    alice.send(&format!(
        "<presence to='{room}/alice1'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let disco = alice
        .expect("disco#info from the focus", |s| {
            s.type_() == Some("get")
                && s.get_child("query", "http://jabber.org/protocol/disco#info")
                    .is_some()
        })
        .await;
    alice.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'>\
         <feature var='http://jitsi.org/json-encoded-sources'/></query></iq>",
        disco.id().unwrap(),
        disco.from().unwrap()
    ));

    let alloc = bridge
        .expect("allocation", |s| {
            s.get_child("conference-modify", "jitsi:colibri2").is_some()
        })
        .await;
    bridge.send(&format!(
        "<iq type='result' id='{}' to='{}'><conference-modified xmlns='jitsi:colibri2'><endpoint id='alice1'><transport>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bu' pwd='bp'><rtcp-mux/>\
         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AA:BB</fingerprint></transport>\
         </transport></endpoint></conference-modified></iq>",
        alloc.id().unwrap(),
        alloc.from().unwrap()
    ));
    let offer = alice
        .expect("session-initiate", |s| {
            s.get_child("jingle", "urn:xmpp:jingle:1")
                .and_then(|j| j.get_attr("action"))
                == Some("session-initiate")
        })
        .await;
    assert_eq!(offer.from(), Some(format!("{room}/focus").as_str()));
    let sid = offer
        .get_child("jingle", "urn:xmpp:jingle:1")
        .unwrap()
        .get_attr("sid")
        .unwrap()
        .to_string();
    alice.send(&format!(
        "<iq type='result' id='{}' to='{}'/>",
        offer.id().unwrap(),
        offer.from().unwrap()
    ));
    alice.send(&format!(
        "<iq type='set' id='acc' to='{room}/focus'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{sid}'>\
         <content name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='11'/></description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='au' pwd='ap'/></content></jingle></iq>"
    ));
    let acc = alice
        .expect("session-accept answered", |s| s.id() == Some("acc"))
        .await;
    assert_eq!(acc.type_(), Some("result"), "{acc}");
    let update = bridge
        .expect("the participant's transport at the bridge", |s| {
            s.to_string().contains("ufrag='au'")
        })
        .await;
    assert!(update.to_string().contains("ssrc='11'"));
    focus.abort();
}
