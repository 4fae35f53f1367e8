//! The room features, one per file as Prosody's `plugins/muc/*.lib.lua`:
//! each keeps its settings in the room's `_data` (getters and setters on
//! [`Room`]) and hooks the MUC events it takes part in (configuration form,
//! disco#info, joins, messages...).

pub mod config_sections;
pub mod core;
pub mod defaults;
pub mod directory_name;
pub mod hats;
pub mod hidden;
pub mod history;
pub mod lock;
pub mod mam;
pub mod max_occupants;
pub mod members_only;
pub mod moderated;
pub mod occupant_id;
pub mod password;
pub mod persistent;
pub mod presence_broadcast;
pub mod register;
pub mod request;
pub mod restrict_pm;
pub mod room_info;
pub mod stanza_id;
pub mod subject;
pub mod tombstone;
pub mod vcard;
pub mod whois;

use std::sync::Arc;

use xmpp_core::{Event, Host, Value};

use crate::events::room_of;
use crate::form::Field;
use crate::room::Room;
use crate::room::owner::{add_config_field, add_status_code, submitted_value};

/// Hooks every feature, in the order Prosody's mod_muc loads them.
pub fn register_all(host: &Arc<Host>) {
    core::register(host);
    whois::register(host);
    room_info::register(host);
    hidden::register(host);
    password::register(host);
    members_only::register(host);
    moderated::register(host);
    request::register(host);
    persistent::register(host);
    subject::register(host);
    history::register(host);
    register::register(host);
    presence_broadcast::register(host);
    occupant_id::register(host);
    config_sections::register(host);
    hats::register(host);
    lock::register(host);
    restrict_pm::register(host);
    stanza_id::register(host);
    // Room vCards and avatars (mod_muc_vcard, part of Prosody 13).
    vcard::register(host);
    // Directory display names as <nick/> (lilt's addition).
    directory_name::register(host);
}

/// A boolean submitted value (`false` when absent).
pub fn submitted_bool(event: &Event) -> bool {
    matches!(submitted_value(event), Some(Value::Bool(true)))
}

/// A text submitted value.
pub fn submitted_str(event: &Event) -> Option<String> {
    submitted_value(event)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Hooks `muc-config-submitted/<field>`: `apply` returns whether the
/// setting changed, which adds status code 104.
pub fn on_submit(
    host: &Host,
    field: &str,
    apply: impl Fn(&Arc<Room>, &Event) -> bool + Send + Sync + 'static,
) {
    host.events
        .hook(&format!("muc-config-submitted/{field}"), 0, move |event| {
            if let Some(room) = room_of(event)
                && apply(&room, event)
            {
                add_status_code(event, "104");
            }
            false
        });
}

/// Hooks `muc-config-form` at `priority`: `field` gives the field to add.
pub fn on_form(
    host: &Host,
    priority: i32,
    field: impl Fn(&Arc<Room>, &Event) -> Option<Field> + Send + Sync + 'static,
) {
    host.events.hook("muc-config-form", priority, move |event| {
        if let Some(room) = room_of(event)
            && let Some(f) = field(&room, event)
        {
            add_config_field(event, f);
        }
        false
    });
}

/// Hooks `muc-disco#info` at priority 0.
pub fn on_disco(host: &Host, f: impl Fn(&Arc<Room>, &Event) + Send + Sync + 'static) {
    host.events.hook("muc-disco#info", 0, move |event| {
        if let Some(room) = room_of(event) {
            f(&room, event);
        }
        false
    });
}

/// Is `actor` (an event's `actor` field) an admin of the service?
pub fn actor_is_admin(room: &Room, event: &Event) -> bool {
    let actor = event.field_str("actor").unwrap_or_default();
    room.service().is_some_and(|s| s.is_admin(actor))
}
