//! MUC forms as Lua handlers see them, as in Prosody: `muc-config-form`'s
//! `event.form` (the room configuration's fields, a list a handler appends
//! to), `muc-disco#info`'s `event.form` and `event.formdata` (the roominfo
//! fields and their values by name), `muc-config-submitted`'s
//! `event.fields` (the submitted values by name) and `event.status_codes`
//! (codes to announce, `["104"] = true`). In lilt these are Rust
//! objects of the event (`muc::form`); [`give`] puts Lua-shaped copies in the
//! Lua event and [`take_back`] applies what the handler added.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use lua_compat::host::LuaEvent;
use muc::events::{lock, mutable_of};
use muc::form::{Field, FieldValue, Form, FormOption};
use xmpp_core::{Event, Table, Value};

type FormData = HashMap<String, FieldValue>;

fn field_value(v: &Value) -> Option<FieldValue> {
    Some(match v {
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Integer(i) => FieldValue::Int(*i),
        Value::Number(n) => FieldValue::Text(n.to_string()),
        Value::String(s) => FieldValue::Text(s.clone()),
        Value::Table(t) => FieldValue::List(
            t.seq
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
    })
}

fn text(t: &Table, key: &str) -> Option<String> {
    t.get(key).and_then(Value::as_str).map(str::to_string)
}

fn field_to_lua(f: &Field) -> Value {
    let mut t = Table::new();
    if let Some(n) = &f.name {
        t.insert("name", Value::str(n));
    }
    t.insert("type", Value::str(&f.type_));
    if let Some(l) = &f.label {
        t.insert("label", Value::str(l));
    }
    if let Some(d) = &f.desc {
        t.insert("desc", Value::str(d));
    }
    if let Some(v) = &f.value {
        t.insert("value", v.to_value());
    }
    if f.required {
        t.insert("required", Value::Bool(true));
    }
    Value::Table(t)
}

fn field_from_lua(t: &Table) -> Field {
    let type_ = text(t, "type").unwrap_or_else(|| "text-single".to_string());
    let mut f = Field::new(text(t, "name").as_deref().unwrap_or_default(), &type_);
    if f.name.as_deref() == Some("") {
        f.name = None;
    }
    f.label = text(t, "label");
    f.desc = text(t, "desc");
    f.datatype = text(t, "datatype");
    f.value = t.get("value").and_then(field_value);
    f.required = matches!(t.get("required"), Some(Value::Bool(true)));
    if let Some(Value::Table(options)) = t.get("options") {
        f.options = options
            .seq
            .iter()
            .filter_map(|o| match o {
                Value::String(s) => Some(FormOption::plain(s)),
                Value::Table(o) => {
                    let mut opt = FormOption::plain(&text(o, "value")?);
                    opt.label = text(o, "label");
                    opt.default = matches!(o.get("default"), Some(Value::Bool(true)));
                    Some(opt)
                }
                _ => None,
            })
            .collect();
    }
    f
}

fn data_to_lua(data: &FormData) -> Value {
    let mut t = Table::new();
    for (k, v) in data {
        t.insert(k.clone(), v.to_value());
    }
    Value::Table(t)
}

/// Lua-shaped copies of the event's forms, into `out`'s fields.
pub(super) fn give(ev: &Event, out: &mut LuaEvent) {
    if let Some(form) = mutable_of::<Form>(ev, "form") {
        let form = lock(&form);
        let mut t = Table::new();
        t.seq = form.fields.iter().map(field_to_lua).collect();
        out.fields.insert("form", Value::Table(t));
    }
    for key in ["formdata", "fields"] {
        if let Some(data) = mutable_of::<FormData>(ev, key) {
            out.fields.insert(key, data_to_lua(&lock(&data)));
        }
    }
    if let Some(codes) = ev.object::<Mutex<BTreeSet<String>>>("status_codes") {
        let mut t = Table::new();
        for code in lock(&codes).iter() {
            t.insert(code.clone(), Value::Bool(true));
        }
        out.fields.insert("status_codes", Value::Table(t));
    }
}

/// Applies what the handler did to the Lua copies: fields appended to
/// `form`, values set in `formdata`.
pub(super) fn take_back(ev: &Event, lua: &LuaEvent) {
    if let (Some(form), Some(Value::Table(t))) =
        (mutable_of::<Form>(ev, "form"), lua.fields.get("form"))
    {
        let mut form = lock(&form);
        let known = form.fields.len();
        for f in t.seq.iter().skip(known) {
            if let Value::Table(f) = f {
                form.fields.push(field_from_lua(f));
            }
        }
    }
    if let (Some(data), Some(Value::Table(t))) = (
        mutable_of::<FormData>(ev, "formdata"),
        lua.fields.get("formdata"),
    ) {
        let mut data = lock(&data);
        for (k, v) in &t.map {
            if let Some(v) = field_value(v) {
                data.insert(k.clone(), v);
            }
        }
    }
    if let (Some(codes), Some(Value::Table(t))) = (
        ev.object::<Mutex<BTreeSet<String>>>("status_codes"),
        lua.fields.get("status_codes"),
    ) {
        let mut codes = lock(&codes);
        for (code, set) in &t.map {
            if matches!(set, Value::Bool(true)) {
                codes.insert(code.clone());
            }
        }
    }
}
