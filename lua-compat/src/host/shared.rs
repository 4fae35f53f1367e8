//! `module:shared(path)`: tables Prosody modules share by path, across
//! modules and hosts (`"name"` is `/<host>/<module>/name`, `"other/name"`
//! `/<host>/other/name`, `/*/module/name` is the same for every host).
//!
//! Each Lua module runs in its own Lua state, so a shared table cannot be
//! one Lua table: it is a proxy (made in `module.lua`) whose reads and
//! writes go to [`SharedData`], kept by the server
//! ([`super::LuaHost::shared_data`]) and holding Lua-shaped data
//! ([`Value`]). What a module stores there is a copy: changing a nested
//! table it read does not change the shared one until it is stored again.
//! Values with no data form (functions) stay in the module that set them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mlua::{Lua, Table as LuaTable, Value as LuaValue};
use xmpp_core::Value;

use super::convert::{lua_to_value, value_to_lua};

/// A key of a shared table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i64),
    Str(String),
}

/// The server's shared tables, by path.
#[derive(Debug, Default)]
pub struct SharedData(Mutex<HashMap<String, BTreeMap<Key, Value>>>);

impl SharedData {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<Key, Value>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// The value at `key` (a string) of the table at `path`, for a host's tools.
    pub fn get(&self, path: &str, key: &str) -> Option<Value> {
        self.lock()
            .get(path)
            .and_then(|t| t.get(&Key::Str(key.to_string())))
            .cloned()
    }
}

fn key(k: &LuaValue) -> Option<Key> {
    match k {
        LuaValue::Integer(i) => Some(Key::Int(*i)),
        LuaValue::Number(f) if f.fract() == 0.0 && f.is_finite() => Some(Key::Int(*f as i64)),
        LuaValue::String(s) => Some(Key::Str(s.to_string_lossy())),
        LuaValue::Boolean(b) => Some(Key::Str(b.to_string())),
        _ => None,
    }
}

fn key_to_lua(lua: &Lua, k: &Key) -> mlua::Result<LuaValue> {
    Ok(match k {
        Key::Int(i) => LuaValue::Integer(*i),
        Key::Str(s) => LuaValue::String(lua.create_string(s)?),
    })
}

/// Adds `shared_get`, `shared_set`, `shared_keys` to the bridge table.
pub(crate) fn install(lua: &Lua, bridge: &LuaTable, data: Arc<SharedData>) -> mlua::Result<()> {
    let d = data.clone();
    bridge.set(
        "shared_get",
        lua.create_function(move |lua, (path, k): (String, LuaValue)| {
            let Some(k) = key(&k) else {
                return Ok(LuaValue::Nil);
            };
            let v = d.lock().get(&path).and_then(|t| t.get(&k)).cloned();
            match v {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Nil),
            }
        })?,
    )?;
    let d = data.clone();
    bridge.set(
        "shared_set",
        lua.create_function(move |_, (path, k, v): (String, LuaValue, LuaValue)| {
            let Some(k) = key(&k) else {
                return Err(mlua::Error::runtime(
                    "shared table key must be a string or number",
                ));
            };
            let value = lua_to_value(&v);
            let stored = value.is_some() || v.is_nil();
            let mut all = d.lock();
            let table = all.entry(path).or_default();
            match value {
                Some(v) => table.insert(k, v),
                None => table.remove(&k),
            };
            // false: not data (a function); the module keeps it itself.
            Ok(stored)
        })?,
    )?;
    let d = data;
    bridge.set(
        "shared_keys",
        lua.create_function(move |lua, path: String| {
            let keys: Vec<Key> = d
                .lock()
                .get(&path)
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default();
            let out = lua.create_table()?;
            for (i, k) in keys.iter().enumerate() {
                out.raw_set(i + 1, key_to_lua(lua, k)?)?;
            }
            Ok(out)
        })?,
    )?;
    Ok(())
}
