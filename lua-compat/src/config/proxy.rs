//! Option proxies (Prosody 13): reading back an option that holds a table
//! gives a proxy, so a file can extend what an earlier line (or the main
//! file) set:
//!
//! ```lua
//! modules_enabled:append { "bosh" }   -- or: modules_enabled { "bosh" }
//! for m in modules_enabled:values() do ... end
//! local t = modules_enabled:value()
//! ```
//!
//! Any other operation on a proxy is an error, as in Prosody. Where a proxy
//! is stored as an option's value (`b = a`), the loader stores the table it
//! stands for instead (Prosody would keep the proxy object itself).

use std::sync::{Arc, Mutex};

use mlua::{Lua, Table, Value};

use super::env::Shared;
use super::error::ConfigError;

const HOST: &str = "host";
const OPTION: &str = "option_name";

/// Gives `shared.proxy_mt` its fields (done once the [`Shared`] exists, as
/// the methods need it).
pub(crate) fn fill_metatable(lua: &Lua, shared: &Arc<Shared>) -> mlua::Result<()> {
    let methods = lua.create_table()?;
    let s = shared.clone();
    methods.raw_set(
        "append",
        lua.create_function(move |lua, (proxy, value): (Table, Value)| {
            append(lua, &s, proxy, value)
        })?,
    )?;
    let s = shared.clone();
    methods.raw_set(
        "value",
        lua.create_function(move |_, proxy: Table| {
            let (host, option) = target(&proxy)?;
            s.raw_option(&host, &option)
        })?,
    )?;
    let s = shared.clone();
    methods.raw_set(
        "values",
        lua.create_function(move |lua, proxy: Table| values(lua, &s, proxy))?,
    )?;

    let unknown = lua.create_table()?;
    let s = shared.clone();
    unknown.raw_set(
        "__index",
        lua.create_function(
            move |lua, (_t, key): (Value, Value)| -> mlua::Result<Value> {
                let at = s.locate(lua);
                let key = key
                    .to_string()
                    .unwrap_or_else(|_| key.type_name().to_string());
                Err(mlua::Error::external(ConfigError::Runtime {
                    at,
                    message: format!("Unknown config option operation: '{key}'"),
                }))
            },
        )?,
    )?;
    methods.set_metatable(Some(unknown))?;

    let mt = &shared.proxy_mt;
    mt.raw_set("__index", methods)?;
    let s = shared.clone();
    mt.raw_set(
        "__call",
        lua.create_function(
            move |lua, (proxy, more): (Table, Value)| -> mlua::Result<Table> {
                let (host, option) = target(&proxy)?;
                let current = s.raw_option(&host, &option)?;
                if matches!(current, Value::Table(_) | Value::Nil)
                    && matches!(more, Value::Table(_))
                {
                    return append(lua, &s, proxy, more);
                }
                let at = s.locate(lua);
                Err(mlua::Error::external(ConfigError::Runtime {
                    at,
                    message: format!("Invalid syntax - missing '=' perhaps? (after '{option}')"),
                }))
            },
        )?,
    )?;
    Ok(())
}

/// A proxy for `option` of section `host`.
pub(crate) fn make(lua: &Lua, shared: &Shared, host: &str, option: &str) -> mlua::Result<Table> {
    let proxy = lua.create_table()?;
    proxy.raw_set(HOST, host)?;
    proxy.raw_set(OPTION, option)?;
    proxy.set_metatable(Some(shared.proxy_mt.clone()))?;
    Ok(proxy)
}

/// The (section, option) a proxy stands for, if `table` is a proxy.
fn as_proxy(shared: &Shared, table: &Table) -> mlua::Result<Option<(String, String)>> {
    match table.metatable() {
        Some(mt) if mt.to_pointer() == shared.proxy_mt.to_pointer() => target(table).map(Some),
        _ => Ok(None),
    }
}

fn target(proxy: &Table) -> mlua::Result<(String, String)> {
    let host: mlua::LuaString = proxy.raw_get(HOST)?;
    let option: mlua::LuaString = proxy.raw_get(OPTION)?;
    Ok((host.to_string_lossy(), option.to_string_lossy()))
}

/// A value about to be stored: a proxy becomes the value it stands for.
pub(crate) fn resolve(shared: &Shared, value: Value) -> mlua::Result<Value> {
    if let Value::Table(t) = &value
        && let Some((host, option)) = as_proxy(shared, t)?
    {
        return shared.raw_option(&host, &option);
    }
    Ok(value)
}

/// Whether a stored table is a proxy (for the converter, which resolves
/// proxies nested inside tables).
pub(crate) fn target_of(shared: &Shared, table: &Table) -> mlua::Result<Option<(String, String)>> {
    as_proxy(shared, table)
}

/// `option:append(list)`: a list is added to the end, a map merged in.
fn append(lua: &Lua, shared: &Shared, proxy: Table, value: Value) -> mlua::Result<Table> {
    let (host, option) = target(&proxy)?;
    let at = shared.locate(lua);
    let Value::Table(more) = resolve(shared, value)? else {
        return Err(mlua::Error::external(ConfigError::Runtime {
            at,
            message: "'append' operation expects a list of values to append to the existing list"
                .into(),
        }));
    };
    let original = match shared.raw_option(&host, &option)? {
        Value::Table(t) => t,
        Value::Nil => lua.create_table()?,
        other => {
            return Err(mlua::Error::external(ConfigError::Runtime {
                at,
                message: format!(
                    "cannot append to option '{option}', which holds a {}",
                    other.type_name()
                ),
            }));
        }
    };
    if more.raw_get::<Value>(1)?.is_nil() {
        for pair in more.pairs::<Value, Value>() {
            let (k, v) = pair?;
            original.raw_set(k, v)?;
        }
    } else {
        for v in more.sequence_values::<Value>() {
            original.raw_set(original.raw_len() + 1, v?)?;
        }
    }
    // Keep where the option was first set; an append never moves it.
    let had_source = shared
        .lock()
        .sources
        .contains_key(&(host.clone(), option.clone()));
    if had_source {
        shared
            .config
            .raw_get::<Table>(host.as_str())?
            .raw_set(option.as_str(), original)?;
    } else {
        shared.set_option(lua, &host, &option, Value::Table(original), &at)?;
    }
    Ok(proxy)
}

/// `option:values()`: an iterator over the values of the list.
fn values(lua: &Lua, shared: &Shared, proxy: Table) -> mlua::Result<mlua::Function> {
    let (host, option) = target(&proxy)?;
    let mut items = Vec::new();
    if let Value::Table(t) = shared.raw_option(&host, &option)? {
        for pair in t.pairs::<Value, Value>() {
            items.push(pair?.1);
        }
    }
    let next = Mutex::new(items.into_iter());
    lua.create_function(move |_, ()| {
        let mut it = next.lock().unwrap_or_else(|p| p.into_inner());
        Ok(it.next().unwrap_or(Value::Nil))
    })
}
