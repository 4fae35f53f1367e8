//! Relays: a conference on several bridges, the bridges connected to each
//! other as Jicofo's `ColibriV2SessionManager` and `Colibri2Session.Relay`
//! connect them (one mesh, `mesh-id='0'`).
//!
//! Once a second bridge's session answers its first allocation, each of the
//! two bridges gets `<relay id='<the other's relay_id>' create='true'
//! mesh-id='0'>` with audio and video `<media>` (the offer's codecs and
//! header extensions), `<endpoints>` (the other bridge's participants with
//! their sources) and `<transport use-unique-port ice-controlling>`. The
//! bridge already in the conference is the initiator (Jicofo's
//! `addLinkBetween(existing, new)`): ICE controlling, a unique port,
//! DTLS `active` and the one that opens the bridge channel's WebSocket; the
//! other side is none of these and DTLS `passive`. Each answer's ICE-UDP
//! transport goes to the other bridge (`<relay id><transport>`), its
//! fingerprint's `setup` set to the receiving side's role and its
//! `<web-socket>` kept only for the initiator.
//!
//! Then each participant allocated, updated (sources) or gone on one bridge
//! is an endpoint created, updated or expired in the other bridges' relays
//! to it (`<relay id><endpoints><endpoint .../></endpoints></relay>`). A
//! bridge leaving the conference (its last participant gone, or failed) has
//! its conference expired and the other bridges' relays to it expired
//! (`<relay id expire='true'/>`).

use std::time::Instant;

use media_signalling::Source;
use xmpp_core::Element;

use crate::codecs::OfferOptions;
use crate::colibri;
use crate::focus::{Focus, Pending};
use crate::ns;
use crate::room::Relay;

/// Jicofo's single mesh.
pub const MESH_ID: &str = "0";

/// What happened to an endpoint, for the relays that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Create,
    Update,
    Expire,
}

/// A relay endpoint as Jicofo's `ParticipantInfo.toEndpoint` writes it:
/// created with its stats-id and the `source-names` capability, its
/// sources (all of them, possibly none) unless it expires.
pub fn relay_endpoint(
    id: &str,
    stats_id: Option<&str>,
    sources: &[Source],
    change: Change,
) -> Element {
    let e = Element::new("endpoint", ns::COLIBRI2).attr("id", id);
    match change {
        Change::Expire => e.attr("expire", "true"),
        Change::Create => e
            .attr("create", "true")
            .attr_opt("stats-id", stats_id)
            .child(Element::new("capability", ns::COLIBRI2).attr("name", "source-names"))
            .child(colibri::sources_element(sources)),
        Change::Update => e.child(colibri::sources_element(sources)),
    }
}

/// `<relay id create='true' mesh-id>` with media, the endpoints behind the
/// other bridge and the transport roles.
pub fn relay_create(relay_id: &str, endpoints: Vec<Element>, initiator: bool) -> Element {
    let mut r = Element::new("relay", ns::COLIBRI2)
        .attr("id", relay_id)
        .attr("create", "true")
        .attr("mesh-id", MESH_ID);
    for m in colibri::media(OfferOptions::default()) {
        r.push_child(m);
    }
    let mut eps = Element::new("endpoints", ns::COLIBRI2);
    for e in endpoints {
        eps.push_child(e);
    }
    r.push_child(eps);
    r.push_child(
        Element::new("transport", ns::COLIBRI2)
            .attr("use-unique-port", initiator.to_string())
            .attr("ice-controlling", initiator.to_string()),
    );
    r
}

/// `<relay id>` with endpoint changes.
pub fn relay_endpoints(relay_id: &str, endpoints: Vec<Element>) -> Element {
    let mut eps = Element::new("endpoints", ns::COLIBRI2);
    for e in endpoints {
        eps.push_child(e);
    }
    Element::new("relay", ns::COLIBRI2)
        .attr("id", relay_id)
        .child(eps)
}

/// `<relay id><transport>` with the other bridge's ICE-UDP transport, made
/// to fit this side's role.
pub fn relay_transport(relay_id: &str, transport: &Element, initiator: bool) -> Element {
    let mut t = Element::new(transport.name(), transport.ns());
    for (k, v) in transport.attrs() {
        t.set_attr(k, Some(v.to_string()));
    }
    for c in transport.children() {
        if c.name() == "web-socket" && !initiator {
            continue;
        }
        let mut c = c.clone();
        if c.name() == "fingerprint" {
            let setup = if initiator { "active" } else { "passive" };
            c.set_attr("setup", Some(setup.to_string()));
        }
        t.push_child(c);
    }
    Element::new("relay", ns::COLIBRI2)
        .attr("id", relay_id)
        .child(Element::new("transport", ns::COLIBRI2).child(t))
}

pub fn relay_expire(relay_id: &str) -> Element {
    Element::new("relay", ns::COLIBRI2)
        .attr("id", relay_id)
        .attr("expire", "true")
}

/// The ICE-UDP transport of a relay in a `<conference-modified>`.
pub fn parse_relay_transport(iq: &Element, relay_id: &str) -> Option<Element> {
    let cm = iq
        .children()
        .find(|c| c.ns() == ns::COLIBRI2 && c.name().starts_with("conference-modif"))?;
    let relay = cm
        .children()
        .filter(|c| c.name() == "relay")
        .find(|r| r.get_attr("id").is_none_or(|id| id == relay_id))?;
    relay
        .children()
        .find(|c| c.name() == "transport")
        .and_then(|t| t.get_child("transport", ns::JINGLE_ICE_UDP))
        .cloned()
}

impl Focus {
    fn colibri_to(
        &mut self,
        now: Instant,
        room: &str,
        bridge: &str,
        child: Element,
        kind: Pending,
    ) {
        let Some(meeting_id) = self.conferences.get(room).map(|c| c.meeting_id.clone()) else {
            return;
        };
        let id = self.id();
        let mut iq = colibri::conference_modify(bridge, &id, &meeting_id, room, false, Vec::new());
        if let Some(cm) = iq.get_child_mut("conference-modify", ns::COLIBRI2) {
            cm.push_child(child);
        }
        self.request(now, iq, kind);
    }

    /// `nick` (on `bridge`) was created, updated or expired there: the
    /// conference's other bridges update their relays to `bridge`.
    pub(crate) fn relay_endpoints_changed(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        bridge: &str,
        change: Change,
    ) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let Some(relay_id) = c.session(bridge).and_then(|b| b.relay_id.clone()) else {
            return;
        };
        let p = c.participants.get(nick);
        if p.is_none() && change != Change::Expire {
            return;
        }
        let endpoint = relay_endpoint(
            nick,
            p.and_then(|p| p.stats_id.as_deref()),
            c.sources.of(nick),
            change,
        );
        let targets: Vec<String> = c
            .bridges
            .iter()
            .filter(|b| b.bridge != bridge && b.created && b.relays.contains_key(&relay_id))
            .map(|b| b.bridge.clone())
            .collect();
        for target in targets {
            let relay = relay_endpoints(&relay_id, vec![endpoint.clone()]);
            let kind = Pending::ColibriUpdate {
                room: room.to_string(),
                bridge: target.clone(),
            };
            self.colibri_to(now, room, &target, relay, kind);
        }
    }

    /// `bridge`'s session answered its first allocation: it is relayed to
    /// each other bridge of the conference that is up (those initiate).
    pub(crate) fn connect_bridge(&mut self, now: Instant, room: &str, bridge: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(new_relay) = c.session(bridge).and_then(|b| b.relay_id.clone()) else {
            return;
        };
        let others: Vec<(String, String)> = c
            .bridges
            .iter()
            .filter(|b| b.bridge != bridge && b.created && !b.relays.contains_key(&new_relay))
            .filter_map(|b| b.relay_id.clone().map(|r| (b.bridge.clone(), r)))
            .collect();
        let mut requests = Vec::new();
        for (other, other_relay) in others {
            for (side, remote, remote_relay, initiator) in [
                (bridge, other.as_str(), &other_relay, false),
                (other.as_str(), bridge, &new_relay, true),
            ] {
                let endpoints: Vec<Element> = c
                    .participants
                    .values()
                    .filter(|p| p.allocation.bridge() == Some(remote))
                    .map(|p| {
                        relay_endpoint(
                            &p.endpoint_id,
                            p.stats_id.as_deref(),
                            c.sources.of(&p.endpoint_id),
                            Change::Create,
                        )
                    })
                    .collect();
                if let Some(s) = c.session_mut(side) {
                    s.relays.insert(
                        remote_relay.clone(),
                        Relay {
                            bridge: remote.to_string(),
                            initiator,
                            mesh_id: MESH_ID.to_string(),
                        },
                    );
                }
                requests.push((
                    side.to_string(),
                    remote_relay.clone(),
                    relay_create(remote_relay, endpoints, initiator),
                ));
            }
        }
        for (side, relay_id, relay) in requests {
            tracing::info!(room, bridge = side, relay_id, "creating a relay");
            let kind = Pending::RelayCreate {
                room: room.to_string(),
                bridge: side.clone(),
                relay_id,
            };
            self.colibri_to(now, room, &side, relay, kind);
        }
    }

    /// `bridge` answered its relay `relay_id`'s creation: its transport goes
    /// to the other side.
    pub(crate) fn on_relay_created(
        &mut self,
        now: Instant,
        room: &str,
        bridge: &str,
        relay_id: &str,
        iq: &Element,
    ) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let Some(own_relay) = c.session(bridge).and_then(|b| b.relay_id.clone()) else {
            return;
        };
        let Some(transport) = parse_relay_transport(iq, relay_id) else {
            tracing::warn!(
                room,
                bridge,
                relay_id,
                "a relay answered without a transport"
            );
            self.counters.colibri_failures += 1;
            self.bridge_failed(now, bridge);
            return;
        };
        let Some((other, initiator)) = c
            .bridges
            .iter()
            .find(|b| b.relay_id.as_deref() == Some(relay_id))
            .and_then(|b| {
                b.relays
                    .get(&own_relay)
                    .map(|r| (b.bridge.clone(), r.initiator))
            })
        else {
            // The other side went meanwhile.
            return;
        };
        let relay = relay_transport(&own_relay, &transport, initiator);
        let kind = Pending::ColibriUpdate {
            room: room.to_string(),
            bridge: other.clone(),
        };
        self.colibri_to(now, room, &other, relay, kind);
    }

    /// Jicofo's `bridgeCountChanged`: the focus's presence in the room
    /// carries the conference's bridge count (never below 1 once it was
    /// announced, as at the join).
    pub(crate) fn bridge_count_changed(&mut self, room: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let count = c.bridges.len().max(c.announced_bridges.min(1));
        if count == c.announced_bridges || c.state != crate::room::RoomState::Joined {
            return;
        }
        c.announced_bridges = count;
        self.publish_focus_presence(room);
    }

    /// The conference stops using `bridge`: its conference there expires,
    /// and so do the other bridges' relays to it. The participants it had
    /// are the caller's to move or forget.
    pub(crate) fn remove_session(&mut self, now: Instant, room: &str, bridge: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(pos) = c.bridges.iter().position(|b| b.bridge == bridge) else {
            return;
        };
        let removed = c.bridges.remove(pos);
        let mut expire_relays = Vec::new();
        if let Some(relay_id) = &removed.relay_id {
            for b in c.bridges.iter_mut() {
                if b.relays.remove(relay_id).is_some() && b.created {
                    expire_relays.push(b.bridge.clone());
                }
            }
        }
        let meeting_id = c.meeting_id.clone();
        if removed.created {
            let id = self.id();
            let iq = colibri::conference_expire(bridge, &id, &meeting_id);
            self.request(now, iq, Pending::Other);
        }
        if let Some(relay_id) = removed.relay_id {
            for other in expire_relays {
                self.colibri_to(now, room, &other, relay_expire(&relay_id), Pending::Other);
            }
        }
        self.bridge_count_changed(room);
    }
}
