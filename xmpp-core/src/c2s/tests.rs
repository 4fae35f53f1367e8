//! Negotiation driven with bytes, no sockets: header, features, SASL,
//! bind, stanzas, errors, timeouts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::mpsc;

use super::*;
use crate::auth::{AuthProvider, SaslContext, SaslExchange, SaslFailure, SaslStep};
use crate::session::Outbound;
use crate::storage::StorageResult;

/// PLAIN against one fixed account (alice, "secret"), enough to drive the
/// stream; stream management's tests (../smacks/stream.rs) use it too.
pub(super) struct OneAccount;

struct PlainOnce;

impl SaslExchange for PlainOnce {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        match input {
            Some(b"\0alice\0secret") => SaslStep::Success {
                username: "alice".into(),
                additional: None,
            },
            _ => SaslStep::Failure(SaslFailure::new("not-authorized")),
        }
    }
}

impl AuthProvider for OneAccount {
    fn name(&self) -> &str {
        "test"
    }
    fn sasl_mechanisms(&self, _ctx: &SaslContext) -> Vec<String> {
        vec!["PLAIN".into()]
    }
    fn sasl_start(
        &self,
        mechanism: &str,
        _ctx: &SaslContext,
    ) -> Result<Box<dyn SaslExchange>, SaslFailure> {
        if mechanism == "PLAIN" {
            Ok(Box::new(PlainOnce))
        } else {
            Err(SaslFailure::new("invalid-mechanism"))
        }
    }
    fn user_exists(&self, username: &str) -> StorageResult<bool> {
        Ok(username == "alice")
    }
}

fn server(require_encryption: bool) -> Arc<Server> {
    let mut cfg = crate::ServerConfig::default();
    let mut section = crate::config::Section::default();
    section.set(
        "c2s_require_encryption",
        crate::Value::Bool(require_encryption),
    );
    cfg.hosts.push(crate::HostConfig {
        name: "localhost".into(),
        kind: crate::HostKind::VirtualHost,
        section,
        defined_at: Default::default(),
    });
    let server = Server::new(cfg, crate::Clock::Fixed(0.0));
    server
        .host("localhost")
        .unwrap()
        .set_auth_provider(Arc::new(OneAccount));
    server
}

fn settings(tls: bool) -> C2sSettings {
    C2sSettings {
        tls_available: tls,
        direct_tls: false,
        unauthed_timeout: Duration::from_secs(300),
        limits: StreamLimits::default(),
        max_unauthed_stanza_size: None,
    }
}

fn written(actions: &[Action]) -> String {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

fn new_stream(server: &Arc<Server>, tls: bool) -> (C2sStream, mpsc::UnboundedReceiver<Outbound>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        C2sStream::new(server.clone(), tx, None, settings(tls), Instant::now()),
        rx,
    )
}

fn plain_auth() -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0secret");
    format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{b}</auth>")
}

#[test]
fn full_negotiation_without_tls_when_allowed() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    let out = written(&s.handle_bytes(OPEN.as_bytes()));
    assert!(out.contains("<stream:stream"), "{out}");
    assert!(out.contains("<mechanism>PLAIN</mechanism>"), "{out}");
    assert!(!out.contains("starttls"), "{out}");
    let out = written(&s.handle_bytes(plain_auth().as_bytes()));
    assert!(out.contains("<success"), "{out}");
    assert!(s.is_authenticated());
    let out = written(&s.handle_bytes(OPEN.as_bytes()));
    assert!(
        out.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        "{out}"
    );
    let bind = "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>Home</resource></bind></iq>";
    let out = written(&s.handle_bytes(bind.as_bytes()));
    assert!(out.contains("<jid>alice@localhost/Home</jid>"), "{out}");
    let jid = crate::Jid::parse("alice@localhost/Home").unwrap();
    assert!(server.sessions.get_full(&jid).is_some());
    s.end_session();
    assert!(server.sessions.get_full(&jid).is_none());
}

#[test]
fn encryption_required_hides_mechanisms_and_refuses_auth() {
    let server = server(true);
    let (mut s, _rx) = new_stream(&server, true);
    let out = written(&s.handle_bytes(OPEN.as_bytes()));
    assert!(
        out.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{out}"
    );
    assert!(!out.contains("mechanism"), "{out}");
    let out = written(&s.handle_bytes(plain_auth().as_bytes()));
    assert!(out.contains("<encryption-required/>"), "{out}");
    let actions = s.handle_bytes(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(actions.last(), Some(&Action::StartTls));
    s.tls_established(None);
    let out = written(&s.handle_bytes(OPEN.as_bytes()));
    assert!(
        out.contains("<mechanism>PLAIN</mechanism>") && !out.contains("starttls"),
        "{out}"
    );
}

#[test]
fn wrong_password_is_not_authorized_and_stream_stays_open() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    s.handle_bytes(OPEN.as_bytes());
    let bad = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0wrong");
    let out = written(
        &s.handle_bytes(
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{bad}</auth>"
            )
            .as_bytes(),
        ),
    );
    assert!(
        out.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"),
        "{out}"
    );
    assert!(!s.is_closed());
    let out = written(
        &s.handle_bytes(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NOPE'/>"),
    );
    assert!(out.contains("<invalid-mechanism/>"), "{out}");
}

#[test]
fn unknown_host_and_bad_namespace_close_with_stream_errors() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    let actions = s.handle_bytes(
        OPEN.replace("to='localhost'", "to='nowhere.example'")
            .as_bytes(),
    );
    let out = written(&actions);
    assert!(
        out.starts_with("<?xml") && out.contains("<host-unknown"),
        "{out}"
    );
    assert_eq!(actions.last(), Some(&Action::Close));
    let (mut s, _rx) = new_stream(&server, false);
    let out = written(
        &s.handle_bytes(
            OPEN.replace("xmlns='jabber:client'", "xmlns='jabber:server'")
                .as_bytes(),
        ),
    );
    assert!(out.contains("<invalid-namespace"), "{out}");
}

#[test]
fn malformed_xml_and_oversized_stanzas_close_the_stream() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    s.handle_bytes(OPEN.as_bytes());
    let out = written(&s.handle_bytes(b"<message><body>x</wrong></message>"));
    assert!(out.contains("<not-well-formed"), "{out}");
    assert!(s.is_closed());
}

#[test]
fn stanzas_before_auth_get_not_authorized() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    s.handle_bytes(OPEN.as_bytes());
    let out =
        written(&s.handle_bytes(b"<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>"));
    assert!(out.contains("<not-authorized"), "{out}");
}

#[test]
fn unauthenticated_streams_time_out() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    s.handle_bytes(OPEN.as_bytes());
    let deadline = s.deadline().unwrap();
    assert!(
        s.handle_timeout(deadline - Duration::from_secs(1))
            .is_empty()
    );
    let out = written(&s.handle_timeout(deadline));
    assert!(out.contains("<connection-timeout"), "{out}");
    assert!(s.is_closed());
}

#[test]
fn pipelined_auth_and_restart_in_one_buffer() {
    let server = server(false);
    let (mut s, _rx) = new_stream(&server, false);
    let all = format!("{OPEN}{}{OPEN}", plain_auth());
    let out = written(&s.handle_bytes(all.as_bytes()));
    assert!(out.contains("<success") && out.contains("<bind "), "{out}");
}
