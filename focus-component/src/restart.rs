//! Restarting a participant's session, as Jicofo re-invites with its
//! default `conference.reinvite-method = RestartJingle`: the old endpoint
//! expires on its bridge, the participant's sources are removed for the
//! others, its session ends with session-terminate (`success`, "moving")
//! and it is invited again with a fresh session-initiate (a new sid, on a
//! bridge chosen again). Every re-invite takes this path: ICE failure
//! reported by the client, a bridge that lost the endpoint, a participant
//! moved off a failed bridge.
//!
//! Restart requests from a participant are rate-limited per participant
//! as Jicofo's `conference.restart-request-rate-limits` does
//! ([`RestartLimits`]); a refused request is answered
//! `resource-constraint` ("rate-limited"). Jicofo checks it on
//! session-terminate with `<bridge-session restart='true'>`; lilt also
//! checks it on `session-info` reporting ICE failure, which restarts the
//! same way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use xmpp_core::{ErrorType, StanzaError};

use crate::focus::{Focus, Pending};
use crate::offer;
use crate::participant::Allocation;

/// Jicofo's `conference.restart-request-rate-limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimits {
    /// No request is accepted sooner than this after the last accepted
    /// one (`min-interval`, 5 s).
    pub min_interval: Duration,
    /// At most this many accepted per `interval` (`max-requests`, 5).
    pub max_requests: usize,
    /// `interval`, 1 minute.
    pub interval: Duration,
}

impl Default for RestartLimits {
    fn default() -> RestartLimits {
        RestartLimits {
            min_interval: Duration::from_secs(5),
            max_requests: 5,
            interval: Duration::from_secs(60),
        }
    }
}

/// One participant's accepted restart requests (refused ones are not
/// counted), as Jicofo's `RateLimit`.
#[derive(Debug, Clone, Default)]
pub struct RestartRequests {
    accepted: VecDeque<Instant>,
}

impl RestartRequests {
    /// Whether a request at `now` is accepted (and then counted).
    pub fn accept(&mut self, now: Instant, limits: &RestartLimits) -> bool {
        if let Some(last) = self.accepted.back()
            && now.saturating_duration_since(*last) < limits.min_interval
        {
            return false;
        }
        while self
            .accepted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > limits.interval)
        {
            self.accepted.pop_front();
        }
        if self.accepted.len() >= limits.max_requests {
            return false;
        }
        self.accepted.push_back(now);
        true
    }
}

/// Jicofo's answer to a restart request over the limit.
pub fn rate_limited() -> StanzaError {
    StanzaError::new(ErrorType::Wait, "resource-constraint").with_text("rate-limited")
}

impl Focus {
    /// A restart request from the participant counted against its limit:
    /// `Err` (rate-limited) when refused.
    pub(crate) fn accept_restart_request(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
    ) -> Result<(), StanzaError> {
        let limits = self.options.restart_limits;
        let accepted = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.participants.get_mut(nick))
            .is_some_and(|p| p.restart_requests.accept(now, &limits));
        if accepted {
            Ok(())
        } else {
            tracing::warn!(room, nick, "restart request rate-limited");
            Err(rate_limited())
        }
    }

    /// ICE failed: the endpoint expires on its bridge and the participant
    /// gets a new session (RestartJingle).
    pub(crate) fn restart_participant(&mut self, now: Instant, room: &str, nick: &str) {
        self.expire_endpoint(now, room, nick);
        self.restart_session(now, room, nick);
    }

    /// RestartJingle for a participant whose endpoint is gone from its
    /// bridge (expired, lost or the bridge itself failed): the session
    /// ends ([`Self::end_session_for_move`]) and a new one is offered after
    /// a fresh allocation.
    pub(crate) fn restart_session(&mut self, now: Instant, room: &str, nick: &str) {
        let Some(p) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.participants.get_mut(nick))
        else {
            return;
        };
        p.allocation = Allocation::None;
        self.end_session_for_move(now, room, nick);
        self.invite(now, room, nick);
    }

    /// The participant's session ends: its sources are removed for the
    /// others (source-remove after the signalling delay) and it gets
    /// session-terminate (`success`, "moving"), as Jicofo's
    /// `reInviteParticipants`. (lib-jitsi-meet 2.6726's handling of a
    /// transport-replace stalled ~17 s on a moved page before failing.)
    fn end_session_for_move(&mut self, now: Instant, room: &str, nick: &str) {
        let initiator = self.options.jid.clone();
        let id = self.id();
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        c.sources.remove_owner(nick);
        let Some(p) = c.participants.get_mut(nick) else {
            return;
        };
        p.transport = None;
        p.flush_at = None;
        let Some(session) = p.session.take() else {
            self.schedule_source_signaling(now, room, nick);
            return;
        };
        let iq = offer::session_terminate(
            &p.occupant_jid,
            &id,
            &initiator,
            &session.sid,
            "success",
            Some("moving"),
        );
        self.request(now, iq, Pending::Other);
        self.schedule_source_signaling(now, room, nick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jicofo_rate_limit() {
        let limits = RestartLimits::default();
        let mut r = RestartRequests::default();
        let t0 = Instant::now();
        assert!(r.accept(t0, &limits));
        // Sooner than min-interval: refused, and not counted.
        assert!(!r.accept(t0 + Duration::from_secs(1), &limits));
        assert!(!r.accept(t0 + Duration::from_secs(4), &limits));
        // Four more, 5 s apart: five in the minute; the sixth is refused.
        for n in 1..5 {
            assert!(r.accept(t0 + Duration::from_secs(5 * n), &limits));
        }
        assert!(!r.accept(t0 + Duration::from_secs(25), &limits));
        assert!(!r.accept(t0 + Duration::from_secs(59), &limits));
        // The first falls out of the interval.
        assert!(r.accept(t0 + Duration::from_secs(61), &limits));
    }
}
