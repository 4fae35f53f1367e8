//! The Lua module host: Prosody's `mod_<name>.lua` files run unchanged,
//! each in its own sandboxed Lua state, against a server seen through the
//! [`LuaHost`] trait.
//!
//! Start with [`LuaModule::load`]: it finds the module ([`ModuleSearch`]),
//! creates its state ([`sandbox`]: memory limit, instruction budget),
//! installs the libraries `require` finds (`loader`: `util.stanza`,
//! `util.jid`, ... written for lilt from Prosody's documentation) and the
//! `module` object (`lua/module.lua` on the Rust primitives of `bridge`),
//! and runs the file. From then on the server drives it: events it hooked
//! ([`LuaModule::handle_event`]), timers ([`LuaModule::fire_timer`]), IQ
//! responses ([`LuaModule::iq_response`]), HTTP requests
//! ([`LuaModule::handle_http`]), ad-hoc commands the module provides
//! ([`LuaModule::adhoc_execute`], see [`adhoc`]), and finally
//! [`LuaModule::unload`], which takes back everything the module registered.
//! `module:shared` tables live in the server ([`SharedData`], see
//! [`shared`]), since every module has its own Lua state; a module that
//! calls `module:set_global()` says so ([`LuaModule::is_global`]) and the
//! server loads it once.

pub mod adhoc;
pub mod api;
mod bridge;
mod convert;
mod event;
mod http;
mod json;
mod libs;
mod loader;
mod room;
pub mod sandbox;
pub mod search;
pub mod shared;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::{Function, Lua, Table as LuaTable, Value as LuaValue};
use xmpp_core::Element;
use xmpp_core::value::Value;

pub use adhoc::{AdhocCommand, AdhocError, AdhocReply, AdhocRequest};
pub use api::{
    HandlerId, HostError, HttpRequest, HttpResponse, IqRequestId, Item, LogLevel, LuaEvent,
    LuaHost, Origin, RouteId, Scope, SessionId, Store, StoreKind, TimerId, UserSessions,
};
pub use sandbox::{Limits, ModuleError};
pub use search::ModuleSearch;
pub use shared::SharedData;

use bridge::Shared;
use sandbox::Budget;

/// One loaded Lua module on one host.
pub struct LuaModule {
    lua: Lua,
    shared: Arc<Shared>,
    budget: Arc<Budget>,
    limits: Limits,
    path: PathBuf,
    /// The `module` object.
    object: LuaTable,
}

impl std::fmt::Debug for LuaModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaModule")
            .field("name", &self.shared.module)
            .field("host", &self.shared.host.host())
            .field("path", &self.path)
            .finish()
    }
}

impl LuaModule {
    /// Finds module `name` with `search` and loads it for `host`.
    pub fn load(
        host: Arc<dyn LuaHost>,
        name: &str,
        search: &ModuleSearch,
        limits: Limits,
    ) -> Result<LuaModule, ModuleError> {
        let path = search
            .find_module(name)
            .ok_or_else(|| ModuleError::NotFound(name.to_string()))?;
        let code = std::fs::read(&path).map_err(|e| ModuleError::Load {
            module: name.to_string(),
            message: format!("{}: {e}", path.display()),
        })?;
        LuaModule::load_code(host, name, &path, &code, search, limits)
    }

    /// Loads a module from its source (`path` names it in messages and is
    /// where `module:require` looks first).
    pub fn load_code(
        host: Arc<dyn LuaHost>,
        name: &str,
        path: &Path,
        code: &[u8],
        search: &ModuleSearch,
        limits: Limits,
    ) -> Result<LuaModule, ModuleError> {
        let load_error = |e: mlua::Error| ModuleError::Load {
            module: name.to_string(),
            message: sandbox::describe(&e),
        };
        let (lua, budget) = sandbox::new_state(&limits).map_err(load_error)?;
        let host_name = host.host().to_string();
        let shared = Arc::new(Shared::new(host, name, search.clone()));
        let object = sandbox::guarded(&budget, &limits, name, "loading", || {
            let constructor = loader::install(&lua, &shared)?;
            let env = lua.create_table()?;
            let env_mt = lua.create_table()?;
            env_mt.set("__index", lua.globals())?;
            env.set_metatable(Some(env_mt))?;
            let object: LuaTable =
                constructor.call((name, host_name.as_str(), path.display().to_string(), &env))?;
            env.set("module", &object)?;
            env.set("_ENV", &env)?;
            lua.load(code)
                .set_name(format!("@{}", path.display()))
                .set_environment(env)
                .exec()?;
            Ok(object)
        });
        let module = match object {
            Ok(object) => LuaModule {
                lua,
                shared,
                budget,
                limits,
                path: path.to_path_buf(),
                object,
            },
            Err(e) => {
                // A module that fails to load leaves nothing registered behind.
                let partial = Registrations::take(&shared);
                partial.undo(&shared);
                shared.host.log(LogLevel::Error, &e.to_string());
                return Err(e);
            }
        };
        Ok(module)
    }

    /// The module's name (`module.name`).
    pub fn name(&self) -> &str {
        &self.shared.module
    }

    /// Did the module call `module:set_global()` (one instance for the
    /// whole server, not one per host)?
    pub fn is_global(&self) -> bool {
        self.object.get::<bool>("global").unwrap_or(false)
    }

    /// The file the module was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the module's Lua state uses now.
    pub fn memory_used(&self) -> usize {
        self.lua.used_memory()
    }

    fn guarded<T>(
        &self,
        what: &str,
        f: impl FnOnce() -> mlua::Result<T>,
    ) -> Result<T, ModuleError> {
        let r = sandbox::guarded(&self.budget, &self.limits, &self.shared.module, what, f);
        if let Err(e) = &r {
            self.shared.host.log(LogLevel::Error, &e.to_string());
        }
        r
    }

    /// Runs the handler the host was given as `handler` for `event`.
    /// `Ok(Some(_))` stops the event chain (the handler returned non-nil),
    /// `Ok(None)` goes on. A handler's changes to `event.stanza` are
    /// written back. On an error (logged through the host with the module
    /// and line) the chain should go on, as if the handler returned nil.
    pub fn handle_event(
        &self,
        handler: HandlerId,
        event: &mut LuaEvent,
    ) -> Result<Option<Value>, ModuleError> {
        let what = format!("error in {} handler", event.name);
        self.guarded(&what, || {
            let Some(f) = bridge::handler(&self.lua, bridge::HANDLERS, handler.0)? else {
                return Ok(None);
            };
            let table = bridge::event_table(&self.lua, &self.shared, event)?;
            let ret: LuaValue = f.call(&table)?;
            event::read_back(&table, event)?;
            Ok(event::handler_result(&ret))
        })
    }

    /// Fires a timer the host was asked for; `now` is the Unix time given
    /// to the callback. A callback that returns a number asks again (the
    /// module calls [`LuaHost::add_timer`] with a new id).
    pub fn fire_timer(&self, timer: TimerId, now: f64) -> Result<(), ModuleError> {
        self.shared.regs().timers.retain(|t| *t != timer);
        self.guarded("error in timer", || {
            let timers: LuaTable = self.lua.named_registry_value(bridge::TIMERS)?;
            let Some(f) = timers.raw_get::<Option<Function>>(timer.0)? else {
                return Ok(());
            };
            timers.raw_set(timer.0, LuaValue::Nil)?;
            f.call::<()>(now)
        })
    }

    /// The answer to a `module:send_iq`: `Ok(result stanza)`, or `Err` with
    /// the error stanza (`None` for a timeout).
    pub fn iq_response(
        &self,
        request: IqRequestId,
        response: Result<Element, Option<Element>>,
    ) -> Result<(), ModuleError> {
        self.guarded("error in iq response", || {
            let iqs: LuaTable = self.lua.named_registry_value(bridge::IQS)?;
            let Some(entry) = iqs.raw_get::<Option<LuaTable>>(request.0)? else {
                return Ok(());
            };
            iqs.raw_set(request.0, LuaValue::Nil)?;
            match response {
                Ok(s) => entry
                    .get::<Function>(1)?
                    .call::<()>(bridge::stanza_value(&self.lua, &s)?),
                Err(Some(s)) => {
                    let condition = stanza_condition(&s);
                    entry
                        .get::<Function>(2)?
                        .call::<()>((bridge::stanza_value(&self.lua, &s)?, condition))
                }
                Err(None) => entry
                    .get::<Function>(2)?
                    .call::<()>((LuaValue::Nil, "remote-server-timeout")),
            }
        })
    }

    /// Runs the handler of an HTTP route the module registered.
    pub fn handle_http(
        &self,
        route: RouteId,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ModuleError> {
        self.guarded("error in http handler", || {
            let Some(f) = bridge::handler(&self.lua, bridge::ROUTES, route.0)? else {
                return Ok(HttpResponse {
                    status: 404,
                    ..HttpResponse::default()
                });
            };
            http::call(&self.lua, &f, request)
        })
    }

    /// Unloads the module: its `module.unload` runs, then every hook,
    /// item, timer and route it registered is taken back from the host.
    pub fn unload(&self) {
        let _ = self.guarded("error in unload", || {
            if let Ok(Some(f)) = self.object.get::<Option<Function>>("unload") {
                f.call::<()>(())?;
            }
            let hooks: LuaTable = self.object.get("_object_hooks")?;
            for entry in hooks.sequence_values::<LuaTable>() {
                let entry = entry?;
                let object: LuaTable = entry.get("object")?;
                if let Ok(remove) = object.get::<Function>("remove_handler") {
                    remove.call::<()>((
                        entry.get::<LuaValue>("event")?,
                        entry.get::<LuaValue>("handler")?,
                    ))?;
                }
            }
            Ok(())
        });
        Registrations::take(&self.shared).undo(&self.shared);
    }

    /// Runs Lua code in the module's environment (tests, the admin shell).
    pub fn eval(&self, code: &str) -> Result<Option<Value>, ModuleError> {
        self.guarded("eval", || {
            let env: LuaTable = self.object.get("environment")?;
            let v: LuaValue = self
                .lua
                .load(code)
                .set_name("=eval")
                .set_environment(env)
                .eval()?;
            Ok(convert::lua_to_value(&v))
        })
    }
}

/// The defined condition of an error stanza.
fn stanza_condition(s: &Element) -> String {
    s.get_child("error", s.ns())
        .and_then(|e| {
            e.children()
                .find(|c| c.ns() == xmpp_core::stanza::NS_STANZAS && c.name() != "text")
        })
        .map_or_else(
            || "undefined-condition".to_string(),
            |c| c.name().to_string(),
        )
}

/// What to take back from the host on unload.
struct Registrations(bridge::Registrations);

impl Registrations {
    fn take(shared: &Shared) -> Registrations {
        Registrations(std::mem::take(&mut *shared.regs()))
    }
    fn undo(self, shared: &Shared) {
        for (id, _) in self.0.hooks {
            shared.host.unhook(id);
        }
        for (kind, item) in self.0.items.iter().rev() {
            shared.host.remove_item(kind, item);
        }
        for t in self.0.timers {
            shared.host.stop_timer(t);
        }
        for r in self.0.routes {
            shared.host.remove_http_route(r);
        }
        for node in self.0.adhoc {
            shared.host.remove_adhoc_command(&node);
        }
    }
}
