//! XEP-0421 occupant identifiers (Prosody's `occupant_id` library): a
//! stable anonymous id per user and room (base64 of HMAC-SHA256 keyed with
//! the user's bare JID over the room's random salt), put on presences and
//! messages after removing any the client claimed. `muc_occupant_id =
//! false` turns it off.

use std::sync::Arc;

use base64::Engine as _;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Value};

use crate::events::{occupant_of, room_of};
use crate::room::Room;
use crate::room::iq::{add_disco_feature, hmac_sha256};
use crate::util::{NS_OCCUPANT_ID, uuid};

impl Room {
    /// The room's salt, made on first use (kept in `_data.occupant_id_salt`).
    pub fn get_salt(&self) -> String {
        if let Some(s) = self.data_str("occupant_id_salt") {
            return s;
        }
        let salt = uuid();
        self.set_data_value("occupant_id_salt", Some(Value::str(salt.clone())));
        salt
    }

    /// The occupant id of a bare JID in this room.
    pub fn get_occupant_id(&self, bare_jid: &str) -> String {
        let salt = self.get_salt();
        base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(bare_jid.as_bytes(), salt.as_bytes()))
    }
}

/// Replaces the stanza's `<occupant-id/>` with the occupant's.
fn stamp(room: &Room, stanza: &mut Element, bare_jid: &str) {
    stanza.remove_children(|c| c.is("occupant-id", NS_OCCUPANT_ID));
    stanza.push_child(
        Element::new("occupant-id", NS_OCCUPANT_ID).attr("id", room.get_occupant_id(bare_jid)),
    );
}

/// `muc_occupant_id`, read at each use (a reload applies).
fn enabled(room: &Room) -> bool {
    room.service().is_some_and(|s| s.settings().occupant_id)
}

fn update_occupant(event: &mut Event) -> bool {
    let Some(room) = room_of(event).filter(|r| enabled(r)) else {
        return false;
    };
    let occupant = occupant_of(event, "dest_occupant").or_else(|| occupant_of(event, "occupant"));
    let Some(occupant) = occupant else {
        return false;
    };
    if let Some(stanza) = event.stanza.as_mut() {
        stamp(&room, stanza, &occupant.bare_jid);
    }
    false
}

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-disco#info", 0, |event| {
        if room_of(event).is_some_and(|r| enabled(&r)) {
            add_disco_feature(event, NS_OCCUPANT_ID);
        }
        false
    });
    for name in [
        "muc-broadcast-presence",
        "muc-occupant-pre-join",
        "muc-occupant-pre-change",
        "muc-occupant-groupchat",
    ] {
        host.events.hook(name, 0, update_occupant);
    }
    host.events.hook("muc-private-message", 0, |event| {
        let Some(room) = room_of(event).filter(|r| enabled(r)) else {
            return false;
        };
        let from = event.stanza().from().unwrap_or_default().to_string();
        if let Some(o) = room.get_occupant_by_nick(&from)
            && let Some(stanza) = event.stanza.as_mut()
        {
            stamp(&room, stanza, &o.bare_jid);
        }
        false
    });
}
