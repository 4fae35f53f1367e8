//! Conversions between Rust data and Lua values: [`Value`] (Lua-shaped
//! data) both ways, and xmpp-core's [`Element`] to and from a `util.stanza`
//! object.
//!
//! A stanza object is Prosody's shape: `{ name = "message", attr = {...},
//! tags = {...}, [1] = child or text, ... }` with the stanza metatable.
//! The element's namespace is `attr.xmlns`, left out (nil) for the stream
//! namespaces (`jabber:client`, `jabber:server`, `jabber:component:accept`)
//! as Prosody's parser leaves it out; an attribute in another namespace is
//! `"ns\1name"` in Lua and `{ns}name` in an [`Element`].

use mlua::{Lua, Table as LuaTable, Value as LuaValue};
use xmpp_core::Element;
use xmpp_core::stanza::{NS_CLIENT, NS_COMPONENT, NS_SERVER, Node};
use xmpp_core::value::{Table, Value};

/// The registry key of the stanza metatable (set by `util.stanza`).
pub(crate) const STANZA_MT: &str = "lilt.stanza_mt";

/// How deep a table or element may nest before conversion gives up.
const MAX_DEPTH: usize = 64;

pub(crate) fn value_to_lua(lua: &Lua, v: &Value) -> mlua::Result<LuaValue> {
    Ok(match v {
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Integer(i) => LuaValue::Integer(*i),
        Value::Number(f) => LuaValue::Number(*f),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Table(t) => LuaValue::Table(table_to_lua(lua, t)?),
    })
}

pub(crate) fn table_to_lua(lua: &Lua, t: &Table) -> mlua::Result<LuaTable> {
    let out = lua.create_table_with_capacity(t.seq.len(), t.map.len())?;
    for (i, v) in t.seq.iter().enumerate() {
        out.raw_set(i + 1, value_to_lua(lua, v)?)?;
    }
    for (k, v) in &t.map {
        out.raw_set(k.as_str(), value_to_lua(lua, v)?)?;
    }
    Ok(out)
}

/// A Lua value as [`Value`]; `None` for nil, functions, userdata, threads
/// (which have no Lua-shaped form). Stanza objects become their XML text.
pub(crate) fn lua_to_value(v: &LuaValue) -> Option<Value> {
    lua_to_value_at(v, 0)
}

fn lua_to_value_at(v: &LuaValue, depth: usize) -> Option<Value> {
    match v {
        LuaValue::Boolean(b) => Some(Value::Bool(*b)),
        LuaValue::Integer(i) => Some(Value::Integer(*i)),
        LuaValue::Number(f) => Some(Value::Number(*f)),
        LuaValue::String(s) => Some(Value::String(s.to_string_lossy())),
        LuaValue::Table(t) if depth < MAX_DEPTH => Some(Value::Table(table_at(t, depth + 1))),
        _ => None,
    }
}

/// A Lua table as [`Table`]: keys 1..n are the array part, string keys the
/// map, other keys by their string form.
pub(crate) fn lua_to_table(t: &LuaTable) -> Table {
    table_at(t, 0)
}

fn table_at(t: &LuaTable, depth: usize) -> Table {
    let mut out = Table::new();
    let len = t.raw_len();
    for i in 1..=len {
        if let Some(v) = t
            .raw_get::<LuaValue>(i)
            .ok()
            .and_then(|v| lua_to_value_at(&v, depth))
        {
            out.seq.push(v);
        }
    }
    for (k, v) in t.clone().pairs::<LuaValue, LuaValue>().flatten() {
        let key = match &k {
            LuaValue::Integer(i) if *i >= 1 && (*i as usize) <= len => continue,
            LuaValue::String(s) => s.to_string_lossy(),
            LuaValue::Integer(i) => i.to_string(),
            LuaValue::Number(f) => f.to_string(),
            LuaValue::Boolean(b) => b.to_string(),
            _ => continue,
        };
        if let Some(v) = lua_to_value_at(&v, depth) {
            out.map.insert(key, v);
        }
    }
    out
}

fn is_stream_ns(ns: &str) -> bool {
    ns == NS_CLIENT || ns == NS_SERVER || ns == NS_COMPONENT
}

/// An [`Element`] as a `util.stanza` object.
pub(crate) fn element_to_lua(lua: &Lua, el: &Element) -> mlua::Result<LuaTable> {
    let mt: LuaTable = lua.named_registry_value(STANZA_MT)?;
    build(lua, el, &mt, "")
}

fn build(lua: &Lua, el: &Element, mt: &LuaTable, parent_ns: &str) -> mlua::Result<LuaTable> {
    let attr = lua.create_table()?;
    if !is_stream_ns(el.ns()) && (!el.ns().is_empty() || !parent_ns.is_empty()) {
        attr.raw_set("xmlns", el.ns())?;
    }
    for (k, v) in el.attrs() {
        match k.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((ns, name)) => attr.raw_set(format!("{ns}\u{1}{name}"), v)?,
            None => attr.raw_set(k, v)?,
        }
    }
    let node = lua.create_table()?;
    node.raw_set("name", el.name())?;
    node.raw_set("attr", attr)?;
    let tags = lua.create_table()?;
    let mut i = 0;
    let mut t = 0;
    for child in el.nodes() {
        i += 1;
        match child {
            Node::Text(s) => node.raw_set(i, s.as_str())?,
            Node::Element(c) => {
                let c = build(lua, c, mt, el.ns())?;
                t += 1;
                tags.raw_set(t, &c)?;
                node.raw_set(i, c)?;
            }
        }
    }
    node.raw_set("tags", tags)?;
    node.set_metatable(Some(mt.clone()))?;
    Ok(node)
}

/// Is this Lua value a stanza object (a table with a name and attributes)?
pub(crate) fn is_stanza(v: &LuaValue) -> bool {
    match v {
        LuaValue::Table(t) => {
            matches!(t.raw_get::<LuaValue>("name"), Ok(LuaValue::String(_)))
                && matches!(t.raw_get::<LuaValue>("attr"), Ok(LuaValue::Table(_)))
        }
        _ => false,
    }
}

/// A stanza object as an [`Element`]; `default_ns` is the namespace of an
/// element without `xmlns` at the top (the stream's, `jabber:client`).
pub(crate) fn lua_to_element(t: &LuaTable, default_ns: &str) -> mlua::Result<Element> {
    read(t, default_ns, 0)
}

fn read(t: &LuaTable, parent_ns: &str, depth: usize) -> mlua::Result<Element> {
    if depth > 256 {
        return Err(mlua::Error::runtime("stanza nested too deeply"));
    }
    let name: String = t.raw_get("name")?;
    let attr: LuaTable = t.raw_get("attr")?;
    let ns = match attr.raw_get::<LuaValue>("xmlns")? {
        LuaValue::String(s) => s.to_string_lossy(),
        _ => parent_ns.to_string(),
    };
    let mut attrs = Vec::new();
    for (k, v) in attr.pairs::<String, LuaValue>().flatten() {
        if k == "xmlns" {
            continue;
        }
        let v = match v {
            LuaValue::String(s) => s.to_string_lossy(),
            LuaValue::Integer(i) => i.to_string(),
            LuaValue::Number(f) => f.to_string(),
            _ => continue,
        };
        let k = match k.split_once('\u{1}') {
            Some((ns, local)) => format!("{{{ns}}}{local}"),
            None => k,
        };
        attrs.push((k, v));
    }
    // Lua's pairs has no order; sort for a stable serialisation.
    attrs.sort();
    let mut el = Element::with_attrs(name, ns.clone(), attrs);
    for i in 1..=t.raw_len() {
        match t.raw_get::<LuaValue>(i)? {
            LuaValue::String(s) => el.append_text(s.to_string_lossy()),
            LuaValue::Table(c) => el.push_child(read(&c, &ns, depth + 1)?),
            _ => {}
        }
    }
    Ok(el)
}

/// Is the Lua stanza `t` still `el` (same name, namespace, attributes and
/// children, text for text)? Checked without building anything, so that a
/// handler that only reads the stanza costs no conversion back.
pub(crate) fn same_element(t: &LuaTable, el: &Element) -> mlua::Result<bool> {
    same(t, el, "", 0)
}

fn same(t: &LuaTable, el: &Element, parent_ns: &str, depth: usize) -> mlua::Result<bool> {
    if depth > 256 {
        return Ok(false);
    }
    match t.raw_get::<LuaValue>("name")? {
        LuaValue::String(s) if s.as_bytes() == el.name().as_bytes() => {}
        _ => return Ok(false),
    }
    let LuaValue::Table(attr) = t.raw_get::<LuaValue>("attr")? else {
        return Ok(false);
    };
    let ns_ok = match attr.raw_get::<LuaValue>("xmlns")? {
        LuaValue::String(s) => s.as_bytes() == el.ns().as_bytes(),
        LuaValue::Nil => parent_ns == el.ns() || is_stream_ns(el.ns()),
        _ => false,
    };
    if !ns_ok {
        return Ok(false);
    }
    let mut expected = 0usize;
    for (k, v) in el.attrs() {
        expected += 1;
        let got = match k.strip_prefix('{').and_then(|r| r.split_once('}')) {
            Some((ns, name)) => attr.raw_get::<LuaValue>(format!("{ns}\u{1}{name}"))?,
            None => attr.raw_get::<LuaValue>(k)?,
        };
        match got {
            LuaValue::String(s) if s.as_bytes() == v.as_bytes() => {}
            _ => return Ok(false),
        }
    }
    let mut count = 0usize;
    for pair in attr.pairs::<LuaValue, LuaValue>() {
        let (k, _) = pair?;
        if !matches!(&k, LuaValue::String(s) if s.as_bytes() == b"xmlns") {
            count += 1;
        }
    }
    if count != expected {
        return Ok(false);
    }
    let nodes = el.nodes();
    if t.raw_len() != nodes.len() {
        return Ok(false);
    }
    for (i, node) in nodes.iter().enumerate() {
        let ok = match (t.raw_get::<LuaValue>(i + 1)?, node) {
            (LuaValue::String(s), Node::Text(text)) => s.as_bytes() == text.as_bytes(),
            (LuaValue::Table(c), Node::Element(child)) => same(&c, child, el.ns(), depth + 1)?,
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let lua = Lua::new();
        let mut t = Table::new();
        t.seq.push(Value::str("a"));
        t.seq.push(Value::Integer(2));
        t.insert("k", Value::Bool(true));
        let v = Value::Table(t);
        let l = value_to_lua(&lua, &v).unwrap();
        assert_eq!(lua_to_value(&l), Some(v));
    }
}
