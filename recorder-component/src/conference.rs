//! The recorder in the conference room: its presence (from the recorder
//! domain, hidden from the others as Jibri is, carrying Jibri's
//! `<session_id>` and `<mode>` so that lib-jitsi-meet shows the recording
//! as on), and what the room's presences say about the participants.

use xmpp_core::Element;

use crate::ns;

/// The nick the focus has in every conference room.
pub const FOCUS_NICK: &str = "focus";

/// The recorder's nick in a room: `recorder` and the session id's first
/// letters and digits (muc_resource_validate allows `[a-zA-Z0-9_]`).
pub fn recorder_nick(session_id: &str) -> String {
    let tail: String = session_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("recorder_{tail}")
}

/// The join presence: `<x muc>`, Jibri's `session_id` and `mode` (read by
/// lib-jitsi-meet's getHiddenDomainUpdate), and a display name.
pub fn join_presence(from: &str, room: &str, nick: &str, session_id: &str, mode: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr("from", from)
        .attr("to", format!("{room}/{nick}"))
        .child(Element::new("x", ns::MUC))
        .child(Element::new("session_id", ns::CLIENT).text(session_id))
        .child(Element::new("mode", ns::CLIENT).text(mode))
        .child(Element::new("nick", ns::NICK).text("Recorder"))
}

/// Leaving the room.
pub fn leave_presence(from: &str, room: &str, nick: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .attr("from", from)
        .attr("to", format!("{room}/{nick}"))
        .attr("type", "unavailable")
}

/// What one presence from the room says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPresence {
    /// Our own presence: joined.
    SelfJoined,
    /// Our own unavailable presence; `destroyed` when the room went.
    SelfLeft { destroyed: bool },
    /// The room refused us (`type='error'`), with the condition.
    JoinError(String),
    /// Someone is (still) in the room.
    Available {
        nick: String,
        name: Option<String>,
        /// The real JID, when the room shows it.
        jid: Option<String>,
    },
    /// Someone left.
    Unavailable { nick: String },
}

/// Reads a presence from `room` (bare JID); `None` if it is not from it.
pub fn read_presence(presence: &Element, room: &str, own_nick: &str) -> Option<RoomPresence> {
    let from = presence.from()?;
    let (bare, nick) = from.split_once('/')?;
    if !bare.eq_ignore_ascii_case(room) {
        return None;
    }
    let x = presence.get_child("x", ns::MUC_USER);
    let self_presence = nick == own_nick
        || x.is_some_and(|x| {
            x.children()
                .any(|c| c.name() == "status" && c.get_attr("code") == Some("110"))
        });
    match presence.type_() {
        Some("error") if nick != own_nick => None,
        Some("error") => {
            let cond = presence
                .get_child("error", ns::CLIENT)
                .and_then(|e| e.children().find(|c| c.ns() == ns::STANZAS))
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| "undefined-condition".into());
            Some(RoomPresence::JoinError(cond))
        }
        Some("unavailable") if self_presence => Some(RoomPresence::SelfLeft {
            destroyed: x.is_some_and(|x| x.get_child("destroy", ns::MUC_USER).is_some()),
        }),
        Some("unavailable") => Some(RoomPresence::Unavailable { nick: nick.into() }),
        None if self_presence => Some(RoomPresence::SelfJoined),
        None => Some(RoomPresence::Available {
            nick: nick.into(),
            name: presence.get_child_text("nick", ns::NICK),
            jid: x
                .and_then(|x| x.get_child("item", ns::MUC_USER))
                .and_then(|i| i.get_attr("jid"))
                .map(str::to_string),
        }),
        Some(_) => None,
    }
}

/// The domain of a JID (`user@domain/res` → `domain`).
pub fn domain_of(jid: &str) -> &str {
    let no_res = jid.split('/').next().unwrap_or(jid);
    no_res.rsplit('@').next().unwrap_or(no_res)
}
