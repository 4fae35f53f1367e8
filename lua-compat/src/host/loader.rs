//! What `require` finds in a module's state: lilt's own libraries under
//! Prosody's names (`util.stanza`, `util.jid`, ..., `core.usermanager`,
//! `socket.url`), never Prosody's Lua files; and the Lua 5.1–5.3 names
//! modules still use (`unpack`, `loadstring`, `math.pow`, ...).
//!
//! `package.path` and `package.cpath` are emptied, so a name lilt does not
//! provide fails with Lua's usual "module 'x' not found".

use std::sync::Arc;

use mlua::{Function, Lua, Table as LuaTable, Value as LuaValue};

use super::bridge::{self, Shared};
use super::convert::STANZA_MT;
use super::{json, libs};

/// A library written in Lua, shipped in this crate.
struct LuaLib {
    name: &'static str,
    source: &'static str,
}

const LUA_LIBS: &[LuaLib] = &[
    LuaLib {
        name: "util.set",
        source: include_str!("lua/set.lua"),
    },
    LuaLib {
        name: "util.array",
        source: include_str!("lua/array.lua"),
    },
    LuaLib {
        name: "util.events",
        source: include_str!("lua/events.lua"),
    },
    LuaLib {
        name: "util.cache",
        source: include_str!("lua/cache.lua"),
    },
    LuaLib {
        name: "util.dataforms",
        source: include_str!("lua/dataforms.lua"),
    },
    LuaLib {
        name: "util.datetime",
        source: include_str!("lua/datetime.lua"),
    },
    LuaLib {
        name: "util.promise",
        source: include_str!("lua/promise.lua"),
    },
    LuaLib {
        name: "util.async",
        source: include_str!("lua/async.lua"),
    },
];

const COMPAT: &str = r#"
unpack = unpack or table.unpack
loadstring = loadstring or load
math.pow = math.pow or function(a, b) return a ^ b end
table.getn = table.getn or function(t) return #t end
string.gfind = string.gfind or string.gmatch
-- The debug library is not given to modules; what they call for messages.
debug = debug or {
	traceback = function(msg) return tostring(msg or "") end,
	getinfo = function() return { short_src = "?", currentline = 0, source = "?" } end,
}
"#;

fn chunk(lua: &Lua, name: &str, source: &str) -> mlua::Result<Function> {
    lua.load(source)
        .set_name(format!("=lilt:{name}"))
        .into_function()
}

fn preload_value(lua: &Lua, preload: &LuaTable, name: &str, value: LuaValue) -> mlua::Result<()> {
    let f = lua.create_function(move |_, ()| Ok(value.clone()))?;
    preload.set(name, f)
}

/// Everything a module's state needs before the module runs; returns the
/// module constructor of `module.lua` (name, host, path, env) -> module.
pub(crate) fn install(lua: &Lua, shared: &Arc<Shared>) -> mlua::Result<Function> {
    lua.load(COMPAT).set_name("=lilt:compat").exec()?;
    let globals = lua.globals();
    let package: LuaTable = globals.get("package")?;
    package.set("path", "")?;
    package.set("cpath", "")?;
    let preload: LuaTable = package.get("preload")?;

    // util.stanza first: the stanza metatable is what Rust converts into.
    let st: LuaTable = chunk(lua, "util.stanza", include_str!("lua/stanza.lua"))?.call(())?;
    lua.set_named_registry_value(STANZA_MT, st.get::<LuaTable>("stanza_mt")?)?;
    preload_value(lua, &preload, "util.stanza", LuaValue::Table(st.clone()))?;

    for lib in LUA_LIBS {
        preload.set(lib.name, chunk(lua, lib.name, lib.source)?)?;
    }
    let jid: LuaTable =
        chunk(lua, "util.jid", include_str!("lua/jid.lua"))?.call(libs::jid_prep(lua)?)?;
    preload_value(lua, &preload, "util.jid", LuaValue::Table(jid))?;

    for (name, table) in [
        ("util.hashes", libs::hashes(lua)?),
        ("util.encodings", libs::encodings(lua)?),
        ("util.random", libs::random(lua)?),
        ("util.uuid", libs::uuid(lua)?),
        ("util.id", libs::id(lua)?),
        ("util.time", libs::time(lua)?),
        ("util.hex", libs::hex_lib(lua)?),
        ("util.json", json::json(lua)?),
    ] {
        preload_value(lua, &preload, name, LuaValue::Table(table))?;
    }

    let bridge = bridge::create(lua, shared)?;
    let misc: LuaTable = chunk(lua, "misc", include_str!("lua/misc.lua"))?.call(&bridge)?;
    for pair in misc.pairs::<String, LuaValue>() {
        let (name, lib) = pair?;
        preload_value(lua, &preload, &name, lib)?;
    }

    let helpers: LuaTable = chunk(lua, "helpers", include_str!("lua/helpers.lua"))?.call(())?;
    for pair in helpers.pairs::<String, LuaValue>() {
        let (name, lib) = pair?;
        preload_value(lua, &preload, &name, lib)?;
    }
    preload_value(lua, &preload, "util.xml", LuaValue::Table(xml_lib(lua)?))?;

    let require: Function = globals.get("require")?;
    let new_events: LuaTable = require.call("util.events")?;
    let (prosody, core): (LuaTable, LuaTable) = chunk(lua, "core", include_str!("lua/core.lua"))?
        .call((
        &bridge,
        &st,
        new_events.get::<Function>("new")?,
    ))?;
    globals.set("hosts", prosody.get::<LuaValue>("hosts")?)?;
    globals.set("prosody", prosody)?;
    for pair in core.pairs::<String, LuaValue>() {
        let (name, lib) = pair?;
        preload_value(lua, &preload, &name, lib)?;
    }

    let set: LuaTable = require.call("util.set")?;
    let array: LuaTable = require.call("util.array")?;
    let promise: LuaTable = require.call("util.promise")?;
    let format: Function = require.call::<LuaTable>("util.format")?.get("format")?;
    let (constructor, _api): (Function, LuaTable) =
        chunk(lua, "module", include_str!("lua/module.lua"))?
            .call((&bridge, &st, set, array, promise, format))?;
    Ok(constructor)
}

/// `util.xml`: `parse(text)` gives the stanza object of one XML element
/// (parsed by xmpp-core's stream parser), or nil and an error.
fn xml_lib(lua: &Lua) -> mlua::Result<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "parse",
        lua.create_function(|lua, text: mlua::LuaString| {
            let mut stream = xmpp_core::XmlStream::new(xmpp_core::StreamLimits::default());
            let mut out = Vec::new();
            let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
            let parsed = stream
                .feed(header.as_bytes(), &mut out)
                .and_then(|_| stream.feed(&text.as_bytes(), &mut out));
            if let Err(e) = parsed {
                return Ok((LuaValue::Nil, Some(e.to_string())));
            }
            for ev in out {
                if let xmpp_core::StreamEvent::Stanza(el) = ev {
                    return Ok((LuaValue::Table(super::convert::element_to_lua(lua, &el)?), None));
                }
            }
            Ok((LuaValue::Nil, Some("incomplete XML".to_string())))
        })?,
    )?;
    Ok(t)
}
