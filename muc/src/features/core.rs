//! The hooks `muc.lib.lua` itself registers: default roles, who may speak,
//! the creator's ownership, banned users and invalid nicknames kept out,
//! the room's basic disco features, invitation permissions and the
//! compatibility parts of invitations and declines.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Value};

use crate::events::{occupant_of, room_of};
use crate::room::iq::{add_disco_feature, add_disco_field};
use crate::room::message::add_body;
use crate::room::{Actor, AffiliationData, default_role_by_rank, reply_error};
use crate::util::{
    Affiliation, NS_CONFERENCE, NS_DELAY, NS_LEGACY_DELAY, NS_MUC_USER, Role, bare_of,
    is_strict_nick, role_rank,
};

fn occupant_nick(event: &Event, key: &str) -> Option<String> {
    let o = occupant_of(event, key)?;
    Some(
        event
            .field_str("dest_nick")
            .map(str::to_string)
            .unwrap_or_else(|| o.nick.clone()),
    )
}

fn nick_part(jid: &str) -> &str {
    jid.split_once('/').map_or("", |(_, r)| r)
}

/// Refuses a nickname: invisible (1) or not strictly valid (2).
fn check_nick(event: &mut Event, key: &str, strict: bool) -> bool {
    let (Some(room), Some(nick)) = (room_of(event), occupant_nick(event, key)) else {
        return false;
    };
    let nick = nick_part(&nick);
    let error = if strict {
        (!is_strict_nick(nick))
            .then(|| StanzaError::jid_malformed().with_text("Nickname must pass strict validation"))
    } else {
        (!nick.chars().any(|c| !c.is_whitespace())).then(|| {
            StanzaError::new(ErrorType::Modify, "not-allowed")
                .with_text("Invisible Nicknames are forbidden")
        })
    };
    match (error, event.origin.clone()) {
        (Some(e), Some(origin)) => {
            reply_error(&origin, event.stanza(), e, &room.jid);
            true
        }
        _ => false,
    }
}

pub fn register(host: &Arc<Host>) {
    let ev = &host.events;
    ev.hook("muc-get-default-role", -1, |event| {
        let affiliation = event
            .field_str("affiliation")
            .and_then(|a| Affiliation::parse(a).ok())
            .flatten();
        let role = default_role_by_rank(affiliation);
        event
            .fields
            .insert("role".into(), Value::str(role.map_or("none", Role::as_str)));
        true
    });

    // Delays claiming to be from the room are the room's to add.
    ev.hook("muc-occupant-groupchat", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if let Some(stanza) = event.stanza.as_mut() {
            stanza.remove_children(|c| {
                (c.is("delay", NS_DELAY) || c.is("x", NS_LEGACY_DELAY))
                    && c.get_attr("from") == Some(room.jid.as_str())
            });
        }
        false
    });
    // Role check: visitors may not speak, non-occupants even less.
    ev.hook("muc-occupant-groupchat", 50, |event| {
        let rank = role_rank(occupant_of(event, "occupant").and_then(|o| o.role));
        let Some(origin) = event.origin.clone() else {
            return false;
        };
        let error = if rank <= 0 {
            StanzaError::new(ErrorType::Cancel, "not-acceptable")
                .with_text("You are not currently connected to this chat")
        } else if rank <= role_rank(Some(Role::Visitor)) {
            StanzaError::forbidden()
                .with_text("You do not currently have permission to speak in this chat")
        } else {
            return false;
        };
        origin.send(error.reply_to(event.stanza()));
        true
    });

    // The creator owns the room.
    ev.hook("muc-room-pre-create", -1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let from = bare_of(event.stanza().from().unwrap_or_default()).to_string();
        if let Err(e) = room.set_affiliation(
            Actor::Room,
            &from,
            Some(Affiliation::Owner),
            None,
            AffiliationData::Keep,
        ) {
            tracing::warn!(room = %room.jid, "making {from} owner failed: {e}");
        }
        false
    });

    // Banned users stay out.
    ev.hook("muc-occupant-pre-join", -10, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let from = event.stanza().from().unwrap_or_default();
        if room.get_affiliation(from) != Some(Affiliation::Outcast) {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(&origin, event.stanza(), StanzaError::forbidden(), &room.jid);
        }
        true
    });
    ev.hook("muc-occupant-pre-join", 1, |e| {
        check_nick(e, "occupant", false)
    });
    ev.hook("muc-occupant-pre-change", 1, |e| {
        check_nick(e, "dest_occupant", false)
    });
    ev.hook("muc-occupant-pre-join", 2, |e| {
        check_nick(e, "occupant", true)
    });
    ev.hook("muc-occupant-pre-change", 2, |e| {
        check_nick(e, "dest_occupant", true)
    });

    ev.hook("muc-disco#info", 0, |event| {
        for var in [
            "http://jabber.org/protocol/muc",
            "http://jabber.org/protocol/muc#stable_id",
            "http://jabber.org/protocol/muc#self-ping-optimization",
        ] {
            add_disco_feature(event, var);
        }
        false
    });
    ev.hook("muc-disco#info", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        add_disco_field(
            event,
            crate::form::Field::new("muc#roominfo_occupants", "text-single")
                .label("Number of occupants"),
            Some(crate::form::FieldValue::Text(
                room.occupant_count().to_string(),
            )),
        );
        false
    });

    // Inviting takes at least a visitor's voice.
    ev.hook("muc-pre-invite", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let from = event.stanza().from().unwrap_or_default().to_string();
        let role = match room.get_occupant_by_real_jid(&from) {
            Some(o) => o.role,
            None => room.get_default_role(room.get_affiliation(&from)),
        };
        if role_rank(role) > role_rank(Some(Role::Visitor)) {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            origin.send(StanzaError::forbidden().reply_to(event.stanza()));
        }
        true
    });
    // COMPAT: older clients expect a jabber:x:conference invitation too.
    ev.hook("muc-invite", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let Some(stanza) = event.stanza.as_mut() else {
            return false;
        };
        let reason = invite_payload(stanza, "invite")
            .and_then(|i| i.get_child_text("reason", NS_MUC_USER))
            .unwrap_or_default();
        stanza.push_child(
            Element::new("x", NS_CONFERENCE)
                .attr("jid", room.jid.as_str())
                .text(reason),
        );
        false
    });
    // A plain body for clients without invitation support.
    ev.hook("muc-invite", 0, |event| {
        plain_body(event, "invite", "invited you to the room")
    });
    ev.hook("muc-decline", 0, |event| {
        plain_body(event, "decline", "declined your invite to the room")
    });
}

fn invite_payload<'a>(stanza: &'a Element, name: &str) -> Option<&'a Element> {
    stanza
        .get_child("x", NS_MUC_USER)
        .and_then(|x| x.get_child(name, NS_MUC_USER))
}

fn plain_body(event: &mut Event, name: &str, says: &str) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    let Some(stanza) = event.stanza.as_mut() else {
        return false;
    };
    if stanza.get_child("body", NS_CLIENT).is_some() {
        return false;
    }
    let Some(payload) = invite_payload(stanza, name) else {
        return false;
    };
    let from = payload.get_attr("from").unwrap_or_default().to_string();
    let reason = payload
        .get_child_text("reason", NS_MUC_USER)
        .unwrap_or_default();
    let mut text = format!("{from} {says} {}", room.jid);
    if !reason.is_empty() {
        text.push_str(&format!(" ({reason})"));
    }
    add_body(stanza, text);
    false
}
