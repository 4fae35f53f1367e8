//! A conference: the MUC room the focus joined as owner with the nick
//! `focus`, its participants (tracked from presence), its sources and the
//! bridge it runs on. Also the stanzas of the room itself: the join
//! presence with Jicofo's extensions, the configuration form a locked room
//! (`muc_room_locking`) gets, and leaving.

use std::collections::BTreeMap;

use media_signalling::Source;
use xmpp_core::Element;

use crate::ns;
use crate::participant::Participant;
use crate::sources::ConferenceSources;

/// The room's state from the focus's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    /// Join presence sent.
    Joining,
    /// Created and locked: the configuration form is out.
    Configuring,
    /// Joined (and unlocked): conference IQs are answered `ready`.
    Joined,
}

/// The conference's session with one of its bridges (Jicofo's
/// `Colibri2Session`).
#[derive(Debug, Clone)]
pub struct BridgeSession {
    pub bridge: String,
    /// The bridge's `relay_id` when the session started (Jicofo keeps it
    /// for the session's life).
    pub relay_id: Option<String>,
    /// Relays to the conference's other bridges, by their relay id.
    pub relays: BTreeMap<String, Relay>,
    /// The conference exists on the bridge (a `create` was answered).
    pub created: bool,
    /// A `create` request is out; other endpoints wait in `queued`.
    pub creating: bool,
    pub queued: Vec<String>,
    /// The bridge's own sources (`jvb-a0`, `jvb-v0`).
    pub feedback_sources: Vec<Source>,
    /// The `bridge-session` id offered to participants.
    pub session_id: String,
}

impl BridgeSession {
    pub fn new(bridge: &str, relay_id: Option<String>, session_id: String) -> BridgeSession {
        BridgeSession {
            bridge: bridge.to_string(),
            relay_id,
            relays: BTreeMap::new(),
            created: false,
            creating: false,
            queued: Vec::new(),
            feedback_sources: Vec::new(),
            session_id,
        }
    }
}

/// One side of a relay between two bridges of a conference (Jicofo's
/// `Colibri2Session.Relay`): the initiator is ICE controlling, uses a
/// unique port, is DTLS active and opens the bridge channel's WebSocket.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The other bridge (its occupant JID in the brewery).
    pub bridge: String,
    pub initiator: bool,
    pub mesh_id: String,
}

/// AV moderation of one media type (from the av_moderation component).
#[derive(Debug, Clone, Default)]
pub struct AvModeration {
    pub audio_enabled: bool,
    pub video_enabled: bool,
    pub audio_whitelist: Vec<String>,
    pub video_whitelist: Vec<String>,
}

#[derive(Debug)]
pub struct Conference {
    /// The room's bare JID, `room@conference.D`.
    pub room: String,
    pub meeting_id: String,
    pub state: RoomState,
    /// Conference IQ results held until the room is joined.
    pub pending_replies: Vec<Element>,
    pub participants: BTreeMap<String, Participant>,
    pub sources: ConferenceSources,
    /// The bridges the conference uses, in the order it took them.
    pub bridges: Vec<BridgeSession>,
    /// The `bridge-count` conference property last announced (at least 1
    /// once the focus knows a bridge, as before any allocation).
    pub announced_bridges: usize,
    pub av_moderation: AvModeration,
    pub recording: Option<crate::jibri::JibriSession>,
    /// The conference IQ's `startAudioMuted` / `startVideoMuted`: the
    /// participants joining after that many start muted.
    pub start_muted_after: (Option<u32>, Option<u32>),
    /// Participants that joined so far.
    pub joins: u64,
    /// Until when the room may stay without anyone having joined
    /// (Jicofo's `initial-timeout`), after which the focus leaves it.
    pub initial_deadline: Option<std::time::Instant>,
}

impl Conference {
    pub fn new(room: &str, meeting_id: String) -> Conference {
        Conference {
            room: room.to_string(),
            meeting_id,
            state: RoomState::Joining,
            pending_replies: Vec::new(),
            participants: BTreeMap::new(),
            sources: ConferenceSources::default(),
            bridges: Vec::new(),
            announced_bridges: 0,
            av_moderation: AvModeration::default(),
            recording: None,
            start_muted_after: (None, None),
            joins: 0,
            initial_deadline: None,
        }
    }

    pub fn focus_occupant(&self) -> String {
        format!("{}/{}", self.room, crate::focus::FOCUS_NICK)
    }

    /// Whether the `position`-th participant (1-based) starts muted:
    /// `(audio, video)`, or `None` for neither.
    pub fn start_muted(&self, position: u64, global: Option<(bool, bool)>) -> Option<(bool, bool)> {
        let after = |n: Option<u32>| n.is_some_and(|n| position > u64::from(n));
        let (ga, gv) = global.unwrap_or((false, false));
        let audio = ga || after(self.start_muted_after.0);
        let video = gv || after(self.start_muted_after.1);
        (audio || video).then_some((audio, video))
    }

    /// The participants on `bridge`.
    pub fn on_bridge(&self, bridge: &str) -> Vec<String> {
        self.participants
            .values()
            .filter(|p| p.allocation.bridge() == Some(bridge))
            .map(|p| p.endpoint_id.clone())
            .collect()
    }

    pub fn session(&self, bridge: &str) -> Option<&BridgeSession> {
        self.bridges.iter().find(|b| b.bridge == bridge)
    }

    pub fn session_mut(&mut self, bridge: &str) -> Option<&mut BridgeSession> {
        self.bridges.iter_mut().find(|b| b.bridge == bridge)
    }

    /// The session of `nick`'s bridge.
    pub fn session_of(&self, nick: &str) -> Option<&BridgeSession> {
        let bridge = self.participants.get(nick)?.allocation.bridge()?;
        self.session(bridge)
    }

    /// `except`'s bridge's sources, then every other participant's, by
    /// owner (`jvb` for the bridge), as an offer or a fan-out carries them.
    pub fn remote_sources(&self, except: &str) -> BTreeMap<String, Vec<Source>> {
        let mut out = BTreeMap::new();
        if let Some(b) = self.session_of(except)
            && !b.feedback_sources.is_empty()
        {
            out.insert("jvb".to_string(), b.feedback_sources.clone());
        }
        for (owner, sources) in self.sources.owners() {
            if owner != except && !sources.is_empty() {
                out.insert(owner.clone(), sources.clone());
            }
        }
        out
    }
}

/// The focus's presence in a conference room: MUC join with Jicofo's
/// `versions` and `conference-properties`.
pub fn join_presence(occupant: &str, bridge_count: usize) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr("to", occupant)
        .child(Element::new("x", ns::MUC))
        .child(
            Element::new("versions", ns::JITMEET).child(
                Element::new("component", ns::JITMEET)
                    .attr("name", "focus")
                    .text(concat!("lilt-", env!("CARGO_PKG_VERSION"))),
            ),
        )
        .child(
            Element::new("conference-properties", ns::FOCUS)
                .child(property("support-terminate-restart", "true"))
                .child(property("bridge-count", &bridge_count.to_string())),
        )
}

fn property(key: &str, value: &str) -> Element {
    Element::new("property", ns::FOCUS)
        .attr("key", key)
        .attr("value", value)
}

/// The join presence for the brewery rooms (no extensions).
pub fn plain_join(occupant: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr("to", occupant)
        .child(Element::new("x", ns::MUC))
}

pub fn leave_presence(occupant: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr("to", occupant)
        .attr("type", "unavailable")
}

/// The owner form Jicofo submits for a room it created: real JIDs visible
/// to all (`muc#roomconfig_whois` = anyone), which also unlocks a room
/// held by `muc_room_locking`.
pub fn config_form(room: &str, id: &str) -> Element {
    let field = |var: &str, value: &str| {
        Element::new("field", ns::DATA_FORMS)
            .attr("var", var)
            .child(Element::new("value", ns::DATA_FORMS).text(value))
    };
    Element::new("iq", ns::CLIENT)
        .attr("type", "set")
        .attr("to", room)
        .attr("id", id)
        .child(
            Element::new("query", ns::MUC_OWNER).child(
                Element::new("x", ns::DATA_FORMS)
                    .attr("type", "submit")
                    .child(field(
                        "FORM_TYPE",
                        "http://jabber.org/protocol/muc#roomconfig",
                    ))
                    .child(field("muc#roomconfig_whois", "anyone")),
            ),
        )
}

/// Makes `jid` an owner of `room` (Jicofo's moderator grant).
pub fn grant_owner(room: &str, jid: &str, id: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .attr("type", "set")
        .attr("to", room)
        .attr("id", id)
        .child(
            Element::new("query", ns::MUC_ADMIN).child(
                Element::new("item", ns::MUC_ADMIN)
                    .attr("affiliation", "owner")
                    .attr("jid", jid),
            ),
        )
}

/// The status codes of a MUC presence.
pub fn status_codes(presence: &Element) -> Vec<String> {
    presence
        .get_child("x", ns::MUC_USER)
        .map(|x| {
            x.children()
                .filter(|c| c.name() == "status")
                .filter_map(|c| c.get_attr("code").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
