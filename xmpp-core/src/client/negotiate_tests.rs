//! The client negotiation driven against lilt's own server-side stream
//! ([`C2sStream`], sans-IO too): bytes go back and forth in memory, TLS is
//! "established" on both sides at the point the handshake would run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::*;
use crate::auth::{AuthProvider, SaslContext, SaslExchange, SaslFailure, SaslStep};
use crate::c2s::negotiation::{Action, C2sSettings, C2sStream};
use crate::server::Server;
use crate::session::Outbound;
use crate::storage::StorageResult;

/// PLAIN for one account: focus / "s3cret".
struct OneAccount;

struct Plain;

impl SaslExchange for Plain {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        match input {
            Some(b"\0focus\0s3cret") => SaslStep::Success {
                username: "focus".into(),
                additional: None,
            },
            _ => SaslStep::Failure(SaslFailure::with_text("not-authorized", "Wrong password")),
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
        _mechanism: &str,
        _ctx: &SaslContext,
    ) -> Result<Box<dyn SaslExchange>, SaslFailure> {
        Ok(Box::new(Plain))
    }
    fn user_exists(&self, username: &str) -> StorageResult<bool> {
        Ok(username == "focus")
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
        name: "auth.example".into(),
        kind: crate::HostKind::VirtualHost,
        section,
        defined_at: Default::default(),
    });
    let server = Server::new(cfg, crate::Clock::Fixed(0.0));
    server
        .host("auth.example")
        .unwrap()
        .set_auth_provider(Arc::new(OneAccount));
    server
}

struct Pair {
    client: Negotiation,
    server: C2sStream,
    _rx: mpsc::UnboundedReceiver<Outbound>,
    /// Every byte the client wrote.
    sent: String,
}

impl Pair {
    fn new(jid: &str, password: &str, server_tls: bool, require_encryption: bool) -> Pair {
        let (tx, rx) = mpsc::unbounded_channel();
        let settings = C2sSettings {
            tls_available: server_tls,
            direct_tls: false,
            unauthed_timeout: Duration::from_secs(60),
            limits: Default::default(),
            max_unauthed_stanza_size: None,
        };
        Pair {
            client: Negotiation::new(Jid::parse(jid).unwrap(), password, true),
            server: C2sStream::new(
                server(require_encryption),
                tx,
                None,
                settings,
                Instant::now(),
            ),
            _rx: rx,
            sent: String::new(),
        }
    }

    /// Runs the exchange until the client is bound or fails.
    fn run(&mut self) -> Result<Jid, ClientError> {
        let mut outputs = self.client.start();
        for _ in 0..50 {
            let mut to_server = String::new();
            let mut start_tls = false;
            for o in outputs.drain(..) {
                match o {
                    Output::Write(s) => to_server.push_str(&s),
                    Output::StartTls => start_tls = true,
                    Output::Bound(jid) => return Ok(jid),
                }
            }
            if start_tls {
                assert!(to_server.is_empty());
                // The handshake would run here, on both sides.
                self.server.tls_established(None);
                outputs = self.client.tls_established();
                continue;
            }
            self.sent.push_str(&to_server);
            let mut to_client = String::new();
            for a in self.server.handle_bytes(to_server.as_bytes()) {
                if let Action::Write(s) = a {
                    to_client.push_str(&s);
                }
            }
            outputs = self.client.handle_bytes(to_client.as_bytes())?;
        }
        panic!("negotiation did not end; client sent {}", self.sent);
    }
}

#[test]
fn starttls_then_plain_then_the_requested_resource() {
    let mut p = Pair::new("focus@auth.example/focus", "s3cret", true, true);
    let jid = p.run().unwrap();
    assert_eq!(jid.to_string(), "focus@auth.example/focus");
    assert!(p.client.is_secure());
    assert!(p.sent.contains("<starttls"), "{}", p.sent);
    // PLAIN only after TLS: the <auth/> follows <starttls/>.
    let tls_at = p.sent.find("<starttls").unwrap();
    let auth_at = p.sent.find("mechanism='PLAIN'").unwrap();
    assert!(tls_at < auth_at, "{}", p.sent);
    assert!(p.server.bound_jid().is_some());
}

#[test]
fn without_starttls_offered_plain_is_the_last_resort_and_a_resource_is_assigned() {
    let mut p = Pair::new("focus@auth.example", "s3cret", false, false);
    let jid = p.run().unwrap();
    assert_eq!(jid.to_bare().to_string(), "focus@auth.example");
    assert!(jid.resource().is_some_and(|r| !r.is_empty()));
    assert!(!p.client.is_secure());
}

#[test]
fn a_wrong_password_is_an_auth_error() {
    let mut p = Pair::new("focus@auth.example", "nope", true, true);
    match p.run() {
        Err(ClientError::Auth { jid, condition }) => {
            assert_eq!(jid, "focus@auth.example");
            assert!(condition.contains("not-authorized"), "{condition}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

#[test]
fn an_unknown_host_is_a_stream_error() {
    let mut p = Pair::new("focus@elsewhere.example", "s3cret", true, true);
    match p.run() {
        Err(ClientError::Stream(text)) => assert!(text.contains("host-unknown"), "{text}"),
        other => panic!("expected a stream error, got {other:?}"),
    }
}

#[test]
fn required_tls_without_tls_on_our_side_fails() {
    let mut c = Negotiation::new(Jid::parse("focus@auth.example").unwrap(), "x", false);
    c.start();
    let err = c
        .handle_bytes(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='1'>\
              <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
}

#[test]
fn what_follows_the_bind_result_is_kept_for_the_session() {
    let mut c = Negotiation::new(Jid::parse("focus@auth.example").unwrap(), "x", false);
    c.start();
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' id='1'>";
    let out = c
        .handle_bytes(format!("{header}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>").as_bytes())
        .unwrap();
    assert!(matches!(&out[..], [Output::Write(s)] if s.contains("mechanism='PLAIN'")));
    // Success and the new stream's header and features in one read.
    let out = c
        .handle_bytes(format!("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{header}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>").as_bytes())
        .unwrap();
    assert!(
        matches!(&out[..], [Output::Write(h), Output::Write(b)] if h.contains("<stream:stream") && b.contains("lilt-bind")),
        "{out:?}"
    );
    let out = c
        .handle_bytes(b"<iq type='result' id='lilt-bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>focus@auth.example/r1</jid></bind></iq><message from='x@auth.example' to='focus@auth.example/r1'><body>hi</body></message>")
        .unwrap();
    assert_eq!(
        out,
        vec![Output::Bound(Jid::parse("focus@auth.example/r1").unwrap())]
    );
    let (_xml, after) = c.into_stream();
    assert!(
        matches!(&after[..], [StreamEvent::Stanza(m)] if m.name() == "message"),
        "{after:?}"
    );
}
