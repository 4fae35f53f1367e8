//! One stream's stream-management state, sans IO: what `<enable/>`, `<r/>`,
//! `<a/>` and `<resume/>` change and which elements answer them, as
//! Prosody's mod_smacks (0.12) does.
//!
//! Inbound: every stanza the client sends after `<enable/>` counts
//! (`handled`, Prosody's `handled_stanza_count`). Outbound: every stanza
//! written is kept in the [`SmQueue`] until acknowledged; messages and
//! presences are kept with a `<delay/>` (XEP-0203) stamped when they were
//! sent, so a copy retransmitted after resumption or stored offline says
//! when it was meant to arrive. When more than `smacks_max_unacked_stanzas`
//! are unacknowledged the server asks with `<r/>` (once, until an `<a/>`).

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::host::Host;
use crate::stanza::Element;

use super::queue::{AckError, SmQueue};
use super::{NS_DELAY, NS_STANZAS};

/// The options of mod_smacks, per host with global fallback.
#[derive(Debug, Clone, PartialEq)]
pub struct SmacksSettings {
    /// `smacks_max_unacked_stanzas` (0: ask after every stanza).
    pub max_unacked: u32,
    /// `smacks_hibernation_time` (600 s).
    pub hibernation: Duration,
    /// `smacks_max_queue_size` (500).
    pub max_queue: usize,
    /// `smacks_max_old_sessions` (10): `h` values kept per user for
    /// `<failed h='...'/>` after a session expired.
    pub max_old_sessions: usize,
    /// `smacks_max_ack_delay` (30 s; 0: never): how long an `<r/>` may
    /// wait for its `<a/>` before `smacks-ack-delayed` is fired.
    pub max_ack_delay: Duration,
}

impl Default for SmacksSettings {
    fn default() -> SmacksSettings {
        SmacksSettings {
            max_unacked: 0,
            hibernation: Duration::from_secs(600),
            max_queue: 500,
            max_old_sessions: 10,
            max_ack_delay: Duration::from_secs(30),
        }
    }
}

impl SmacksSettings {
    /// The host's options; a malformed value keeps the default (and is
    /// logged with where it was set).
    pub fn for_host(host: &Host) -> SmacksSettings {
        let d = SmacksSettings::default();
        let num = |name: &str, default: i64| match host.option_i64(name, default) {
            Ok(v) => v.max(0),
            Err(e) => {
                tracing::warn!(host = %host.name, "{e}");
                default
            }
        };
        SmacksSettings {
            max_unacked: num("smacks_max_unacked_stanzas", 0).min(u32::MAX as i64) as u32,
            hibernation: Duration::from_secs(num("smacks_hibernation_time", 600) as u64),
            max_queue: num("smacks_max_queue_size", d.max_queue as i64).max(1) as usize,
            max_old_sessions: num("smacks_max_old_sessions", 10) as usize,
            max_ack_delay: Duration::from_secs(num("smacks_max_ack_delay", 30) as u64),
        }
    }
}

/// A stanza kept until the client acknowledges it.
#[derive(Debug, Clone)]
pub enum Queued {
    Stanza(Element),
    /// A pre-serialised stanza ([`crate::Outbound::Raw`]) and when it was
    /// sent (the `<delay/>` is added only if it is ever re-parsed).
    Raw(Vec<Bytes>, f64),
}

/// What a `<resume/>` of this state leads to.
#[derive(Debug)]
pub enum Resumption {
    /// Send `resumed`, then `again`.
    Resumed {
        resumed: Element,
        again: Vec<Queued>,
    },
    /// Send `failed` and close the stream with `error`.
    Failed { failed: Element, error: StreamError },
}

/// What a read timeout means for a stream with stream management.
#[derive(Debug, PartialEq, Eq)]
pub enum Silence {
    /// Send this `<r/>` (a forced one).
    Ask(Option<Element>),
    /// The last `<r/>` was not answered either: the connection is dead.
    Dead,
}

/// What an `<a/>` leads to.
#[derive(Debug, PartialEq, Eq)]
pub enum AckOutcome {
    /// Fine; maybe ask for the next ack at once.
    Ok(Option<Element>),
    /// Close the stream with this error.
    Close(StreamError),
}

/// Stream management on one stream.
#[derive(Debug)]
pub struct SmacksState {
    /// `urn:xmpp:sm:3` or `urn:xmpp:sm:2`, as the client enabled it.
    pub xmlns: &'static str,
    /// Stanzas handled from the client (mod 2^32).
    pub handled: u32,
    pub queue: SmQueue<Queued>,
    /// An `<r/>` is out and no `<a/>` came back yet.
    pub awaiting_ack: bool,
    /// The `h` expected when the last `<r/>` went out (no second `<r/>`
    /// for the same count, against ack loops).
    last_requested_h: Option<u32>,
    /// The resumption id (`<enabled id=...>`), when resumable.
    pub token: Option<String>,
    pub settings: SmacksSettings,
    /// When `smacks-ack-delayed` fires if no `<a/>` came by then (set by
    /// an `<r/>` of ours, as Prosody's `delayed_ack_timer`).
    pub ack_delayed_at: Option<Instant>,
}

impl SmacksState {
    /// `<enable/>` accepted: the state and the `<enabled/>` answer. With
    /// `token` (a resumption id) the stream is resumable.
    pub fn enable(
        xmlns: &'static str,
        settings: SmacksSettings,
        resume_attr: Option<&str>,
        token: Option<String>,
    ) -> (SmacksState, Element) {
        let mut enabled = Element::new("enabled", xmlns);
        if let Some(t) = &token {
            enabled = enabled
                .attr("id", t.as_str())
                .attr_opt("resume", resume_attr)
                .attr("max", settings.hibernation.as_secs().to_string());
        }
        let state = SmacksState {
            xmlns,
            handled: 0,
            queue: SmQueue::new(settings.max_queue),
            awaiting_ack: false,
            last_requested_h: None,
            token,
            settings,
            ack_delayed_at: None,
        };
        (state, enabled)
    }

    /// A stanza came from the client.
    pub fn count_inbound(&mut self) {
        self.handled = self.handled.wrapping_add(1);
    }

    /// `<a h='...'/>` for what we handled.
    pub fn ack_element(&self) -> Element {
        Element::new("a", self.xmlns).attr("h", self.handled.to_string())
    }

    /// `<r/>` from the client: our `<a/>`, and our own `<r/>` if due.
    pub fn handle_r(&mut self, now: Instant) -> Vec<Element> {
        let mut out = vec![self.ack_element()];
        out.extend(self.request_if_needed(false, now));
        out
    }

    /// `<a/>` from the client.
    pub fn handle_a(&mut self, h: Option<&str>, now: Instant) -> AckOutcome {
        self.awaiting_ack = false;
        self.ack_delayed_at = None;
        let Some(h) = h.and_then(parse_h) else {
            return AckOutcome::Close(StreamError::with_text(
                Cond::InvalidXml,
                "Missing or invalid 'h' attribute",
            ));
        };
        match self.queue.ack(h) {
            Ok(_) => AckOutcome::Ok(self.request_if_needed(false, now)),
            Err(e) => AckOutcome::Close(ack_error(e)),
        }
    }

    /// A stanza was written to the client (or queued while hibernating).
    /// `from` is the user's bare JID and `now` the Unix time, for the
    /// `<delay/>` of the kept copy.
    pub fn sent(&mut self, item: Queued, from: &str, now: f64) {
        let item = match item {
            Queued::Stanza(mut e) => {
                add_delay(&mut e, from, now);
                Queued::Stanza(e)
            }
            raw => raw,
        };
        self.queue.push(item);
    }

    /// `<r/>` when more than `smacks_max_unacked_stanzas` wait for an ack
    /// (or always with `force`), unless one is already out. The first `<r/>`
    /// without an answer arms the `smacks_max_ack_delay` timer.
    pub fn request_if_needed(&mut self, force: bool, now: Instant) -> Option<Element> {
        if self.awaiting_ack {
            return None;
        }
        let expected = self.queue.count_sent();
        let due = force
            || (self.queue.count_unacked() > self.settings.max_unacked
                && self.last_requested_h != Some(expected));
        if !due {
            return None;
        }
        self.awaiting_ack = true;
        self.last_requested_h = Some(expected);
        if self.ack_delayed_at.is_none() && !self.settings.max_ack_delay.is_zero() {
            self.ack_delayed_at = Some(now + self.settings.max_ack_delay);
        }
        Some(Element::new("r", self.xmlns))
    }

    /// Time passed: true if the ack is late now (fire `smacks-ack-delayed`
    /// — once per timer, as Prosody's, and only while still awaited).
    pub fn ack_delay_elapsed(&mut self, now: Instant) -> bool {
        match self.ack_delayed_at {
            Some(at) if at <= now => {
                self.ack_delayed_at = None;
                self.awaiting_ack
            }
            _ => false,
        }
    }

    /// The connection was silent for `read_timeout` (Prosody's
    /// `c2s-read-timeout`): dead if an `<r/>` is still unanswered, else
    /// the forced `<r/>`.
    pub fn read_timeout(&mut self, now: Instant) -> Silence {
        if self.awaiting_ack {
            self.ack_delayed_at = None;
            return Silence::Dead;
        }
        Silence::Ask(self.request_if_needed(true, now))
    }

    /// The client resumed, saying it handled `h` of our stanzas: the
    /// `<resumed/>` answer and the stanzas to send again, or the
    /// `<failed/>` to send and the error to close with.
    pub fn resume(&mut self, previd: &str, h: Option<&str>) -> Resumption {
        let failed = |s: &SmacksState| {
            Element::new("failed", s.xmlns)
                .attr("h", s.handled.to_string())
                .attr("previd", previd)
        };
        let acked = match h.and_then(parse_h) {
            Some(h) => self.queue.ack(h).map_err(ack_error),
            None => Err(StreamError::with_text(
                Cond::InvalidXml,
                "Missing or invalid 'h' attribute",
            )),
        };
        if let Err(error) = acked {
            return Resumption::Failed {
                failed: failed(self),
                error,
            };
        }
        if !self.queue.resumable() {
            return Resumption::Failed {
                failed: failed(self),
                error: StreamError::with_text(
                    Cond::ResourceConstraint,
                    "Too many unacked stanzas remaining, session can't be resumed",
                ),
            };
        }
        let resumed = Element::new("resumed", self.xmlns)
            .attr("h", self.handled.to_string())
            .attr("previd", previd);
        // Acks asked for before the resumption will not come.
        self.awaiting_ack = false;
        self.ack_delayed_at = None;
        Resumption::Resumed {
            resumed,
            again: self.queue.items().cloned().collect(),
        }
    }
}

/// `<failed/>` with a stanza error condition (and an `h`, when known).
pub fn failed(xmlns: &str, condition: &str, h: Option<u32>) -> Element {
    Element::new("failed", xmlns)
        .attr_opt("h", h.map(|h| h.to_string()))
        .child(Element::new(condition, NS_STANZAS))
}

/// An `h` attribute: a decimal counter below 2^32.
pub fn parse_h(s: &str) -> Option<u32> {
    s.trim().parse().ok()
}

fn ack_error(e: AckError) -> StreamError {
    StreamError::with_text(Cond::UndefinedCondition, e.text())
}

/// Prosody stamps kept copies of everything but iqs, unless already stamped.
fn add_delay(e: &mut Element, from: &str, now: f64) {
    if e.name() == "iq" || e.get_child("delay", NS_DELAY).is_some() {
        return;
    }
    e.push_child(
        Element::new("delay", NS_DELAY)
            .attr("from", from)
            .attr("stamp", datetime(now)),
    );
}

/// XEP-0082 DateTime in UTC (`2024-01-31T12:00:00Z`), as Prosody's
/// `util.datetime.datetime`.
pub fn datetime(t: f64) -> String {
    let secs = t.max(0.0).floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), counted
    // in 400-year eras starting on March 1st.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::NS_CLIENT;

    fn settings(max_unacked: u32) -> SmacksSettings {
        SmacksSettings {
            max_unacked,
            ..SmacksSettings::default()
        }
    }

    fn message(n: u32) -> Queued {
        Queued::Stanza(Element::new("message", NS_CLIENT).attr("id", n.to_string()))
    }

    #[test]
    fn enabled_says_id_resume_and_max_only_when_resumable() {
        let (_, e) = SmacksState::enable(super::super::NS_SM3, settings(0), None, None);
        assert_eq!(e.to_xml(), "<enabled xmlns='urn:xmpp:sm:3'/>");
        let (st, e) = SmacksState::enable(
            super::super::NS_SM3,
            settings(5),
            Some("true"),
            Some("tok".into()),
        );
        assert_eq!(
            e.to_xml(),
            "<enabled xmlns='urn:xmpp:sm:3' id='tok' resume='true' max='600'/>"
        );
        assert_eq!(st.token.as_deref(), Some("tok"));
    }

    #[test]
    fn r_after_more_than_max_unacked_and_only_once() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, settings(2), None, None);
        for n in 0..2 {
            st.sent(message(n), "u@h", 0.0);
            assert_eq!(st.request_if_needed(false, Instant::now()), None);
        }
        st.sent(message(2), "u@h", 0.0);
        assert_eq!(
            st.request_if_needed(false, Instant::now())
                .map(|e| e.to_xml()),
            Some("<r xmlns='urn:xmpp:sm:3'/>".into())
        );
        st.sent(message(3), "u@h", 0.0);
        assert_eq!(
            st.request_if_needed(false, Instant::now()),
            None,
            "one <r/> at a time"
        );
        // The ack for 3 of 4: one left, under the limit.
        assert_eq!(st.handle_a(Some("3"), Instant::now()), AckOutcome::Ok(None));
        assert_eq!(st.queue.count_unacked(), 1);
    }

    #[test]
    fn inbound_counting_and_a_answers() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM2, settings(0), None, None);
        st.count_inbound();
        st.count_inbound();
        let out = st.handle_r(Instant::now());
        assert_eq!(out[0].to_xml(), "<a xmlns='urn:xmpp:sm:2' h='2'/>");
        assert_eq!(out.len(), 1, "nothing unacked: no <r/> of ours");
        st.handled = u32::MAX;
        st.count_inbound();
        assert_eq!(st.ack_element().get_attr("h"), Some("0"), "h wraps");
    }

    #[test]
    fn bad_acks_close_the_stream() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, settings(9), None, None);
        st.sent(message(1), "u@h", 0.0);
        match st.handle_a(Some("2"), Instant::now()) {
            AckOutcome::Close(e) => assert_eq!(e.condition, Cond::UndefinedCondition),
            other => panic!("{other:?}"),
        }
        match st.handle_a(Some("x"), Instant::now()) {
            AckOutcome::Close(e) => assert_eq!(e.condition, Cond::InvalidXml),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kept_copies_are_stamped_except_iqs() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, settings(9), None, None);
        st.sent(message(1), "u@h", 1_700_000_000.0);
        st.sent(
            Queued::Stanza(Element::new("iq", NS_CLIENT).attr("type", "result")),
            "u@h",
            0.0,
        );
        let kept: Vec<_> = st.queue.items().cloned().collect();
        let Queued::Stanza(m) = &kept[0] else {
            panic!()
        };
        let delay = m.get_child("delay", NS_DELAY).expect("delay");
        assert_eq!(delay.get_attr("stamp"), Some("2023-11-14T22:13:20Z"));
        assert_eq!(delay.get_attr("from"), Some("u@h"));
        let Queued::Stanza(iq) = &kept[1] else {
            panic!()
        };
        assert!(iq.get_child("delay", NS_DELAY).is_none());
    }

    #[test]
    fn resume_acks_then_retransmits_the_rest() {
        let (mut st, _) = SmacksState::enable(
            super::super::NS_SM3,
            settings(9),
            Some("true"),
            Some("t".into()),
        );
        for n in 0..3 {
            st.sent(message(n), "u@h", 0.0);
        }
        st.count_inbound();
        let Resumption::Resumed { resumed, again } = st.resume("t", Some("1")) else {
            panic!("not resumed")
        };
        assert_eq!(
            resumed.to_xml(),
            "<resumed xmlns='urn:xmpp:sm:3' h='1' previd='t'/>"
        );
        assert_eq!(again.len(), 2);
        // Still unacknowledged until the client says so.
        assert_eq!(st.queue.count_unacked(), 2);
    }

    #[test]
    fn resume_after_overflow_fails_with_h() {
        let mut s = settings(9);
        s.max_queue = 2;
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, s, None, Some("t".into()));
        for n in 0..3 {
            st.sent(message(n), "u@h", 0.0);
        }
        let Resumption::Failed { failed, error: err } = st.resume("t", Some("0")) else {
            panic!("resumed")
        };
        assert_eq!(
            failed.to_xml(),
            "<failed xmlns='urn:xmpp:sm:3' h='0' previd='t'/>"
        );
        assert_eq!(err.condition, Cond::ResourceConstraint);
    }

    #[test]
    fn the_ack_timer_is_armed_by_an_r_and_disarmed_by_an_a() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, settings(0), None, None);
        let t0 = Instant::now();
        st.sent(message(1), "u@h", 0.0);
        assert!(st.request_if_needed(false, t0).is_some());
        assert_eq!(st.ack_delayed_at, Some(t0 + Duration::from_secs(30)));
        assert!(!st.ack_delay_elapsed(t0 + Duration::from_secs(29)));
        assert!(st.ack_delay_elapsed(t0 + Duration::from_secs(30)));
        assert!(!st.ack_delay_elapsed(t0 + Duration::from_secs(31)), "once");
        assert_eq!(st.handle_a(Some("1"), t0), AckOutcome::Ok(None));
        assert_eq!(st.ack_delayed_at, None);
        // smacks_max_ack_delay = 0: never.
        let mut s = settings(0);
        s.max_ack_delay = Duration::ZERO;
        let (mut st, _) = SmacksState::enable(super::super::NS_SM3, s, None, None);
        st.sent(message(1), "u@h", 0.0);
        assert!(st.request_if_needed(false, t0).is_some());
        assert_eq!(st.ack_delayed_at, None);
    }

    #[test]
    fn a_read_timeout_forces_an_r_then_means_dead() {
        let (mut st, _) = SmacksState::enable(super::super::NS_SM2, settings(5), None, None);
        let now = Instant::now();
        assert_eq!(
            st.read_timeout(now),
            Silence::Ask(Some(Element::new("r", super::super::NS_SM2))),
            "forced although nothing is unacked"
        );
        assert_eq!(st.read_timeout(now), Silence::Dead);
    }

    #[test]
    fn datetime_is_xep_0082() {
        assert_eq!(datetime(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(datetime(4_102_444_799.0), "2099-12-31T23:59:59Z");
    }
}
