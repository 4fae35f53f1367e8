//! The bridge's place in the brewery MUC (`jvbbrewery@internal.auth.D`),
//! where focuses find bridges: join with a presence carrying the stats,
//! refresh it every few seconds, leave at the end of a graceful shutdown.
//! Sans-IO: it makes presence stanzas, the bridge sends them.

use std::time::{Duration, Instant};

use xmpp_core::Element;
use xmpp_core::stanza::NS_CLIENT;

use crate::stats::BridgeStats;

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";

/// How often the stats presence is refreshed (Videobridge: 5 s).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct BreweryConfig {
    /// The room's bare JID.
    pub room: String,
    /// The bridge's nick in the room (Videobridge: its resource/id).
    pub nick: String,
    pub refresh: Duration,
}

/// Where the bridge stands with the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreweryState {
    NotJoined,
    /// Join presence sent, no self-presence yet.
    Joining,
    Joined,
    /// The room removed the bridge (kicked, room destroyed): the join is
    /// sent again at the next refresh.
    Removed,
    /// The room refused the join (condition).
    Failed(String),
    Left,
}

#[derive(Debug)]
pub struct Brewery {
    config: BreweryConfig,
    state: BreweryState,
    next_refresh: Option<Instant>,
}

impl Brewery {
    pub fn new(config: BreweryConfig) -> Brewery {
        Brewery {
            config,
            state: BreweryState::NotJoined,
            next_refresh: None,
        }
    }

    pub fn state(&self) -> &BreweryState {
        &self.state
    }

    /// `room@service/nick`.
    pub fn occupant_jid(&self) -> String {
        format!("{}/{}", self.config.room, self.config.nick)
    }

    fn presence(&self, stats: &BridgeStats) -> Element {
        Element::new("presence", NS_CLIENT)
            .attr("to", self.occupant_jid())
            .child(stats.to_element())
    }

    /// The join presence (`<x xmlns='http://jabber.org/protocol/muc'/>`
    /// and the stats).
    pub fn join(&mut self, now: Instant, stats: &BridgeStats) -> Element {
        self.state = BreweryState::Joining;
        self.next_refresh = Some(now + self.config.refresh);
        let mut p = self.presence(stats);
        p.push_child(Element::new("x", NS_MUC));
        p
    }

    /// The refreshed stats presence if one is due (a new join after the
    /// room removed the bridge).
    pub fn poll_refresh(&mut self, now: Instant, stats: &BridgeStats) -> Option<Element> {
        if self.state == BreweryState::Removed && self.next_refresh.is_some_and(|t| t <= now) {
            tracing::info!(room = %self.config.room, "joining the brewery again");
            return Some(self.join(now, stats));
        }
        if !matches!(self.state, BreweryState::Joining | BreweryState::Joined) {
            return None;
        }
        match self.next_refresh {
            Some(t) if t <= now => {
                self.next_refresh = Some(now + self.config.refresh);
                Some(self.presence(stats))
            }
            _ => None,
        }
    }

    /// A stats presence now (after a state change such as graceful
    /// shutdown), restarting the refresh period.
    pub fn refresh_now(&mut self, now: Instant, stats: &BridgeStats) -> Option<Element> {
        if !matches!(self.state, BreweryState::Joining | BreweryState::Joined) {
            return None;
        }
        self.next_refresh = Some(now + self.config.refresh);
        Some(self.presence(stats))
    }

    /// The unavailable presence that leaves the room.
    pub fn leave(&mut self) -> Option<Element> {
        if !matches!(self.state, BreweryState::Joining | BreweryState::Joined) {
            return None;
        }
        self.state = BreweryState::Left;
        self.next_refresh = None;
        Some(
            Element::new("presence", NS_CLIENT)
                .attr("to", self.occupant_jid())
                .attr("type", "unavailable"),
        )
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_refresh
    }

    /// Takes a presence if it is from the room about this bridge (its
    /// self-presence or a join error); returns whether it was.
    pub fn handle_presence(&mut self, presence: &Element) -> bool {
        let Some(from) = presence.from() else {
            return false;
        };
        let (bare, nick) = from.split_once('/').unwrap_or((from, ""));
        if !bare.eq_ignore_ascii_case(&self.config.room) || nick != self.config.nick {
            return false;
        }
        match presence.type_() {
            Some("error") => {
                let condition = presence
                    .children()
                    .find(|c| c.name() == "error")
                    .and_then(|e| e.first_child())
                    .map(|c| c.name().to_string())
                    .unwrap_or_else(|| "undefined-condition".into());
                tracing::warn!(room = %self.config.room, %condition, "brewery join refused");
                self.state = BreweryState::Failed(condition);
                self.next_refresh = None;
            }
            Some("unavailable") => {
                if matches!(self.state, BreweryState::Joining | BreweryState::Joined) {
                    tracing::warn!(room = %self.config.room, "removed from the brewery");
                    self.state = BreweryState::Removed;
                }
            }
            _ => {
                if self.state == BreweryState::Joining {
                    tracing::info!(room = %self.config.room, "joined the brewery");
                    self.state = BreweryState::Joined;
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brewery() -> Brewery {
        Brewery::new(BreweryConfig {
            room: "jvbbrewery@internal.auth.d".into(),
            nick: "jvb1".into(),
            refresh: DEFAULT_REFRESH,
        })
    }

    #[test]
    fn join_refresh_leave() {
        let now = Instant::now();
        let mut b = brewery();
        let stats = BridgeStats {
            conferences: 3,
            healthy: true,
            ..Default::default()
        };
        let join = b.join(now, &stats);
        assert_eq!(join.to(), Some("jvbbrewery@internal.auth.d/jvb1"));
        assert!(join.get_child("x", NS_MUC).is_some());
        let s = join
            .get_child("stats", crate::stats::NS_COLIBRI_STATS)
            .unwrap();
        assert!(
            s.children()
                .any(|c| c.get_attr("name") == Some("conferences")
                    && c.get_attr("value") == Some("3"))
        );
        assert!(b.poll_refresh(now, &stats).is_none());
        let later = now + DEFAULT_REFRESH;
        let r = b.poll_refresh(later, &stats).unwrap();
        assert!(r.get_child("x", NS_MUC).is_none());
        assert!(
            r.get_child("stats", crate::stats::NS_COLIBRI_STATS)
                .is_some()
        );
        let self_presence =
            Element::new("presence", NS_CLIENT).attr("from", "JvbBrewery@internal.auth.d/jvb1");
        assert!(b.handle_presence(&self_presence));
        assert_eq!(b.state(), &BreweryState::Joined);
        // Removed by the room: joined again at the next refresh.
        let removed = Element::new("presence", NS_CLIENT)
            .attr("from", "jvbbrewery@internal.auth.d/jvb1")
            .attr("type", "unavailable");
        assert!(b.handle_presence(&removed));
        assert_eq!(b.state(), &BreweryState::Removed);
        let again = b.poll_refresh(later + DEFAULT_REFRESH, &stats).unwrap();
        assert!(again.get_child("x", NS_MUC).is_some());
        assert_eq!(b.state(), &BreweryState::Joining);
        let leave = b.leave().unwrap();
        assert_eq!(leave.type_(), Some("unavailable"));
        assert!(b.next_timeout().is_none());
    }
}
