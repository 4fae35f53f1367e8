//! The sans-IO client stream: from the first byte to a bound resource, and
//! then stanzas to the router.
//!
//! [`C2sStream`] takes bytes (and "TLS is up", and the time) and returns
//! [`Action`]s: bytes to write, "start TLS now", "close". It runs stream
//! negotiation as Prosody's mod_c2s, mod_tls, mod_saslauth and mod_bind do,
//! and hands bound stanzas to [`Server::process_stanza`]. Its parts are
//! child modules working on the same struct: `sasl.rs` (mod_saslauth),
//! `bind.rs` (mod_bind), `framed.rs` (BOSH/WebSocket framing), and stream
//! management in `../smacks/stream.rs` and `../smacks/liveness.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::SaslExchange;
use crate::error::{StanzaError, StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::jid::Jid;
use crate::limits::Throttle;
use crate::server::Server;
use crate::session::{OutboundTx, Session, SessionKind};
use crate::stanza::{Element, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAMS, NS_TLS};
use crate::stream::{StreamEvent, StreamHeader, StreamLimits, XmlStream};
use crate::transport::TransportInfo;

use super::frame::Frame;
use std::net::SocketAddr;

/// XEP-0440: the channel-binding types a server offers for the -PLUS mechanisms.
const NS_SASL_CB: &str = "urn:xsf:sasl-cb:0";

/// Per-listener settings that shape negotiation.
#[derive(Debug, Clone)]
pub struct C2sSettings {
    /// STARTTLS can be offered (a certificate exists).
    pub tls_available: bool,
    /// The connection is direct TLS (already encrypted).
    pub direct_tls: bool,
    /// Seconds an unauthenticated stream may stay open (`c2s_timeout`).
    pub unauthed_timeout: Duration,
    /// The limits of an authenticated stream (`c2s_stanza_size_limit`).
    pub limits: StreamLimits,
    /// The stanza size limit until the client authenticates (Prosody's
    /// `c2s_unauthed_stanza_size_limit`, 10,000 bytes); `None`: the same
    /// as [`C2sSettings::limits`].
    pub max_unauthed_stanza_size: Option<usize>,
}

impl C2sSettings {
    /// The limits that apply before authentication.
    pub fn unauthed_limits(&self) -> StreamLimits {
        let mut limits = self.limits.clone();
        if let Some(max) = self.max_unauthed_stanza_size {
            limits.max_stanza_size = limits.max_stanza_size.min(max);
        }
        limits
    }
}

/// What the connection task must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Write(String),
    /// A unit of output for a framed transport (BOSH, WebSocket): given
    /// instead of [`Action::Write`] once [`C2sStream::set_transport`] was
    /// called.
    Frame(Frame),
    /// Write what came before, then run the TLS handshake and call
    /// [`C2sStream::tls_established`].
    StartTls,
    /// Write what came before, then close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client's stream header.
    Header,
    /// Negotiating (TLS, SASL, bind).
    Negotiating,
    Closed,
}

/// One client stream's protocol state.
pub struct C2sStream {
    server: Arc<Server>,
    /// Created when the client names its host in the stream header.
    session: Option<Arc<Session>>,
    tx: OutboundTx,
    peer: Option<SocketAddr>,
    settings: C2sSettings,
    xml: XmlStream,
    phase: Phase,
    host: Option<Arc<Host>>,
    secure: bool,
    tls_exporter: Option<Vec<u8>>,
    authenticated: bool,
    bound: Option<Jid>,
    sasl: Option<(String, Box<dyn SaslExchange>)>,
    started: Instant,
    /// The BOSH or WebSocket request this stream came with; output is
    /// given as [`Action::Frame`] when set.
    transport: Option<Arc<TransportInfo>>,
    /// XEP-0198 stream management (see `smacks/stream.rs`).
    sm: smacks_stream::SmacksLink,
    /// An `authentication-success` handler lifted the connection's rate
    /// limit (mod_limits' `unlimited_jids`).
    rate_unlimited: bool,
    /// The connection's rate limit (mod_limits), with the bytes received
    /// since it was last asked.
    throttle: Option<Box<(Throttle, usize)>>,
}

impl C2sStream {
    /// A new stream; what its session is sent goes to `tx`, which the
    /// connection task drains.
    pub fn new(
        server: Arc<Server>,
        tx: impl Into<OutboundTx>,
        peer: Option<SocketAddr>,
        settings: C2sSettings,
        now: Instant,
    ) -> C2sStream {
        let secure = settings.direct_tls;
        C2sStream {
            xml: XmlStream::new(settings.unauthed_limits()),
            server,
            session: None,
            tx: tx.into(),
            peer,
            settings,
            phase: Phase::Header,
            host: None,
            secure,
            tls_exporter: None,
            authenticated: false,
            bound: None,
            sasl: None,
            started: now,
            transport: None,
            sm: Default::default(),
            rate_unlimited: false,
            throttle: None,
        }
    }

    /// The session, once the stream header named a host.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// The session's name in log lines (`c2s-new` before there is one).
    pub(crate) fn log_id(&self) -> &str {
        self.session
            .as_ref()
            .map(|s| s.id.as_str())
            .unwrap_or("c2s-new")
    }
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }
    /// Was the rate limit lifted for this stream (see [`crate::limits`])?
    pub fn is_rate_unlimited(&self) -> bool {
        self.rate_unlimited
    }
    /// Limits the rate at which this stream reads (mod_limits; the
    /// connection task asks [`C2sStream::read_delay`] before each read).
    pub fn set_throttle(&mut self, throttle: Option<Throttle>) {
        self.throttle = throttle.map(|t| Box::new((t, 0)));
    }
    /// How long to wait before reading more, charging the bytes received
    /// since the last call: `None` to read now.
    pub fn read_delay(&mut self, now: Instant) -> Option<Duration> {
        if self.rate_unlimited {
            self.throttle = None;
        }
        let (throttle, unbilled) = self.throttle.as_deref_mut()?;
        throttle.charge(std::mem::take(unbilled), now);
        let wait = throttle.wait(now);
        if let Some(w) = wait {
            tracing::debug!(session = %self.log_id(), "Session over rate limit, pausing reads for {w:?}");
        }
        wait
    }
    /// Charges bytes a framed transport read for this stream (WebSocket:
    /// the raw frames, as mod_limits' `bytes/in` filter sees them) to its
    /// throttle; [`C2sStream::read_delay`] then says how long to wait.
    pub fn bill_bytes(&mut self, n: usize) {
        if let Some((_, unbilled)) = self.throttle.as_deref_mut() {
            *unbilled += n;
        }
    }
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// When [`C2sStream::handle_timeout`] is due next: the
    /// unauthenticated-stream timeout, or a late stream-management ack.
    pub fn deadline(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let unauthed = (!self.authenticated).then(|| self.started + self.settings.unauthed_timeout);
        match (unauthed, self.smacks_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: closes an unauthenticated stream past its deadline.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.smacks_timeout(now);
        let unauthed = (!self.authenticated && self.phase != Phase::Closed)
            .then(|| self.started + self.settings.unauthed_timeout);
        if unauthed.is_some_and(|d| now >= d) {
            self.fail(
                &mut out,
                StreamError::with_text(Cond::ConnectionTimeout, "Authentication timed out"),
            );
        }
        out
    }

    /// TLS is up (after [`Action::StartTls`], or at once for direct TLS).
    pub fn tls_established(&mut self, tls_exporter: Option<Vec<u8>>) {
        self.secure = true;
        self.tls_exporter = tls_exporter;
        if let Some(s) = &self.session {
            s.state().secure = true;
        }
        self.xml.reset();
        self.phase = Phase::Header;
    }

    /// Bytes from the peer.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Vec<Action> {
        if let Some(t) = self.throttle.as_deref_mut() {
            t.1 += data.len();
        }
        let mut out = Vec::new();
        let mut pos = 0;
        // Parsing stops after each element that may restart the stream
        // (STARTTLS, SASL), so what follows is read by the right parser.
        while self.phase != Phase::Closed && pos < data.len() {
            let mut events = Vec::new();
            let result = self.xml.feed_until(&data[pos..], &mut events, |e| {
                e.ns() == NS_TLS || e.ns() == NS_SASL
            });
            for ev in events {
                if self.phase == Phase::Closed {
                    return out;
                }
                self.handle_event(ev, &mut out);
                if matches!(out.last(), Some(Action::StartTls)) {
                    // What follows <starttls/> is the TLS handshake itself.
                    return out;
                }
            }
            match result {
                Ok(0) => break,
                Ok(n) => pos += n,
                Err(e) => {
                    self.fail(&mut out, e);
                    break;
                }
            }
        }
        out
    }

    /// The connection has been idle a while: let go of the XML parser's
    /// state between stanzas ([`XmlStream::park`]).
    pub fn park_parser(&mut self) {
        self.xml.park();
    }

    /// The peer closed the connection.
    pub fn handle_eof(&mut self) {
        if self.phase != Phase::Closed {
            if let Err(e) = self.xml.eof() {
                tracing::debug!(session = %self.log_id(), "connection closed mid-stream: {e}");
            }
            self.phase = Phase::Closed;
        }
    }

    /// Closes the stream from our side (shutdown, or a module's request).
    pub fn close(&mut self, error: Option<StreamError>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase != Phase::Closed && self.smacks_taken_over() {
            // Resumed elsewhere (XEP-0198): the connection just goes.
            self.phase = Phase::Closed;
            out.push(Action::Close);
            return out;
        }
        match error {
            Some(e) => self.fail(&mut out, e),
            None => {
                if self.phase == Phase::Header {
                    self.emit(&mut out, Frame::Open(self.header_reply(None)));
                }
                if self.phase != Phase::Closed {
                    self.smacks_closing(&mut out);
                    self.emit(&mut out, Frame::Close);
                    out.push(Action::Close);
                    self.phase = Phase::Closed;
                }
            }
        }
        out
    }

    /// The resource this stream bound, to unbind when it ends.
    pub fn bound_jid(&self) -> Option<&Jid> {
        self.bound.as_ref()
    }

    fn fail(&mut self, out: &mut Vec<Action>, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::debug!(session = %self.log_id(), "closing stream: {error}");
        if self.phase == Phase::Header {
            // RFC 6120 §4.9.1.2: open our stream first so the error is well-formed.
            self.emit(out, Frame::Open(self.header_reply(None)));
        }
        self.smacks_closing(out);
        self.emit(out, Frame::Element(error.to_element()));
        self.emit(out, Frame::Close);
        out.push(Action::Close);
        self.phase = Phase::Closed;
    }

    fn header_reply(&self, to: Option<&str>) -> StreamHeader {
        let from = self.host.as_ref().map(|h| h.name.clone());
        StreamHeader {
            ns: NS_CLIENT.to_string(),
            to: to.map(str::to_string),
            from,
            version: Some("1.0".to_string()),
            lang: Some("en".to_string()),
            id: Some(self.log_id().to_string()),
            attrs: Vec::new(),
        }
    }

    fn handle_event(&mut self, ev: StreamEvent, out: &mut Vec<Action>) {
        match ev {
            StreamEvent::Open(h) => self.handle_open(h, out),
            StreamEvent::Close => {
                self.smacks_closing(out);
                self.emit(out, Frame::Close);
                out.push(Action::Close);
                self.phase = Phase::Closed;
            }
            StreamEvent::Stanza(e) => self.handle_element(e, out),
        }
    }

    fn handle_open(&mut self, h: StreamHeader, out: &mut Vec<Action>) {
        let to = h.to.as_deref().and_then(|t| crate::jid::nameprep(t).ok());
        let host = to
            .as_deref()
            .and_then(|t| self.server.host(t))
            .filter(|h| !h.is_component());
        if let Some(host) = &host {
            self.host = Some(host.clone());
        }
        if h.ns != NS_CLIENT {
            return self.fail(out, StreamError::new(Cond::InvalidNamespace));
        }
        let Some(host) = host else {
            let text = match &h.to {
                None => "No 'to' attribute on stream header".to_string(),
                Some(t) => format!("This server does not serve {t}"),
            };
            return self.fail(out, StreamError::with_text(Cond::HostUnknown, text));
        };
        if h.version.as_deref() != Some("1.0") {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::UnsupportedVersion,
                    "Only XMPP 1.0 streams are supported",
                ),
            );
        }
        if self.session.is_none() {
            let mut session =
                Session::new(SessionKind::C2s, &host.name, self.peer, self.tx.clone());
            session.transport = self.transport.clone();
            session.state().secure = self.secure;
            let session = Arc::new(session);
            self.session = Some(session.clone());
            if let Some(transport) = &self.transport {
                self.announce_transport(&host, &session, transport);
            }
        }
        self.phase = Phase::Negotiating;
        self.emit(out, Frame::Open(self.header_reply(h.from.as_deref())));
        let features = self.features(&host);
        self.emit(out, Frame::Element(features));
    }

    fn require_encryption(&self, host: &Host) -> bool {
        host.option_bool("c2s_require_encryption", true)
            .unwrap_or(true)
    }

    fn features(&self, host: &Arc<Host>) -> Element {
        let mut features = Element::new("features", NS_STREAMS);
        let tls_offered = !self.secure && self.settings.tls_available;
        if !self.authenticated {
            if tls_offered {
                let mut starttls = Element::new("starttls", NS_TLS);
                if self.require_encryption(host) {
                    starttls.push_child(Element::new("required", NS_TLS));
                }
                features.push_child(starttls);
            }
            if self.secure || !self.require_encryption(host) {
                let mechs = host
                    .auth_provider()
                    .map(|a| a.sasl_mechanisms(&self.sasl_context(host)))
                    .unwrap_or_default();
                if !mechs.is_empty() {
                    let plus = mechs.iter().any(|m| m.ends_with("-PLUS"));
                    let mut m = Element::new("mechanisms", NS_SASL);
                    for mech in mechs {
                        m.push_child(Element::new("mechanism", NS_SASL).text(mech));
                    }
                    features.push_child(m);
                    // XEP-0440, as Prosody 13: which channel binding the
                    // -PLUS mechanisms use (clients such as go-xmpp guess
                    // wrongly without it).
                    if plus && self.tls_exporter.is_some() {
                        features.push_child(
                            Element::new("sasl-channel-binding", NS_SASL_CB).child(
                                Element::new("channel-binding", NS_SASL_CB)
                                    .attr("type", "tls-exporter"),
                            ),
                        );
                    }
                }
            }
        } else if self.bound.is_none() {
            features.push_child(Element::new("bind", NS_BIND));
            features.push_child(
                Element::new("session", NS_SESSION).child(Element::new("optional", NS_SESSION)),
            );
            self.smacks_features(host, &mut features);
        }
        // Modules add their own features (roster versioning, ...).
        let mut ev = Event::new(&self.server, "stream-features").with_stanza(features);
        ev.origin = self.session.clone();
        self.server.fire_on_host(host, "stream-features", &mut ev);
        ev.stanza
            .take()
            .unwrap_or_else(|| Element::new("features", NS_STREAMS))
    }

    fn handle_element(&mut self, e: Element, out: &mut Vec<Action>) {
        let (Some(host), Some(session)) = (self.host.clone(), self.session.clone()) else {
            return;
        };
        let Some(e) = self.smacks_hold(e) else {
            return;
        };
        match (e.ns(), e.name()) {
            (NS_TLS, "starttls") => self.handle_starttls(out),
            (NS_SASL, _) => self.handle_sasl(&host, &session, e, out),
            (NS_CLIENT, "iq" | "message" | "presence") => {
                self.handle_stanza(&host, &session, e, out)
            }
            _ => {
                if self.handle_sm(&host, &session, &e, out) {
                    return;
                }
                let mut ev = Event::new(&self.server, "")
                    .with_origin(&session)
                    .with_stanza(e);
                let name = format!("stanza/{}:{}", ev.stanza().ns(), ev.stanza().name());
                if !self.server.fire_on_host(&host, &name, &mut ev) {
                    self.fail(out, StreamError::new(Cond::UnsupportedStanzaType));
                }
            }
        }
    }

    fn handle_starttls(&mut self, out: &mut Vec<Action>) {
        if self.secure || self.authenticated || !self.settings.tls_available {
            // Prosody answers <failure/> and closes.
            self.emit(out, Frame::Element(Element::new("failure", NS_TLS)));
            self.emit(out, Frame::Close);
            out.push(Action::Close);
            self.phase = Phase::Closed;
            return;
        }
        self.emit(out, Frame::Element(Element::new("proceed", NS_TLS)));
        out.push(Action::StartTls);
    }

    fn handle_stanza(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        e: Element,
        out: &mut Vec<Action>,
    ) {
        if !self.authenticated {
            // Before authentication an IQ goes to Prosody's
            // `stanza/iq/XMLNS:NAME` (in-band registration's
            // `jabber:iq:register:query`, invites' `urn:xmpp:pars:0:preauth`).
            if e.name() == "iq"
                && let Some(child) = e.first_child()
            {
                let name = format!("stanza/iq/{}:{}", child.ns(), child.name());
                let mut ev = Event::new(&self.server, "")
                    .with_origin(session)
                    .with_stanza(e.clone());
                if self.server.fire_on_host(host, &name, &mut ev) {
                    return;
                }
            }
            if !crate::router::is_reply_type(&e) {
                let reply =
                    StanzaError::new(crate::error::ErrorType::Auth, "not-authorized").reply_to(&e);
                self.emit(out, Frame::Element(reply));
            }
            return;
        }
        if self.bound.is_none() {
            if is_iq_set_with(&e, "bind", NS_BIND) {
                return self.handle_bind(host, session, e, out);
            }
            if !crate::router::is_reply_type(&e) {
                let reply =
                    StanzaError::new(crate::error::ErrorType::Auth, "not-authorized").reply_to(&e);
                self.emit(out, Frame::Element(reply));
            }
            return;
        }
        self.smacks_count_inbound();
        if is_iq_set_with(&e, "session", NS_SESSION) {
            // RFC 3921 session establishment: a no-op kept for old clients.
            let reply = Element::new("iq", NS_CLIENT)
                .attr("type", "result")
                .attr_opt("id", e.id());
            self.emit_stanza(out, reply);
            return;
        }
        if is_iq_set_with(&e, "bind", NS_BIND) {
            let reply = StanzaError::not_allowed()
                .with_text("Resource already bound")
                .reply_to(&e);
            self.emit_stanza(out, reply);
            return;
        }
        self.server.process_stanza(session, e);
    }

    /// The stream ended (for any reason): unbind and tell modules, once.
    pub fn end_session(&mut self) {
        self.phase = Phase::Closed;
        self.smacks_session_end();
        if let (Some(jid), Some(session)) = (self.bound.take(), self.session.clone())
            && self.server.sessions.unbind(&jid, &session)
            && let Some(host) = &self.host
        {
            let mut ev = Event::new(&self.server, "resource-unbind").with_origin(&session);
            self.server.fire_on_host(host, "resource-unbind", &mut ev);
        }
    }
}

fn is_iq_set_with(e: &Element, name: &str, ns: &str) -> bool {
    e.name() == "iq" && e.type_() == Some("set") && e.get_child(name, ns).is_some()
}

/// Serialises an element of the streams namespace with the `stream:` prefix
/// (`<stream:features>`), as clients expect.
pub fn stream_element_xml(e: &Element) -> String {
    if e.ns() != NS_STREAMS {
        return e.to_xml();
    }
    let mut s = format!("<stream:{}", e.name());
    for (k, v) in e.attrs() {
        s.push_str(&format!(" {k}='{}'", crate::stanza::escape(v)));
    }
    s.push('>');
    for n in e.nodes() {
        match n {
            crate::stanza::Node::Element(c) => s.push_str(&c.to_xml_in(NS_CLIENT)),
            crate::stanza::Node::Text(t) => s.push_str(&crate::stanza::escape(t)),
        }
    }
    s.push_str(&format!("</stream:{}>", e.name()));
    s
}

/// The parts for framed transports (BOSH, WebSocket).
#[path = "sasl.rs"]
mod sasl;

#[path = "bind.rs"]
mod bind;

#[path = "framed.rs"]
mod framed;

/// XEP-0198 stream management on this stream.
#[path = "../smacks/stream.rs"]
mod smacks_stream;
pub use smacks_stream::SmOutbound;

/// Stream management's timers (ack delay, read timeout, shutdown).
#[path = "../smacks/liveness.rs"]
mod smacks_liveness;
pub use smacks_liveness::ReadTimeout;

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
