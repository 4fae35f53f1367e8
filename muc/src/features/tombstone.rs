//! Tombstones (`muc_tombstones`, on by default): a destroyed persistent
//! room leaves a hidden, locked placeholder for `muc_tombstone_expiry`
//! seconds, which answers `gone` (with the alternate venue, if any) until
//! it expires or an admin recreates the room.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_STANZAS};
use xmpp_core::{Event, Table, Value};

use crate::events::{Ctx, room_of};
use crate::room::Room;

/// May the stanza go past the tombstone (`Ok`: delete it first), or the
/// `gone` error to send (`None` for an error stanza).
pub fn check(ctx: &Ctx, room: &Arc<Room>, stanza: &Element) -> Result<(), Option<Element>> {
    let now = ctx.server.clock.now();
    let until = room
        .data_value("locked")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let from = stanza.from().unwrap_or_default();
    let recreate =
        ctx.service.is_admin(from) && stanza.name() == "presence" && stanza.type_().is_none();
    if until < now || recreate {
        return Ok(());
    }
    if stanza.type_() == Some("error") {
        return Err(None);
    }
    let mut error = StanzaError::new(xmpp_core::ErrorType::Cancel, "gone");
    if let Some(r) = room.data_str("reason") {
        error = error.with_text(r);
    }
    let mut reply = error.reply_to(stanza);
    if let Some(e) = reply.get_child_mut("error", stanza.ns()) {
        e.set_attr("by", Some(ctx.service.host_name.clone()));
        if let Some(newjid) = room.data_str("newjid")
            && let Some(gone) = e.get_child_mut("gone", NS_STANZAS)
        {
            gone.append_text(format!("xmpp:{newjid}?join"));
        }
    }
    Err(Some(reply))
}

/// `muc-room-destroyed` (-10): a persistent room leaves a tombstone.
pub fn on_destroyed(event: &mut Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    if !room.get_persistent() || room.data_bool("destroyed") {
        return false;
    }
    let Some(ctx) = room.ctx() else { return false };
    let mut data = Table::new();
    let until = ctx.server.clock.now().floor() as i64 + ctx.service.settings().tombstone_expiry;
    data.insert("locked", Value::Integer(until));
    data.insert("destroyed", Value::Bool(true));
    for key in ["reason", "newjid"] {
        if let Some(v) = event.field_str(key) {
            data.insert(key, Value::str(v));
        }
    }
    let tombstone = Room::new(&room.jid, &ctx.service, data);
    tombstone.set_persistent(true);
    tombstone.set_hidden(true);
    if let Err(e) = ctx.service.room_save(&tombstone, true, false) {
        tracing::error!(room = %room.jid, "saving the tombstone failed: {e}");
    }
    true
}
