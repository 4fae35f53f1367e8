//! Tests of the sans-IO component stream and of routing to a component.

use super::*;
use crate::config::{HostConfig, HostKind, ServerConfig};
use crate::jid::Jid;
use crate::server::Clock;
use crate::session::{Outbound, SessionKind};
use crate::stanza::Element;
use crate::value::Value;
use tokio::sync::mpsc;

const HEADER: &str = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='comp.localhost'>";

fn host_config(name: &str, kind: HostKind, options: &[(&str, Value)]) -> HostConfig {
    let mut h = HostConfig {
        name: name.into(),
        kind,
        section: Default::default(),
        defined_at: Default::default(),
    };
    for (k, v) in options {
        h.section.set(*k, v.clone());
    }
    h
}

/// localhost, comp.localhost (secret "s3cret"), nosecret.localhost and the
/// module host conference.localhost; `extra` options go on comp.localhost.
fn server_with(extra: &[(&str, Value)]) -> Arc<Server> {
    let mut cfg = ServerConfig::default();
    cfg.hosts
        .push(host_config("localhost", HostKind::VirtualHost, &[]));
    let mut comp = vec![("component_secret", Value::str("s3cret"))];
    comp.extend(extra.iter().cloned());
    cfg.hosts.push(host_config(
        "comp.localhost",
        HostKind::Component { module: None },
        &comp,
    ));
    cfg.hosts.push(host_config(
        "nosecret.localhost",
        HostKind::Component { module: None },
        &[],
    ));
    cfg.hosts.push(host_config(
        "conference.localhost",
        HostKind::Component {
            module: Some("muc".into()),
        },
        &[],
    ));
    let server = Server::new(cfg, Clock::Fixed(0.0));
    // Delivery to bound resources (what the message and iq modules do).
    if let Some(local) = server.host("localhost") {
        for name in ["message/full", "iq/full"] {
            local.events.hook(name, 0, |e| {
                let to = e.stanza().to().and_then(|t| Jid::parse(t).ok());
                match (to, e.stanza.take()) {
                    (Some(to), Some(s)) => e.server.deliver_to_full(&to, s),
                    _ => false,
                }
            });
        }
    }
    for h in server.hosts() {
        if matches!(h.kind, HostKind::Component { module: None }) {
            load(&h);
        }
    }
    server
}

fn server() -> Arc<Server> {
    server_with(&[])
}

struct Peer {
    stream: ComponentStream,
    rx: mpsc::UnboundedReceiver<Outbound>,
}

impl Peer {
    fn new(server: &Arc<Server>) -> Peer {
        Peer::with_limits(server, StreamLimits::default())
    }
    fn with_limits(server: &Arc<Server>, limits: StreamLimits) -> Peer {
        let (tx, rx) = mpsc::unbounded_channel();
        Peer {
            stream: ComponentStream::new(server.clone(), tx, None, limits),
            rx,
        }
    }
    fn feed(&mut self, s: &str) -> (String, bool) {
        let actions = self.stream.handle_bytes(s.as_bytes());
        written(actions)
    }
    /// Opens to `comp.localhost` and authenticates with `secret`.
    fn connect(&mut self, secret: &str) -> (String, bool) {
        let (out, closed) = self.feed(HEADER);
        assert!(!closed, "{out}");
        let digest = stream::handshake_digest(self.stream.stream_id(), secret);
        self.feed(&format!("<handshake>{digest}</handshake>"))
    }
    /// What the session was sent, as written on the wire.
    fn sent(&mut self) -> String {
        let mut out = String::new();
        while let Ok(item) = self.rx.try_recv() {
            out.push_str(&written(self.stream.outbound(item)).0);
        }
        out
    }
}

fn written(actions: Vec<Action>) -> (String, bool) {
    let mut out = String::new();
    let mut closed = false;
    for a in actions {
        match a {
            Action::Write(s) => out.push_str(&s),
            Action::Close => closed = true,
        }
    }
    (out, closed)
}

/// A bound client session alice@localhost/r and its queue.
fn client(server: &Arc<Server>) -> (Arc<Session>, mpsc::UnboundedReceiver<Outbound>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let s = Arc::new(Session::new(SessionKind::C2s, "localhost", None, tx));
    let jid = Jid::parse("alice@localhost/r").unwrap();
    {
        let mut st = s.state();
        st.username = Some("alice".into());
        st.resource = Some("r".into());
        st.full_jid = Some(jid.clone());
    }
    server.sessions.bind(&jid, &s);
    (s, rx)
}

fn next_stanza(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Element {
    match rx.try_recv() {
        Ok(Outbound::Stanza(e)) => e,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

#[test]
fn handshake_accepted_in_any_case() {
    let server = server();
    let mut p = Peer::new(&server);
    let (header, closed) = p.feed(HEADER);
    assert!(!closed);
    assert!(header.starts_with("<?xml version='1.0'?><stream:stream from='comp.localhost'"));
    assert!(header.contains(&format!("id='{}'", p.stream.stream_id())));
    assert!(header.contains("xmlns='jabber:component:accept'"));
    assert!(!header.contains("version='1.0' "), "{header}");
    assert_eq!(p.stream.stream_id().len(), 36);
    let digest = stream::handshake_digest(p.stream.stream_id(), "s3cret").to_uppercase();
    let (out, closed) = p.feed(&format!("<handshake>{digest}</handshake>"));
    assert_eq!(out, "<handshake xmlns='jabber:component:accept'/>");
    assert!(!closed && p.stream.is_connected());
    let host = server.host("comp.localhost").unwrap();
    assert!(connected_session(&host).is_some());
    // Whitespace keepalives are ignored.
    assert_eq!(p.feed("  \n"), (String::new(), false));
}

#[test]
fn digest_is_sha1_hex_of_id_and_secret() {
    assert_eq!(
        stream::handshake_digest("abc", "secret"),
        "de0a408ef519cd62e7379039634152874895c50c"
    );
    assert_eq!(
        stream::handshake_digest("", ""),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
}

#[test]
fn bad_handshakes_are_not_authorized() {
    let server = server();
    let mut p = Peer::new(&server);
    let (out, closed) = p.connect("wrong");
    assert!(closed);
    assert_eq!(
        out,
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Given token does not match calculated token</text></stream:error></stream:stream>"
    );
    let host = server.host("comp.localhost").unwrap();
    assert!(connected_session(&host).is_none());

    let mut p = Peer::new(&server);
    p.feed(HEADER);
    let (out, closed) = p.feed("<handshake><x/></handshake>");
    assert!(closed && out.contains("<not-authorized"), "{out}");

    // No component_secret: refused whatever is sent.
    let mut p = Peer::new(&server);
    let (_, closed) = p.feed(&HEADER.replace("comp.localhost", "nosecret.localhost"));
    assert!(!closed);
    let digest = stream::handshake_digest(p.stream.stream_id(), "");
    let (out, closed) = p.feed(&format!("<handshake>{digest}</handshake>"));
    assert!(closed && out.contains("<not-authorized"), "{out}");
}

#[test]
fn headers_for_other_hosts_or_without_to_are_refused() {
    let server = server();
    for (to, condition, text) in [
        (
            "localhost",
            "host-unknown",
            "localhost does not match any configured external components",
        ),
        (
            "conference.localhost",
            "host-unknown",
            "conference.localhost does not match any configured external components",
        ),
        (
            "nowhere.example",
            "host-unknown",
            "nowhere.example does not match any configured external components",
        ),
    ] {
        let mut p = Peer::new(&server);
        let (out, closed) = p.feed(&HEADER.replace("comp.localhost", to));
        assert!(closed);
        assert!(
            out.starts_with("<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='' version='1.0' xmlns='jabber:component:accept'"),
            "{out}"
        );
        assert!(out.contains(&format!("<{condition} ")), "{out}");
        assert!(out.contains(text), "{out}");
        assert!(out.ends_with("</stream:stream>"));
    }
    let mut p = Peer::new(&server);
    let (out, closed) = p.feed(&HEADER.replace(" to='comp.localhost'", ""));
    assert!(closed && out.contains("<improper-addressing "), "{out}");
}

#[test]
fn second_connection_is_refused_by_default() {
    let server = server();
    let mut first = Peer::new(&server);
    assert!(!first.connect("s3cret").1);
    let mut second = Peer::new(&server);
    let (out, closed) = second.connect("s3cret");
    assert!(closed);
    assert!(out.contains("<conflict "), "{out}");
    assert!(out.contains("Component already connected"), "{out}");
    // The first one still serves the host.
    let host = server.host("comp.localhost").unwrap();
    assert!(Arc::ptr_eq(
        &connected_session(&host).unwrap(),
        first.stream.session().unwrap()
    ));
    assert!(first.rx.try_recv().is_err());
}

#[test]
fn kick_old_replaces_the_first_connection() {
    let server = server_with(&[("component_conflict_resolve", Value::str("kick_old"))]);
    let mut first = Peer::new(&server);
    assert!(!first.connect("s3cret").1);
    let mut second = Peer::new(&server);
    let (out, closed) = second.connect("s3cret");
    assert!(!closed, "{out}");
    let kicked = first.sent();
    assert!(kicked.contains("<conflict "), "{kicked}");
    assert!(kicked.contains("Replaced by a new connection"), "{kicked}");
    // The old stream ending does not disconnect the new one.
    first.stream.end_session("kicked");
    let host = server.host("comp.localhost").unwrap();
    assert!(Arc::ptr_eq(
        &connected_session(&host).unwrap(),
        second.stream.session().unwrap()
    ));
}

#[test]
fn oversized_stanzas_and_bad_xml_are_not_well_formed() {
    let server = server();
    let mut p = Peer::with_limits(
        &server,
        StreamLimits {
            max_stanza_size: 1024,
            ..StreamLimits::default()
        },
    );
    let (out, closed) = p.connect("s3cret");
    assert!(!closed, "{out}");
    let body = "x".repeat(2000);
    let (out, closed) = p.feed(&format!(
        "<message to='alice@localhost' from='comp.localhost'><body>{body}</body></message>"
    ));
    assert!(closed && out.contains("<not-well-formed "), "{out}");
    p.stream.end_session("closed");

    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    let (out, closed) = p.feed("<message><body></message>");
    assert!(closed && out.contains("<not-well-formed"), "{out}");

    let mut p = Peer::new(&server);
    let (out, closed) = p.feed("<foo xmlns='bar'>");
    assert!(closed && out.contains("<invalid-namespace"), "{out}");
}

#[test]
fn from_must_be_in_the_component_domain() {
    let server = server();
    let (_alice, mut alice_rx) = client(&server);
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    // No from: the domain. From a JID at the domain: kept.
    p.feed("<message to='alice@localhost/r' id='1'><body>hi</body></message>");
    let m = next_stanza(&mut alice_rx);
    assert_eq!(m.from(), Some("comp.localhost"));
    assert_eq!(m.ns(), crate::stanza::NS_CLIENT);
    assert_eq!(
        m.get_child_text("body", crate::stanza::NS_CLIENT)
            .as_deref(),
        Some("hi")
    );
    p.feed("<message to='alice@localhost/r' from='bot@comp.localhost/x'/>");
    assert_eq!(
        next_stanza(&mut alice_rx).from(),
        Some("bot@comp.localhost/x")
    );
    // No to: bad-request.
    let (out, closed) = p.feed("<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(!closed);
    assert!(out.contains("<bad-request"), "{out}");
    assert!(out.contains("Components MUST specify a &apos;to&apos; address on stanzas"));
    // A subdomain is another domain.
    let (out, closed) = p.feed("<message to='alice@localhost' from='x@sub.comp.localhost'/>");
    assert!(closed);
    assert!(out.contains("<invalid-from "), "{out}");
    assert!(out.contains(
        "Component tried to send from address &lt;x@sub.comp.localhost&gt; which is not in domain &lt;comp.localhost&gt;"
    ), "{out}");
}

#[test]
fn from_is_not_checked_when_validation_is_off() {
    let server = server_with(&[("validate_from_addresses", Value::Bool(false))]);
    let (_alice, mut alice_rx) = client(&server);
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    let (out, closed) = p.feed("<message to='alice@localhost/r' from='x@elsewhere.example'/>");
    assert!(!closed, "{out}");
    assert_eq!(
        next_stanza(&mut alice_rx).from(),
        Some("x@elsewhere.example")
    );
}

#[test]
fn stanzas_before_the_handshake_get_service_unavailable() {
    let server = server();
    let mut p = Peer::new(&server);
    p.feed(HEADER);
    let (out, closed) =
        p.feed("<iq type='get' id='1' to='localhost' from='comp.localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert!(!closed);
    assert!(out.contains("<service-unavailable"), "{out}");
    assert!(out.starts_with("<iq "), "{out}");
    assert!(!out.contains("xmlns='jabber:client'"), "{out}");
}

#[test]
fn a_second_handshake_is_an_unsupported_stanza_type() {
    let server = server();
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    let (out, closed) = p.feed("<handshake>00</handshake>");
    assert!(closed && out.contains("<unsupported-stanza-type"), "{out}");
}

#[test]
fn stanzas_to_the_domain_and_its_jids_reach_the_component() {
    let server = server();
    let (alice, mut alice_rx) = client(&server);
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    for to in [
        "comp.localhost",
        "bot@comp.localhost",
        "bot@comp.localhost/res",
    ] {
        let m = Element::new("message", crate::stanza::NS_CLIENT)
            .attr("to", to)
            .attr("id", "m")
            .child(Element::new("body", crate::stanza::NS_CLIENT).text("hello"));
        server.process_stanza(&alice, m);
        let wire = p.sent();
        assert_eq!(
            wire,
            format!("<message to='{to}' id='m' xml:lang='en' from='alice@localhost/r'><body>hello</body></message>")
                .replace(" xml:lang='en'", ""),
        );
    }
    // The component answers an IQ; the reply reaches alice.
    let iq = Element::new("iq", crate::stanza::NS_CLIENT)
        .attr("to", "comp.localhost")
        .attr("type", "get")
        .attr("id", "v")
        .child(Element::new("query", "jabber:iq:version"));
    server.process_stanza(&alice, iq);
    assert!(p.sent().contains("jabber:iq:version"));
    p.feed("<iq type='result' id='v' to='alice@localhost/r'><query xmlns='jabber:iq:version'><name>c</name></query></iq>");
    let reply = next_stanza(&mut alice_rx);
    assert_eq!(reply.from(), Some("comp.localhost"));
    assert_eq!(reply.type_(), Some("result"));
}

#[test]
fn a_disconnected_component_bounces_remote_server_timeout() {
    let server = server_with(&[("name", Value::str("Test component"))]);
    let (alice, mut alice_rx) = client(&server);
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    p.stream.end_session("test");
    for (to, by) in [
        ("comp.localhost", None),
        ("bot@comp.localhost", Some("comp.localhost")),
    ] {
        let m = Element::new("message", crate::stanza::NS_CLIENT)
            .attr("to", to)
            .attr("id", "m");
        server.process_stanza(&alice, m);
        let e = next_stanza(&mut alice_rx);
        assert_eq!(e.type_(), Some("error"));
        let err = e.get_child("error", crate::stanza::NS_CLIENT).unwrap();
        assert_eq!(err.type_(), Some("wait"));
        assert_eq!(err.get_attr("by"), by);
        assert!(
            err.get_child("remote-server-timeout", crate::stanza::NS_STANZAS)
                .is_some()
        );
        assert!(
            err.get_child("not-connected", NS_COMPONENT_STATUS)
                .is_some()
        );
        assert_eq!(
            err.get_child_text("text", crate::stanza::NS_STANZAS)
                .as_deref(),
            Some("Component unavailable")
        );
    }
    // disco#info to the host is answered with the configured name.
    let iq = Element::new("iq", crate::stanza::NS_CLIENT)
        .attr("to", "comp.localhost")
        .attr("type", "get")
        .attr("id", "d")
        .child(Element::new(
            "query",
            "http://jabber.org/protocol/disco#info",
        ));
    server.process_stanza(&alice, iq);
    let r = next_stanza(&mut alice_rx);
    assert_eq!(r.type_(), Some("result"));
    assert!(
        r.to_xml().contains("name='Test component'"),
        "{}",
        r.to_xml()
    );
    // Errors are not answered.
    let m = Element::new("message", crate::stanza::NS_CLIENT)
        .attr("to", "comp.localhost")
        .attr("type", "error");
    server.process_stanza(&alice, m);
    assert!(alice_rx.try_recv().is_err());
}

#[test]
fn a_closed_peer_stream_is_answered_and_ends_the_session() {
    let server = server();
    let mut p = Peer::new(&server);
    assert!(!p.connect("s3cret").1);
    let (out, closed) = p.feed("</stream:stream>");
    assert!(closed);
    assert_eq!(out, "</stream:stream>");
    p.stream.end_session("closed");
    assert!(connected_session(&server.host("comp.localhost").unwrap()).is_none());
}
