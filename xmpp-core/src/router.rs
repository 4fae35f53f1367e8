//! The stanza router, as Prosody's `core/stanza_router.lua`:
//!
//! - [`Server::process_stanza`] (`core_process_stanza`): a stanza from a
//!   session's stream is checked, its `from` stamped (c2s) and its `to`
//!   normalised, then posted;
//! - [`Server::post_stanza`] (`core_post_stanza`): fires `pre-<name>/<type>`
//!   on the sender's host (for client stanzas), then `<name>/<type>` on the
//!   target host, where `<type>` is `full`, `bare` or `host`; stanzas to
//!   the sender's own account are `to_self` and IQs fire `iq/self` first;
//! - what no handler takes gets Prosody's unhandled-stanza treatment;
//! - non-local targets fire `route/remote`, then go to [`crate::s2s`], and
//!   without s2s get `not-allowed`.

use std::sync::Arc;

use crate::error::{StanzaError, StreamError, StreamErrorCondition};
use crate::hooks::Event;
use crate::host::Host;
use crate::jid::Jid;
use crate::server::Server;
use crate::session::{Session, SessionKind};
use crate::stanza::Element;

/// Is this a reply type that must never be answered with an error?
pub fn is_reply_type(stanza: &Element) -> bool {
    matches!(stanza.type_(), Some("error") | Some("result"))
}

impl Server {
    /// `core_process_stanza`: a stanza arrived on `origin`'s stream.
    pub fn process_stanza(self: &Arc<Self>, origin: &Arc<Session>, mut stanza: Element) {
        if stanza.name() == "iq"
            && let Err(e) = check_iq(&stanza)
        {
            if !is_reply_type(&stanza) {
                origin.send(e.reply_to(&stanza));
            }
            return;
        }
        if origin.kind == SessionKind::C2s {
            match origin.full_jid() {
                Some(jid) => stanza.set_attr("from", Some(jid.to_string())),
                None => {
                    if !is_reply_type(&stanza) {
                        origin.send(
                            StanzaError::new(crate::error::ErrorType::Auth, "not-authorized")
                                .reply_to(&stanza),
                        );
                    }
                    return;
                }
            }
        } else if let Some(from) = stanza.from().map(str::to_string) {
            match Jid::parse(&from) {
                Ok(j) => stanza.set_attr("from", Some(j.to_string())),
                Err(_) => {
                    if !is_reply_type(&stanza) {
                        let e = StanzaError::jid_malformed()
                            .with_text(format!("The source address is invalid: {from}"));
                        origin.send(e.reply_to(&stanza));
                    }
                    return;
                }
            }
        }
        if let Some(to) = stanza.to().map(str::to_string) {
            match Jid::parse(&to) {
                Ok(j) => stanza.set_attr("to", Some(j.to_string())),
                Err(_) => {
                    tracing::debug!(session = %origin.id, "stanza with invalid destination {to:?}");
                    if !is_reply_type(&stanza) {
                        let e = StanzaError::jid_malformed()
                            .with_text(format!("The destination address is invalid: {to}"));
                        origin.send(e.reply_to(&stanza));
                    }
                    return;
                }
            }
        }
        let preevents = origin.kind == SessionKind::C2s;
        self.post_stanza(origin, stanza, preevents);
    }

    /// `core_post_stanza`: delivers a checked stanza to the hooks of its
    /// target host. `preevents` fires `pre-*` events on the sender's host.
    pub fn post_stanza(
        self: &Arc<Self>,
        origin: &Arc<Session>,
        mut stanza: Element,
        preevents: bool,
    ) {
        let to = match stanza.to().map(Jid::parse) {
            Some(Ok(j)) => Some(j),
            Some(Err(_)) => {
                if !is_reply_type(&stanza) {
                    origin.send(StanzaError::jid_malformed().reply_to(&stanza));
                }
                return;
            }
            None => None,
        };
        let mut to_self = false;
        // Prosody's types: a JID without a node is "/host", with or
        // without a resource (`host/announce/online` is a host event).
        let to_type = match &to {
            Some(j) if j.is_full() && j.node().is_some() => "/full",
            Some(j) if j.node().is_some() => {
                if origin.kind == SessionKind::C2s
                    && j.domain() == origin.host
                    && origin.username().as_deref() == j.node()
                {
                    stanza.set_attr("to", None);
                    to_self = true;
                }
                "/bare"
            }
            Some(_) => "/host",
            None => {
                to_self = true;
                "/bare"
            }
        };
        let name = stanza.name().to_string();
        let mut event = Event::new(self, "").with_origin(origin).with_stanza(stanza);
        event.to_self = to_self;

        if preevents
            && let Some(h) = self.host(&origin.host)
            && self.fire_on_host(&h, &format!("pre-{name}{to_type}"), &mut event)
        {
            return;
        }
        let target_host = match &to {
            Some(j) => self
                .host(&j.to_bare().to_string())
                .or_else(|| self.host(j.domain())),
            None => self.host(&origin.host),
        };
        let Some(h) = target_host else {
            let stanza = event
                .stanza
                .take()
                .unwrap_or_else(|| Element::new(name, ""));
            // `core_route_stanza` reads the target again: a `pre-*` handler
            // may have rewritten it to a local host (Jitsi's domain mapper).
            if let Some(Ok(j)) = stanza.to().map(Jid::parse)
                && Some(&j) != to.as_ref()
                && (self.host(&j.to_bare().to_string()).is_some()
                    || self.host(j.domain()).is_some())
            {
                self.post_stanza(origin, stanza, false);
                return;
            }
            self.route_remote(origin, stanza);
            return;
        };
        if to_self && name == "iq" && self.fire_on_host(&h, "iq/self", &mut event) {
            return;
        }
        if self.fire_on_host(&h, &format!("{name}{to_type}"), &mut event) {
            return;
        }
        if let Some(stanza) = event.stanza.take() {
            self.handle_unhandled_stanza(&h, origin, stanza);
        }
    }

    /// What Prosody does with a stanza no module took: IQ get/set and
    /// other non-reply stanzas get `service-unavailable`.
    pub fn handle_unhandled_stanza(
        self: &Arc<Self>,
        host: &Arc<Host>,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        if stanza.name() == "iq" && !matches!(stanza.type_(), Some("get") | Some("set")) {
            tracing::debug!(host = %host.name, "discarding unhandled iq of type {:?}", stanza.type_());
            return;
        }
        if !stanza.is_stanza() {
            tracing::warn!(host = %host.name, "unhandled stream element <{} xmlns='{}'>", stanza.name(), stanza.ns());
            origin.close(Some(StreamError::new(
                StreamErrorCondition::UnsupportedStanzaType,
            )));
            return;
        }
        tracing::debug!(host = %host.name, "unhandled {} stanza to {:?}", stanza.name(), stanza.to());
        if !is_reply_type(&stanza) {
            self.reply_error(origin, &stanza, StanzaError::service_unavailable());
        }
    }

    /// Sends an error reply for `stanza` back to where it came from.
    pub fn reply_error(
        self: &Arc<Self>,
        origin: &Arc<Session>,
        stanza: &Element,
        error: StanzaError,
    ) {
        if is_reply_type(stanza) {
            return;
        }
        let reply = error.reply_to(stanza);
        if origin.kind == SessionKind::Local {
            // A module's own stanza bounced: route the error to whom it names.
            self.send_from_host_session(origin, reply);
        } else {
            origin.send(reply);
        }
    }

    /// `core_route_stanza` for a non-local target: `route/remote`, and
    /// without s2s Prosody's "not enabled" error.
    pub fn route_remote(self: &Arc<Self>, origin: &Arc<Session>, stanza: Element) {
        let Some(h) = self.host(&origin.host) else {
            return;
        };
        let mut event = Event::new(self, "").with_origin(origin).with_stanza(stanza);
        if self.fire_on_host(&h, "route/remote", &mut event) {
            return;
        }
        if let Some(stanza) = event.stanza.take() {
            // Federation, when it runs.
            let Some(stanza) = crate::s2s::manager::route_or_return(self, origin, stanza) else {
                return;
            };
            if is_reply_type(&stanza) {
                return;
            }
            let e = StanzaError::not_allowed()
                .with_text("Communication with remote domains is not enabled");
            let mut reply = e.reply_to(&stanza);
            if reply.from().is_none() {
                reply.set_attr("from", Some(origin.host.clone()));
            }
            if origin.kind == SessionKind::Local {
                self.send_from_host_session(origin, reply);
            } else {
                origin.send(reply);
            }
        }
    }

    /// Prosody's `module:send`: a stanza from a host (or a module on it).
    pub fn send_from_host(self: &Arc<Self>, host: &Arc<Host>, stanza: Element) {
        self.post_stanza(&host.local_session, stanza, false);
    }

    fn send_from_host_session(self: &Arc<Self>, origin: &Arc<Session>, stanza: Element) {
        // Errors to a host about its own stanzas end here, as in Prosody.
        if stanza.to().is_some_and(|t| t == origin.host) || stanza.to().is_none() {
            tracing::debug!(
                "dropping error addressed to host {}: {}",
                origin.host,
                stanza.to_xml()
            );
            return;
        }
        self.post_stanza(origin, stanza, false);
    }

    /// Delivers directly to a bound full JID; `false` if there is none.
    pub fn deliver_to_full(&self, to: &Jid, stanza: Element) -> bool {
        match self.sessions.get_full(to) {
            Some(s) => s.send(stanza),
            None => false,
        }
    }
}

/// Prosody's IQ checks: an `id`, a valid `type`, and one child for get/set.
fn check_iq(stanza: &Element) -> Result<(), StanzaError> {
    if stanza.id().is_none() {
        return Err(StanzaError::bad_request().with_text("iq stanza missing id attribute"));
    }
    match stanza.type_() {
        Some("get") | Some("set") => {
            if stanza.children().count() != 1 {
                return Err(StanzaError::bad_request()
                    .with_text("Incorrect number of children for IQ stanza"));
            }
        }
        Some("result") | Some("error") => {}
        _ => return Err(StanzaError::bad_request().with_text("Invalid IQ type")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Outbound;
    use crate::stanza::NS_CLIENT;
    use tokio::sync::mpsc;

    fn bound_session(
        server: &Arc<Server>,
        user: &str,
        res: &str,
    ) -> (Arc<Session>, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let s = Arc::new(Session::new(SessionKind::C2s, "localhost", None, tx));
        let jid = Jid::from_parts(Some(user), "localhost", Some(res)).unwrap();
        {
            let mut st = s.state();
            st.username = Some(user.into());
            st.resource = Some(res.into());
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
    fn unhandled_iq_gets_service_unavailable() {
        let server = Server::for_tests();
        let (a, mut rx) = bound_session(&server, "a", "r");
        let iq = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "1")
            .child(Element::new("q", "urn:x"));
        server.process_stanza(&a, iq);
        let reply = next_stanza(&mut rx);
        assert_eq!(reply.type_(), Some("error"));
        assert!(
            reply
                .get_child("error", NS_CLIENT)
                .unwrap()
                .get_child("service-unavailable", crate::stanza::NS_STANZAS)
                .is_some()
        );
    }

    #[test]
    fn malformed_to_gets_jid_malformed_and_bad_iq_bad_request() {
        let server = Server::for_tests();
        let (a, mut rx) = bound_session(&server, "a", "r");
        let m = Element::new("message", NS_CLIENT)
            .attr("to", "@@bad")
            .attr("id", "m1");
        server.process_stanza(&a, m);
        let reply = next_stanza(&mut rx);
        assert!(
            reply
                .get_child("error", NS_CLIENT)
                .unwrap()
                .get_child("jid-malformed", crate::stanza::NS_STANZAS)
                .is_some()
        );
        let iq = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "2");
        server.process_stanza(&a, iq);
        let reply = next_stanza(&mut rx);
        assert!(
            reply
                .get_child("error", NS_CLIENT)
                .unwrap()
                .get_child("bad-request", crate::stanza::NS_STANZAS)
                .is_some()
        );
    }

    #[test]
    fn from_is_stamped_and_events_fire_by_target_type() {
        let server = Server::for_tests();
        let (a, _rx) = bound_session(&server, "a", "r");
        let host = server.host("localhost").unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        for ev in [
            "pre-message/bare",
            "message/bare",
            "message/full",
            "message/host",
        ] {
            let seen = seen.clone();
            host.events.hook(ev, 0, move |e| {
                seen.lock()
                    .unwrap()
                    .push((e.name.clone(), e.stanza().from().unwrap_or("").to_string()));
                e.name.starts_with("message/")
            });
        }
        for to in ["b@localhost", "b@localhost/x", "localhost"] {
            let m = Element::new("message", NS_CLIENT)
                .attr("to", to)
                .attr("from", "spoof@evil");
            server.process_stanza(&a, m);
        }
        let seen = seen.lock().unwrap();
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "pre-message/bare",
                "message/bare",
                "message/full",
                "message/host"
            ]
        );
        assert!(seen.iter().all(|(_, f)| f == "a@localhost/r"));
    }

    #[test]
    fn remote_targets_are_refused_without_s2s() {
        let server = Server::for_tests();
        let (a, mut rx) = bound_session(&server, "a", "r");
        let m = Element::new("message", NS_CLIENT)
            .attr("to", "x@remote.example")
            .attr("id", "z");
        server.process_stanza(&a, m);
        let reply = next_stanza(&mut rx);
        assert!(
            reply
                .get_child("error", NS_CLIENT)
                .unwrap()
                .get_child("not-allowed", crate::stanza::NS_STANZAS)
                .is_some()
        );
    }
}
