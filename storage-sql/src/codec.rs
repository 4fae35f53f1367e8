//! Values in Prosody's SQL encoding: each row has a `type` and a text
//! `value` — `string`, `number` (Lua's `tostring`), `boolean`
//! (`true`/`false`), `json` (Prosody's `util.json`, where a table with both
//! parts keeps its array part under `__array` and non-string keys as
//! `__hash` pairs) and `xml` (a stanza, as `tostring(stanza)`).
//!
//! [`Value`] has no stanza type: a table shaped as `st.preserialize` makes
//! it (exactly the keys `name` and `attr`, children in the array part) is
//! written as `xml`, and an `xml` row is read back into that shape, so a
//! module sees the same value from every driver. [`Value`] keeps Lua's
//! boolean keys as the strings `"true"`/`"false"`; those two keys are
//! written as boolean keys again (the roster's `[false]` metadata entry).

use xmpp_core::stanza::{Element, NS_CLIENT, preserialize};
use xmpp_core::value::{Table, Value};

use crate::SqlError;

/// Encodes a value for a row: `(type, value)`.
pub fn serialize(v: &Value) -> (&'static str, String) {
    match v {
        Value::String(s) => ("string", s.clone()),
        Value::Bool(b) => ("boolean", b.to_string()),
        Value::Integer(i) => ("number", i.to_string()),
        Value::Number(f) => ("number", lua_number(*f)),
        // A stanza-shaped table always deserialises (`is_stanza` checked
        // every level).
        Value::Table(t) if is_stanza(t) => (
            "xml",
            preserialize::deserialize(v, NS_CLIENT)
                .map(|e| e.to_xml())
                .unwrap_or_default(),
        ),
        Value::Table(_) => ("json", encode_json(v).to_string()),
    }
}

/// Decodes a row's `(type, value)`; `None` for Lua's nil (JSON `null`).
pub fn deserialize(ty: &str, text: &str) -> Result<Option<Value>, SqlError> {
    let bad = |why: &str| SqlError::Data(format!("{why} in a {ty} value: {text:.80}"));
    Ok(match ty {
        "string" => Some(Value::String(text.to_string())),
        "boolean" => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => return Err(bad("invalid-boolean")),
        },
        "number" => Some(parse_number(text.trim()).ok_or_else(|| bad("invalid-number"))?),
        "json" => {
            let j: serde_json::Value =
                serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
            decode_json(&j)
        }
        "xml" => Some(element_to_value(&parse_xml(text).map_err(|e| bad(&e))?)),
        other => return Err(bad(&format!("unhandled value type {other:?}"))),
    })
}

/// An archived stanza as Prosody writes it (`tostring(stanza)`).
pub fn stanza_text(e: &Element) -> String {
    e.to_xml()
}

/// Reads an archived stanza (type `xml`).
pub fn parse_stanza(ty: &str, text: &str) -> Result<Element, SqlError> {
    if ty != "xml" {
        return Err(SqlError::Data(format!(
            "archived item of type {ty:?}, expected xml"
        )));
    }
    parse_xml(text).map_err(|e| SqlError::Data(format!("archived stanza: {e}: {text:.80}")))
}

/// Parses stored XML; the stream parser's default `xml:lang` is not kept
/// unless the text had one.
fn parse_xml(text: &str) -> Result<Element, String> {
    let mut e = xmpp_core::stream::parse_element(text).map_err(|e| e.to_string())?;
    if !text.contains("xml:lang") {
        e.set_attr("xml:lang", None);
    }
    Ok(e)
}

/// Lua 5.4's `tostring` of a float: integral values keep a `.0`.
fn lua_number(f: f64) -> String {
    if f.is_nan() {
        return if f.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{f:.1}");
    }
    format!("{f}")
}

fn parse_number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Integer(i));
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(Value::Integer);
    }
    match s {
        "inf" => Some(Value::Number(f64::INFINITY)),
        "-inf" => Some(Value::Number(f64::NEG_INFINITY)),
        _ => s.parse::<f64>().ok().map(Value::Number),
    }
}

/// A key Lua had as a boolean, kept by [`Value`] as its string form.
fn bool_key(k: &str) -> Option<bool> {
    match k {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Prosody's `json.encode` of a value.
pub fn encode_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Bool(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Number(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.clone()),
        Value::Table(t) => {
            let array: Vec<J> = t.seq.iter().map(encode_json).collect();
            let mut hash: Vec<J> = Vec::new();
            let mut object = serde_json::Map::new();
            for (k, v) in &t.map {
                if k == "__array" || k == "__hash" {
                    continue;
                }
                match bool_key(k) {
                    Some(b) => {
                        hash.push(J::Bool(b));
                        hash.push(encode_json(v));
                    }
                    None => {
                        object.insert(k.clone(), encode_json(v));
                    }
                }
            }
            if object.is_empty() && hash.is_empty() && !array.is_empty() {
                return J::Array(array);
            }
            if !hash.is_empty() {
                object.insert("__hash".to_string(), J::Array(hash));
            }
            if !array.is_empty() {
                object.insert("__array".to_string(), J::Array(array));
            }
            J::Object(object)
        }
    }
}

/// Prosody's `json.decode` into a value (`null` is nil).
pub fn decode_json(j: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match j {
        J::Null => return None,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64()?),
        },
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Table(Table {
            seq: items.iter().filter_map(decode_json).collect(),
            map: Default::default(),
        }),
        J::Object(o) => {
            let mut t = Table::new();
            for (k, v) in o {
                if k == "__array" || k == "__hash" {
                    continue;
                }
                if let Some(v) = decode_json(v) {
                    t.insert(k.clone(), v);
                }
            }
            if let Some(J::Array(items)) = o.get("__array") {
                t.seq.extend(items.iter().filter_map(decode_json));
            }
            if let Some(J::Array(pairs)) = o.get("__hash") {
                for pair in pairs.chunks(2) {
                    let [k, v] = pair else { continue };
                    let key = match k {
                        J::String(s) => s.clone(),
                        J::Bool(b) => b.to_string(),
                        J::Number(n) => n.to_string(),
                        _ => continue,
                    };
                    if let Some(v) = decode_json(v) {
                        t.insert(key, v);
                    }
                }
            }
            Value::Table(t)
        }
    })
}

/// Is this table a preserialised stanza (`name`, `attr`, children)?
pub fn is_stanza(t: &Table) -> bool {
    t.map.len() == 2
        && matches!(t.map.get("name"), Some(Value::String(_)))
        && matches!(t.map.get("attr"), Some(Value::Table(a)) if a.seq.is_empty())
        && t.seq
            .iter()
            .all(|c| matches!(c, Value::String(_)) || matches!(c, Value::Table(t) if is_stanza(t)))
}

/// An element in `st.preserialize`'s shape (as lilt's modules keep it:
/// `xmlns` on every element outside `jabber:client`).
pub fn element_to_value(e: &Element) -> Value {
    preserialize::preserialize(e, NS_CLIENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_as_prosody_writes_them() {
        assert_eq!(serialize(&Value::Integer(4096)), ("number", "4096".into()));
        assert_eq!(serialize(&Value::Number(1.5)), ("number", "1.5".into()));
        assert_eq!(serialize(&Value::Number(2.0)), ("number", "2.0".into()));
        assert_eq!(serialize(&Value::Bool(true)), ("boolean", "true".into()));
        assert_eq!(
            deserialize("number", "4096").unwrap(),
            Some(Value::Integer(4096))
        );
        assert_eq!(
            deserialize("number", "1.5").unwrap(),
            Some(Value::Number(1.5))
        );
        assert!(deserialize("boolean", "yes").is_err());
        assert!(deserialize("blob", "x").is_err());
    }

    #[test]
    fn json_keeps_boolean_keys_and_mixed_tables() {
        // What Prosody 0.12 writes for a roster's extra data.
        let text = r#"{"__hash":[false,{"pending":{},"version":3}]}"#;
        let v = deserialize("json", text).unwrap().unwrap();
        assert_eq!(
            v.get("false").and_then(|m| m.get("version")),
            Some(&Value::Integer(3))
        );
        let (ty, out) = serialize(&v);
        assert_eq!(ty, "json");
        assert_eq!(out, text);
        let mixed = deserialize("json", r#"{"a":1,"__array":["x","y"]}"#)
            .unwrap()
            .unwrap();
        let t = mixed.as_table().unwrap();
        assert_eq!(t.seq, vec![Value::str("x"), Value::str("y")]);
        assert_eq!(serialize(&mixed).1, r#"{"__array":["x","y"],"a":1}"#);
        assert_eq!(
            serialize(&deserialize("json", "[1,2]").unwrap().unwrap()).1,
            "[1,2]"
        );
    }

    #[test]
    fn stanza_tables_are_xml() {
        let xml = "<storage xmlns='storage:bookmarks'><conference autojoin='true' jid='r@c'><nick>me</nick></conference></storage>";
        let v = deserialize("xml", xml).unwrap().unwrap();
        assert!(is_stanza(v.as_table().unwrap()));
        let (ty, out) = serialize(&v);
        assert_eq!(ty, "xml");
        assert_eq!(out, xml);
        assert_eq!(
            v.get("attr").and_then(|a| a.get("xmlns")),
            Some(&Value::str("storage:bookmarks"))
        );
    }
}
