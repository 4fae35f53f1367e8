//! Inviting a participant: a bridge is chosen, the endpoint allocated with
//! Colibri2 and, with the bridge's transport, the participant gets its
//! session-initiate. Failover: a bridge that fails a health check or a
//! Colibri2 request, or leaves the brewery, loses its conferences, and their
//! participants get a new session on another bridge ([`crate::restart`]).

use std::time::Instant;

use xmpp_core::Element;

use crate::colibri;
use crate::conference_iq::uuid;
use crate::focus::{Focus, Pending};
use crate::offer::{self, Offer};
use crate::participant::{Allocation, JingleSession};
use crate::room::BridgeSession;

fn random_sid() -> String {
    let b: [u8; 6] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Focus {
    /// Allocates `nick` on the conference's bridge (choosing one if need
    /// be); the offer follows the bridge's answer.
    pub(crate) fn invite(&mut self, now: Instant, room: &str, nick: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(p) = c.participants.get(nick) else {
            return;
        };
        let counts: Vec<(String, usize)> = c
            .bridges
            .iter()
            .map(|b| (b.bridge.clone(), c.on_bridge(&b.bridge).len()))
            .collect();
        let conference: Vec<(&str, usize)> = counts.iter().map(|(b, n)| (b.as_str(), *n)).collect();
        let chosen = self.brewery.select(now, &conference, p.region.as_deref());
        let Some(bridge) = chosen else {
            tracing::warn!(room, nick, "no operational bridge: the participant waits");
            if let Some(p) = c.participants.get_mut(nick) {
                p.allocation = Allocation::NoBridge;
            }
            return;
        };
        let new_session = c.session(&bridge).is_none();
        if new_session {
            let relay_id = self.brewery.get(&bridge).and_then(|b| b.relay_id.clone());
            c.bridges
                .push(BridgeSession::new(&bridge, relay_id, uuid()));
        }
        if let Some(p) = c.participants.get_mut(nick) {
            p.allocation = Allocation::Pending {
                bridge: bridge.clone(),
            };
        }
        self.brewery.endpoint_added(&bridge, now);
        let Some(bs) = c.session_mut(&bridge) else {
            return;
        };
        if bs.creating {
            if !bs.queued.iter().any(|q| q == nick) {
                bs.queued.push(nick.to_string());
            }
        } else {
            let create = !bs.created;
            bs.creating = create;
            self.send_allocation(now, room, &bridge, vec![nick.to_string()], create);
        }
        // The conference's other bridges learn the endpoint on their relay.
        self.relay_endpoints_changed(now, room, nick, &bridge, crate::relays::Change::Create);
        if new_session {
            self.bridge_count_changed(room);
        }
    }

    fn send_allocation(
        &mut self,
        now: Instant,
        room: &str,
        bridge: &str,
        nicks: Vec<String>,
        create: bool,
    ) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let bridge = bridge.to_string();
        let mut endpoints = Vec::new();
        for nick in &nicks {
            if let Some(p) = c.participants.get(nick) {
                endpoints.push(colibri::endpoint_create(
                    nick,
                    p.stats_id.as_deref(),
                    p.offer_options(),
                    c.sources.of(nick),
                    (p.force_muted_audio, p.force_muted_video),
                ));
            }
        }
        let meeting_id = c.meeting_id.clone();
        let id = self.id();
        let iq = colibri::conference_modify(&bridge, &id, &meeting_id, room, create, endpoints);
        self.request(
            now,
            iq,
            Pending::Allocate {
                room: room.to_string(),
                bridge,
                endpoints: nicks,
            },
        );
    }

    /// The bridge answered an allocation: offers go out, queued endpoints
    /// follow.
    pub(crate) fn on_allocated(
        &mut self,
        now: Instant,
        room: &str,
        bridge: &str,
        endpoints: &[String],
        iq: &Element,
    ) {
        let answer = colibri::parse_answer(iq);
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(bs) = c.session_mut(bridge) else {
            return;
        };
        let first_answer = !bs.created;
        bs.created = true;
        bs.creating = false;
        if !answer.feedback_sources.is_empty() {
            bs.feedback_sources = answer.feedback_sources.clone();
        }
        let queued = std::mem::take(&mut bs.queued);
        let mut offers = Vec::new();
        for nick in endpoints {
            let Some(p) = c.participants.get_mut(nick) else {
                continue;
            };
            if p.allocation.bridge() != Some(bridge) {
                continue;
            }
            match answer.transports.get(nick) {
                Some(t) => {
                    p.allocation = Allocation::Allocated {
                        bridge: bridge.to_string(),
                        transport: t.clone(),
                    };
                    offers.push(nick.clone());
                }
                None => {
                    tracing::warn!(
                        room,
                        nick,
                        "the bridge answered no transport for the endpoint"
                    );
                    p.allocation = Allocation::None;
                }
            }
        }
        for nick in offers {
            self.send_offer(now, room, &nick);
        }
        if !queued.is_empty() {
            self.send_allocation(now, room, bridge, queued, false);
        }
        if first_answer {
            self.connect_bridge(now, room, bridge);
        }
    }

    /// session-initiate with a new sid (a session the participant had is
    /// replaced; re-invites end it first, see [`crate::restart`]).
    fn send_offer(&mut self, now: Instant, room: &str, nick: &str) {
        let initiator = self.options.jid.clone();
        let global_start_muted = self.options.start_muted;
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let sources = c.remote_sources(nick);
        let position = c.participants.get(nick).map_or(0, |p| p.join_order);
        let start_muted = c.start_muted(position, global_start_muted);
        let Some(bs) = c.session_of(nick) else { return };
        let bridge_session_id = bs.session_id.clone();
        let region = self.brewery.get(&bs.bridge).and_then(|b| b.region.clone());
        let Some(p) = c.participants.get_mut(nick) else {
            return;
        };
        let Allocation::Allocated { transport, .. } = &p.allocation else {
            return;
        };
        let transport = transport.clone();
        let sid = random_sid();
        p.session = Some(JingleSession {
            sid: sid.clone(),
            active: false,
            bridge_session_id: bridge_session_id.clone(),
        });
        p.signaled = sources.clone();
        p.flush_at = None;
        let options = p.offer_options();
        let json = p.supports_json_sources();
        let to = p.occupant_jid.clone();
        self.next_id += 1;
        let id = format!("lilt-focus-{}", self.next_id);
        let iq = offer::offer(&Offer {
            to: &to,
            id: &id,
            initiator: &initiator,
            sid: &sid,
            options,
            bridge_transport: &transport,
            sources: &sources,
            room,
            json_sources: json,
            start_muted,
            bridge_session_id: &bridge_session_id,
            region: region.as_deref(),
        });
        self.counters.offers_sent += 1;
        self.request(
            now,
            iq,
            Pending::Offer {
                room: room.to_string(),
                nick: nick.to_string(),
                sid,
            },
        );
    }

    /// The bridge lost one endpoint: that participant alone gets a new
    /// session ([`Self::restart_session`]).
    pub(crate) fn reinvite_endpoint(&mut self, now: Instant, room: &str, nick: &str) {
        let bridge = self
            .conferences
            .get(room)
            .and_then(|c| c.participants.get(nick))
            .and_then(|p| p.allocation.bridge().map(str::to_string));
        if let Some(b) = &bridge {
            self.relay_endpoints_changed(now, room, nick, b, crate::relays::Change::Expire);
        }
        self.restart_session(now, room, nick);
    }

    /// The participant refused its offer: its endpoint expires and the
    /// session is forgotten.
    pub(crate) fn offer_refused(&mut self, now: Instant, room: &str, nick: &str, sid: &str) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let Some(p) = c.participants.get(nick) else {
            return;
        };
        if p.session.as_ref().is_none_or(|s| s.sid != sid) {
            return;
        }
        let bridge = p.allocation.bridge().map(str::to_string);
        let created = bridge
            .as_deref()
            .and_then(|b| c.session(b))
            .is_some_and(|b| b.created);
        if let Some(b) = &bridge {
            self.relay_endpoints_changed(now, room, nick, b, crate::relays::Change::Expire);
        }
        let Some(p) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.participants.get_mut(nick))
        else {
            return;
        };
        p.session = None;
        p.allocation = Allocation::None;
        p.flush_at = None;
        let meeting_id = self
            .conferences
            .get(room)
            .map(|c| c.meeting_id.clone())
            .unwrap_or_default();
        if let (Some(bridge), true) = (bridge, created) {
            let id = self.id();
            let iq = colibri::conference_modify(
                &bridge,
                &id,
                &meeting_id,
                room,
                false,
                vec![colibri::endpoint_expire(nick)],
            );
            self.request(now, iq, Pending::Other);
        }
    }

    /// Invites again the participants that waited for a bridge.
    pub(crate) fn retry_waiting(&mut self, now: Instant) {
        let waiting: Vec<(String, String)> = self
            .conferences
            .iter()
            .flat_map(|(room, c)| {
                c.participants
                    .values()
                    .filter(|p| p.allocation == Allocation::NoBridge)
                    .map(move |p| (room.clone(), p.endpoint_id.clone()))
            })
            .collect();
        for (room, nick) in waiting {
            self.invite(now, &room, &nick);
        }
    }

    /// A bridge failed (health check, Colibri2 error or timeout): it is
    /// non-operational for a while and its conferences move.
    pub(crate) fn bridge_failed(&mut self, now: Instant, bridge: &str) {
        self.brewery.mark_failed(bridge, now);
        self.move_off_bridge(now, bridge);
    }

    /// Every conference on `bridge` loses that bridge (its session and the
    /// other bridges' relays to it expire) and the participants it had are
    /// invited again (their sessions restarted: [`Self::restart_session`]),
    /// on another bridge of the conference or a new one.
    pub(crate) fn move_off_bridge(&mut self, now: Instant, bridge: &str) {
        let rooms: Vec<String> = self
            .conferences
            .iter()
            .filter(|(_, c)| c.session(bridge).is_some())
            .map(|(r, _)| r.clone())
            .collect();
        let mut moved = Vec::new();
        for room in rooms {
            self.remove_session(now, &room, bridge);
            let Some(c) = self.conferences.get_mut(&room) else {
                continue;
            };
            for p in c.participants.values_mut() {
                if p.allocation.bridge() == Some(bridge) {
                    p.allocation = Allocation::None;
                    moved.push((room.clone(), p.endpoint_id.clone()));
                }
            }
        }
        if !moved.is_empty() {
            self.counters.participants_moved += moved.len() as u64;
            tracing::info!(
                bridge,
                count = moved.len(),
                "moving participants off a failed bridge"
            );
        }
        for (room, nick) in moved {
            self.restart_session(now, &room, &nick);
        }
    }

    /// Jicofo's health checks: every bridge gets one per interval; one
    /// still unanswered is not repeated.
    pub(crate) fn send_health_checks(&mut self, now: Instant) {
        let bridges: Vec<String> = self.brewery.iter().map(|b| b.jid.clone()).collect();
        for bridge in bridges {
            let outstanding = self
                .pending
                .values()
                .any(|p| matches!(&p.kind, Pending::HealthCheck { bridge: b } if *b == bridge));
            if outstanding {
                continue;
            }
            let id = self.id();
            let iq = colibri::health_check(&bridge, &id);
            self.request(now, iq, Pending::HealthCheck { bridge });
        }
    }
}
