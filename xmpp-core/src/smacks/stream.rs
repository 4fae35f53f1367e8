//! The [`C2sStream`] side of stream management (a child module of
//! `c2s::negotiation`, so it sees the stream's fields): the `<sm/>`
//! features, the `urn:xmpp:sm:2`/`:3` elements, counting what goes in and
//! out, and the hooks connection tasks call when a stanza is written
//! ([`C2sStream::smacks_outbound`]), when the connection ends
//! ([`C2sStream::connection_ended`]) and after a resumption
//! ([`C2sStream::take_resumed_outbound`]).

use std::sync::Arc;

#[cfg(test)]
use tokio::sync::mpsc;

use crate::host::Host;
use crate::session::{Outbound, OutboundRx, Session};
use crate::smacks::registry::{self, Claim, Hibernated, NS_TAKEOVER, Registry};
use crate::smacks::state::{AckOutcome, Queued, Resumption, SmacksSettings, SmacksState, failed};
use crate::smacks::{self as sm, NS_SM2, NS_SM3};
use crate::stanza::{Element, NS_CLIENT};

use super::{Action, C2sStream, Frame};

/// A stream's stream-management link.
#[derive(Default)]
pub(super) struct SmacksLink {
    pub(super) state: Option<SmacksState>,
    /// The stream was closed (by either side) rather than lost.
    closing: bool,
    /// The outbound receiver of a resumed session, for the connection task.
    resumed_rx: Option<OutboundRx>,
    /// A `<resume/>` waiting for the old connection to hand over.
    pending: Option<Box<PendingResume>>,
    /// What was queued but never written when the connection ended.
    unsent: Vec<Queued>,
}

/// A `<resume/>` whose session's old connection is still up.
struct PendingResume {
    previd: String,
    h: Option<String>,
    /// What the client sent meanwhile, handled as the resumed session's
    /// once the takeover is done (Prosody's takeover is synchronous, so
    /// nothing there is ever refused for want of a bound resource).
    held: Vec<Element>,
}

/// What to do with an outbound item ([`C2sStream::smacks_outbound`]).
#[derive(Debug)]
pub enum SmOutbound {
    /// Write it, then these.
    Write(Vec<Action>),
    /// Do not write it; write these instead.
    Instead(Vec<Action>),
}

fn is_stanza(e: &Element) -> bool {
    e.ns() == NS_CLIENT && matches!(e.name(), "message" | "presence" | "iq")
}

impl C2sStream {
    /// `<sm/>` in the features after authentication, where `smacks` is
    /// loaded (on every transport, BOSH included, as Prosody's).
    pub(super) fn smacks_features(&self, host: &Host, features: &mut Element) {
        if !sm::offered_on(host) || self.sm.state.is_some() {
            return;
        }
        for ns in [NS_SM2, NS_SM3] {
            features.push_child(Element::new("sm", ns).child(Element::new("optional", ns)));
        }
    }

    /// Handles a stream-management element; false if it is not one this
    /// stream takes (the caller then treats it as unsupported, as Prosody
    /// does without mod_smacks or for `<r/>` before `<enable/>`).
    pub(super) fn handle_sm(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        e: &Element,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(xmlns) = sm::sm_xmlns(e.ns()) else {
            return false;
        };
        if !sm::offered_on(host) {
            return false;
        }
        match e.name() {
            "enable" => self.handle_enable(host, session, xmlns, e, out),
            "resume" => self.handle_resume(host, xmlns, e, out),
            "r" => {
                let Some(state) = self.sm.state.as_mut() else {
                    return false;
                };
                for reply in state.handle_r(std::time::Instant::now()) {
                    self.emit(out, Frame::Element(reply));
                }
            }
            "a" => {
                let Some(state) = self.sm.state.as_mut() else {
                    return false;
                };
                match state.handle_a(e.get_attr("h"), std::time::Instant::now()) {
                    AckOutcome::Ok(r) => {
                        if let Some(r) = r {
                            self.emit(out, Frame::Element(r));
                        }
                    }
                    AckOutcome::Close(err) => {
                        tracing::warn!(session = %session.id, "bad ack: {err}");
                        self.fail(out, err);
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn handle_enable(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        xmlns: &'static str,
        e: &Element,
        out: &mut Vec<Action>,
    ) {
        let refusal = if self.sm.state.is_some() {
            Some("unexpected-request")
        } else if !self.authenticated {
            Some("service-unavailable")
        } else if self.bound.is_none() {
            Some("unexpected-request")
        } else {
            None
        };
        if let Some(condition) = refusal {
            tracing::warn!(session = %session.id, "failed to enable smacks: {condition}");
            self.emit(out, Frame::Element(failed(xmlns, condition, None)));
            return;
        }
        let settings = SmacksSettings::for_host(host);
        let username = session.username().unwrap_or_default();
        registry::prune_old_sessions(host, &username, settings.max_old_sessions);
        let resume_attr = e.get_attr("resume");
        let token = matches!(resume_attr, Some("true" | "1")).then(sm::new_token);
        if let Some(t) = &token {
            Registry::of(&self.server).register(t, &host.name, &username, session);
        }
        let (state, enabled) = SmacksState::enable(xmlns, settings, resume_attr, token);
        tracing::debug!(session = %session.id, "stream management enabled (resumable: {})", state.token.is_some());
        self.sm.state = Some(state);
        self.emit(out, Frame::Element(enabled));
    }

    fn handle_resume(
        &mut self,
        host: &Arc<Host>,
        xmlns: &'static str,
        e: &Element,
        out: &mut Vec<Action>,
    ) {
        if self.bound.is_some() || self.sm.pending.is_some() {
            tracing::warn!(session = %self.log_id(), "tried to resume after resource binding");
            self.emit(
                out,
                Frame::Element(failed(xmlns, "unexpected-request", None)),
            );
            return;
        }
        let previd = e.get_attr("previd").unwrap_or("").to_string();
        let h = e.get_attr("h").map(str::to_string);
        let username = self.session.as_ref().and_then(|s| s.username());
        let claim = match &username {
            Some(u) => registry::claim(&self.server, &previd, &host.name, u, &self.tx),
            None => Claim::NotFound,
        };
        match claim {
            Claim::NotFound => {
                let old_h = username
                    .as_deref()
                    .and_then(|u| registry::take_old_h(host, u, &previd));
                tracing::debug!(session = %self.log_id(), "tried to resume unknown or expired session {previd}");
                self.emit(out, Frame::Element(failed(xmlns, "item-not-found", old_h)));
            }
            Claim::Hibernating(session, hibernated) => {
                self.complete_resume(out, session, hibernated, &previd, h.as_deref())
            }
            Claim::Live => {
                self.sm.pending = Some(Box::new(PendingResume {
                    previd,
                    h,
                    held: Vec::new(),
                }))
            }
        }
    }

    /// Makes the resumed session this stream's: `<resumed/>` and the
    /// unacknowledged stanzas again (or `<failed/>` and a closed stream).
    fn complete_resume(
        &mut self,
        out: &mut Vec<Action>,
        session: Arc<Session>,
        hibernated: Box<Hibernated>,
        previd: &str,
        h: Option<&str>,
    ) {
        let Hibernated {
            jid,
            host,
            mut state,
            rx,
            ..
        } = *hibernated;
        tracing::debug!(session = %session.id, "resumed from {}", self.log_id());
        let mut ev =
            crate::hooks::Event::new(&self.server, "smacks-hibernation-end").with_origin(&session);
        self.server
            .fire_on_host(&host, "smacks-hibernation-end", &mut ev);
        session.state().secure = self.secure;
        let result = state.resume(previd, h);
        self.session = Some(session);
        self.host = Some(host);
        self.bound = Some(jid);
        self.sm.state = Some(state);
        self.sm.resumed_rx = Some(rx);
        match result {
            Resumption::Failed { failed, error } => {
                self.emit(out, Frame::Element(failed));
                self.fail(out, error);
            }
            Resumption::Resumed { resumed, again } => {
                self.emit(out, Frame::Element(resumed));
                for item in again {
                    if let Some(e) = registry::queued_element(item) {
                        self.emit(out, Frame::Element(e));
                    }
                }
                if let Some(r) = self
                    .sm
                    .state
                    .as_mut()
                    .and_then(|s| s.request_if_needed(true, std::time::Instant::now()))
                {
                    self.emit(out, Frame::Element(r));
                }
            }
        }
    }

    /// While a `<resume/>` waits for a takeover, what the client sends is
    /// kept for the resumed session (`None`: kept).
    pub(super) fn smacks_hold(&mut self, e: Element) -> Option<Element> {
        match self.sm.pending.as_mut() {
            Some(p) if !(e.name() == "resume" && sm::sm_xmlns(e.ns()).is_some()) => {
                p.held.push(e);
                None
            }
            _ => Some(e),
        }
    }

    /// Was this stream's session just claimed by a stream resuming it? Its
    /// connection is then simply closed (no last `<a/>`, no `</stream>`),
    /// as Prosody closes the old connection of a resumed session.
    pub(super) fn smacks_taken_over(&self) -> bool {
        self.sm
            .state
            .as_ref()
            .and_then(|s| s.token.as_deref())
            .is_some_and(|t| Registry::of(&self.server).takeover_requested(t))
    }

    /// A stanza from the client (after `<enable/>`, it counts).
    pub(super) fn smacks_count_inbound(&mut self) {
        if let Some(state) = self.sm.state.as_mut() {
            state.count_inbound();
        }
    }

    /// Emits a stanza the stream itself answers with (counted as sent).
    pub(super) fn emit_stanza(&mut self, out: &mut Vec<Action>, stanza: Element) {
        let after = self.track(Queued::Stanza(stanza.clone()));
        self.emit(out, Frame::Element(stanza));
        out.extend(after);
    }

    fn track(&mut self, item: Queued) -> Vec<Action> {
        let now = self.server.clock.now();
        let from = self
            .bound
            .as_ref()
            .map(|j| j.to_bare().to_string())
            .unwrap_or_default();
        let Some(state) = self.sm.state.as_mut() else {
            return Vec::new();
        };
        state.sent(item, &from, now);
        let mut after = Vec::new();
        if let Some(r) = state.request_if_needed(false, std::time::Instant::now()) {
            self.emit(&mut after, Frame::Element(r));
        }
        after
    }

    /// The connection task is about to write an outbound item: counts and
    /// keeps it if stream management is on (and says if an `<r/>` follows).
    pub fn smacks_outbound(&mut self, item: &Outbound) -> SmOutbound {
        match item {
            Outbound::Stanza(e) if e.ns() == NS_TAKEOVER => {
                let mut out = Vec::new();
                if let Some(pending) = self.sm.pending.take()
                    && let Some((session, hibernated)) =
                        Registry::of(&self.server).take_hibernated(&pending.previd)
                {
                    let PendingResume { previd, h, held } = *pending;
                    self.complete_resume(&mut out, session, hibernated, &previd, h.as_deref());
                    for e in held {
                        if self.is_closed() {
                            break;
                        }
                        self.handle_element(e, &mut out);
                    }
                }
                SmOutbound::Instead(out)
            }
            _ if self.sm.state.is_none() || self.is_closed() => SmOutbound::Write(Vec::new()),
            Outbound::Stanza(e) if is_stanza(e) => {
                SmOutbound::Write(self.track(Queued::Stanza(e.clone())))
            }
            Outbound::Raw(parts) => {
                let now = self.server.clock.now();
                SmOutbound::Write(self.track(Queued::Raw(parts.clone(), now)))
            }
            _ => SmOutbound::Write(Vec::new()),
        }
    }

    /// The stream is being closed (either side, cleanly or with an error):
    /// the last `<a/>` goes out first, as XEP-0198 asks.
    pub(super) fn smacks_closing(&mut self, out: &mut Vec<Action>) {
        self.sm.closing = true;
        if let Some(state) = &self.sm.state {
            let a = state.ack_element();
            self.emit(out, Frame::Element(a));
        }
    }

    /// After a resumption: the resumed session's outbound receiver, which
    /// the connection task drains from now on instead of its own.
    pub fn take_resumed_outbound(&mut self) -> Option<OutboundRx> {
        self.sm.resumed_rx.take()
    }

    /// The connection is gone. A resumable session whose connection was
    /// lost (not closed), or which a new stream is taking over, hibernates
    /// with `rx`; anything else ends here (unbound, its unacknowledged
    /// stanzas handled).
    ///
    /// What was queued for the session but never written (routed to it
    /// while its connection was going) is not dropped: it is handled as
    /// unacknowledged stanzas are, so a message goes to offline storage or
    /// back to its sender as an error, never nowhere (issue 21's soak).
    pub fn connection_ended(&mut self, rx: impl Into<OutboundRx>) {
        let mut rx = rx.into();
        if let Some(rx_back) = self.try_hibernate(rx) {
            rx = rx_back;
            // Closed first: from now on a sender sees the session as gone
            // (and falls back itself); what is queued can still be taken.
            rx.close();
            let mut rest = unwritten(&mut rx, self.server.clock.now());
            self.sm.unsent.append(&mut rest);
            self.end_session();
        }
    }

    /// Serialised stanzas a framed transport took for the client but never
    /// sent (BOSH's buffer when its session closed), for the session's end
    /// to handle with what is still queued ([`C2sStream::connection_ended`]).
    /// Under stream management they are in its queue already.
    pub fn not_delivered(&mut self, items: Vec<String>) {
        if self.sm.state.is_some() {
            return;
        }
        let now = self.server.clock.now();
        self.sm.unsent.extend(
            items
                .into_iter()
                .map(|xml| Queued::Raw(vec![bytes::Bytes::from(xml)], now)),
        );
    }

    fn try_hibernate(&mut self, rx: OutboundRx) -> Option<OutboundRx> {
        let token = self.sm.state.as_ref().and_then(|s| s.token.clone());
        let (Some(token), Some(_), Some(host)) = (token, &self.bound, &self.host) else {
            return Some(rx);
        };
        let registry = Registry::of(&self.server);
        if self.sm.closing && !registry.takeover_requested(&token) {
            return Some(rx);
        }
        let (Some(state), Some(jid)) = (self.sm.state.take(), self.bound.take()) else {
            return Some(rx);
        };
        match registry::hibernate(
            &self.server,
            &token,
            Hibernated::new(jid, host.clone(), state, rx),
        ) {
            Ok(()) => {
                self.handle_eof();
                None
            }
            Err(back) => {
                let Hibernated { jid, state, rx, .. } = *back;
                self.bound = Some(jid);
                self.sm.state = Some(state);
                Some(rx)
            }
        }
    }

    /// The session ends for good (called by `end_session`, before it
    /// unbinds): the id is revoked and unacknowledged stanzas handled.
    pub(super) fn smacks_session_end(&mut self) {
        let mut items = Vec::new();
        if let Some(mut state) = self.sm.state.take() {
            if let Some(token) = &state.token {
                Registry::of(&self.server).revoke(token);
            }
            items = state.queue.take_all();
        }
        // Written but unacknowledged first, then never written: in order.
        items.append(&mut self.sm.unsent);
        if let (Some(host), Some(session), Some(_)) = (&self.host, &self.session, &self.bound) {
            registry::handle_unacked(&self.server, host, session, items);
        }
    }
}

/// Everything still queued in a closed outbound receiver, as kept stanzas
/// (a takeover's wake-up and close requests are not stanzas).
fn unwritten(rx: &mut OutboundRx, now: f64) -> Vec<Queued> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        match item {
            Outbound::Stanza(e) if e.ns() == NS_TAKEOVER => {}
            Outbound::Stanza(e) => out.push(Queued::Stanza(e)),
            Outbound::Raw(parts) => out.push(Queued::Raw(parts, now)),
            Outbound::Close(_) => {}
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    //! A stream enables, acks, loses its connection and is resumed by a
    //! second stream — bytes in, actions out, no sockets.

    use std::time::{Duration, Instant};

    use base64::Engine as _;

    use super::super::tests::OneAccount;
    use super::*;
    use crate::c2s::negotiation::C2sSettings;
    use crate::server::Server;
    use crate::smacks::username_of_resumable;
    use crate::stream::StreamLimits;

    const OPEN: &str = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    pub(crate) fn server() -> Arc<Server> {
        let mut cfg = crate::ServerConfig::default();
        let mut section = crate::config::Section::default();
        section.set("c2s_require_encryption", crate::Value::Bool(false));
        section.set("smacks_max_unacked_stanzas", crate::Value::Integer(1));
        cfg.hosts.push(crate::HostConfig {
            name: "localhost".into(),
            kind: crate::HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        });
        let server = Server::new(cfg, crate::Clock::Fixed(0.0));
        let host = server.host("localhost").expect("host");
        host.set_auth_provider(Arc::new(OneAccount));
        host.mark_module_loaded("smacks");
        server
    }

    pub(crate) fn logged_in(server: &Arc<Server>) -> (C2sStream, OutboundRx, String) {
        let (tx, rx) = mpsc::unbounded_channel();
        let settings = C2sSettings {
            tls_available: false,
            direct_tls: false,
            unauthed_timeout: Duration::from_secs(300),
            limits: StreamLimits::default(),
            max_unauthed_stanza_size: None,
        };
        let mut s = C2sStream::new(server.clone(), tx, None, settings, Instant::now());
        s.handle_bytes(OPEN.as_bytes());
        let token = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0secret");
        let auth = format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        );
        assert!(written(&s.handle_bytes(auth.as_bytes())).contains("<success"));
        let features = written(&s.handle_bytes(OPEN.as_bytes()));
        (s, rx.into(), features)
    }

    pub(crate) fn written(actions: &[Action]) -> String {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Write(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// What the connection task does with what is queued for the client.
    pub(crate) fn drain(s: &mut C2sStream, rx: &mut OutboundRx) -> String {
        let mut out = String::new();
        while let Ok(item) = rx.try_recv() {
            let after = match s.smacks_outbound(&item) {
                SmOutbound::Write(after) => after,
                SmOutbound::Instead(actions) => {
                    out.push_str(&written(&actions));
                    continue;
                }
            };
            if let Outbound::Stanza(e) = item {
                out.push_str(&e.to_xml());
            }
            out.push_str(&written(&after));
        }
        out
    }

    #[tokio::test]
    async fn enable_ack_drop_and_resume() {
        let server = server();
        let (mut s, mut rx, features) = logged_in(&server);
        assert!(
            features.contains("<sm xmlns='urn:xmpp:sm:3'><optional/></sm>"),
            "{features}"
        );
        let out = written(&s.handle_bytes(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"));
        assert!(
            out.contains("<failed xmlns='urn:xmpp:sm:3'><unexpected-request"),
            "{out}"
        );
        s.handle_bytes(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>");
        let out = written(&s.handle_bytes(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"));
        let id = out
            .split("id='")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("an id")
            .to_string();
        assert_eq!(
            username_of_resumable(&server, "localhost", &id).as_deref(),
            Some("alice")
        );
        // Two stanzas from the client, two replies to it (unhandled iqs).
        for n in 0..2 {
            let iq = format!("<iq type='get' id='q{n}' to='localhost'><query xmlns='urn:x'/></iq>");
            s.handle_bytes(iq.as_bytes());
        }
        let out = drain(&mut s, &mut rx);
        assert_eq!(out.matches("type='error'").count(), 2, "{out}");
        assert!(
            out.ends_with("<r xmlns='urn:xmpp:sm:3'/>"),
            "max 1 unacked: {out}"
        );
        let out = written(&s.handle_bytes(b"<r xmlns='urn:xmpp:sm:3'/>"));
        assert_eq!(out, "<a xmlns='urn:xmpp:sm:3' h='2'/>");
        // The client saw one of the two; the connection is lost.
        s.handle_bytes(b"<a xmlns='urn:xmpp:sm:3' h='1'/>");
        s.handle_eof();
        s.connection_ended(rx);
        assert_eq!(crate::smacks::hibernating_count(&server), 1);
        let jid = crate::Jid::parse("alice@localhost/r").expect("jid");
        let session = server.sessions.get_full(&jid).expect("still bound");
        session.send(Element::new("message", NS_CLIENT).attr("id", "meanwhile"));

        let (mut again, _own_rx, features) = logged_in(&server);
        assert!(features.contains("urn:xmpp:sm:3"), "{features}");
        let resume = format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>");
        let out = written(&again.handle_bytes(resume.as_bytes()));
        assert!(
            out.starts_with(&format!(
                "<resumed xmlns='urn:xmpp:sm:3' h='2' previd='{id}'/>"
            )),
            "{out}"
        );
        assert!(out.contains("id='q1'"), "the unacked reply again: {out}");
        assert!(!out.contains("id='q0'"), "the acked one not: {out}");
        assert!(out.ends_with("<r xmlns='urn:xmpp:sm:3'/>"), "{out}");
        let mut resumed_rx = again.take_resumed_outbound().expect("the session's queue");
        let out = drain(&mut again, &mut resumed_rx);
        assert!(out.contains("id='meanwhile'"), "{out}");
        assert!(Arc::ptr_eq(again.session().expect("session"), &session));
        assert_eq!(crate::smacks::hibernating_count(&server), 0);
        // A clean close ends it for good: the id is revoked.
        let out = written(&again.close(None));
        assert!(out.starts_with("<a xmlns='urn:xmpp:sm:3' h='2'/>"), "{out}");
        again.connection_ended(resumed_rx);
        assert!(server.sessions.get_full(&jid).is_none());
        assert_eq!(username_of_resumable(&server, "localhost", &id), None);
    }
}
