//! The room's title, description and language (Prosody's `name`,
//! `description` and `language` libraries).

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::stanza::Element;

use super::{on_disco, on_form, on_submit, submitted_str};
use crate::events::{lock, mutable_of};
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_field;
use crate::util::NS_DISCO_INFO;

impl Room {
    pub fn get_name(&self) -> Option<String> {
        self.data_str("name")
    }
    pub fn set_name(&self, name: Option<&str>) -> bool {
        self.set_data_str("name", name)
    }
    pub fn get_description(&self) -> Option<String> {
        self.data_str("description")
    }
    pub fn set_description(&self, description: Option<&str>) -> bool {
        self.set_data_str("description", description)
    }
    pub fn get_language(&self) -> Option<String> {
        self.data_str("language")
    }
    pub fn set_language(&self, language: Option<&str>) -> bool {
        self.set_data_str("language", language)
    }
}

fn text(v: Option<String>) -> Option<FieldValue> {
    v.map(FieldValue::Text)
}

pub fn register(host: &Arc<Host>) {
    let title = |room: &Arc<Room>| {
        Field::new("muc#roomconfig_roomname", "text-single")
            .label("Title")
            .value(text(room.get_name()))
    };
    on_disco(host, move |room, event| {
        if let Some(reply) = mutable_of::<Element>(event, "reply")
            && let Some(q) = lock(&reply).get_child_mut("query", NS_DISCO_INFO)
        {
            q.push_child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("category", "conference")
                    .attr("type", "text")
                    .attr_opt("name", room.get_name()),
            );
        }
        add_disco_field(event, title(room), None);
    });
    on_form(host, 100 - 1, move |room, _| Some(title(room)));
    on_submit(host, "muc#roomconfig_roomname", |room, event| {
        room.set_name(submitted_str(event).as_deref())
    });

    on_disco(host, |room, event| {
        add_disco_field(
            event,
            Field::new("muc#roominfo_description", "text-single")
                .label("Description")
                .value(text(Some(String::new()))),
            text(room.get_description()),
        );
    });
    on_form(host, 100 - 2, |room, _| {
        Some(
            Field::new("muc#roomconfig_roomdesc", "text-single")
                .label("Description")
                .desc("A brief description of the room")
                .value(text(Some(room.get_description().unwrap_or_default()))),
        )
    });
    on_submit(host, "muc#roomconfig_roomdesc", |room, event| {
        room.set_description(submitted_str(event).as_deref())
    });

    on_disco(host, |room, event| {
        add_disco_field(
            event,
            Field::new("muc#roominfo_lang", "text-single").value(text(Some(String::new()))),
            text(room.get_language()),
        );
    });
    on_form(host, 100 - 3, |room, _| {
        Some(
            Field::new("muc#roomconfig_lang", "text-single")
                .label("Language tag for room (e.g. 'en', 'de', 'fr' etc.)")
                .desc("Indicate the primary language spoken in this room")
                .datatype("xs:language")
                .value(text(Some(room.get_language().unwrap_or_default()))),
        )
    });
    on_submit(host, "muc#roomconfig_lang", |room, event| {
        room.set_language(submitted_str(event).as_deref())
    });
}
