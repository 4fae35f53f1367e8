//! Stanzas as Prosody stores them: `st.preserialize` tables
//! `{ <children...>; name = "message"; attr = { ... } }`, children being
//! strings (text) or such tables.
//!
//! Namespaces are kept as Prosody's XML parser leaves them in `attr.xmlns`:
//! absent on the stanza and on children in the stream's namespace, present
//! on an element in another namespace and on everything below it.
//! Namespaced attributes are `"<ns>\1<name>"` (lilt's `{ns}name`); the older
//! `"<ns>|<name>"` form is read too.

use xmpp_core::stanza::{Element, NS_CLIENT, NS_COMPONENT, NS_SERVER, Node};
use xmpp_core::value::{Table, Value};

use super::{DatKey, DatTable, DatValue};

/// A stored stanza that cannot be turned back into an element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a stored stanza: {0}")]
pub struct StanzaDataError(pub String);

/// The namespace a stanza's unmarked elements are in.
fn stream_ns(root: &Element) -> &str {
    match root.ns() {
        ns @ (NS_CLIENT | NS_SERVER | NS_COMPONENT) => ns,
        _ => NS_CLIENT,
    }
}

/// Attribute name from lilt's form to Prosody's.
fn attr_name_out(name: &str) -> String {
    match name.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((ns, local)) => format!("{ns}\u{1}{local}"),
        None => name.to_string(),
    }
}

/// Attribute name from Prosody's form to lilt's.
fn attr_name_in(name: &str) -> String {
    if let Some((ns, local)) = name.split_once('\u{1}') {
        return format!("{{{ns}}}{local}");
    }
    match name.split_once('|') {
        Some((ns, local)) if !ns.is_empty() && !local.is_empty() => format!("{{{ns}}}{local}"),
        _ => name.to_string(),
    }
}

/// The element as Prosody's `st.preserialize` table.
pub fn preserialize(el: &Element) -> DatTable {
    pre(el, stream_ns(el), false)
}

fn pre(el: &Element, default_ns: &str, marked_above: bool) -> DatTable {
    let marked = marked_above || el.ns() != default_ns;
    let mut t = DatTable::new();
    for node in el.nodes() {
        match node {
            Node::Text(s) => t.push(DatValue::str(s)),
            Node::Element(child) => t.push(DatValue::Table(pre(child, default_ns, marked))),
        }
    }
    t.insert_str("name", DatValue::str(el.name()));
    let mut attr = DatTable::new();
    if marked {
        attr.insert_str("xmlns", DatValue::str(el.ns()));
    }
    for (k, v) in el.attrs() {
        attr.insert(
            DatKey::String(attr_name_out(k).into_bytes()),
            DatValue::str(v),
        );
    }
    t.insert_str("attr", DatValue::Table(attr));
    t
}

fn text(v: &DatValue, what: &str) -> Result<String, StanzaDataError> {
    match v {
        DatValue::String(s) => String::from_utf8(s.clone())
            .map_err(|_| StanzaDataError(format!("{what} is not UTF-8"))),
        DatValue::Integer(i) => Ok(i.to_string()),
        DatValue::Number(f) => Ok(super::serialize::format_g(*f, 14)),
        other => Err(StanzaDataError(format!(
            "{what} is a {}",
            other.type_name()
        ))),
    }
}

/// A preserialized table back to an element (Prosody's `st.deserialize`);
/// an element without `xmlns` is in `parent_ns` (`jabber:client` at the top).
pub fn deserialize(t: &DatTable) -> Result<Element, StanzaDataError> {
    de(t, NS_CLIENT, 0)
}

fn de(t: &DatTable, parent_ns: &str, depth: usize) -> Result<Element, StanzaDataError> {
    if depth > super::MAX_DEPTH {
        return Err(StanzaDataError("nested too deep".into()));
    }
    let name = match t.get_str("name") {
        Some(v @ DatValue::String(_)) => text(v, "element name")?,
        _ => return Err(StanzaDataError("element without a name".into())),
    };
    let attr = match t.get_str("attr") {
        Some(DatValue::Table(a)) => Some(a),
        None => None,
        Some(other) => {
            return Err(StanzaDataError(format!(
                "attr of <{name}> is a {}",
                other.type_name()
            )));
        }
    };
    let ns = match attr.and_then(|a| a.get_str("xmlns")) {
        Some(v) => text(v, "xmlns")?,
        None => parent_ns.to_string(),
    };
    let mut el = Element::new(name, ns.clone());
    for (k, v) in attr.into_iter().flat_map(DatTable::iter) {
        let DatKey::String(k) = k else { continue };
        if k.as_slice() == b"xmlns" || matches!(v, DatValue::Bool(_) | DatValue::Table(_)) {
            continue;
        }
        let k = String::from_utf8(k.clone())
            .map_err(|_| StanzaDataError("attribute name is not UTF-8".into()))?;
        let value = text(v, &format!("attribute {k}"))?;
        el.set_attr(&attr_name_in(&k), Some(value));
    }
    for child in t.sequence() {
        match child {
            DatValue::String(_) => el.append_text(text(child, "text")?),
            DatValue::Table(c) => el.push_child(de(c, &ns, depth + 1)?),
            _ => {}
        }
    }
    Ok(el)
}

/// The element as a preserialized table in [`Value`] form (what keyval
/// stores such as `private` or the roster's pending subscriptions hold).
pub fn element_to_value(el: &Element) -> Value {
    let mut t = Table::new();
    to_value_into(el, stream_ns(el), false, &mut t);
    Value::Table(t)
}

fn to_value_into(el: &Element, default_ns: &str, marked_above: bool, t: &mut Table) {
    let marked = marked_above || el.ns() != default_ns;
    for node in el.nodes() {
        match node {
            Node::Text(s) => t.seq.push(Value::str(s.as_str())),
            Node::Element(child) => {
                let mut c = Table::new();
                to_value_into(child, default_ns, marked, &mut c);
                t.seq.push(Value::Table(c));
            }
        }
    }
    t.insert("name", Value::str(el.name()));
    let mut attr = Table::new();
    if marked {
        attr.insert("xmlns", Value::str(el.ns()));
    }
    for (k, v) in el.attrs() {
        attr.insert(attr_name_out(k), Value::str(v));
    }
    t.insert("attr", Value::Table(attr));
}

/// A preserialized table in [`Value`] form back to an element.
pub fn value_to_element(v: &Value) -> Result<Element, StanzaDataError> {
    match v {
        Value::Table(_) => match DatValue::from_value(v, None) {
            DatValue::Table(t) => deserialize(&t),
            _ => Err(StanzaDataError("not a table".into())),
        },
        other => Err(StanzaDataError(format!(
            "a {} is not a stanza",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datfile::serialize;

    fn message() -> Element {
        Element::new("message", NS_CLIENT)
            .attr("to", "bob@example.com")
            .attr("xml:lang", "en")
            .child(Element::new("body", NS_CLIENT).text("Hi"))
            .child(
                Element::new("x", "urn:x:test")
                    .attr("{urn:y}k", "v")
                    .child(Element::new("y", "urn:x:test").text("n")),
            )
    }

    #[test]
    fn preserialize_marks_namespaces_as_prosodys_parser() {
        let out = serialize(&DatValue::Table(preserialize(&message()))).unwrap();
        assert_eq!(
            out,
            "{\n\t{\n\t\t\"Hi\";\n\t\t[\"name\"] = \"body\";\n\t\t[\"attr\"] = {};\n\t};\n\t{\n\t\t{\n\t\t\t\"n\";\n\t\t\t[\"name\"] = \"y\";\n\t\t\t[\"attr\"] = {\n\t\t\t\t[\"xmlns\"] = \"urn:x:test\";\n\t\t\t};\n\t\t};\n\t\t[\"name\"] = \"x\";\n\t\t[\"attr\"] = {\n\t\t\t[\"xmlns\"] = \"urn:x:test\";\n\t\t\t[\"urn:y\\001k\"] = \"v\";\n\t\t};\n\t};\n\t[\"name\"] = \"message\";\n\t[\"attr\"] = {\n\t\t[\"to\"] = \"bob@example.com\";\n\t\t[\"xml:lang\"] = \"en\";\n\t};\n}"
        );
    }

    #[test]
    fn round_trips_through_both_forms() {
        let m = message();
        assert_eq!(deserialize(&preserialize(&m)).unwrap(), m);
        assert_eq!(value_to_element(&element_to_value(&m)).unwrap(), m);
    }

    #[test]
    fn legacy_pipe_attributes_and_missing_names() {
        let mut attr = DatTable::new();
        attr.insert_str("urn:a|b", DatValue::str("1"));
        let mut t = DatTable::new();
        t.insert_str("name", DatValue::str("x"));
        t.insert_str("attr", DatValue::Table(attr));
        assert_eq!(deserialize(&t).unwrap().get_attr("{urn:a}b"), Some("1"));
        assert!(deserialize(&DatTable::new()).is_err());
    }
}
