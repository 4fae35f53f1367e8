//! The `muc_room_default_*` options applied to new rooms (mod_muc's
//! `set_room_defaults`).

use std::sync::Arc;

use crate::room::Room;
use crate::settings::Settings;

pub fn apply(room: &Arc<Room>, settings: &Settings, lang: Option<&str>) {
    let d = &settings.defaults;
    room.set_public(d.public);
    if let Some(v) = d.persistent {
        room.set_persistent(v);
    }
    if let Some(v) = d.members_only {
        room.set_members_only(v);
    }
    if let Some(v) = d.allow_member_invites {
        room.set_allow_member_invites(v);
    }
    if let Some(v) = d.moderated {
        room.set_moderated(v);
    }
    if let Some(v) = d.public_jids {
        room.set_whois(if v { "anyone" } else { "moderators" });
    }
    if let Some(v) = d.change_subject {
        room.set_changesubject(v);
    }
    if let Some(v) = d.history_length {
        room.set_historylength(Some(v));
    }
    room.set_language(lang.or(d.language.as_deref()));
    if let Some(roles) = &d.presence_broadcast {
        room.set_presence_broadcast(Some(roles));
    }
}
