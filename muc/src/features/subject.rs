//! The room's subject (Prosody's `subject` library): sent to each joining
//! session, changed by a groupchat message with only a `<subject/>` (by
//! moderators, or participants when `changesubject` allows).

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Value};

use super::{on_disco, on_form, on_submit, submitted_bool};
use crate::events::{occupant_of, room_of};
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_field;
use crate::util::{NS_DELAY, Role, datetime, role_rank};

fn subject_message(from: &str, subject: Option<&str>) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("from", from)
        .attr("type", "groupchat")
        .child(Element::new("subject", NS_CLIENT).text(subject.unwrap_or_default()))
}

impl Room {
    pub fn get_changesubject(&self) -> bool {
        self.data_bool("changesubject")
    }
    pub fn set_changesubject(&self, allowed: bool) -> bool {
        self.set_data_bool("changesubject", allowed)
    }

    /// Who set the subject (the room, or an occupant JID) and the subject.
    pub fn get_subject(&self) -> (String, Option<String>) {
        (
            self.data_str("subject_from")
                .unwrap_or_else(|| self.jid.clone()),
            self.data_str("subject"),
        )
    }

    /// Sets the subject and broadcasts it; `false` if nothing changed.
    pub fn set_subject(self: &Arc<Self>, from: &str, subject: Option<&str>) -> bool {
        let subject = subject.filter(|s| !s.is_empty());
        let (old_from, old_subject) = self.get_subject();
        if old_subject.as_deref() == subject && old_from == from {
            return false;
        }
        let now = self.ctx().map_or(0.0, |c| c.server.clock.now().floor());
        self.set_data_str("subject_from", Some(from));
        self.set_data_str("subject", subject);
        self.set_data_value("subject_time", Some(Value::Integer(now as i64)));
        self.broadcast_message(subject_message(from, subject));
        true
    }

    /// Sends the subject to one real JID.
    pub fn send_subject(&self, to: &str) {
        let (from, subject) = self.get_subject();
        let mut msg = subject_message(&from, subject.as_deref()).attr("to", to);
        if let Some(t) = self.data_value("subject_time").and_then(|v| v.as_f64()) {
            msg.push_child(
                Element::new("delay", NS_DELAY)
                    .attr("from", self.jid.as_str())
                    .attr("stamp", datetime(t)),
            );
        }
        self.route_stanza(msg);
    }
}

pub fn register(host: &Arc<Host>) {
    on_disco(host, |room, event| {
        add_disco_field(
            event,
            Field::new("muc#roomconfig_changesubject", "boolean"),
            room.get_changesubject().then_some(FieldValue::Bool(true)),
        );
    });
    on_form(host, 80 - 1, |room, _| {
        Some(
            Field::new("muc#roomconfig_changesubject", "boolean")
                .label("Allow anyone to set the room's subject")
                .desc("Choose whether anyone, or only moderators, may set the room's subject")
                .value(room.get_changesubject().then_some(FieldValue::Bool(true))),
        )
    });
    on_submit(host, "muc#roomconfig_changesubject", |room, event| {
        room.set_changesubject(submitted_bool(event))
    });
    host.events.hook("muc-occupant-session-new", 20, |event| {
        if let Some(room) = room_of(event) {
            room.send_subject(event.stanza().from().unwrap_or_default());
        }
        false
    });
    // A message with <subject/> and no body or thread is a subject change.
    host.events.hook("muc-occupant-groupchat", 20, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let stanza = event.stanza();
        let Some(subject) = stanza.get_child("subject", NS_CLIENT) else {
            return false;
        };
        if stanza.get_child("body", NS_CLIENT).is_some()
            || stanza.get_child("thread", NS_CLIENT).is_some()
        {
            return false;
        }
        let occupant = occupant_of(event, "occupant");
        let rank = role_rank(occupant.as_ref().and_then(|o| o.role));
        if rank >= role_rank(Some(Role::Moderator))
            || (rank >= role_rank(Some(Role::Participant)) && room.get_changesubject())
        {
            let text = subject.text_content();
            if let Some(o) = occupant {
                room.set_subject(&o.nick, Some(&text));
            }
            room.save(false);
        } else if let Some(origin) = event.origin.clone() {
            origin.send(
                StanzaError::forbidden()
                    .with_text("You are not allowed to change the subject")
                    .reply_to(stanza),
            );
        }
        true
    });
}
