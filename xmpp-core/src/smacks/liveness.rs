//! Stream management and time, on the [`C2sStream`] side (a child module
//! of `c2s::negotiation`): the `smacks_max_ack_delay` timer and its
//! `smacks-ack-delayed` event, the forced `<r/>` on a read timeout (and
//! the connection given up when even that is not answered), and what a
//! resumable session does when the server stops — all as Prosody's
//! mod_smacks (0.12). Deadlines go out through [`C2sStream::deadline`];
//! the connection tasks only keep the timers.

use std::time::Instant;

use crate::hooks::Event;
use crate::smacks::registry::{self, Registry};
use crate::smacks::state::Silence;

use super::{Action, C2sStream, Frame};

/// What a read timeout leads to ([`C2sStream::handle_read_timeout`]).
#[derive(Debug)]
pub enum ReadTimeout {
    /// Not stream management's business: the transport's own keepalive
    /// (a whitespace, a WebSocket ping).
    Keepalive,
    /// Write these (the forced `<r/>`) instead of a keepalive.
    Request(Vec<Action>),
    /// The `<r/>` sent before was not answered either: the connection is
    /// dead. Drop it (the session hibernates if it is resumable).
    Dead,
}

impl C2sStream {
    /// When the unanswered `<r/>` becomes late, if one is out.
    pub(super) fn smacks_deadline(&self) -> Option<Instant> {
        self.sm.state.as_ref().and_then(|s| s.ack_delayed_at)
    }

    /// Time passed: `smacks-ack-delayed` on the host if the ack is late
    /// (origin: the session), once per `<r/>`.
    pub(super) fn smacks_timeout(&mut self, now: Instant) {
        let late = self
            .sm
            .state
            .as_mut()
            .is_some_and(|s| s.ack_delay_elapsed(now));
        if !late {
            return;
        }
        let (Some(host), Some(session)) = (&self.host, &self.session) else {
            return;
        };
        let unacked = self
            .sm
            .state
            .as_ref()
            .map_or(0, |s| s.queue.count_unacked());
        tracing::debug!(session = %session.id, "Firing event 'smacks-ack-delayed', queue = {unacked}");
        let mut ev = Event::new(&self.server, "smacks-ack-delayed")
            .with_origin(session)
            .with_field("unacked", i64::from(unacked));
        self.server
            .fire_on_host(host, "smacks-ack-delayed", &mut ev);
    }

    /// The connection was silent for `read_timeout` (Prosody's
    /// `c2s-read-timeout`). With stream management on, an `<r/>` is forced
    /// out instead of a keepalive; if the previous one is still
    /// unanswered the connection is taken for dead and closed without a
    /// word (so a resumable session hibernates).
    pub fn handle_read_timeout(&mut self) -> ReadTimeout {
        if self.is_closed() {
            return ReadTimeout::Keepalive;
        }
        let Some(state) = self.sm.state.as_mut() else {
            return ReadTimeout::Keepalive;
        };
        match state.read_timeout(Instant::now()) {
            Silence::Dead => {
                tracing::debug!(session = %self.log_id(), "no ack after a read timeout: connection dead");
                self.handle_eof();
                ReadTimeout::Dead
            }
            Silence::Ask(r) => {
                let mut out = Vec::new();
                if let Some(r) = r {
                    self.emit(&mut out, Frame::Element(r));
                }
                ReadTimeout::Request(out)
            }
        }
    }

    /// The server stops. A resumable session keeps its `h` in `smacks_h`
    /// (a client resuming after the restart is told how far it got), its
    /// unacknowledged stanzas are stored offline or bounced now, and its
    /// connection is closed without a word — Prosody's `server-stopping`
    /// handler in mod_smacks. `None` for any other stream (closed with
    /// `system-shutdown` as usual).
    pub fn smacks_server_stopping(&mut self) -> Option<Vec<Action>> {
        let token = self.sm.state.as_ref().and_then(|s| s.token.clone())?;
        let (Some(host), Some(session), Some(_)) =
            (self.host.clone(), self.session.clone(), &self.bound)
        else {
            return None;
        };
        let state = self.sm.state.as_mut()?;
        let username = session.username().unwrap_or_default();
        registry::remember_h(&self.server, &host, &username, &token, state.handled);
        Registry::of(&self.server).revoke(&token);
        state.token = None;
        let unacked = state.queue.take_all();
        registry::handle_unacked(&self.server, &host, &session, unacked);
        self.handle_eof();
        Some(vec![Action::Close])
    }
}

#[cfg(test)]
mod tests {
    //! Ack timers, read timeouts, takeovers, replacement by a bind and
    //! shutdown on streams fed bytes — no sockets.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::c2s::negotiation::smacks_stream::tests::{drain, logged_in, server, written};
    use crate::session::{Outbound, OutboundRx};
    use crate::smacks::hibernating_count;
    use crate::stanza::{Element, NS_CLIENT};

    const BIND: &[u8] = b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>";

    /// Logged in, bound to `alice@localhost/r`, resumable: the stream,
    /// its outbound receiver and the resumption id.
    fn resumable(server: &Arc<crate::Server>) -> (C2sStream, OutboundRx, String) {
        let (mut s, rx, _) = logged_in(server);
        s.handle_bytes(BIND);
        let out = written(&s.handle_bytes(b"<enable xmlns='urn:xmpp:sm:3' resume='true'/>"));
        let id = out
            .split("id='")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .expect("an id")
            .to_string();
        (s, rx, id)
    }

    fn alice_r() -> crate::Jid {
        crate::Jid::parse("alice@localhost/r").expect("jid")
    }

    #[tokio::test]
    async fn a_late_ack_fires_smacks_ack_delayed_once() {
        let server = server();
        let fired = Arc::new(Mutex::new(0));
        let seen = fired.clone();
        let host = server.host("localhost").expect("host");
        host.events.hook("smacks-ack-delayed", 0, move |e| {
            assert!(e.origin.is_some());
            *seen.lock().unwrap() += 1;
            false
        });
        let (mut s, mut rx, _) = resumable(&server);
        assert_eq!(s.deadline(), None, "authenticated, nothing asked");
        let session = server.sessions.get_full(&alice_r()).expect("bound");
        for n in 0..2 {
            session.send(Element::new("message", NS_CLIENT).attr("id", n.to_string()));
        }
        assert!(drain(&mut s, &mut rx).ends_with("<r xmlns='urn:xmpp:sm:3'/>"));
        let due = s.deadline().expect("the ack timer");
        assert!(due > Instant::now() + Duration::from_secs(29));
        s.handle_timeout(due - Duration::from_secs(1));
        assert_eq!(*fired.lock().unwrap(), 0);
        s.handle_timeout(due);
        assert_eq!(*fired.lock().unwrap(), 1);
        assert_eq!(s.deadline(), None, "once per <r/>");
        // An answer disarms a new timer.
        s.handle_bytes(b"<a xmlns='urn:xmpp:sm:3' h='2'/>");
        assert_eq!(s.deadline(), None);
    }

    /// Issue 21's soak: a message routed to a session whose connection
    /// then ends, queued but never written, went nowhere. It goes where
    /// an unacknowledged one goes: offline storage (the user's last
    /// resource), with or without stream management.
    #[tokio::test]
    async fn a_message_queued_but_never_written_goes_offline() {
        let server = server();
        let stored = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = stored.clone();
        let host = server.host("localhost").expect("host");
        host.events.hook("message/offline/handle", 0, move |e| {
            let id = e.stanza().id().unwrap_or_default().to_string();
            seen.lock().unwrap().push(id);
            true
        });
        let (mut s, rx, _) = logged_in(&server);
        s.handle_bytes(BIND);
        s.handle_bytes(b"<presence/>");
        let session = server.sessions.get_full(&alice_r()).expect("bound");
        for id in ["late1", "late2"] {
            let m = Element::new("message", NS_CLIENT)
                .attr("id", id)
                .attr("type", "chat")
                .attr("from", "bob@localhost/x")
                .attr("to", "alice@localhost/r");
            assert!(session.send(m), "queued");
        }
        s.handle_eof();
        s.connection_ended(rx);
        assert_eq!(*stored.lock().unwrap(), ["late1", "late2"]);
        assert!(server.sessions.get_full(&alice_r()).is_none(), "unbound");
        let after = Element::new("message", NS_CLIENT).attr("id", "after");
        assert!(!session.send(after), "refused: the router falls back");
    }

    /// BOSH's buffer at the session's end (serialised stanzas): the
    /// messages in it go offline too, stream elements are skipped.
    #[tokio::test]
    async fn what_a_transport_never_delivered_goes_offline() {
        let server = server();
        let stored = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = stored.clone();
        let host = server.host("localhost").expect("host");
        host.events.hook("message/offline/handle", 0, move |e| {
            let id = e.stanza().id().unwrap_or_default().to_string();
            seen.lock().unwrap().push(id);
            true
        });
        let (mut s, rx, _) = logged_in(&server);
        s.handle_bytes(BIND);
        s.handle_bytes(b"<presence/>");
        let session = server.sessions.get_full(&alice_r()).expect("bound");
        session.send(Element::new("message", NS_CLIENT).attr("id", "queued"));
        s.not_delivered(vec![
            "<message xmlns='jabber:client' id='buffered' type='chat' to='alice@localhost/r'><body>x</body></message>".into(),
            "<stream:features><bind/></stream:features>".into(),
        ]);
        s.handle_eof();
        s.connection_ended(rx);
        assert_eq!(*stored.lock().unwrap(), ["buffered", "queued"]);
    }

    #[tokio::test]
    async fn a_read_timeout_asks_then_gives_the_connection_up() {
        let server = server();
        let (mut plain, _rx, _) = logged_in(&server);
        assert!(matches!(
            plain.handle_read_timeout(),
            ReadTimeout::Keepalive
        ));
        drop(plain);
        let (mut s, rx, _) = resumable(&server);
        let ReadTimeout::Request(actions) = s.handle_read_timeout() else {
            panic!("no <r/>")
        };
        assert_eq!(written(&actions), "<r xmlns='urn:xmpp:sm:3'/>");
        assert!(matches!(s.handle_read_timeout(), ReadTimeout::Dead));
        assert!(s.is_closed());
        s.connection_ended(rx);
        assert_eq!(hibernating_count(&server), 1, "lost, not closed");
    }

    #[tokio::test]
    async fn a_takeover_closes_silently_and_keeps_what_came_meanwhile() {
        let server = server();
        let (mut old, mut old_rx, id) = resumable(&server);
        let (mut new, mut new_rx, _) = logged_in(&server);
        let resume = format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>");
        assert_eq!(written(&new.handle_bytes(resume.as_bytes())), "");
        // Before the takeover is done: a stanza and an <r/>.
        let out = written(&new.handle_bytes(
            b"<iq type='get' id='early' to='localhost'><query xmlns='urn:x'/></iq><r xmlns='urn:xmpp:sm:3'/>",
        ));
        assert_eq!(out, "", "held, not refused");
        // The old connection is told to close: it just goes.
        let Ok(Outbound::Close(None)) = old_rx.try_recv() else {
            panic!("no close for the old connection")
        };
        let actions = old.close(None);
        assert!(
            matches!(actions.as_slice(), [Action::Close]),
            "no <a/>, no </stream>"
        );
        old.connection_ended(old_rx);
        let out = drain(&mut new, &mut new_rx);
        assert!(
            out.starts_with("<resumed xmlns='urn:xmpp:sm:3' h='0'"),
            "{out}"
        );
        assert!(
            out.contains("<a xmlns='urn:xmpp:sm:3' h='1'/>"),
            "the early iq counted as the resumed session's: {out}"
        );
        assert!(!out.contains("not-authorized"), "{out}");
        let mut resumed_rx = new.take_resumed_outbound().expect("the queue");
        let out = drain(&mut new, &mut resumed_rx);
        assert!(out.contains("id='early'"), "its reply: {out}");
    }

    #[tokio::test]
    async fn a_bind_replaces_a_hibernating_session_at_once() {
        let server = server();
        let (mut s, rx, id) = resumable(&server);
        let old = server.sessions.get_full(&alice_r()).expect("bound");
        s.handle_eof();
        s.connection_ended(rx);
        assert_eq!(hibernating_count(&server), 1);
        let (mut other, _rx, _) = logged_in(&server);
        other.handle_bytes(BIND);
        assert_eq!(hibernating_count(&server), 0);
        let now = server.sessions.get_full(&alice_r()).expect("bound");
        assert!(!Arc::ptr_eq(&old, &now));
        assert_eq!(
            crate::smacks::username_of_resumable(&server, "localhost", &id),
            None
        );
    }

    #[tokio::test]
    async fn shutdown_keeps_the_counter_and_drops_the_connection() {
        let server = server();
        let (mut s, rx, id) = resumable(&server);
        s.handle_bytes(b"<iq type='get' id='x' to='localhost'><query xmlns='urn:x'/></iq>");
        let actions = s.smacks_server_stopping().expect("resumable");
        assert!(matches!(actions.as_slice(), [Action::Close]));
        s.connection_ended(rx);
        assert_eq!(hibernating_count(&server), 0);
        assert!(server.sessions.get_full(&alice_r()).is_none());
        // (The `h` kept in `smacks_h` needs a storage driver: checked
        // end to end in tests/python/test_smacks.py.)
        assert_eq!(
            crate::smacks::username_of_resumable(&server, "localhost", &id),
            None
        );
    }
}
