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
            Err(()) => {
                tracing::debug!(session = %self.log_id(), "no ack after a read timeout: connection dead");
                self.handle_eof();
                ReadTimeout::Dead
            }
            Ok(r) => {
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
