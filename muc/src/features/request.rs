//! Voice requests (Prosody's `request` library): a visitor's request goes
//! to the moderators as a `muc#request` form; a moderator's approval
//! grants the participant role.

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Session, Value};

use crate::events::{Ctx, EventExt, occupant_of, room_of};
use crate::form::{Field, FieldValue, Form, FormOption};
use crate::room::iq::add_disco_feature;
use crate::room::{Actor, Room};
use crate::util::Role;

const NS_REQUEST: &str = "http://jabber.org/protocol/muc#request";

fn voice_request_form() -> Form {
    Form {
        title: Some("Voice Request".into()),
        instructions: None,
        fields: vec![
            Field::new("FORM_TYPE", "hidden").value(Some(FieldValue::Text(NS_REQUEST.into()))),
            Field::new("muc#jid", "jid-single")
                .label("User ID")
                .desc("The user's JID (address)"),
            Field::new("muc#roomnick", "text-single")
                .label("Room nickname")
                .desc("The user's nickname within the room"),
            Field::new("muc#role", "list-single")
                .label("Requested role")
                .value(Some(FieldValue::Text("participant".into())))
                .options(
                    ["none", "visitor", "participant", "moderator"]
                        .iter()
                        .map(|r| FormOption::plain(r))
                        .collect(),
                ),
            Field::new("muc#request_allow", "boolean")
                .label("Grant voice to this person?")
                .desc("Specify whether this person is able to speak in a moderated room")
                .value(Some(FieldValue::Bool(false))),
        ],
    }
}

/// A `muc#request` form sent to the room.
pub(crate) fn handle_request(
    room: &Arc<Room>,
    ctx: &Ctx,
    origin: &Arc<Session>,
    stanza: &Element,
    form: &Element,
) {
    let Some(occupant) = room.get_occupant_by_real_jid(stanza.from().unwrap_or_default()) else {
        return;
    };
    let read = voice_request_form().read(form);
    let name = if occupant.role == Some(Role::Moderator) {
        "muc-voice-response"
    } else {
        "muc-voice-request"
    };
    let mut ev = ctx
        .room_event(name, room)
        .with_origin(origin)
        .with_stanza(stanza.clone())
        .occupant("occupant", &occupant);
    for (k, v) in &read.values {
        ev.fields.insert(format!("fields.{k}"), v.to_value());
    }
    ctx.fire(name, &mut ev);
}

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-disco#info", 0, |event| {
        add_disco_feature(event, NS_REQUEST);
        false
    });
    host.events.hook("muc-voice-request", 0, |event| {
        let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
            return false;
        };
        if occupant.role != Some(Role::Visitor) {
            return false;
        }
        let mut data = std::collections::HashMap::new();
        data.insert(
            "muc#jid".to_string(),
            FieldValue::Text(event.stanza().from().unwrap_or_default().to_string()),
        );
        data.insert(
            "muc#roomnick".to_string(),
            FieldValue::Text(occupant.nickname().to_string()),
        );
        let message = Element::new("message", NS_CLIENT)
            .attr("type", "normal")
            .attr("from", room.jid.as_str())
            .child(voice_request_form().render(Some(&data), "form"));
        room.broadcast(
            &message,
            Some(&|o: &crate::occupant::Occupant| o.role == Some(Role::Moderator)),
        );
        false
    });
    host.events.hook("muc-voice-response", 0, |event| {
        let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
            return false;
        };
        if occupant.role != Some(Role::Moderator)
            || event.fields.get("fields.muc#request_allow") != Some(&Value::Bool(true))
        {
            return false;
        }
        let Some(target) = event
            .field_str("fields.muc#jid")
            .and_then(|j| room.get_occupant_by_real_jid(j))
        else {
            return false;
        };
        if target.role != Some(Role::Visitor) {
            return false;
        }
        let actor = event.stanza().from().unwrap_or_default().to_string();
        if let Err(e) = room.set_role(
            Actor::Jid(&actor),
            &target.nick,
            Some(Role::Participant),
            Some("Voice granted"),
        ) && let Some(origin) = event.origin.clone()
        {
            origin.send(e.reply_to(event.stanza()));
        }
        false
    });
}
