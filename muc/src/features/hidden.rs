//! Public and hidden rooms (Prosody's `hidden` library): hidden rooms are
//! not in the room list. `muc_room_allow_public = false` lets only admins
//! make rooms public.

use std::sync::Arc;

use xmpp_core::Host;

use super::{actor_is_admin, on_disco, on_form, on_submit, submitted_bool};
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_feature;

impl Room {
    pub fn get_hidden(&self) -> bool {
        self.data_bool("hidden")
    }
    pub fn set_hidden(&self, hidden: bool) -> bool {
        self.set_data_bool("hidden", hidden)
    }
    pub fn get_public(&self) -> bool {
        !self.get_hidden()
    }
    pub fn set_public(&self, public: bool) -> bool {
        self.set_hidden(!public)
    }
}

/// `muc_room_allow_public = false`: only admins make rooms public (read
/// at each use, so a reload applies).
fn restricted(room: &Room) -> bool {
    room.service().is_some_and(|s| !s.settings().allow_public)
}

pub fn register(host: &Arc<Host>) {
    on_form(host, 100 - 9, move |room, event| {
        if restricted(room) && !actor_is_admin(room, event) {
            return None;
        }
        Some(
            Field::new("muc#roomconfig_publicroom", "boolean")
                .label("Include room information in public lists")
                .desc("Enable this to allow people to find the room")
                .value(Some(FieldValue::Bool(!room.get_hidden()))),
        )
    });
    on_submit(host, "muc#roomconfig_publicroom", move |room, event| {
        if restricted(room) && !actor_is_admin(room, event) {
            return false;
        }
        room.set_hidden(!submitted_bool(event))
    });
    on_disco(host, |room, event| {
        add_disco_feature(
            event,
            if room.get_hidden() {
                "muc_hidden"
            } else {
                "muc_public"
            },
        );
    });
}
