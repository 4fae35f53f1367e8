//! Discussion history (Prosody's `history` library): messages worth
//! keeping (`muc-message-is-historic`) are stored with a `<delay/>`
//! (`muc-add-history`) and sent to joining sessions as their
//! `<history/>` asks (`maxchars`, `maxstanzas`, `seconds`, `since`), by
//! `muc-get-history`. `max_history_messages` caps every room.

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Value};

use super::{on_form, on_submit};
use crate::events::{EventExt, lock, mutable_of, room_of};
use crate::form::{Field, FieldValue};
use crate::room::owner::submitted_value;
use crate::room::{HistoryEntry, Room};
use crate::util::{NS_DELAY, NS_HINTS, NS_MUC, datetime, parse_datetime};

pub const DEFAULT_HISTORY_LENGTH: i64 = 20;

impl Room {
    /// How many messages the room keeps (`muc#roomconfig_historylength`).
    pub fn get_historylength(&self) -> i64 {
        let own = self
            .data_value("history_length")
            .and_then(|v| v.as_i64())
            .unwrap_or(DEFAULT_HISTORY_LENGTH);
        match self.service().and_then(|s| s.settings().max_history) {
            Some(max) => own.min(max),
            None => own,
        }
    }
    pub fn set_historylength(&self, length: Option<i64>) -> bool {
        let length = length.filter(|l| *l != DEFAULT_HISTORY_LENGTH);
        self.set_data_value("history_length", length.map(Value::Integer));
        true
    }
    /// How many messages a join without `<history/>` gets.
    pub fn get_defaulthistorymessages(&self) -> i64 {
        self.data_value("default_history_messages")
            .and_then(|v| v.as_i64())
            .unwrap_or(DEFAULT_HISTORY_LENGTH)
    }
    pub fn set_defaulthistorymessages(&self, number: Option<i64>) {
        let own = self
            .data_value("history_length")
            .and_then(|v| v.as_i64())
            .unwrap_or(DEFAULT_HISTORY_LENGTH);
        let n = number.unwrap_or(DEFAULT_HISTORY_LENGTH).min(own);
        let n = (n != DEFAULT_HISTORY_LENGTH).then_some(Value::Integer(n));
        self.set_data_value("default_history_messages", n);
    }

    /// Sends the history a join presence asks for to its sender.
    pub fn send_history(self: &Arc<Self>, stanza: &Element) {
        let Some(ctx) = self.ctx() else { return };
        let now = ctx.server.clock.now();
        let history = stanza
            .get_child("x", NS_MUC)
            .and_then(|x| x.get_child("history", NS_MUC));
        let num = |k: &str| {
            history
                .and_then(|h| h.get_attr(k))
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let maxchars = num("maxchars");
        let mut maxstanzas = num("maxstanzas");
        let mut since = history
            .and_then(|h| h.get_attr("since"))
            .and_then(parse_datetime);
        if let Some(seconds) = num("seconds") {
            let s = now.floor() - seconds;
            since = Some(since.map_or(s, |x| x.max(s)));
        }
        if maxchars.is_none() && maxstanzas.is_none() && since.is_none() {
            maxstanzas = Some(self.get_defaulthistorymessages() as f64);
        }
        let to = stanza.from().unwrap_or_default().to_string();
        let mut ev = ctx
            .room_event("muc-get-history", self)
            .with_stanza(stanza.clone())
            .with_field("to", to.as_str())
            .mutable("history", Vec::<Element>::new());
        for (k, v) in [
            ("maxchars", maxchars),
            ("maxstanzas", maxstanzas),
            ("since", since),
        ] {
            if let Some(v) = v {
                ev.fields.insert(k.into(), Value::Number(v));
            }
        }
        ctx.fire("muc-get-history", &mut ev);
        let messages = mutable_of::<Vec<Element>>(&ev, "history")
            .map(|m| std::mem::take(&mut *lock(&m)))
            .unwrap_or_default();
        for mut msg in messages {
            msg.set_attr("to", Some(to.clone()));
            self.route_stanza(msg);
        }
    }
}

/// The default `muc-get-history`: from the room's own history.
fn get_history(event: &mut xmpp_core::Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    let to_len = event.field_str("to").map_or(0, str::len);
    let num = |k: &str| event.fields.get(k).and_then(Value::as_f64);
    let (maxchars, maxstanzas, since) = (num("maxchars"), num("maxstanzas"), num("since"));
    let selected: Vec<Element> = {
        let mut st = room.state();
        let len = st.history.len();
        let maxstanzas = maxstanzas.unwrap_or(len as f64);
        let mut n = 0usize;
        let mut chars = 0usize;
        for entry in st.history.iter_mut().rev() {
            if let Some(max) = maxchars {
                let c = *entry
                    .chars
                    .get_or_insert_with(|| entry.stanza.to_xml().chars().count());
                chars += c + to_len;
                if chars as f64 > max {
                    break;
                }
            }
            if since.is_some_and(|s| s > entry.timestamp) {
                break;
            }
            if (n + 1) as f64 > maxstanzas {
                break;
            }
            n += 1;
        }
        st.history
            .iter()
            .skip(len - n)
            .map(|e| e.stanza.clone())
            .collect()
    };
    if let Some(out) = mutable_of::<Vec<Element>>(event, "history") {
        *lock(&out) = selected;
    }
    true
}

/// Is this broadcast message worth keeping (hints, a body, encryption,
/// chat markers)? `None`: no opinion.
fn is_historic(stanza: &Element) -> Option<bool> {
    if stanza.get_child("no-store", NS_HINTS).is_some()
        || stanza.get_child("no-permanent-store", NS_HINTS).is_some()
    {
        return Some(false);
    }
    if stanza.get_child("store", NS_HINTS).is_some()
        || stanza.get_child("body", NS_CLIENT).is_some()
        || stanza.get_child("encryption", "urn:xmpp:eme:0").is_some()
        || stanza
            .children()
            .any(|c| c.ns() == "urn:xmpp:chat-markers:0")
    {
        return Some(true);
    }
    None
}

pub fn register(host: &Arc<Host>) {
    on_form(host, 70 - 5, |room, _| {
        Some(
            Field::new("muc#roomconfig_historylength", "text-single")
                .label("Maximum number of history messages returned by room")
                .desc("Specify the maximum number of previous messages that should be sent to users when they join the room")
                .datatype("xs:integer")
                .value(Some(FieldValue::Int(room.get_historylength()))),
        )
    });
    on_form(host, 70 - 5, |room, _| {
        Some(
            Field::new("muc#roomconfig_defaulthistorymessages", "text-single")
                .label("Default number of history messages returned by room")
                .desc("Specify the number of previous messages sent to new users when they join the room")
                .datatype("xs:integer")
                .value(Some(FieldValue::Int(room.get_defaulthistorymessages()))),
        )
    });
    on_submit(host, "muc#roomconfig_historylength", |room, event| {
        room.set_historylength(submitted_value(event).and_then(Value::as_i64))
    });
    on_submit(
        host,
        "muc#roomconfig_defaulthistorymessages",
        |room, event| {
            room.set_defaulthistorymessages(submitted_value(event).and_then(Value::as_i64));
            false
        },
    );

    host.events.hook("muc-get-history", -1, get_history);
    host.events.hook("muc-occupant-session-new", 50, |event| {
        if let Some(room) = room_of(event) {
            room.send_history(event.stanza());
        }
        false
    });
    host.events.hook("muc-add-history", -1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let length = room.get_historylength();
        if length <= 0 {
            room.state().history.clear();
            return true;
        }
        let now = room.ctx().map_or(0.0, |c| c.server.clock.now().floor());
        let mut stanza = event.stanza().clone();
        stanza.set_attr("to", None);
        stanza.push_child(
            Element::new("delay", NS_DELAY)
                .attr("from", room.jid.as_str())
                .attr("stamp", datetime(now)),
        );
        let mut st = room.state();
        st.history.push_back(HistoryEntry {
            stanza,
            timestamp: now,
            chars: None,
        });
        while st.history.len() as i64 > length {
            st.history.pop_front();
        }
        true
    });
    host.events.hook("muc-broadcast-message", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let Some(ctx) = room.ctx() else { return false };
        // Asked already (for the stanza id) at a higher priority?
        let historic = match event.fields.get("historic") {
            Some(Value::Bool(h)) => *h,
            _ => {
                let mut ev = ctx
                    .room_event("muc-message-is-historic", &room)
                    .with_stanza(event.stanza().clone());
                ctx.fire("muc-message-is-historic", &mut ev);
                ev.fields.get("historic") == Some(&Value::Bool(true))
            }
        };
        if historic {
            let mut ev = ctx
                .room_event("muc-add-history", &room)
                .with_stanza(event.stanza().clone());
            ctx.fire("muc-add-history", &mut ev);
            // What a handler stamped on it (muc_mam's archive
            // `<stanza-id/>`) goes out with the broadcast.
            if let Some(stamped) = ev.stanza.take() {
                event.stanza = Some(stamped);
            }
        }
        false
    });
    host.events.hook("muc-message-is-historic", -1, |event| {
        match is_historic(event.stanza()) {
            Some(h) => {
                event.fields.insert("historic".into(), Value::Bool(h));
                true
            }
            None => false,
        }
    });
}
