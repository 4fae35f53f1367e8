//! The Rust primitives behind the module API (`module.lua` and `core.lua`
//! call them): each one a thin call to the module's [`LuaHost`], plus the
//! bookkeeping of what the module registered so unloading can undo it.
//!
//! Lua functions the host will call back later (event handlers, timers,
//! IQ callbacks, HTTP handlers) are kept in registry tables of the state,
//! keyed by the id the host is given.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Function, Lua, Table as LuaTable, Value as LuaValue};

use super::api::{HandlerId, IqRequestId, Item, LogLevel, LuaHost, RouteId, Scope, TimerId};
use super::convert::{element_to_lua, is_stanza, lua_to_element, lua_to_value, value_to_lua};
use super::event::{event_to_lua, lua_to_event};
use super::search::ModuleSearch;
use super::store::LuaStore;

pub(crate) const HANDLERS: &str = "lilt.handlers";
pub(crate) const TIMERS: &str = "lilt.timers";
pub(crate) const IQS: &str = "lilt.iqs";
pub(crate) const ROUTES: &str = "lilt.routes";

/// What a module registered with its host, to undo on unload.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    pub hooks: Vec<(HandlerId, String)>,
    pub items: Vec<(String, Item)>,
    pub timers: Vec<TimerId>,
    pub routes: Vec<RouteId>,
    /// Nodes of the ad-hoc commands served.
    pub adhoc: Vec<String>,
}

/// State shared by the bridge functions and [`super::LuaModule`].
pub(crate) struct Shared {
    pub host: Arc<dyn LuaHost>,
    pub module: String,
    pub search: ModuleSearch,
    next_id: AtomicU64,
    pub regs: Mutex<Registrations>,
}

impl Shared {
    pub(crate) fn new(host: Arc<dyn LuaHost>, module: &str, search: ModuleSearch) -> Shared {
        Shared {
            host,
            module: module.to_string(),
            search,
            next_id: AtomicU64::new(1),
            regs: Mutex::new(Registrations::default()),
        }
    }
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
    pub(crate) fn regs(&self) -> std::sync::MutexGuard<'_, Registrations> {
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn scope(s: &str) -> Scope {
    if s == "global" {
        Scope::Global
    } else {
        Scope::Host
    }
}

/// A Lua value as an item: a stanza, or its Lua-shaped data.
pub(crate) fn to_item(v: &LuaValue) -> mlua::Result<Item> {
    if let (true, LuaValue::Table(t)) = (is_stanza(v), v) {
        return Ok(Item::Stanza(lua_to_element(t, "")?));
    }
    Ok(Item::Value(
        lua_to_value(v).unwrap_or(xmpp_core::Value::Bool(true)),
    ))
}

fn stanza_arg(v: &LuaValue) -> mlua::Result<xmpp_core::Element> {
    match v {
        LuaValue::Table(t) if is_stanza(v) => lua_to_element(t, xmpp_core::stanza::NS_CLIENT),
        _ => Err(mlua::Error::runtime("expected a stanza")),
    }
}

fn registry_table(lua: &Lua, key: &str) -> mlua::Result<LuaTable> {
    lua.named_registry_value(key)
}

fn seconds(v: f64) -> Duration {
    if v.is_finite() && v > 0.0 {
        Duration::from_secs_f64(v.min(1e9))
    } else {
        Duration::ZERO
    }
}

/// The bridge table given to the Lua side of the module API.
pub(crate) fn create(lua: &Lua, shared: &Arc<Shared>) -> mlua::Result<LuaTable> {
    for key in [HANDLERS, TIMERS, IQS, ROUTES] {
        lua.set_named_registry_value(key, lua.create_table()?)?;
    }
    let b = lua.create_table()?;
    let data = shared.host.shared_data().unwrap_or_default();
    super::shared::install(lua, &b, data)?;
    let s = shared.clone();
    b.set(
        "hook",
        lua.create_function(
            move |lua, (sc, event, priority, f): (String, String, f64, Function)| {
                let id = HandlerId(s.next_id());
                registry_table(lua, HANDLERS)?.raw_set(id.0, f)?;
                s.regs().hooks.push((id, event.clone()));
                let priority = priority.clamp(i32::MIN as f64, i32::MAX as f64) as i32;
                s.host.hook(scope(&sc), &event, priority, id);
                Ok(id.0)
            },
        )?,
    )?;
    let s = shared.clone();
    b.set(
        "unhook_function",
        lua.create_function(move |lua, (event, f): (String, Function)| {
            let handlers = registry_table(lua, HANDLERS)?;
            let ids: Vec<HandlerId> = s
                .regs()
                .hooks
                .iter()
                .filter(|(_, e)| *e == event)
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if handlers.raw_get::<Function>(id.0).is_ok_and(|g| g == f) {
                    handlers.raw_set(id.0, LuaValue::Nil)?;
                    s.regs().hooks.retain(|(h, _)| *h != id);
                    s.host.unhook(id);
                }
            }
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "fire",
        lua.create_function(move |lua, (sc, event, data): (String, String, LuaValue)| {
            let mut ev = lua_to_event(&event, &data)?;
            let result = s.host.fire_event(scope(&sc), &mut ev);
            match result {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Nil),
            }
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "send",
        lua.create_function(move |_, stanza: LuaValue| {
            s.host.send(stanza_arg(&stanza)?);
            Ok(true)
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "session_send",
        lua.create_function(move |_, (id, stanza): (u64, LuaValue)| {
            Ok(s.host.session_send(id, stanza_arg(&stanza)?))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "option",
        lua.create_function(move |lua, name: String| match s.host.option(&name) {
            Some(v) => value_to_lua(lua, &v),
            None => Ok(LuaValue::Nil),
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "global_option",
        lua.create_function(move |lua, name: String| match s.host.global_option(&name) {
            Some(v) => value_to_lua(lua, &v),
            None => Ok(LuaValue::Nil),
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "host_type",
        lua.create_function(move |_, ()| {
            Ok(match s.host.option("component_module") {
                Some(_) => "component",
                None => "local",
            })
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "add_item",
        lua.create_function(move |_, (kind, value): (String, LuaValue)| {
            let item = to_item(&value)?;
            s.regs().items.push((kind.clone(), item.clone()));
            s.host.add_item(&kind, item);
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "remove_item",
        lua.create_function(move |_, (kind, value): (String, LuaValue)| {
            let item = to_item(&value)?;
            s.regs().items.retain(|(k, i)| !(*k == kind && *i == item));
            s.host.remove_item(&kind, &item);
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "timer",
        lua.create_function(move |lua, (delay, f): (f64, Function)| {
            let id = TimerId(s.next_id());
            registry_table(lua, TIMERS)?.raw_set(id.0, f)?;
            s.regs().timers.push(id);
            s.host.add_timer(seconds(delay), id);
            Ok(id.0)
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "stop_timer",
        lua.create_function(move |lua, id: u64| {
            registry_table(lua, TIMERS)?.raw_set(id, LuaValue::Nil)?;
            s.regs().timers.retain(|t| t.0 != id);
            s.host.stop_timer(TimerId(id));
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "log",
        lua.create_function(move |_, (level, message): (String, String)| {
            s.host.log(
                LogLevel::parse(&level),
                &format!("mod_{}: {message}", s.module),
            );
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "depends",
        lua.create_function(move |_, name: String| match s.host.depends(&name) {
            Ok(()) => Ok((true, None)),
            Err(e) => Ok((false, Some(e.to_string()))),
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "send_iq",
        lua.create_function(
            move |lua, (stanza, timeout, ok, err): (LuaValue, f64, Function, Function)| {
                let id = IqRequestId(s.next_id());
                let entry = lua.create_table()?;
                entry.raw_set(1, ok)?;
                entry.raw_set(2, err)?;
                registry_table(lua, IQS)?.raw_set(id.0, entry)?;
                s.host.send_iq(stanza_arg(&stanza)?, id, seconds(timeout));
                Ok(id.0)
            },
        )?,
    )?;
    let s = shared.clone();
    b.set(
        "open_store",
        lua.create_function(move |_, (name, kind): (String, String)| {
            let kind = match kind.as_str() {
                "keyval" => super::api::StoreKind::KeyVal,
                "map" => super::api::StoreKind::Map,
                "archive" => super::api::StoreKind::Archive,
                other => {
                    return Err(mlua::Error::runtime(format!("unknown store type {other}")));
                }
            };
            s.host
                .open_store(&name, kind)
                .map(LuaStore)
                .map_err(|e| mlua::Error::runtime(e.to_string()))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "http_route",
        lua.create_function(move |lua, (method, path, f): (String, String, Function)| {
            let id = RouteId(s.next_id());
            registry_table(lua, ROUTES)?.raw_set(id.0, f)?;
            match s.host.add_http_route(&method, &path, id) {
                Ok(()) => {
                    s.regs().routes.push(id);
                    Ok((true, None))
                }
                Err(e) => Ok((false, Some(e.to_string()))),
            }
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "adhoc_add",
        lua.create_function(
            move |_, (name, node, permission): (String, String, String)| {
                let command = super::AdhocCommand {
                    name,
                    node: node.clone(),
                    permission,
                };
                match s.host.add_adhoc_command(command) {
                    Ok(()) => {
                        s.regs().adhoc.push(node);
                        Ok((true, None))
                    }
                    Err(e) => Ok((false, Some(e.to_string()))),
                }
            },
        )?,
    )?;
    let s = shared.clone();
    b.set(
        "http_url",
        lua.create_function(move |_, path: String| Ok(s.host.http_url(&path)))?,
    )?;
    let s = shared.clone();
    b.set(
        "measure",
        lua.create_function(move |_, (name, kind, value): (String, String, f64)| {
            s.host.measure(&name, &kind, value);
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "default_permission",
        lua.create_function(move |_, (role, action): (String, String)| {
            s.host.default_permission(&role, &action);
            Ok(())
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "may",
        lua.create_function(move |_, (action, jid): (String, String)| {
            Ok(s.host.may(&action, &jid))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "user_exists",
        lua.create_function(move |_, (user, host): (String, String)| {
            Ok(s.host.user_exists(&user, &host))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "is_admin",
        lua.create_function(move |_, (jid, host): (String, String)| {
            Ok(s.host.is_admin(&jid, &host))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "is_contact_subscribed",
        lua.create_function(move |_, (user, host, jid): (String, String, String)| {
            Ok(s.host.is_contact_subscribed(&user, &host, &jid))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "account",
        lua.create_function(
            move |_, (op, user, arg, host): (String, String, Option<String>, String)| {
                let r = match op.as_str() {
                    "create" => s.host.create_user(&user, arg.as_deref(), &host),
                    "delete" => s.host.delete_user(&user, &host),
                    "password" => s
                        .host
                        .set_password(&user, arg.as_deref().unwrap_or(""), &host),
                    other => Err(super::api::HostError::Unsupported(other.to_string())),
                };
                Ok(match r {
                    Ok(()) => (true, None),
                    Err(e) => (false, Some(e.to_string())),
                })
            },
        )?,
    )?;
    let s = shared.clone();
    b.set(
        "loaded_modules",
        lua.create_function(move |_, host: String| Ok(s.host.loaded_modules(&host)))?,
    )?;
    let s = shared.clone();
    b.set(
        "manage_module",
        lua.create_function(move |_, (op, host, module): (String, String, String)| {
            Ok(match s.host.manage_module(&op, &host, &module) {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e.to_string())),
            })
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "hosts",
        lua.create_function(move |_, ()| Ok(s.host.hosts()))?,
    )?;
    let s = shared.clone();
    b.set(
        "sessions",
        lua.create_function(move |lua, host: String| {
            let Some(list) = s.host.sessions(&host) else {
                return Ok(LuaValue::Nil);
            };
            let out = lua.create_table()?;
            for (i, user) in list.iter().enumerate() {
                let u = lua.create_table()?;
                u.set("username", user.username.as_str())?;
                let rs = lua.create_table()?;
                for (j, (resource, id)) in user.resources.iter().enumerate() {
                    let pair = lua.create_table()?;
                    pair.raw_set(1, resource.as_str())?;
                    pair.raw_set(2, *id)?;
                    rs.raw_set(j + 1, pair)?;
                }
                u.set("resources", rs)?;
                out.raw_set(i + 1, u)?;
            }
            Ok(LuaValue::Table(out))
        })?,
    )?;
    let s = shared.clone();
    b.set(
        "find_lib",
        lua.create_function(move |_, (module_path, lib): (Option<String>, String)| {
            let base = std::path::PathBuf::from(module_path.unwrap_or_default());
            let Some(path) = s.search.find_lib(&base, &lib) else {
                return Ok((None, Some(format!("{lib}.lib.lua not found"))));
            };
            match std::fs::read_to_string(&path) {
                Ok(code) => Ok((Some(path.display().to_string()), Some(code))),
                Err(e) => Ok((None, Some(e.to_string()))),
            }
        })?,
    )?;
    Ok(b)
}

/// Builds the Lua event table for a stanza reply helper (`origin.send`).
pub(crate) fn origin_send(lua: &Lua, shared: &Arc<Shared>, id: u64) -> mlua::Result<Function> {
    let s = shared.clone();
    lua.create_function(move |_, stanza: LuaValue| {
        Ok(s.host.session_send(id, stanza_arg(&stanza)?))
    })
}

/// Calls a registered handler with an event; shared by events and HTTP.
pub(crate) fn handler(lua: &Lua, table: &str, id: u64) -> mlua::Result<Option<Function>> {
    registry_table(lua, table)?.raw_get::<Option<Function>>(id)
}

/// The stanza as the Lua side sees it (for IQ replies).
pub(crate) fn stanza_value(lua: &Lua, el: &xmpp_core::Element) -> mlua::Result<LuaValue> {
    Ok(LuaValue::Table(element_to_lua(lua, el)?))
}

/// The event table for `ev` (re-exported for [`super::LuaModule`]).
pub(crate) fn event_table(
    lua: &Lua,
    shared: &Arc<Shared>,
    ev: &super::api::LuaEvent,
) -> mlua::Result<LuaTable> {
    event_to_lua(lua, shared, ev)
}
