//! Events between the server and Lua: a [`LuaEvent`] as Prosody's event
//! table (`origin`, `stanza` and the other fields) and back.
//!
//! An origin is a session table (`type`, `username`, `host`, `resource`,
//! `full_jid`, `ip`, `send`), the same table each time the same session
//! comes back while the module still holds it (modules key tables by
//! session), kept in a weak cache.

use std::sync::Arc;

use mlua::{Lua, Table as LuaTable, Value as LuaValue};
use xmpp_core::stanza::NS_CLIENT;
use xmpp_core::value::Value;

use super::api::{LuaEvent, Origin};
use super::bridge::{Shared, origin_send};
use super::convert::{element_to_lua, is_stanza, lua_to_element, lua_to_table, table_to_lua};

const ORIGINS: &str = "lilt.origins";
/// The key of the session id in an origin table.
pub(crate) const SESSION_ID: &str = "lilt_session_id";

fn origins(lua: &Lua) -> mlua::Result<LuaTable> {
    if let Ok(t) = lua.named_registry_value::<LuaTable>(ORIGINS) {
        return Ok(t);
    }
    let t = lua.create_table()?;
    let mt = lua.create_table()?;
    mt.set("__mode", "v")?;
    t.set_metatable(Some(mt))?;
    lua.set_named_registry_value(ORIGINS, &t)?;
    Ok(t)
}

fn set_opt(t: &LuaTable, key: &str, v: &Option<String>) -> mlua::Result<()> {
    match v {
        Some(s) => t.raw_set(key, s.as_str()),
        None => t.raw_set(key, LuaValue::Nil),
    }
}

/// The session table of `o`, reused while Lua holds it.
pub(crate) fn origin_table(lua: &Lua, shared: &Arc<Shared>, o: &Origin) -> mlua::Result<LuaTable> {
    let cache = origins(lua)?;
    let t = match cache.raw_get::<Option<LuaTable>>(o.id)? {
        Some(t) => t,
        None => {
            let t = lua.create_table()?;
            t.raw_set(SESSION_ID, o.id)?;
            t.raw_set("send", origin_send(lua, shared, o.id)?)?;
            cache.raw_set(o.id, &t)?;
            t
        }
    };
    t.raw_set("type", o.kind.as_str())?;
    set_opt(&t, "username", &o.username)?;
    set_opt(&t, "host", &o.host)?;
    set_opt(&t, "resource", &o.resource)?;
    set_opt(&t, "ip", &o.ip)?;
    set_opt(&t, "full_jid", &o.full_jid())?;
    for (k, v) in &o.extra.map {
        t.raw_set(k.as_str(), super::convert::value_to_lua(lua, v)?)?;
    }
    Ok(t)
}

/// Prosody's event table for `ev`.
pub(crate) fn event_to_lua(
    lua: &Lua,
    shared: &Arc<Shared>,
    ev: &LuaEvent,
) -> mlua::Result<LuaTable> {
    let t = table_to_lua(lua, &ev.fields)?;
    if let Some(o) = &ev.origin {
        let session = origin_table(lua, shared, o)?;
        // Prosody's session events (`authentication-success`,
        // `resource-bind`, `user-registered`, ...) carry the session as
        // `session`; stanza events as `origin`.
        if ev.stanza.is_none() && !ev.fields.map.contains_key("session") {
            t.raw_set("session", &session)?;
        }
        t.raw_set("origin", session)?;
    }
    if let (Some(Value::String(jid)), false) = (
        ev.fields.get("room_jid"),
        ev.fields.map.contains_key("room"),
    ) {
        t.raw_set("room", super::room::room_table(lua, shared, jid)?)?;
    }
    if let Some(s) = &ev.stanza {
        t.raw_set("stanza", element_to_lua(lua, s)?)?;
    }
    Ok(t)
}

fn opt_string(t: &LuaTable, key: &str) -> Option<String> {
    match t.raw_get::<LuaValue>(key) {
        Ok(LuaValue::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    }
}

/// The session an origin table stands for (one the host gave us), if any.
fn origin_of(t: &LuaTable) -> Option<Origin> {
    let id: u64 = t.raw_get(SESSION_ID).ok()?;
    Some(Origin {
        id,
        kind: opt_string(t, "type").unwrap_or_default(),
        username: opt_string(t, "username"),
        host: opt_string(t, "host"),
        resource: opt_string(t, "resource"),
        ip: opt_string(t, "ip"),
        extra: Default::default(),
    })
}

/// A Lua event table (from `module:fire_event`) as a [`LuaEvent`].
pub(crate) fn lua_to_event(name: &str, data: &LuaValue) -> mlua::Result<LuaEvent> {
    let mut ev = LuaEvent::new(name);
    let LuaValue::Table(t) = data else {
        return Ok(ev);
    };
    if let Ok(LuaValue::Table(o)) = t.raw_get::<LuaValue>("origin") {
        ev.origin = origin_of(&o);
    }
    let stanza = t.raw_get::<LuaValue>("stanza")?;
    if let (true, LuaValue::Table(s)) = (is_stanza(&stanza), &stanza) {
        ev.stanza = Some(lua_to_element(s, NS_CLIENT)?);
    }
    let mut fields = lua_to_table(t);
    fields.map.remove("origin");
    fields.map.remove("stanza");
    ev.fields = fields;
    Ok(ev)
}

/// After a handler ran: the event's stanza as the handler left it.
pub(crate) fn read_back(t: &LuaTable, ev: &mut LuaEvent) -> mlua::Result<()> {
    let stanza = t.raw_get::<LuaValue>("stanza")?;
    match (&stanza, is_stanza(&stanza)) {
        (LuaValue::Table(s), true) => {
            // Most handlers only read the stanza: keep the one we gave.
            let unchanged = match &ev.stanza {
                Some(original) => super::convert::same_element(s, original)?,
                None => false,
            };
            if !unchanged {
                ev.stanza = Some(lua_to_element(s, NS_CLIENT)?);
            }
        }
        (LuaValue::Nil, _) => ev.stanza = None,
        _ => {}
    }
    // Tables the host gave (a MUC form, its data) may have been changed
    // in place: they are read back too.
    let tables: Vec<String> = ev
        .fields
        .map
        .iter()
        .filter(|(_, v)| matches!(v, Value::Table(_)))
        .map(|(k, _)| k.clone())
        .collect();
    for key in tables {
        if let LuaValue::Table(lt) = t.raw_get::<LuaValue>(key.as_str())? {
            ev.fields
                .insert(key, Value::Table(super::convert::lua_to_table(&lt)));
        }
    }
    Ok(())
}

/// A handler's return value as the host sees it: `None` for nil (go on),
/// anything else stops the chain; values without a Lua-shaped form are `true`.
pub(crate) fn handler_result(v: &LuaValue) -> Option<Value> {
    match v {
        LuaValue::Nil => None,
        other => Some(super::convert::lua_to_value(other).unwrap_or(Value::Bool(true))),
    }
}
