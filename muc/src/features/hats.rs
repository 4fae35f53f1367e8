//! Hats (Prosody's `hats` library): active hats kept in a user's
//! affiliation data (`hats = { [uri] = { title, active } }`) are shown in
//! their presence; clients cannot claim any (the namespace is filtered).

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Value};

use crate::events::{occupant_of, room_of};
use crate::util::NS_HATS;

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-build-occupant-presence", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let bare = match occupant_of(event, "occupant") {
            Some(o) => o.bare_jid.clone(),
            None => event.field_str("bare_jid").unwrap_or_default().to_string(),
        };
        let Some(Value::Table(hats)) = room
            .get_affiliation_data(&bare)
            .and_then(|d| d.get("hats").cloned())
        else {
            return false;
        };
        let mut el: Option<Element> = None;
        for (uri, hat) in &hats.map {
            if hat.get("active") != Some(&Value::Bool(true)) {
                continue;
            }
            el.get_or_insert_with(|| Element::new("hats", NS_HATS))
                .push_child(
                    Element::new("hat", NS_HATS)
                        .attr("uri", uri.as_str())
                        .attr_opt("title", hat.get("title").and_then(Value::as_str)),
                );
        }
        if let (Some(el), Some(stanza)) = (el, event.stanza.as_mut()) {
            stanza.push_child(el);
        }
        false
    });
}
