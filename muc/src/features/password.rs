//! Password-protected rooms (Prosody's `password` library).

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;

use super::{on_disco, on_form, on_submit, submitted_str};
use crate::events::room_of;
use crate::form::{Field, FieldValue};
use crate::room::iq::add_disco_feature;
use crate::room::{Room, reply_error};
use crate::util::{NS_MUC, NS_MUC_USER};

impl Room {
    pub fn get_password(&self) -> Option<String> {
        self.data_str("password")
    }
    pub fn set_password(&self, password: Option<&str>) -> bool {
        self.set_data_str("password", password)
    }
}

/// The password in a join presence's `<x xmlns='muc'/>` (empty counts as none).
fn given_password(stanza: &Element) -> Option<String> {
    stanza
        .get_child("x", NS_MUC)?
        .get_child_text("password", NS_MUC)
        .filter(|p| !p.is_empty())
}

pub fn register(host: &Arc<Host>) {
    on_disco(host, |room, event| {
        add_disco_feature(
            event,
            if room.get_password().is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
        );
    });
    on_form(host, 90 - 2, |room, _| {
        Some(
            Field::new("muc#roomconfig_roomsecret", "text-private")
                .label("Password")
                .value(Some(FieldValue::Text(
                    room.get_password().unwrap_or_default(),
                ))),
        )
    });
    on_submit(host, "muc#roomconfig_roomsecret", |room, event| {
        room.set_password(submitted_str(event).as_deref())
    });
    host.events.hook("muc-occupant-pre-join", -20, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let Some(password) = room.get_password() else {
            return false;
        };
        let stanza = event.stanza();
        if stanza.get_child("x", NS_MUC).is_none() {
            return false;
        }
        if given_password(stanza).as_deref() == Some(password.as_str()) {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(
                &origin,
                stanza,
                StanzaError::new(ErrorType::Auth, "not-authorized"),
                &room.jid,
            );
        }
        true
    });
    host.events.hook("muc-invite", 0, |event| {
        let Some(password) = room_of(event).and_then(|r| r.get_password()) else {
            return false;
        };
        if let Some(x) = event
            .stanza
            .as_mut()
            .and_then(|s| s.get_child_mut("x", NS_MUC_USER))
        {
            x.push_child(Element::new("password", NS_MUC_USER).text(password));
        }
        false
    });
    host.events.hook("muc-room-pre-create", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if event.stanza().get_child("x", NS_MUC).is_some() {
            room.set_password(given_password(event.stanza()).as_deref());
        }
        false
    });
}
