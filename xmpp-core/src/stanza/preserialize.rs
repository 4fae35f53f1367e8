//! Stanzas as Lua tables, as Prosody stores them (`st.preserialize` and
//! `st.deserialize`): rosters' pending requests, offline messages, room
//! vCards and every other stanza a store keeps.

use crate::stanza::{Element, Node};
use crate::value::{Table, Value};

/// A stanza as Prosody's `st.preserialize` makes it: `{ name = ..., attr =
/// {...}, [1] = child, [2] = "text", ... }`, with `attr.xmlns` where the
/// namespace is not the stream's default (and below any element that has one),
/// and namespaced attributes as `ns\1name`.
pub fn preserialize(e: &Element, default_ns: &str) -> Value {
    preserialize_in(e, default_ns, false)
}

fn preserialize_in(e: &Element, default_ns: &str, inside_foreign: bool) -> Value {
    let mut t = Table::new();
    t.insert("name", Value::str(e.name()));
    let mut attr = Table::new();
    let foreign = inside_foreign || e.ns() != default_ns;
    if foreign {
        attr.insert("xmlns", Value::str(e.ns()));
    }
    for (k, v) in e.attrs() {
        let key = match k.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((ns, local)) => format!("{ns}\u{1}{local}"),
            None => k.to_string(),
        };
        attr.insert(key, Value::str(v));
    }
    t.insert("attr", Value::Table(attr));
    for n in e.nodes() {
        match n {
            Node::Element(c) => t.seq.push(preserialize_in(c, default_ns, foreign)),
            Node::Text(s) => t.seq.push(Value::str(s.clone())),
        }
    }
    Value::Table(t)
}

/// The inverse of [`preserialize`] (Prosody's `st.deserialize`): an element
/// without `xmlns` inherits its parent's namespace (`parent_ns` at the top).
pub fn deserialize(v: &Value, parent_ns: &str) -> Option<Element> {
    let t = v.as_table()?;
    let name = t.get("name")?.as_str()?;
    let attrs = t.get("attr").and_then(Value::as_table);
    let ns = attrs
        .and_then(|a| a.get("xmlns"))
        .and_then(Value::as_str)
        .unwrap_or(parent_ns)
        .to_string();
    let mut e = Element::new(name, ns.clone());
    if let Some(a) = attrs {
        for (k, v) in &a.map {
            let Some(v) = v.as_str() else { continue };
            if k == "xmlns" {
                continue;
            }
            let key = match k.split_once('\u{1}').or_else(|| k.split_once('|')) {
                Some((ans, local)) => format!("{{{ans}}}{local}"),
                None => k.clone(),
            };
            e.set_attr(&key, Some(v.to_string()));
        }
    }
    for c in &t.seq {
        match c {
            Value::String(s) => e.append_text(s.clone()),
            Value::Table(_) => {
                if let Some(child) = deserialize(c, &ns) {
                    e.push_child(child);
                }
            }
            _ => {}
        }
    }
    Some(e)
}
