//! Moderated rooms (Prosody's `moderated` library): occupants without an
//! affiliation join as visitors and need voice to speak.

use std::sync::Arc;

use xmpp_core::{Host, Value};

use super::{on_disco, on_form, on_submit, submitted_bool};
use crate::events::room_of;
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_feature;

impl Room {
    pub fn get_moderated(&self) -> bool {
        self.data_bool("moderated")
    }
    pub fn set_moderated(&self, moderated: bool) -> bool {
        self.set_data_bool("moderated", moderated)
    }
}

pub fn register(host: &Arc<Host>) {
    on_disco(host, |room, event| {
        add_disco_feature(
            event,
            if room.get_moderated() {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
        );
    });
    on_form(host, 80 - 3, |room, _| {
        Some(
            Field::new("muc#roomconfig_moderatedroom", "boolean")
                .label("Moderated (require permission to speak)")
                .desc("In moderated rooms occupants must be given permission to speak by a room moderator")
                .value(room.get_moderated().then_some(FieldValue::Bool(true))),
        )
    });
    on_submit(host, "muc#roomconfig_moderatedroom", |room, event| {
        room.set_moderated(submitted_bool(event))
    });
    host.events.hook("muc-get-default-role", 1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if event.field_str("affiliation") == Some("none") && room.get_moderated() {
            event.fields.insert("role".into(), Value::str("visitor"));
            return true;
        }
        false
    });
}
