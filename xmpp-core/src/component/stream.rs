//! The sans-IO component stream (XEP-0114, `jabber:component:accept`): the
//! header, the handshake, then stanzas to the router, as Prosody 0.12's
//! mod_component does.
//!
//! [`ComponentStream`] takes bytes and returns [`Action`]s (bytes to write,
//! "close"). Its rules, each Prosody's:
//!
//! - the header must carry `to` (else `improper-addressing`) naming a
//!   `Component` host served by an external connection (else `host-unknown`);
//!   the reply has `from` the host and a fresh `id`, and no `version`;
//! - `<handshake>` holds the SHA-1 of stream id + `component_secret` in hex,
//!   compared without regard to case; a handshake with child elements, a host
//!   without `component_secret` or a wrong digest is `not-authorized`;
//! - a second connection for a connected component is refused with
//!   `conflict` (`component_conflict_resolve = "kick_new"`, the default) or
//!   replaces the first (`"kick_old"`, which closes the old one with `conflict`);
//! - stanzas must name a `to` (else `bad-request`); a missing `from` becomes
//!   the component's domain; a `from` in another domain closes the stream with
//!   `invalid-from` unless `validate_from_addresses = false`;
//! - XML errors close with `not-well-formed` (an oversized stanza included:
//!   `component_stanza_size_limit`, else `s2s_stanza_size_limit`, 512 KiB);
//! - before the handshake, stanzas are answered `service-unavailable`.

use std::net::SocketAddr;
use std::sync::Arc;

use sha1::{Digest, Sha1};

use super::routing::ComponentLink;
use crate::error::{StanzaError, StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::router::is_reply_type;
use crate::server::Server;
use crate::session::{Outbound, OutboundTx, Session, SessionKind};
use crate::stanza::{Element, NS_CLIENT, NS_COMPONENT, NS_STREAMS};
use crate::stream::{STREAM_CLOSE, StreamEvent, StreamHeader, StreamLimits, XmlStream};

/// Prosody's default `s2s_stanza_size_limit`, which components inherit.
pub const DEFAULT_STANZA_SIZE_LIMIT: usize = 512 * 1024;

/// What the connection task must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Write(String),
    /// Write what came before, then close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the component's stream header.
    Header,
    /// Header accepted, waiting for `<handshake>`.
    Handshake,
    /// Authenticated: stanzas flow.
    Connected,
    Closed,
}

/// One component connection's protocol state.
pub struct ComponentStream {
    server: Arc<Server>,
    tx: OutboundTx,
    peer: Option<SocketAddr>,
    xml: XmlStream,
    phase: Phase,
    host: Option<Arc<Host>>,
    stream_id: String,
    /// Created by a successful handshake.
    session: Option<Arc<Session>>,
    validate_from: bool,
}

impl ComponentStream {
    /// A new stream; what its session is sent goes to `tx`, which the
    /// connection task drains.
    pub fn new(
        server: Arc<Server>,
        tx: impl Into<OutboundTx>,
        peer: Option<SocketAddr>,
        limits: StreamLimits,
    ) -> ComponentStream {
        ComponentStream {
            xml: XmlStream::new(limits),
            server,
            tx: tx.into(),
            peer,
            phase: Phase::Header,
            host: None,
            stream_id: new_stream_id(),
            session: None,
            validate_from: true,
        }
    }

    /// The stream id sent in our header (the handshake digest's salt).
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }
    /// The session, once the handshake succeeded.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }
    /// The component host named in the header, once accepted.
    pub fn host(&self) -> Option<&Arc<Host>> {
        self.host.as_ref()
    }
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    /// Is the stream open, so a whitespace keepalive may be sent?
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Handshake | Phase::Connected)
    }

    fn log_id(&self) -> &str {
        self.session
            .as_ref()
            .map(|s| s.id.as_str())
            .unwrap_or("comp-new")
    }

    /// Bytes from the component.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Closed {
            return out;
        }
        let mut events = Vec::new();
        let result = self.xml.feed(data, &mut events);
        for ev in events {
            if self.phase == Phase::Closed {
                return out;
            }
            self.handle_event(ev, &mut out);
        }
        if let Err(e) = result {
            // Prosody closes every parse error (size included) with
            // not-well-formed; a root that is not a stream stays invalid-namespace.
            let e = match e.condition {
                Cond::InvalidNamespace => e,
                _ => StreamError {
                    condition: Cond::NotWellFormed,
                    text: e.text,
                },
            };
            self.fail(&mut out, e);
        }
        out
    }

    /// The peer closed the connection.
    pub fn handle_eof(&mut self) {
        if self.phase != Phase::Closed {
            if let Err(e) = self.xml.eof() {
                tracing::debug!(session = %self.log_id(), "component connection closed mid-stream: {e}");
            }
            self.phase = Phase::Closed;
        }
    }

    /// Closes the stream from our side (shutdown, a conflict, a module).
    pub fn close(&mut self, error: Option<StreamError>) -> Vec<Action> {
        let mut out = Vec::new();
        match error {
            Some(e) => self.fail(&mut out, e),
            None if self.phase != Phase::Closed => {
                if self.phase == Phase::Header {
                    out.push(Action::Write(stream_header(&self.unopened_header())));
                }
                out.push(Action::Write(STREAM_CLOSE.to_string()));
                out.push(Action::Close);
                self.phase = Phase::Closed;
            }
            None => {}
        }
        out
    }

    /// What a queued item becomes on the wire: stanzas are written in the
    /// stream's default namespace, as Prosody strips `jabber:client` from them.
    pub fn outbound(&mut self, item: Outbound) -> Vec<Action> {
        match item {
            Outbound::Stanza(e) => vec![Action::Write(component_xml(&e))],
            Outbound::Raw(parts) => match super::parse_raw(&parts) {
                Some(e) => vec![Action::Write(component_xml(&e))],
                None => Vec::new(),
            },
            Outbound::Close(err) => self.close(err),
        }
    }

    /// The stream ended (for any reason): the component is disconnected,
    /// once, and `component-disconnected` fires on its host.
    pub fn end_session(&mut self, reason: &str) {
        self.phase = Phase::Closed;
        if let (Some(session), Some(host)) = (self.session.take(), self.host.clone()) {
            host.extension::<ComponentLink>().disconnect(&session);
            let mut ev = Event::new(&self.server, "component-disconnected")
                .with_origin(&session)
                .with_field("reason", reason.to_string());
            self.server
                .fire_on_host(&host, "component-disconnected", &mut ev);
            tracing::info!(session = %session.id, host = %host.name, "component disconnected: {reason}");
        }
    }

    fn fail(&mut self, out: &mut Vec<Action>, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::info!(session = %self.log_id(), peer = ?self.peer, "disconnecting component: {error}");
        if self.phase == Phase::Header {
            out.push(Action::Write(stream_header(&self.unopened_header())));
        }
        out.push(Action::Write(error.to_xml()));
        out.push(Action::Write(STREAM_CLOSE.to_string()));
        out.push(Action::Close);
        self.phase = Phase::Closed;
    }

    /// The header Prosody writes before an error when the stream never
    /// opened: no `from`, an empty `id`, `version='1.0'`.
    fn unopened_header(&self) -> StreamHeader {
        StreamHeader {
            ns: NS_COMPONENT.to_string(),
            version: Some("1.0".to_string()),
            ..StreamHeader::default()
        }
    }

    fn handle_event(&mut self, ev: StreamEvent, out: &mut Vec<Action>) {
        match ev {
            StreamEvent::Open(h) => self.handle_open(h, out),
            StreamEvent::Close => {
                tracing::debug!(session = %self.log_id(), "received </stream:stream>");
                out.extend(self.close(None));
            }
            StreamEvent::Stanza(e) => self.handle_element(e, out),
        }
    }

    fn handle_open(&mut self, h: StreamHeader, out: &mut Vec<Action>) {
        let Some(to) = h.to.as_deref() else {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::ImproperAddressing,
                    "A 'to' attribute is required on stream headers",
                ),
            );
        };
        let host = self
            .server
            .host(to)
            .filter(|h| h.extension::<ComponentLink>().is_external());
        let Some(host) = host else {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::HostUnknown,
                    format!("{to} does not match any configured external components"),
                ),
            );
        };
        self.validate_from = host
            .option_bool("validate_from_addresses", true)
            .unwrap_or(true);
        let reply = StreamHeader {
            ns: NS_COMPONENT.to_string(),
            from: Some(host.name.clone()),
            id: Some(self.stream_id.clone()),
            ..StreamHeader::default()
        };
        self.host = Some(host);
        self.phase = Phase::Handshake;
        out.push(Action::Write(stream_header(&reply)));
    }

    fn handle_element(&mut self, mut e: Element, out: &mut Vec<Action>) {
        let Some(host) = self.host.clone() else {
            return;
        };
        if e.ns() == NS_STREAMS && e.name() == "error" {
            let condition = e
                .children()
                .find(|c| c.name() != "text")
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| "undefined-condition".into());
            tracing::info!(session = %self.log_id(), "component closed its stream with error: {condition} ({})", e.text_content());
            out.extend(self.close(None));
            return;
        }
        if e.ns() == NS_COMPONENT && e.name() == "handshake" && self.phase == Phase::Handshake {
            return self.handle_handshake(&host, e, out);
        }
        if e.ns() == NS_COMPONENT || e.ns() == NS_CLIENT {
            into_client_ns(&mut e);
        }
        if e.is_stanza() {
            return self.handle_stanza(&host, e, out);
        }
        // Anything else is for a module on the host, else refused.
        let origin = self
            .session
            .clone()
            .unwrap_or_else(|| host.local_session.clone());
        let name = format!("stanza/{}:{}", e.ns(), e.name());
        let mut ev = Event::new(&self.server, "")
            .with_origin(&origin)
            .with_stanza(e);
        if !self.server.fire_on_host(&host, &name, &mut ev) {
            self.fail(out, StreamError::new(Cond::UnsupportedStanzaType));
        }
    }

    fn handle_handshake(&mut self, host: &Arc<Host>, e: Element, out: &mut Vec<Action>) {
        if e.children().next().is_some() {
            tracing::warn!(host = %host.name, "invalid component handshake (child elements)");
            return self.fail(out, StreamError::new(Cond::NotAuthorized));
        }
        let Some(secret) = host.option_str("component_secret") else {
            tracing::warn!(host = %host.name, "component attempted to identify as {}, but component_secret is not set", host.name);
            return self.fail(out, StreamError::new(Cond::NotAuthorized));
        };
        let expected = handshake_digest(&self.stream_id, secret);
        if !e.text_content().eq_ignore_ascii_case(&expected) {
            tracing::info!(host = %host.name, peer = ?self.peer, "component authentication failed");
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::NotAuthorized,
                    "Given token does not match calculated token",
                ),
            );
        }
        let session = Arc::new(Session::new(
            SessionKind::Component,
            &host.name,
            self.peer,
            self.tx.clone(),
        ));
        let kick_old = host.option_str("component_conflict_resolve") == Some("kick_old");
        let link = host.extension::<ComponentLink>();
        if let Err(old) = link.connect(&session, kick_old) {
            match old {
                Some(old) => old.close(Some(StreamError::with_text(
                    Cond::Conflict,
                    "Replaced by a new connection",
                ))),
                None => {
                    tracing::error!(host = %host.name, "second component attempted to connect, denying connection");
                    return self.fail(
                        out,
                        StreamError::with_text(Cond::Conflict, "Component already connected"),
                    );
                }
            }
        }
        tracing::info!(session = %session.id, host = %host.name, "external component successfully authenticated");
        self.session = Some(session.clone());
        self.phase = Phase::Connected;
        out.push(Action::Write(format!(
            "<handshake xmlns='{NS_COMPONENT}'/>"
        )));
        let mut ev = Event::new(&self.server, "component-authenticated").with_origin(&session);
        self.server
            .fire_on_host(host, "component-authenticated", &mut ev);
    }

    fn handle_stanza(&mut self, host: &Arc<Host>, mut e: Element, out: &mut Vec<Action>) {
        match e.from().map(str::to_string) {
            Some(from) => {
                if self.phase == Phase::Connected
                    && self.validate_from
                    && jid_domain(&from) != host.name
                {
                    tracing::warn!(host = %host.name, "component sent stanza with missing or invalid 'from' address");
                    return self.fail(
                        out,
                        StreamError::with_text(
                            Cond::InvalidFrom,
                            format!(
                                "Component tried to send from address <{from}> which is not in domain <{}>",
                                host.name
                            ),
                        ),
                    );
                }
            }
            None => e.set_attr("from", Some(host.name.clone())),
        }
        if e.to().is_none() {
            if !is_reply_type(&e) {
                let reply = StanzaError::bad_request()
                    .with_text("Components MUST specify a 'to' address on stanzas")
                    .reply_to(&e);
                out.push(Action::Write(component_xml(&reply)));
            }
            return;
        }
        match self.session.clone() {
            Some(session) => self.server.process_stanza(&session, e),
            None => {
                // Prosody routes an unauthenticated component's stanzas as
                // stream elements, which nothing handles.
                if !is_reply_type(&e) {
                    let reply = StanzaError::service_unavailable().reply_to(&e);
                    out.push(Action::Write(component_xml(&reply)));
                }
            }
        }
    }
}

/// The handshake value: hex SHA-1 of the stream id followed by the secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let digest = Sha1::digest(format!("{stream_id}{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stream id in the shape of Prosody's (a random UUID, version 4).
fn new_stream_id() -> String {
    use rand::Rng;
    let mut b: [u8; 16] = rand::thread_rng().r#gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The domain part of a JID as Prosody's `jid.split` finds it (no
/// normalisation): after the `@`, before the `/`.
fn jid_domain(jid: &str) -> &str {
    let bare = jid.split_once('/').map_or(jid, |(b, _)| b);
    bare.split_once('@').map_or(bare, |(_, d)| d)
}

/// Moves a stanza from the component namespace to `jabber:client`, where
/// the router and modules expect it (children in the stream's default
/// namespace move with it).
pub(super) fn into_client_ns(e: &mut Element) {
    if e.ns() == NS_COMPONENT {
        e.set_ns(NS_CLIENT);
    }
    for c in e.children_mut() {
        if c.ns() == NS_COMPONENT {
            into_client_ns(c);
        }
    }
}

/// A stanza as written on a component stream: `jabber:client` elements
/// take the stream's default namespace.
pub fn component_xml(e: &Element) -> String {
    let mut e = e.clone();
    if e.ns() == NS_COMPONENT {
        e.set_ns(NS_CLIENT);
    }
    e.to_xml_in(NS_CLIENT)
}

fn stream_header(h: &StreamHeader) -> String {
    crate::stream::stream_header(h)
}
