//! Rooms in storage as Prosody 13 keeps them (`new_muc_storage_format`):
//!
//! - store `config`, key = the room's node: `{ _jid = "room@service",
//!   _data = {...}, _affiliation_data = { [jid] = {...} }, [jid] =
//!   "owner"|"admin"|"member"|"outcast", ... }` (the older
//!   `{ jid, _data, _affiliations }` shape is read too);
//! - store `state` (only for rooms swapped out while live): `{ [occupant
//!   JID] = { bare_jid, role, jid }, [real JID] = <presence>,
//!   _last_message = <message>, _last_message_at = time }`, stanzas as
//!   `st.preserialize` tables;
//! - store `persistent` (map at the host): `[room JID] = true`.

use std::collections::HashMap;
use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT, Node};
use xmpp_core::{Table, Value};

use super::{HistoryEntry, Room};
use crate::occupant::Occupant;
use crate::service::MucService;
use crate::util::{Affiliation, Role};

/// Why stored room data could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("room data of {room}: {reason}")]
pub struct RestoreError {
    pub room: String,
    pub reason: String,
}

impl Room {
    /// The room as stored (`config`), and with `live` its occupants and last
    /// message (`state`), as Prosody's `room:freeze`.
    pub fn freeze(&self, live: bool) -> (Value, Option<Value>) {
        let st = self.state();
        let mut frozen = Table::new();
        frozen.insert("_jid", Value::str(self.jid.clone()));
        frozen.insert("_data", Value::Table(st.data.clone()));
        let mut aff_data = Table::new();
        for (jid, d) in &st.affiliation_data {
            aff_data.insert(jid.clone(), Value::Table(d.clone()));
        }
        frozen.insert("_affiliation_data", Value::Table(aff_data));
        for (jid, a) in &st.affiliations {
            frozen.insert(jid.clone(), Value::str(a.as_str()));
        }
        if !live {
            return (Value::Table(frozen), None);
        }
        let mut state = Table::new();
        for nick in st.order.values() {
            let Some(o) = st.occupants.get(nick) else {
                continue;
            };
            let mut t = Table::new();
            t.insert("bare_jid", Value::str(o.bare_jid.clone()));
            if let Some(r) = o.role {
                t.insert("role", Value::str(r.as_str()));
            }
            if let Some(j) = &o.jid {
                t.insert("jid", Value::str(j.clone()));
            }
            state.insert(nick.clone(), Value::Table(t));
            for s in &o.sessions {
                state.insert(s.jid.clone(), preserialize(&s.presence));
            }
        }
        if let Some(last) = st.history.back() {
            state.insert("_last_message", preserialize(&last.stanza));
            state.insert("_last_message_at", Value::Number(last.timestamp));
        }
        (Value::Table(frozen), Some(Value::Table(state)))
    }

    /// A room from its stored data (Prosody's `restore_room`).
    pub fn restore(
        service: &Arc<MucService>,
        frozen: &Value,
        state: Option<&Value>,
    ) -> Result<Arc<Room>, RestoreError> {
        let t = frozen.as_table().ok_or_else(|| RestoreError {
            room: "?".into(),
            reason: format!("a {} instead of a table", frozen.type_name()),
        })?;
        let jid = t
            .get("_jid")
            .or_else(|| t.get("jid"))
            .and_then(Value::as_str)
            .ok_or_else(|| RestoreError {
                room: "?".into(),
                reason: "no _jid".into(),
            })?
            .to_string();
        let data = t
            .get("_data")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        let room = Room::new(&jid, service, data);
        let (room_node, room_host) = jid.split_once('@').unwrap_or(("", jid.as_str()));
        {
            let mut st = room.state();
            if let Some(d) = t.get("_affiliation_data").and_then(Value::as_table) {
                for (k, v) in &d.map {
                    if let Some(v) = v.as_table() {
                        st.affiliation_data.insert(k.clone(), v.clone());
                    }
                }
            }
            let old = t.get("jid").is_some() && t.get("_affiliations").is_some();
            let source = if old {
                t.get("_affiliations").and_then(Value::as_table)
            } else {
                Some(t)
            };
            for (k, v) in source.map(|s| s.map.iter()).into_iter().flatten() {
                let is_jid = !k.starts_with('_') && !k.contains('/');
                if is_jid && let Some(Ok(Some(a))) = v.as_str().map(Affiliation::parse) {
                    st.affiliations.insert(k.clone(), a);
                }
            }
        }
        if let Some(state) = state.and_then(Value::as_table) {
            restore_state(&room, state, room_node, room_host);
        }
        Ok(room)
    }
}

fn restore_state(room: &Arc<Room>, state: &Table, room_node: &str, room_host: &str) {
    let mut occupants: HashMap<String, Occupant> = HashMap::new();
    let prefix = format!("{room_node}@{room_host}/");
    for (k, v) in &state.map {
        let Some(t) = v.as_table() else { continue };
        if k.starts_with(&prefix) && t.get("name").is_none() {
            let bare = t
                .get("bare_jid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let o = occupants
                .entry(k.clone())
                .or_insert_with(|| Occupant::new(bare, k));
            o.bare_jid = bare.to_string();
            o.role = t
                .get("role")
                .and_then(Value::as_str)
                .and_then(|r| Role::parse(r).ok())
                .flatten();
            o.jid = t.get("jid").and_then(Value::as_str).map(str::to_string);
        } else if t.get("name").and_then(Value::as_str) == Some("presence")
            && let Some(pr) = deserialize(v)
        {
            let nick = pr.from().unwrap_or_default().to_string();
            let o = occupants
                .entry(nick.clone())
                .or_insert_with(|| Occupant::new("", &nick));
            let primary = o.jid.clone();
            o.set_session(k, &pr, false);
            o.jid = primary.or(o.jid.take());
        }
    }
    // Sessions may have been read before their occupant's record.
    let mut list: Vec<Occupant> = occupants.into_values().collect();
    list.sort_by(|a, b| a.nick.cmp(&b.nick));
    for o in list {
        room.save_occupant(&o);
    }
    if let (Some(last), Some(at)) = (
        state.get("_last_message").and_then(deserialize),
        state.get("_last_message_at").and_then(Value::as_f64),
    ) {
        room.state().history.push_back(HistoryEntry {
            stanza: last,
            timestamp: at,
            chars: None,
        });
    }
}

/// An element as Prosody's `st.preserialize` table: `xmlns` in `attr`
/// where the namespace is not the stream's (and below such an element).
pub fn preserialize(el: &Element) -> Value {
    pre(el, NS_CLIENT, false)
}

fn pre(el: &Element, stream_ns: &str, marked_above: bool) -> Value {
    let marked = marked_above || el.ns() != stream_ns;
    let mut t = Table::new();
    for n in el.nodes() {
        t.seq.push(match n {
            Node::Text(s) => Value::str(s.clone()),
            Node::Element(c) => pre(c, stream_ns, marked),
        });
    }
    let mut attr = Table::new();
    if marked {
        attr.insert("xmlns", Value::str(el.ns()));
    }
    for (k, v) in el.attrs() {
        let key = match k.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((ns, local)) => format!("{ns}\u{1}{local}"),
            None => k.to_string(),
        };
        attr.insert(key, Value::str(v));
    }
    t.insert("name", Value::str(el.name()));
    t.insert("attr", Value::Table(attr));
    Value::Table(t)
}

/// A preserialized table back to an element (`None` if it is not one).
pub fn deserialize(v: &Value) -> Option<Element> {
    de(v, NS_CLIENT)
}

fn de(v: &Value, parent_ns: &str) -> Option<Element> {
    let t = v.as_table()?;
    let name = t.get("name").and_then(Value::as_str)?;
    let attr = t.get("attr").and_then(Value::as_table);
    let ns = attr
        .and_then(|a| a.get("xmlns"))
        .and_then(Value::as_str)
        .unwrap_or(parent_ns)
        .to_string();
    let mut el = Element::new(name, ns.clone());
    for (k, v) in attr.map(|a| a.map.iter()).into_iter().flatten() {
        if k == "xmlns" {
            continue;
        }
        let key = match k.split_once('\u{1}') {
            Some((ans, local)) => format!("{{{ans}}}{local}"),
            None => k.clone(),
        };
        if let Some(v) = v.as_str() {
            el.set_attr(&key, Some(v.to_string()));
        }
    }
    for child in &t.seq {
        match child {
            Value::String(s) => el.append_text(s.clone()),
            other => el.push_child(de(other, &ns)?),
        }
    }
    Some(el)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_round_trip_through_preserialize() {
        let m = Element::new("message", NS_CLIENT)
            .attr("from", "a@b/c")
            .attr("xml:lang", "en")
            .child(Element::new("body", NS_CLIENT).text("hi"))
            .child(
                Element::new("delay", "urn:xmpp:delay")
                    .attr("stamp", "x")
                    .child(Element::new("inner", "urn:xmpp:delay")),
            );
        let v = preserialize(&m);
        let body = v.as_table().unwrap().seq[0].as_table().unwrap();
        assert!(body.get("attr").unwrap().get("xmlns").is_none());
        let delay = v.as_table().unwrap().seq[1].as_table().unwrap();
        assert_eq!(
            delay.get("attr").unwrap().get("xmlns"),
            Some(&Value::str("urn:xmpp:delay"))
        );
        assert_eq!(deserialize(&v), Some(m));
    }
}
