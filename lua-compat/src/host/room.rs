//! MUC rooms as Lua handlers see them: an event about a room (one with a
//! `room_jid` field) gets Prosody's `event.room`, a table with `jid`,
//! `_data` (the module's own per-room data, kept while it is loaded) and
//! the methods modules call on a room that the host can answer
//! (`get_affiliation`, through [`super::LuaHost::room_affiliation`]).
//! The same table comes back for the same room, so modules may key
//! tables by it.

use std::sync::Arc;

use mlua::{Lua, Table as LuaTable, Value as LuaValue};

use super::bridge::Shared;

const ROOMS: &str = "lilt.rooms";
const ROOM_MT: &str = "lilt.room_mt";

fn room_metatable(lua: &Lua, shared: &Arc<Shared>) -> mlua::Result<LuaTable> {
    if let Ok(mt) = lua.named_registry_value::<LuaTable>(ROOM_MT) {
        return Ok(mt);
    }
    let methods = lua.create_table()?;
    let s = shared.clone();
    methods.set(
        "get_affiliation",
        lua.create_function(move |_, (room, jid): (LuaTable, Option<String>)| {
            let room_jid: String = room.raw_get("jid")?;
            Ok(jid.and_then(|j| s.host.room_affiliation(&room_jid, &j)))
        })?,
    )?;
    methods.set(
        "get_name",
        lua.create_function(|_, room: LuaTable| {
            let jid: String = room.raw_get("jid")?;
            Ok(jid.split('@').next().unwrap_or_default().to_string())
        })?,
    )?;
    let mt = lua.create_table()?;
    mt.set("__index", methods)?;
    lua.set_named_registry_value(ROOM_MT, &mt)?;
    Ok(mt)
}

/// The room table for `jid`.
pub(crate) fn room_table(lua: &Lua, shared: &Arc<Shared>, jid: &str) -> mlua::Result<LuaTable> {
    let rooms = match lua.named_registry_value::<LuaTable>(ROOMS) {
        Ok(t) => t,
        Err(_) => {
            let t = lua.create_table()?;
            lua.set_named_registry_value(ROOMS, &t)?;
            t
        }
    };
    if let LuaValue::Table(t) = rooms.raw_get::<LuaValue>(jid)? {
        return Ok(t);
    }
    let room = lua.create_table()?;
    room.raw_set("jid", jid)?;
    room.raw_set("_data", lua.create_table()?)?;
    room.set_metatable(Some(room_metatable(lua, shared)?))?;
    rooms.raw_set(jid, &room)?;
    Ok(room)
}
