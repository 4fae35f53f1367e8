//! Persistent rooms (Prosody's `persistent` library): they stay, and are
//! stored, when empty. `muc_room_allow_persistent = false` lets only
//! admins make rooms persistent.

use std::sync::Arc;

use xmpp_core::Host;

use super::{actor_is_admin, on_disco, on_form, on_submit, submitted_bool};
use crate::events::room_of;
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_feature;

impl Room {
    pub fn get_persistent(&self) -> bool {
        self.data_bool("persistent")
    }
    pub fn set_persistent(&self, persistent: bool) -> bool {
        self.set_data_bool("persistent", persistent)
    }
}

/// `muc_room_allow_persistent = false`: only admins make rooms
/// persistent (read at each use, so a reload applies).
fn restricted(room: &Room) -> bool {
    room.service()
        .is_some_and(|s| !s.settings().allow_persistent)
}

pub fn register(host: &Arc<Host>) {
    on_form(host, 100 - 5, move |room, event| {
        if restricted(room) && !actor_is_admin(room, event) {
            return None;
        }
        Some(
            Field::new("muc#roomconfig_persistentroom", "boolean")
                .label("Persistent (room should remain even when it is empty)")
                .desc("Rooms are automatically deleted when they are empty, unless this option is enabled")
                .value(room.get_persistent().then_some(FieldValue::Bool(true))),
        )
    });
    on_submit(host, "muc#roomconfig_persistentroom", move |room, event| {
        if restricted(room) && !actor_is_admin(room, event) {
            return false;
        }
        room.set_persistent(submitted_bool(event))
    });
    on_disco(host, |room, event| {
        add_disco_feature(
            event,
            if room.get_persistent() {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
        );
    });
    host.events.hook("muc-room-destroyed", -100, |event| {
        if let Some(room) = room_of(event) {
            room.set_persistent(false);
        }
        false
    });
}
