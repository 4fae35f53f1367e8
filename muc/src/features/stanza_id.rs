//! XEP-0359 stanza ids on groupchat messages: a room-assigned
//! `<stanza-id by='room'/>` on every message kept in history, after
//! removing any claiming to be the room's.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Value};

use crate::events::room_of;
use crate::room::iq::add_disco_feature;
use crate::util::{NS_STANZA_ID, new_id};

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-disco#info", 0, |event| {
        add_disco_feature(event, NS_STANZA_ID);
        false
    });
    host.events.hook("muc-occupant-groupchat", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if let Some(stanza) = event.stanza.as_mut() {
            stanza.remove_children(|c| {
                c.is("stanza-id", NS_STANZA_ID) && c.get_attr("by") == Some(room.jid.as_str())
            });
        }
        false
    });
    host.events.hook("muc-broadcast-message", 1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let Some(ctx) = room.ctx() else { return false };
        let mut ev = ctx
            .room_event("muc-message-is-historic", &room)
            .with_stanza(event.stanza().clone());
        ctx.fire("muc-message-is-historic", &mut ev);
        let historic = ev.fields.get("historic") == Some(&Value::Bool(true));
        event
            .fields
            .insert("historic".into(), Value::Bool(historic));
        if !historic {
            return false;
        }
        if let Some(stanza) = event.stanza.as_mut() {
            stanza.push_child(
                Element::new("stanza-id", NS_STANZA_ID)
                    .attr("id", new_id())
                    .attr("by", room.jid.as_str()),
            );
        }
        false
    });
}
