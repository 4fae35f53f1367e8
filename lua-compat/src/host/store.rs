//! `module:open_store` objects: Prosody's store methods on the host's
//! storage drivers (xmpp-core's store traits).
//!
//! - keyval: `store:get(user)`, `store:set(user, data)`, `store:users()`;
//! - map: `store:get(user, key)`, `store:set(user, key, value)`,
//!   `store:set_keys(user, { key = value })`;
//! - archive: `store:append(user, key, stanza, when, with)`,
//!   `store:find(user, query)` (an iterator of key, stanza, when, with),
//!   `store:delete(user, query)`.
//!
//! Failures come back as `nil, "error text"`, as Prosody's stores return them.

use mlua::{Lua, MultiValue, Table as LuaTable, UserData, UserDataMethods, Value as LuaValue};
use xmpp_core::stanza::NS_CLIENT;
use xmpp_core::storage::ArchiveQuery;

use super::api::Store;
use super::convert::{element_to_lua, is_stanza, lua_to_element, lua_to_value, value_to_lua};

pub(crate) struct LuaStore(pub Store);

fn fail(lua: &Lua, e: impl std::fmt::Display) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        LuaValue::Nil,
        LuaValue::String(lua.create_string(e.to_string())?),
    ]))
}

fn one(v: LuaValue) -> MultiValue {
    MultiValue::from_vec(vec![v])
}

fn query(q: Option<LuaTable>) -> ArchiveQuery {
    let mut out = ArchiveQuery::default();
    let Some(q) = q else {
        return out;
    };
    out.start = q.get("start").ok();
    out.end = q.get("end").ok();
    out.with = q.get("with").ok();
    out.after = q.get("after").ok();
    out.before = q.get("before").ok();
    out.limit = q.get::<Option<usize>>("limit").ok().flatten();
    out.reverse = q
        .get::<Option<bool>>("reverse")
        .ok()
        .flatten()
        .unwrap_or(false);
    out
}

impl UserData for LuaStore {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "get",
            |lua, this, (user, key): (Option<String>, Option<String>)| {
                let r = match &this.0 {
                    Store::KeyVal(s) => s.get(user.as_deref()),
                    Store::Map(s) => s.get(user.as_deref(), key.as_deref().unwrap_or("")),
                    Store::Archive(_) => return fail(lua, "get on an archive store"),
                };
                match r {
                    Ok(Some(v)) => Ok(one(value_to_lua(lua, &v)?)),
                    Ok(None) => Ok(one(LuaValue::Nil)),
                    Err(e) => fail(lua, e),
                }
            },
        );
        methods.add_method("set", |lua, this, args: MultiValue| {
            let args: Vec<LuaValue> = args.into_iter().collect();
            let user = match args.first() {
                Some(LuaValue::String(s)) => Some(s.to_string_lossy()),
                _ => None,
            };
            let r = match &this.0 {
                Store::KeyVal(s) => s.set(user.as_deref(), args.get(1).and_then(lua_to_value)),
                Store::Map(s) => {
                    let key = match args.get(1) {
                        Some(LuaValue::String(k)) => k.to_string_lossy(),
                        _ => return fail(lua, "map store set needs a key"),
                    };
                    s.set(user.as_deref(), &key, args.get(2).and_then(lua_to_value))
                }
                Store::Archive(_) => return fail(lua, "set on an archive store"),
            };
            match r {
                Ok(()) => Ok(one(LuaValue::Boolean(true))),
                Err(e) => fail(lua, e),
            }
        });
        methods.add_method(
            "set_keys",
            |lua, this, (user, keys): (Option<String>, LuaTable)| {
                let Store::Map(s) = &this.0 else {
                    return fail(lua, "set_keys on a store that is not a map");
                };
                for (k, v) in keys.pairs::<String, LuaValue>().flatten() {
                    if let Err(e) = s.set(user.as_deref(), &k, lua_to_value(&v)) {
                        return fail(lua, e);
                    }
                }
                Ok(one(LuaValue::Boolean(true)))
            },
        );
        methods.add_method("users", |lua, this, ()| {
            let Store::KeyVal(s) = &this.0 else {
                return Err(mlua::Error::runtime(
                    "users() on a store that is not keyval",
                ));
            };
            let users = s.users().map_err(|e| mlua::Error::runtime(e.to_string()))?;
            let mut it = users.into_iter();
            lua.create_function_mut(move |_, ()| Ok(it.next()))
        });
        methods.add_method(
            "append",
            |lua,
             this,
             (user, _key, stanza, when, with): (
                Option<String>,
                LuaValue,
                LuaValue,
                Option<f64>,
                Option<String>,
            )| {
                let Store::Archive(s) = &this.0 else {
                    return fail(lua, "append on a store that is not an archive");
                };
                let el = match (&stanza, is_stanza(&stanza)) {
                    (LuaValue::Table(t), true) => lua_to_element(t, NS_CLIENT)?,
                    _ => return fail(lua, "archive items are stanzas"),
                };
                let when = when.unwrap_or_else(now);
                match s.append(user.as_deref(), &el, when, with.as_deref().unwrap_or("")) {
                    Ok(id) => Ok(one(LuaValue::String(lua.create_string(id)?))),
                    Err(e) => fail(lua, e),
                }
            },
        );
        methods.add_method(
            "find",
            |lua, this, (user, q): (Option<String>, Option<LuaTable>)| {
                let Store::Archive(s) = &this.0 else {
                    return fail(lua, "find on a store that is not an archive");
                };
                let items = match s.find(user.as_deref(), &query(q)) {
                    Ok(items) => items,
                    Err(e) => return fail(lua, e),
                };
                let mut it = items.into_iter();
                let f = lua.create_function_mut(move |lua, ()| match it.next() {
                    Some(item) => Ok(MultiValue::from_vec(vec![
                        LuaValue::String(lua.create_string(&item.key)?),
                        LuaValue::Table(element_to_lua(lua, &item.stanza)?),
                        LuaValue::Number(item.when),
                        LuaValue::String(lua.create_string(&item.with)?),
                    ])),
                    None => Ok(MultiValue::new()),
                })?;
                Ok(one(LuaValue::Function(f)))
            },
        );
        methods.add_method(
            "delete",
            |lua, this, (user, q): (Option<String>, Option<LuaTable>)| {
                let Store::Archive(s) = &this.0 else {
                    return fail(lua, "delete on a store that is not an archive");
                };
                match s.delete(user.as_deref(), &query(q)) {
                    Ok(n) => Ok(one(LuaValue::Integer(n as i64))),
                    Err(e) => fail(lua, e),
                }
            },
        );
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
