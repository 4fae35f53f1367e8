//! Between exact file data ([`DatValue`]) and lilt's [`Value`].
//!
//! `Value` tables have a sequence part and string keys, so:
//! - reading: keys `1..n` go to the sequence, every other key becomes its
//!   string form (`[false]` → `"false"`, `[7]` → `"7"`); strings must be UTF-8;
//! - writing: the sequence becomes keys `1..n`; a map key takes the type and
//!   place it had in the previous version of the data (the `template`) when
//!   there is one, so rewriting a file Prosody wrote keeps its key types and
//!   order; a new key is a string, except `"true"`/`"false"`, which become
//!   booleans (Prosody's roster keeps its metadata under `[false]`). New
//!   keys come after the kept ones, in ascending order.

use std::collections::HashMap;

use xmpp_core::value::{Table, Value};

use super::{DatKey, DatTable, DatValue};

/// Data that has no [`Value`] form, with where it is (`[k1][k2]...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} at {location}")]
pub struct ConvertError {
    pub location: String,
    pub reason: String,
}

impl DatValue {
    /// The value as lilt's [`Value`].
    pub fn to_value(&self) -> Result<Value, ConvertError> {
        to_value(self).map_err(|(path, reason)| {
            let mut location = String::from("value");
            for step in path.iter().rev() {
                location.push('[');
                location.push_str(step);
                location.push(']');
            }
            ConvertError { location, reason }
        })
    }

    /// A [`Value`] as data, shaped after `template` (the data it replaces).
    pub fn from_value(value: &Value, template: Option<&DatValue>) -> DatValue {
        match value {
            Value::Bool(b) => DatValue::Bool(*b),
            Value::Integer(i) => DatValue::Integer(*i),
            Value::Number(f) => DatValue::Number(*f),
            Value::String(s) => DatValue::String(s.as_bytes().to_vec()),
            Value::Table(t) => {
                DatValue::Table(table_from_value(t, template.and_then(DatValue::as_table)))
            }
        }
    }
}

type Failure = (Vec<String>, String);

fn to_value(v: &DatValue) -> Result<Value, Failure> {
    Ok(match v {
        DatValue::Bool(b) => Value::Bool(*b),
        DatValue::Integer(i) => Value::Integer(*i),
        DatValue::Number(f) => Value::Number(*f),
        DatValue::String(s) => Value::String(utf8(s).map_err(|r| (Vec::new(), r))?),
        DatValue::Table(t) => {
            let mut out = Table::new();
            let n = t.sequence_len() as i64;
            out.seq = t
                .sequence()
                .enumerate()
                .map(|(i, v)| {
                    to_value(v).map_err(|(mut path, r)| {
                        path.push((i + 1).to_string());
                        (path, r)
                    })
                })
                .collect::<Result<_, _>>()?;
            for (k, v) in t.iter() {
                if matches!(k, DatKey::Integer(i) if *i >= 1 && *i <= n) {
                    continue;
                }
                let name = match k {
                    DatKey::String(s) => utf8(s).map_err(|r| (Vec::new(), format!("key: {r}")))?,
                    other => other.to_display_string(),
                };
                let value = to_value(v).map_err(|(mut path, r)| {
                    path.push(k.to_display_string());
                    (path, r)
                })?;
                if out.map.insert(name.clone(), value).is_some() {
                    return Err((
                        Vec::new(),
                        format!("two keys have the string form {name:?}"),
                    ));
                }
            }
            Value::Table(out)
        }
    })
}

fn utf8(s: &[u8]) -> Result<String, String> {
    String::from_utf8(s.to_vec()).map_err(|e| {
        format!(
            "string is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn table_from_value(t: &Table, template: Option<&DatTable>) -> DatTable {
    let n = t.seq.len() as i64;
    // Wanted entries: the sequence, then the map under its Lua keys.
    let mut wanted: Vec<(DatKey, &Value)> = Vec::with_capacity(t.seq.len() + t.map.len());
    for (i, v) in t.seq.iter().enumerate() {
        wanted.push((DatKey::Integer(i as i64 + 1), v));
    }
    let template_keys: HashMap<String, &DatKey> = template
        .map(|tt| {
            tt.iter()
                .filter(|(k, _)| !matches!(k, DatKey::Integer(i) if *i >= 1 && *i <= n))
                .map(|(k, _)| (k.to_display_string(), k))
                .collect()
        })
        .unwrap_or_default();
    for (name, v) in &t.map {
        let key = match template_keys.get(name) {
            Some(k) => (*k).clone(),
            None => new_key(name),
        };
        wanted.push((key, v));
    }
    let mut out = DatTable::new();
    // First the keys the template has, in its order ...
    if let Some(tt) = template {
        let positions: HashMap<&DatKey, usize> = wanted
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k, i))
            .collect();
        let mut used = vec![false; wanted.len()];
        for (k, old) in tt.iter() {
            if let Some(&i) = positions.get(k) {
                used[i] = true;
                out.insert(k.clone(), DatValue::from_value(wanted[i].1, Some(old)));
            }
        }
        // ... then the new ones.
        for (i, (k, v)) in wanted.iter().enumerate() {
            if !used[i] {
                out.insert(k.clone(), DatValue::from_value(v, None));
            }
        }
    } else {
        for (k, v) in wanted {
            out.insert(k, DatValue::from_value(v, None));
        }
    }
    out
}

fn new_key(name: &str) -> DatKey {
    match name {
        "true" => DatKey::Bool(true),
        "false" => DatKey::Bool(false),
        _ => DatKey::str(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datfile::{literal, serialize};

    #[test]
    fn roster_round_trip_keeps_false_key_and_order() {
        let src = "return {\n\t[\"zed@x\"] = {\n\t\t[\"subscription\"] = \"both\";\n\t\t[\"groups\"] = {};\n\t};\n\t[false] = {\n\t\t[\"version\"] = 3;\n\t\t[\"pending\"] = {};\n\t};\n}";
        let dat = literal::parse_dat(src.as_bytes()).unwrap().unwrap();
        let value = dat.to_value().unwrap();
        assert_eq!(
            value.get("false").and_then(|f| f.get("version")),
            Some(&Value::Integer(3))
        );
        let back = DatValue::from_value(&value, Some(&dat));
        assert_eq!(format!("return {}", serialize(&back).unwrap()), src);
    }

    #[test]
    fn new_tables_are_sorted_and_false_is_boolean() {
        let mut t = Table::new();
        t.insert("b", Value::Integer(1));
        t.insert("false", Value::Table(Table::new()));
        t.insert("a", Value::Bool(true));
        t.seq.push(Value::str("first"));
        let dat = DatValue::from_value(&Value::Table(t), None);
        assert_eq!(
            serialize(&dat).unwrap(),
            "{\n\t\"first\";\n\t[\"a\"] = true;\n\t[\"b\"] = 1;\n\t[false] = {};\n}"
        );
    }

    #[test]
    fn template_keeps_order_and_appends_new_keys() {
        let old = literal::parse_dat(b"return { [\"z\"] = 1; [5] = \"five\"; [\"a\"] = 2 }")
            .unwrap()
            .unwrap();
        let mut value = old.to_value().unwrap();
        let t = value.as_table_mut().unwrap();
        t.map.remove("z");
        t.insert("m", Value::Integer(9));
        let new = DatValue::from_value(&value, Some(&old));
        assert_eq!(
            serialize(&new).unwrap(),
            "{\n\t[5] = \"five\";\n\t[\"a\"] = 2;\n\t[\"m\"] = 9;\n}"
        );
    }

    #[test]
    fn non_utf8_strings_are_reported_with_their_place() {
        let dat = literal::parse_dat(b"return { [\"a\"] = { [\"b\"] = \"\\255\" } }")
            .unwrap()
            .unwrap();
        let err = dat.to_value().unwrap_err();
        assert_eq!(err.location, "value[a][b]");
    }

    #[test]
    fn colliding_keys_are_refused() {
        let dat = literal::parse_dat(b"return { [7] = 1, [\"7\"] = 2 }")
            .unwrap()
            .unwrap();
        assert!(dat.to_value().is_err());
    }
}
