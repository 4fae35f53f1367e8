//! Components against lilt started in-process on port 0: an external
//! XEP-0114 component over a real TCP connection (handshake, routing both
//! ways, the bounce once it is gone) and the in-process API on the same
//! kind of host. (slixmpp's ComponentXMPP is in tests/python/test_component.py.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xmpp_core::component::{AttachError, Component, ComponentSender, SendError, attach};
use xmpp_core::stanza::NS_CLIENT;
use xmpp_core::{Clock, Element};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
component_ports = { 0 }
component_interfaces = { "127.0.0.1" }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "ping"; "roster"; "disco" }
VirtualHost "localhost"
Component "comp.localhost"
    component_secret = "s3cret"
Component "inproc.localhost"
    component_secret = "other"
"#;

/// A raw stream: what was written, read until a needle arrives.
struct Raw {
    tcp: TcpStream,
    buf: String,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: String::new(),
        }
    }
    async fn send(&mut self, s: &str) {
        self.tcp.write_all(s.as_bytes()).await.unwrap();
    }
    /// Reads until `needle`, then to the end of the tag it is in.
    async fn tag_with(&mut self, needle: &str) -> String {
        let head = self.until(needle).await;
        format!("{head}{}", self.until(">").await)
    }
    async fn until(&mut self, needle: &str) -> String {
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.buf.contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {:?}", self.buf))
                .unwrap();
            assert!(n > 0, "closed waiting for {needle:?}; got {:?}", self.buf);
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        let end = self.buf.find(needle).unwrap() + needle.len();
        let rest = self.buf.split_off(end);
        std::mem::replace(&mut self.buf, rest)
    }
}

async fn start() -> lilt::startup::RunningServer {
    let config = lua_compat::config::load_str(CONFIG, Path::new("component.cfg.lua")).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    provider.create_user("alice", Some("secret")).unwrap();
    lilt::startup::start(server).await.unwrap()
}

fn addr_of(running: &lilt::startup::RunningServer, kind: &str) -> SocketAddr {
    running
        .listening
        .iter()
        .find(|l| l.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} listener in {:?}", running.listening))
        .addr
}

async fn login(addr: SocketAddr) -> Raw {
    let open = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
    let mut c = Raw::connect(addr).await;
    c.send(open).await;
    c.until("</stream:features>").await;
    let creds = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0secret");
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    c.until("</success>").await;
    c.send(open).await;
    c.until("</stream:features>").await;
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>").await;
    c.until("</iq>").await;
    c
}

/// Opens a component stream to `to` and sends the handshake for `secret`.
async fn component(addr: SocketAddr, to: &str, secret: &str) -> (Raw, String) {
    let mut c = Raw::connect(addr).await;
    c.send(&format!("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>")).await;
    let header = c.until(">").await;
    let header = format!("{header}{}", c.until(">").await);
    let id = header
        .split("id='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap_or_default()
        .to_string();
    let digest = xmpp_core::component::stream::handshake_digest(&id, secret);
    c.send(&format!("<handshake>{digest}</handshake>")).await;
    (c, header)
}

#[tokio::test]
async fn external_component_routes_both_ways_and_bounces_when_gone() {
    let running = start().await;
    let caddr = addr_of(&running, "component");
    let mut alice = login(addr_of(&running, "c2s")).await;

    let (mut bad, _) = component(caddr, "comp.localhost", "wrong").await;
    let err = bad.until("</stream:stream>").await;
    assert!(err.contains("<not-authorized"), "{err}");

    let (mut comp, header) = component(caddr, "comp.localhost", "s3cret").await;
    assert!(header.contains("from='comp.localhost'"), "{header}");
    comp.until("<handshake").await;

    // Client to component, at the domain and at a JID on it.
    alice
        .send("<message to='bot@comp.localhost/x' id='m1'><body>hi</body></message>")
        .await;
    let got = comp.until("</message>").await;
    assert!(got.contains("from='alice@localhost/r'"), "{got}");
    assert!(!got.contains("xmlns='jabber:client'"), "{got}");
    alice
        .send("<iq type='get' id='i1' to='comp.localhost'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    comp.until("id='i1'").await;

    // Component to client.
    comp.send("<iq type='result' id='i1' to='alice@localhost/r' from='comp.localhost'/>")
        .await;
    let reply = alice.tag_with("id='i1'").await;
    assert!(reply.contains("from='comp.localhost'"), "{reply}");
    comp.send(
        "<message to='alice@localhost/r' from='bot@comp.localhost'><body>back</body></message>",
    )
    .await;
    let m = alice.until("</message>").await;
    assert!(
        m.contains("from='bot@comp.localhost'") && m.contains("back"),
        "{m}"
    );

    // A second connection is refused; the first keeps working.
    let (mut second, _) = component(caddr, "comp.localhost", "s3cret").await;
    let err = second.until("</stream:stream>").await;
    assert!(err.contains("<conflict"), "{err}");

    // Gone: remote-server-timeout.
    comp.send("</stream:stream>").await;
    comp.until("</stream:stream>").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice
        .send("<message to='comp.localhost' id='m2'><body>anyone?</body></message>")
        .await;
    let bounce = alice.until("</message>").await;
    assert!(
        bounce.contains("type='error'") && bounce.contains("remote-server-timeout"),
        "{bounce}"
    );
    assert!(
        bounce.contains("xmpp:prosody.im/protocol/component"),
        "{bounce}"
    );
    running.shutdown().await;
}

/// Answers IQs with a result and remembers messages.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<Element>>,
}

impl Component for Recorder {
    fn handle(&self, stanza: Element, sender: &ComponentSender) {
        match stanza.name() {
            "iq" if stanza.type_() == Some("get") => {
                sender.send(stanza.reply()).unwrap();
            }
            "message" => self.messages.lock().unwrap().push(stanza),
            _ => {}
        }
    }
}

#[tokio::test]
async fn in_process_component_is_routed_like_an_external_one() {
    let running = start().await;
    let server = running.server.clone();
    let mut alice = login(addr_of(&running, "c2s")).await;

    assert!(matches!(
        attach(&server, "localhost", Arc::new(Recorder::default())),
        Err(AttachError::NotAComponentHost { .. })
    ));
    assert!(matches!(
        attach(&server, "nowhere.localhost", Arc::new(Recorder::default())),
        Err(AttachError::UnknownHost { .. })
    ));
    let recorder = Arc::new(Recorder::default());
    let attached = attach(&server, "inproc.localhost", recorder.clone()).unwrap();
    assert!(matches!(
        attach(&server, "inproc.localhost", Arc::new(Recorder::default())),
        Err(AttachError::Conflict { .. })
    ));
    // An external component cannot take the host either.
    let (mut ext, _) = component(addr_of(&running, "component"), "inproc.localhost", "other").await;
    assert!(ext.until("</stream:stream>").await.contains("<conflict"));

    alice
        .send("<iq type='get' id='p' to='inproc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let reply = alice.tag_with("id='p'").await;
    assert!(
        reply.contains("type='result'") && reply.contains("from='inproc.localhost'"),
        "{reply}"
    );
    alice
        .send("<message to='x@inproc.localhost/y' id='m'><body>hello</body></message>")
        .await;
    let sender = attached.sender().clone();
    for _ in 0..50 {
        if !recorder.messages.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = recorder.messages.lock().unwrap()[0].clone();
    assert_eq!(m.from(), Some("alice@localhost/r"));
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some("hello")
    );

    // Sending: the same rules as an external component.
    let note = Element::new("message", NS_CLIENT)
        .attr("to", "alice@localhost/r")
        .text_tag("body", "from rust");
    sender.send(note.clone()).unwrap();
    let got = alice.until("</message>").await;
    assert!(
        got.contains("from='inproc.localhost'") && got.contains("from rust"),
        "{got}"
    );
    assert!(matches!(
        sender.send(note.clone().attr("from", "x@localhost")),
        Err(SendError::InvalidFrom { .. })
    ));
    assert!(matches!(
        sender.send(Element::new("message", NS_CLIENT)),
        Err(SendError::NoTo { .. })
    ));

    attached.detach();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(sender.send(note), Err(SendError::Detached { .. })));
    alice
        .send("<iq type='get' id='p2' to='inproc.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.until("id='p2'").await;
    let bounce = alice.until("</iq>").await;
    assert!(bounce.contains("remote-server-timeout"), "{bounce}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_same_component_connects_from_another_process() {
    let running = start().await;
    let caddr = addr_of(&running, "component");
    let mut alice = login(addr_of(&running, "c2s")).await;

    let refused = xmpp_core::component::connect(
        caddr,
        "comp.localhost",
        "wrong",
        Arc::new(Recorder::default()),
    )
    .await;
    match refused {
        Err(xmpp_core::component::ConnectError::Refused { condition, .. }) => {
            assert_eq!(condition, "not-authorized")
        }
        other => panic!("expected not-authorized, got {:?}", other.map(|_| ())),
    }

    let recorder = Arc::new(Recorder::default());
    let connected =
        xmpp_core::component::connect(caddr, "comp.localhost", "s3cret", recorder.clone())
            .await
            .unwrap();
    alice
        .send("<iq type='get' id='r1' to='comp.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let reply = alice.tag_with("id='r1'").await;
    assert!(
        reply.contains("type='result'") && reply.contains("from='comp.localhost'"),
        "{reply}"
    );
    connected
        .sender()
        .send(
            Element::new("message", NS_CLIENT)
                .attr("to", "alice@localhost/r")
                .attr("from", "bot@comp.localhost")
                .text_tag("body", "over the wire"),
        )
        .unwrap();
    let m = alice.until("</message>").await;
    assert!(
        m.contains("over the wire") && m.contains("from='bot@comp.localhost'"),
        "{m}"
    );
    alice
        .send("<message to='bot@comp.localhost' id='w'><body>in</body></message>")
        .await;
    for _ in 0..50 {
        if !recorder.messages.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        recorder.messages.lock().unwrap()[0]
            .get_child_text("body", NS_CLIENT)
            .as_deref(),
        Some("in")
    );
    connected.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice
        .send("<message to='comp.localhost' id='after'><body>x</body></message>")
        .await;
    alice.until("id='after'").await;
    assert!(
        alice
            .until("</message>")
            .await
            .contains("remote-server-timeout")
    );
    running.shutdown().await;
}
