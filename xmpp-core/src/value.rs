//! [`Value`]: the Lua-shaped data Prosody keeps in its config and its stores
//! (nil is absence; booleans, numbers, strings and tables).

use std::collections::BTreeMap;

/// A Lua value as found in `prosody.cfg.lua` or a `.dat` file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Integer(i64),
    Number(f64),
    String(String),
    Table(Table),
}

/// A Lua table: its array part (keys 1..n) and its keyed part.
/// Non-string keys other than the array part are kept as their string form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub seq: Vec<Value>,
    pub map: BTreeMap<String, Value>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.map.insert(key.into(), value);
    }
    pub fn is_empty(&self) -> bool {
        self.seq.is_empty() && self.map.is_empty()
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// An integer, accepting floats with no fractional part (Lua numbers).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            Value::Number(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Number(f) => Some(*f),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
    pub fn as_table_mut(&mut self) -> Option<&mut Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
    /// Field of a table value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_table().and_then(|t| t.get(key))
    }
    /// A list of strings: a table's array part, or a single string as a
    /// one-element list (Prosody's `get_option_set`/`get_option_array` shapes).
    pub fn as_string_list(&self) -> Option<Vec<String>> {
        match self {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Table(t) => {
                let mut out: Vec<String> = t
                    .seq
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                // A set written as { ["a"] = true } also counts.
                for (k, v) in &t.map {
                    if v == &Value::Bool(true) {
                        out.push(k.clone());
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }
    /// Lua's type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Bool(_) => "boolean",
            Value::Integer(_) | Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Table(_) => "table",
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}
impl From<Table> for Value {
    fn from(t: Table) -> Value {
        Value::Table(t)
    }
}
