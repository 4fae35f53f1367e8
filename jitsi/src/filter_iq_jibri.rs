//! `filter_iq_jibri` (Jitsi's mod_filter_iq_jibri), on the main
//! VirtualHost: `<jibri xmlns='http://jitsi.org/protocol/jibri'/>` IQs a
//! participant sends to the focus in its room (`room@muc/focus`) to start
//! or stop a recording (`recording_mode='file'`) or a live stream (any
//! other mode) are checked on the way out (`pre-iq/full`):
//!
//! - the feature (`recording` or `livestreaming`) must be allowed to the
//!   session: true in its token's `context.features` claim, or, without a
//!   features claim, the sender must be a moderator of the room (Jitsi's
//!   `is_feature_allowed`, [`auth::token::session_has_feature`]); else
//!   `auth/forbidden`;
//! - then a rate limit per client IP (`max_number_ip_attempts_per_minute`,
//!   default 9; at most `jibri_rate_limit_cache_size` IPs, default 10000,
//!   remembered) and per room (`max_number_room_attempts_per_minute`,
//!   default 3); over either, `wait/policy-violation`.
//!
//! Only `start` and `stop` are checked. Where Jitsi's Lua would fail (no
//! such room) the IQ goes on untouched, and the MUC answers it; a sender
//! that is not an occupant counts as no moderator.
//!
//! [`JibriFilter`] is the decision without I/O (a clock value in).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Session, config::OptionError};

use super::rate_limit::Throttle;
use super::web_session::{RoomFinder, get_room_from_jid};
use muc::events::{lock, room_of};
use muc::util::{Role, bare_of, host_of};

pub const NS_JIBRI: &str = "http://jitsi.org/protocol/jibri";

/// The module's options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub ip_attempts_per_minute: f64,
    pub room_attempts_per_minute: f64,
    pub cache_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ip_attempts_per_minute: 9.0,
            room_attempts_per_minute: 3.0,
            cache_size: 10000,
        }
    }
}

impl Limits {
    pub fn read(host: &Host) -> Result<Limits, OptionError> {
        let d = Limits::default();
        Ok(Limits {
            ip_attempts_per_minute: host
                .option_i64("max_number_ip_attempts_per_minute", 9)?
                .max(0) as f64,
            room_attempts_per_minute: host
                .option_i64("max_number_room_attempts_per_minute", 3)?
                .max(0) as f64,
            cache_size: host
                .option_i64("jibri_rate_limit_cache_size", d.cache_size as i64)?
                .max(1) as usize,
        })
    }
}

/// What happens to a `<jibri/>` IQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// `auth/forbidden`: the feature is not the sender's.
    Forbidden,
    /// `wait/policy-violation`: too many attempts from the IP or the room.
    RateLimited,
}

/// Throttles by key, the least recently used forgotten beyond a size
/// (Prosody's `util.cache` of `util.throttle`s).
#[derive(Debug, Default)]
struct Throttles {
    by_key: HashMap<String, (Throttle, u64)>,
    uses: u64,
}

impl Throttles {
    fn poll(&mut self, key: &str, max: f64, now: f64, capacity: usize) -> bool {
        self.uses += 1;
        let uses = self.uses;
        if !self.by_key.contains_key(key) && self.by_key.len() >= capacity {
            let oldest = self
                .by_key
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.by_key.remove(&k);
            }
        }
        let (throttle, used) = self
            .by_key
            .entry(key.to_string())
            .or_insert_with(|| (Throttle::new(max, 60.0, now), uses));
        *used = uses;
        throttle.poll(now, 1.0)
    }
}

/// The filter's state: throttles per IP and per room.
#[derive(Debug, Default)]
pub struct JibriFilter {
    limits: Limits,
    ips: Mutex<Throttles>,
    rooms: Mutex<Throttles>,
}

impl JibriFilter {
    pub fn new(limits: Limits) -> JibriFilter {
        JibriFilter {
            limits,
            ..JibriFilter::default()
        }
    }

    /// The feature a `<jibri/>` element asks for.
    pub fn feature_of(jibri: &Element) -> &'static str {
        if jibri.get_attr("recording_mode") == Some("file") {
            "recording"
        } else {
            "livestreaming"
        }
    }

    /// Decides on an `action` from `ip` in `room` at `now`.
    pub fn check(
        &self,
        action: Option<&str>,
        allowed: bool,
        ip: &str,
        room: &str,
        now: f64,
    ) -> Verdict {
        if !matches!(action, Some("start" | "stop")) {
            return Verdict::Pass;
        }
        if !allowed {
            return Verdict::Forbidden;
        }
        let l = self.limits;
        // The IP first; the room is polled only when the IP passed (Lua's `or`).
        let ip_ok = lock(&self.ips).poll(ip, l.ip_attempts_per_minute, now, l.cache_size);
        if !ip_ok || !lock(&self.rooms).poll(room, l.room_attempts_per_minute, now, usize::MAX) {
            return Verdict::RateLimited;
        }
        Verdict::Pass
    }

    /// A destroyed room's throttle is gone with it (`room.jibri_throttle`).
    pub fn forget_room(&self, room: &str) {
        lock(&self.rooms).by_key.remove(room);
    }
}

/// The client IP of a session (Jitsi's `get_ip`: the HTTP request's, else
/// the connection's).
pub fn session_ip(session: &Session) -> String {
    session
        .transport
        .as_ref()
        .and_then(|t| t.ip)
        .map(|ip| ip.to_string())
        .or_else(|| session.peer.map(|p| p.ip().to_string()))
        .unwrap_or_default()
}

/// MUC hosts whose `muc-room-destroyed` this filter already follows.
#[derive(Default)]
struct Followed(Mutex<Vec<String>>);

pub fn register(host: &Arc<Host>) -> Result<(), OptionError> {
    let filter = Arc::new(JibriFilter::new(Limits::read(host)?));
    let finder = RoomFinder::new(host, "")?;
    let followed = Arc::new(Followed::default());
    host.events.hook("pre-iq/full", 0, move |event| {
        on_iq(event, &filter, &finder, &followed)
    });
    Ok(())
}

fn on_iq(
    event: &mut Event,
    filter: &Arc<JibriFilter>,
    finder: &RoomFinder,
    followed: &Followed,
) -> bool {
    let (Some(stanza), Some(origin)) = (event.stanza.as_ref(), event.origin.clone()) else {
        return false;
    };
    let Some(jibri) = stanza.get_child("jibri", NS_JIBRI) else {
        return false;
    };
    let action = jibri.get_attr("action");
    if !matches!(action, Some("start" | "stop")) {
        return false;
    }
    let feature = JibriFilter::feature_of(jibri);
    let room_jid = finder.to_real(bare_of(stanza.to().unwrap_or_default()));
    let Some(room) = get_room_from_jid(&event.server, &room_jid) else {
        tracing::debug!("jibri IQ to {room_jid}: no such room, left to the MUC");
        return false;
    };
    follow_room_host(event, filter, followed, &room.jid);
    let from = stanza
        .from()
        .map(str::to_string)
        .or_else(|| origin.full_jid().map(|j| j.to_string()))
        .unwrap_or_default();
    let is_moderator = room
        .get_occupant_by_real_jid(&from)
        .is_some_and(|o| o.role == Some(Role::Moderator));
    let allowed = {
        let state = origin.state();
        auth::token::session_has_feature(&state.attributes, feature, is_moderator)
    };
    let ip = session_ip(&origin);
    let verdict = filter.check(action, allowed, &ip, &room.jid, event.server.clock.now());
    let error = match verdict {
        Verdict::Pass => return false,
        Verdict::Forbidden => {
            tracing::info!(
                "Filtering jibri start recording, stanza:{}",
                stanza.to_xml()
            );
            StanzaError::forbidden()
        }
        Verdict::RateLimited => {
            tracing::warn!(
                "Filtering jibri start recording, ip:{ip}, room:{} stanza:{}",
                room.jid,
                stanza.to_xml()
            );
            StanzaError::new(ErrorType::Wait, "policy-violation")
        }
    };
    origin.send(error.reply_to(stanza));
    true
}

/// Forgets a room's throttle when the room is destroyed, hooking the MUC
/// host the first time one of its rooms is seen.
fn follow_room_host(event: &Event, filter: &Arc<JibriFilter>, followed: &Followed, room_jid: &str) {
    let muc_host = host_of(room_jid).to_string();
    {
        let mut hosts = lock(&followed.0);
        if hosts.contains(&muc_host) {
            return;
        }
        hosts.push(muc_host.clone());
    }
    let Some(host) = event.server.host(&muc_host) else {
        return;
    };
    let weak = Arc::downgrade(filter);
    host.events.hook("muc-room-destroyed", 0, move |ev| {
        if let (Some(filter), Some(room)) = (weak.upgrade(), room_of(ev)) {
            filter.forget_room(&room.jid);
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_by_recording_mode() {
        let file = Element::new("jibri", NS_JIBRI).attr("recording_mode", "file");
        let stream = Element::new("jibri", NS_JIBRI).attr("recording_mode", "stream");
        assert_eq!(JibriFilter::feature_of(&file), "recording");
        assert_eq!(JibriFilter::feature_of(&stream), "livestreaming");
        assert_eq!(
            JibriFilter::feature_of(&Element::new("jibri", NS_JIBRI)),
            "livestreaming"
        );
    }

    #[test]
    fn forbidden_before_counting_and_other_actions_pass() {
        let f = JibriFilter::new(Limits::default());
        for _ in 0..10 {
            assert_eq!(
                f.check(Some("start"), false, "1.2.3.4", "r@c", 0.0),
                Verdict::Forbidden
            );
        }
        assert_eq!(
            f.check(Some("status"), false, "1.2.3.4", "r@c", 0.0),
            Verdict::Pass
        );
        assert_eq!(f.check(None, false, "1.2.3.4", "r@c", 0.0), Verdict::Pass);
        // Refusals used none of the room's three attempts.
        for _ in 0..3 {
            assert_eq!(
                f.check(Some("start"), true, "1.2.3.4", "r@c", 0.0),
                Verdict::Pass
            );
        }
    }

    #[test]
    fn three_per_room_per_minute_refilled_over_time() {
        let f = JibriFilter::new(Limits::default());
        assert_eq!(f.check(Some("start"), true, "a", "r@c", 0.0), Verdict::Pass);
        assert_eq!(f.check(Some("stop"), true, "b", "r@c", 1.0), Verdict::Pass);
        assert_eq!(f.check(Some("start"), true, "c", "r@c", 2.0), Verdict::Pass);
        assert_eq!(
            f.check(Some("stop"), true, "d", "r@c", 3.0),
            Verdict::RateLimited
        );
        // Another room is not limited by this one.
        assert_eq!(f.check(Some("start"), true, "e", "s@c", 3.0), Verdict::Pass);
        // One attempt comes back every 20 seconds.
        assert_eq!(
            f.check(Some("start"), true, "f", "r@c", 23.5),
            Verdict::Pass
        );
        assert_eq!(
            f.check(Some("start"), true, "f", "r@c", 24.0),
            Verdict::RateLimited
        );
        f.forget_room("r@c");
        assert_eq!(
            f.check(Some("start"), true, "g", "r@c", 24.0),
            Verdict::Pass
        );
    }

    #[test]
    fn nine_per_ip_per_minute() {
        let f = JibriFilter::new(Limits::default());
        for i in 0..9 {
            let room = format!("r{i}@c");
            assert_eq!(
                f.check(Some("start"), true, "ip", &room, 0.0),
                Verdict::Pass
            );
        }
        assert_eq!(
            f.check(Some("start"), true, "ip", "fresh@c", 0.0),
            Verdict::RateLimited
        );
        assert_eq!(
            f.check(Some("start"), true, "other", "fresh@c", 0.0),
            Verdict::Pass
        );
    }

    #[test]
    fn the_ip_cache_forgets_the_least_recently_used() {
        let f = JibriFilter::new(Limits {
            ip_attempts_per_minute: 1.0,
            room_attempts_per_minute: 100.0,
            cache_size: 2,
        });
        assert_eq!(f.check(Some("start"), true, "a", "r", 0.0), Verdict::Pass);
        assert_eq!(f.check(Some("start"), true, "b", "r", 0.0), Verdict::Pass);
        assert_eq!(
            f.check(Some("start"), true, "a", "r", 0.0),
            Verdict::RateLimited
        );
        // "c" evicts "b" (least recently used), so "b" starts afresh.
        assert_eq!(f.check(Some("start"), true, "c", "r", 0.0), Verdict::Pass);
        assert_eq!(f.check(Some("start"), true, "b", "r", 0.0), Verdict::Pass);
    }
}
