//! Prosody's Lua modules as lilt modules: a name `modules_enabled` asks
//! for that no Rust module has is looked up as `mod_<name>.lua` on the
//! config's `plugin_paths` ([`fallback`], the registry's last resort) and
//! run by `lua_compat`'s module host, which sees the server through
//! [`ContextHost`]: the module's [`ModuleContext`] as a
//! [`lua_compat::host::LuaHost`].
//!
//! Everything the Lua code registers goes through the context (hooks on
//! the host's or the global bus, disco features and identities, timers),
//! so unloading it removes all of it, as for a Rust module. Ad-hoc
//! commands it provides become the host's (`adhoc.rs`); MUC events' forms
//! are Lua tables (`muc_forms.rs`); `module:shared` tables are a server
//! extension (`lua_compat::host::SharedData`); a module that calls
//! `module:set_global()` is loaded once for the server (`GlobalLuaModules`). Only
//! `plugin_paths` is searched, and Prosody's own directory
//! (`/usr/lib/prosody/modules`) for the few names in [`PROSODY_LUA_MODULES`]:
//! it holds modules lilt implements natively or does not want (`mod_posix`,
//! `mod_s2s`), which must not replace them.
//!
//! A name lilt has natively is served by the Lua file instead when the
//! global option `prefer_lua_modules` lists it ([`prefer_lua`]): with
//! `plugin_paths = { "/usr/lib/prosody/modules" }` and
//! `prefer_lua_modules = { "motd" }`, `modules_enabled = { "motd" }` runs
//! Debian's `mod_motd.lua`.

mod adhoc;
mod muc_forms;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use lua_compat::host::{
    HandlerId, HostError, HttpRequest, IqRequestId, Item, Limits, LogLevel, LuaEvent, LuaHost,
    LuaModule, ModuleSearch, Origin, RouteId, Scope, SessionId, Store, StoreKind, TimerId,
    UserSessions,
};
use xmpp_core::module::{Module, ModuleContext, ModuleError, ModuleFactory, manager};
use xmpp_core::{Element, Event, HookId, ServerConfig, Session, Value};

/// Prosody's own modules lilt has no Rust version of that it runs from
/// Prosody's module directory (`/usr/lib/prosody/modules`, where Debian's
/// package puts them) without `plugin_paths`, as Prosody would: each is
/// covered by `tests/python/test_lua_modules.py` against lilt and Prosody.
/// The directory's other files are modules lilt implements natively or
/// does not want (`mod_posix`, `mod_s2s`).
const PROSODY_LUA_MODULES: &[&str] = &["watchregistrations"];

/// The registry's fallback for `config`: a factory for `name` when
/// `mod_<name>.lua` is on `plugin_paths`, or is one of
/// [`PROSODY_LUA_MODULES`] in Prosody's module directory.
pub fn fallback(config: &ServerConfig) -> Option<xmpp_core::module::registry::Fallback> {
    let with_builtin = ModuleSearch::from_config(config, &config.base_dir());
    let mut plugin_paths = with_builtin.clone();
    plugin_paths.builtin.clear();
    let (with_builtin, plugin_paths) = (Arc::new(with_builtin), Arc::new(plugin_paths));
    Some(Arc::new(move |name: &str| -> Option<ModuleFactory> {
        let search = if plugin_paths.find_module(name).is_some() {
            plugin_paths.clone()
        } else if PROSODY_LUA_MODULES.contains(&name) && with_builtin.find_module(name).is_some() {
            with_builtin.clone()
        } else {
            return None;
        };
        let name = name.to_string();
        Some(Arc::new(move || {
            Box::new(LuaAdapter {
                name: name.clone(),
                search: search.clone(),
                module: OnceLock::new(),
                host: OnceLock::new(),
            }) as Box<dyn Module>
        }))
    }))
}

/// What Lua modules measured (`module:measure`, `module:metric`), by
/// OpenMetrics family (`prosody_mod_<module>__<name>`, as Prosody names
/// them) and host: a server extension the metrics page can list.
#[derive(Default)]
pub struct LuaMeasures(Mutex<std::collections::BTreeMap<(String, String), Measure>>);

/// One measured figure of a Lua module.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measure {
    /// Prosody's kind: `amount`/`gauge` (the last value), `counter`/`rate`
    /// (a running total), `times`/`sizes`/`distribution`/`histogram`
    /// (`value` is the sum of `count` samples).
    pub kind: String,
    pub value: f64,
    pub count: u64,
}

impl Measure {
    fn record(&mut self, value: f64) {
        self.count += 1;
        match self.kind.as_str() {
            "amount" | "gauge" => self.value = value,
            _ => self.value += value,
        }
    }
}

/// Every figure Lua modules measured on `server`: family, host, figure.
pub fn lua_measures(server: &xmpp_core::Server) -> Vec<(String, String, Measure)> {
    let measures = server.extension::<LuaMeasures>();
    lock(&measures.0)
        .iter()
        .map(|((family, host), m)| (family.clone(), host.clone(), m.clone()))
        .collect()
}

/// Takes the names the global option `prefer_lua_modules` lists out of
/// `registry`, so that the fallback serves them from `mod_<name>.lua` on
/// `plugin_paths` (a name with no such file keeps its Rust module).
pub fn prefer_lua(config: &ServerConfig, registry: &mut xmpp_core::module::Registry) {
    let Some(Value::Table(names)) = config.get_global("prefer_lua_modules") else {
        return;
    };
    let mut search = ModuleSearch::from_config(config, &config.base_dir());
    search.builtin.clear();
    for name in names.seq.iter().filter_map(Value::as_str) {
        if search.find_module(name).is_some() {
            registry.remove(name);
        }
    }
}

/// One Lua module on one host, as a [`Module`].
struct LuaAdapter {
    name: String,
    search: Arc<ModuleSearch>,
    module: OnceLock<Arc<LuaModule>>,
    host: OnceLock<Arc<ContextHost>>,
}

/// Lua modules that called `module:set_global()`, by name: loaded once for
/// the server (on the first host that asked), as in Prosody; the other
/// hosts that enable them share that instance (`module.add_host` is not
/// called). The first host's loading owns it: unloading it there unloads it.
#[derive(Default)]
struct GlobalLuaModules(Mutex<HashMap<String, Weak<LuaModule>>>);

impl Module for LuaAdapter {
    fn load(&self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let globals = ctx.server().extension::<GlobalLuaModules>();
        let running = lock(&globals.0).get(&self.name).and_then(Weak::upgrade);
        if let Some(module) = running {
            let _ = self.module.set(module);
            return Ok(());
        }
        let host = Arc::new(ContextHost {
            ctx: ctx.clone(),
            module: Arc::new(RwLock::new(Weak::new())),
            hooks: Mutex::new(HashMap::new()),
            items: Mutex::new(Vec::new()),
            timers: Mutex::new(HashMap::new()),
            sessions: Arc::new(Mutex::new(Sessions::default())),
            routes: Mutex::new(Vec::new()),
            rooms: Arc::new(Mutex::new(HashMap::new())),
        });
        let module = LuaModule::load(host.clone(), &self.name, &self.search, Limits::default())
            .map_err(ModuleError::other)?;
        let module = Arc::new(module);
        *host.module.write().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&module);
        if module.is_global() {
            lock(&globals.0).insert(self.name.clone(), Arc::downgrade(&module));
        }
        let _ = self.module.set(module);
        let _ = self.host.set(host);
        Ok(())
    }

    fn unload(&self, ctx: &ModuleContext) {
        // Only the loading that ran the file (it has the host) unloads it.
        let Some(host) = self.host.get() else {
            return;
        };
        if let Some(module) = self.module.get() {
            if module.is_global() {
                // A later load runs the file again.
                let globals = ctx.server().extension::<GlobalLuaModules>();
                lock(&globals.0).remove(&self.name);
            }
            module.unload();
        }
        host.stop_all_timers();
    }
}

/// Sessions seen in events, by the number a Lua `origin` carries.
#[derive(Default)]
struct Sessions {
    next: u64,
    by_id: HashMap<String, SessionId>,
    by_number: HashMap<SessionId, Weak<Session>>,
}

impl Sessions {
    fn number(&mut self, session: &Arc<Session>) -> SessionId {
        if let Some(n) = self.by_id.get(&session.id) {
            return *n;
        }
        self.next += 1;
        let n = self.next;
        self.by_id.insert(session.id.clone(), n);
        self.by_number.insert(n, Arc::downgrade(session));
        self.by_number.retain(|_, s| s.strong_count() > 0);
        n
    }
    fn get(&self, n: SessionId) -> Option<Arc<Session>> {
        self.by_number.get(&n).and_then(Weak::upgrade)
    }
}

/// A module's context as the Lua module host sees the server.
pub struct ContextHost {
    ctx: ModuleContext,
    module: Arc<RwLock<Weak<LuaModule>>>,
    hooks: Mutex<HashMap<HandlerId, (Scope, HookId)>>,
    items: Mutex<Vec<(String, Item, HookId)>>,
    timers: Mutex<HashMap<TimerId, tokio::task::AbortHandle>>,
    sessions: Arc<Mutex<Sessions>>,
    /// Routes of the `module:provides("http", ...)` being made, served
    /// together as one app when its `http-provider` item is added.
    routes: Mutex<Vec<(String, String, RouteId)>>,
    /// MUC rooms seen in events, by JID (for `room:get_affiliation`).
    rooms: Arc<Mutex<Rooms>>,
}

/// MUC rooms seen in events, by JID.
type Rooms = HashMap<String, Weak<muc::Room>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn module_of(slot: &RwLock<Weak<LuaModule>>) -> Option<Arc<LuaModule>> {
    slot.read().unwrap_or_else(|e| e.into_inner()).upgrade()
}

/// An event as a Lua handler sees it.
/// The stanza moves into the Lua event (the caller puts it back).
fn lua_event(event: &mut Event, sessions: &Mutex<Sessions>, rooms: &Mutex<Rooms>) -> LuaEvent {
    let mut out = LuaEvent::new(event.name.clone());
    if let Some(room) = event.object::<muc::Room>("room") {
        let mut rooms = lock(rooms);
        if !rooms.contains_key(&room.jid) {
            rooms.retain(|_, r| r.strong_count() > 0);
            rooms.insert(room.jid.clone(), Arc::downgrade(&room));
        }
    }
    out.stanza = event.stanza.take();
    for (k, v) in &event.fields {
        out.fields.insert(k.clone(), v.clone());
    }
    if event.to_self {
        out.fields.insert("to_self", Value::Bool(true));
    }
    muc_forms::give(event, &mut out);
    if let Some(s) = &event.origin {
        let username = s.username();
        out.origin = Some(Origin {
            id: lock(sessions).number(s),
            kind: session_type(s).to_string(),
            username,
            host: Some(s.host.clone()),
            resource: s.full_jid().and_then(|j| j.resource().map(str::to_string)),
            ip: s.peer.map(|p| p.ip().to_string()),
            extra: Default::default(),
        });
    }
    out
}

/// An HTTP request for a Lua route, answered by the module.
fn serve(
    slot: &RwLock<Weak<LuaModule>>,
    route: RouteId,
    req: xmpp_core::http::HttpRequest,
) -> xmpp_core::http::HttpResponse {
    use xmpp_core::http::{HttpResponse, StatusCode};
    let Some(module) = module_of(slot) else {
        return HttpResponse::new(StatusCode::NOT_FOUND);
    };
    let request = HttpRequest {
        method: req.method.as_str().to_string(),
        path: req.path.clone(),
        // Prosody hands a `/*` route's handler what the `*` matched, without
        // the slash before it.
        wildcard: req
            .rest
            .as_deref()
            .map(|r| r.trim_start_matches('/').to_string()),
        query: req.query.clone(),
        headers: req
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: req.body.to_vec(),
    };
    match module.handle_http(route, &request) {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            let mut out = HttpResponse::new(status).with_body(answer.body);
            let headers: HashMap<String, String> = answer.headers.into_iter().collect();
            if let Ok(headers) = xmpp_core::http::HeaderMap::try_from(&headers) {
                out.headers.extend(headers);
            }
            out
        }
        Err(_) => HttpResponse::new(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Prosody's `session.type`.
fn session_type(s: &Session) -> &'static str {
    use xmpp_core::SessionKind;
    match s.kind {
        SessionKind::C2s => "c2s",
        SessionKind::C2sUnauthed => "c2s_unauthed",
        SessionKind::Component => "component",
        SessionKind::Local => "local",
        SessionKind::S2sIn => "s2sin",
    }
}

impl ContextHost {
    fn accounts(&self, host: &str) -> Result<Arc<dyn auth::AccountProvider>, HostError> {
        let h = self
            .ctx
            .server()
            .host(host)
            .ok_or_else(|| HostError::Failed(format!("no host {host}")))?;
        auth::provider_for_host(&h).map_err(|e| HostError::Failed(e.to_string()))
    }

    /// Serves the routes collected since the last app as the app `item`
    /// describes (`name`, `default_path`); they go when the module unloads.
    fn provide_http(&self, item: &Item) {
        let routes = std::mem::take(&mut *lock(&self.routes));
        if routes.is_empty() {
            return;
        }
        let Item::Value(Value::Table(t)) = item else {
            return;
        };
        let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name").unwrap_or_else(|| self.ctx.name().to_string());
        let mut app = xmpp_core::http::HttpApp {
            name,
            default_path: text("default_path"),
            cors: None,
            routes: Vec::new(),
        };
        for (method, path, route) in routes {
            let key = match (method.is_empty(), path.is_empty()) {
                (true, _) => format!("GET {path}"),
                (false, true) => method.clone(),
                (false, false) => format!("{method} {path}"),
            };
            let slot = self.module.clone();
            let handler = xmpp_core::http::handler(move |req: xmpp_core::http::HttpRequest| {
                let slot = slot.clone();
                async move { serve(&slot, route, req) }
            });
            app.routes.push((key, handler));
        }
        if let Err(e) = self.ctx.provide_http(app, false) {
            self.ctx
                .log("error", &format!("could not serve HTTP routes: {e}"));
        }
    }

    fn stop_all_timers(&self) {
        for (_, t) in lock(&self.timers).drain() {
            t.abort();
        }
    }
    fn disco_hook(&self, kind: &str, item: &Item) -> Option<HookId> {
        let text =
            |t: &xmpp_core::Table, k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        match (kind, item) {
            ("feature", Item::Value(Value::String(var))) => Some(self.ctx.add_feature(var)),
            ("identity", Item::Value(Value::Table(t))) => {
                let (category, type_) = (text(t, "category")?, text(t, "type")?);
                Some(
                    self.ctx
                        .add_identity(&category, &type_, text(t, "name").as_deref()),
                )
            }
            ("extension", Item::Stanza(e)) => Some(self.ctx.add_extension(e.clone())),
            ("disco-item", Item::Value(Value::Table(t))) => {
                let jid = text(t, "jid")
                    .or_else(|| t.seq.first().and_then(Value::as_str).map(str::to_string))?;
                let name = text(t, "name")
                    .or_else(|| t.seq.get(1).and_then(Value::as_str).map(str::to_string));
                Some(self.ctx.add_disco_item(&jid, name.as_deref()))
            }
            _ => None,
        }
    }
}

impl LuaHost for ContextHost {
    fn host(&self) -> &str {
        &self.ctx.host().name
    }

    fn hook(&self, scope: Scope, event: &str, priority: i32, handler: HandlerId) {
        let (slot, sessions) = (self.module.clone(), self.sessions.clone());
        let (ctx, rooms) = (self.ctx.clone(), self.rooms.clone());
        let run = move |ev: &mut Event| -> bool {
            let Some(module) = module_of(&slot) else {
                return false;
            };
            let mut lua = lua_event(ev, &sessions, &rooms);
            let result = module.handle_event(handler, &mut lua);
            muc_forms::take_back(ev, &lua);
            // The handler's stanza: the one given when it only read it.
            ev.stanza = lua.stanza;
            match result {
                Ok(answer) => answer.is_some(),
                Err(e) => {
                    // Prosody logs a handler's error and goes on with the event.
                    ctx.log("error", &e.to_string());
                    false
                }
            }
        };
        let id = match scope {
            Scope::Host => self.ctx.hook(event, priority, run),
            Scope::Global => self.ctx.hook_global(event, priority, run),
        };
        lock(&self.hooks).insert(handler, (scope, id));
    }

    fn unhook(&self, handler: HandlerId) {
        if let Some((scope, id)) = lock(&self.hooks).remove(&handler) {
            match scope {
                Scope::Host => self.ctx.host().events.unhook(id),
                Scope::Global => self.ctx.server().events.unhook(id),
            }
        }
    }

    fn fire_event(&self, scope: Scope, event: &mut LuaEvent) -> Option<Value> {
        let mut ev = self.ctx.event(&event.name);
        ev.stanza = event.stanza.take();
        for (k, v) in &event.fields.map {
            ev.fields.insert(k.clone(), v.clone());
        }
        if let Some(o) = &event.origin {
            ev.origin = lock(&self.sessions).get(o.id);
        }
        let name = event.name.clone();
        let handled = match scope {
            Scope::Host => self.ctx.fire_event(&name, &mut ev),
            Scope::Global => self.ctx.server().fire_global(&name, &mut ev),
        };
        event.stanza = ev.stanza;
        handled.then_some(Value::Bool(true))
    }

    fn send(&self, stanza: Element) {
        self.ctx.send(stanza);
    }

    fn session_send(&self, session: SessionId, stanza: Element) -> bool {
        lock(&self.sessions)
            .get(session)
            .is_some_and(|s| s.send(stanza))
    }

    fn option(&self, name: &str) -> Option<Value> {
        self.ctx.get_option(name).cloned()
    }

    fn global_option(&self, name: &str) -> Option<Value> {
        self.ctx.server().config.get_global(name).cloned()
    }

    fn add_item(&self, kind: &str, item: Item) {
        if kind == "http-provider" {
            self.provide_http(&item);
        }
        match self.disco_hook(kind, &item) {
            Some(id) => lock(&self.items).push((kind.to_string(), item, id)),
            None => self.ctx.add_item(kind, Arc::new(item)),
        }
    }

    fn remove_item(&self, kind: &str, item: &Item) {
        let mut items = lock(&self.items);
        if let Some(i) = items.iter().position(|(k, it, _)| k == kind && it == item) {
            let (_, _, id) = items.remove(i);
            self.ctx.host().events.unhook(id);
        }
    }

    fn add_timer(&self, delay: Duration, timer: TimerId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.ctx.log(
                "warn",
                "add_timer outside a tokio runtime: timer not started",
            );
            return;
        };
        let (slot, server) = (self.module.clone(), self.ctx.server().clone());
        let task = runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(module) = module_of(&slot) {
                let _ = module.fire_timer(timer, server.clock.now());
            }
        });
        let abort = task.abort_handle();
        lock(&self.timers).insert(timer, abort.clone());
        self.ctx.on_unload(move || abort.abort());
    }

    fn stop_timer(&self, timer: TimerId) {
        if let Some(t) = lock(&self.timers).remove(&timer) {
            t.abort();
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        self.ctx.log(level, message);
    }

    fn depends(&self, module: &str) -> Result<(), HostError> {
        self.ctx
            .depends(module)
            .map_err(|e| HostError::Failed(e.to_string()))
    }

    fn send_iq(&self, stanza: Element, request: IqRequestId, timeout: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let reply = self.ctx.send_iq(stanza, timeout);
        let slot = self.module.clone();
        let task = runtime.spawn(async move {
            let response = match reply.await {
                Ok(result) => Ok(result),
                Err(xmpp_core::module::SendIqError::Error(e)) => Err(Some(e)),
                Err(_) => Err(None),
            };
            if let Some(module) = module_of(&slot) {
                let _ = module.iq_response(request, response);
            }
        });
        let abort = task.abort_handle();
        self.ctx.on_unload(move || abort.abort());
    }

    fn open_store(&self, name: &str, kind: StoreKind) -> Result<Store, HostError> {
        let failed = |e: xmpp_core::storage::StorageError| HostError::Failed(e.to_string());
        Ok(match kind {
            StoreKind::KeyVal => Store::KeyVal(self.ctx.open_keyval(name).map_err(failed)?),
            StoreKind::Map => Store::Map(self.ctx.open_map(name).map_err(failed)?),
            StoreKind::Archive => Store::Archive(self.ctx.open_archive(name).map_err(failed)?),
        })
    }

    fn user_exists(&self, username: &str, host: &str) -> bool {
        self.ctx
            .server()
            .host(host)
            .is_some_and(|h| h.user_exists(username))
    }

    fn is_admin(&self, jid: &str, host: &str) -> bool {
        // `is_admin(jid)` without a host (`"*"`) asks about the global
        // `admins`, which every host's list falls back to.
        let h = self
            .ctx
            .server()
            .host(host)
            .unwrap_or_else(|| self.ctx.host().clone());
        xmpp_core::Jid::parse(jid).is_ok_and(|j| xmpp_core::adhoc::is_admin(&h, &j))
    }

    fn loaded_modules(&self, host: &str) -> Vec<String> {
        self.ctx
            .server()
            .host(host)
            .map(|h| h.loaded_modules())
            .unwrap_or_default()
    }

    fn manage_module(&self, op: &str, host: &str, module: &str) -> Result<(), HostError> {
        let server = self.ctx.server();
        let Some(h) = server.host(host) else {
            return Err(HostError::Failed(format!("no host {host}")));
        };
        let outcome = match op {
            "load" => manager::load(server, &h, module),
            "reload" => manager::reload(server, &h, module),
            "unload" => {
                return if manager::unload(server, &h, module) {
                    Ok(())
                } else {
                    Err(HostError::Failed(format!(
                        "{module} is not loaded on {host}"
                    )))
                };
            }
            _ => return Err(HostError::Unsupported(op.to_string())),
        };
        match outcome {
            Ok(manager::LoadOutcome::Loaded) => Ok(()),
            Ok(manager::LoadOutcome::Unknown) => {
                Err(HostError::Failed(format!("module {module} not found")))
            }
            Err(e) => Err(HostError::Failed(e.to_string())),
        }
    }

    fn add_http_route(&self, method: &str, path: &str, route: RouteId) -> Result<(), HostError> {
        lock(&self.routes).push((method.to_string(), path.to_string(), route));
        Ok(())
    }

    fn http_url(&self, path: &str) -> String {
        let host = &self.ctx.host().name;
        let external = self
            .ctx
            .get_option("http_external_url")
            .and_then(Value::as_str)
            .map(|u| u.trim_end_matches('/').to_string());
        let port = match self.ctx.server().config.get_global("http_ports") {
            Some(Value::Table(t)) => t.seq.first().and_then(Value::as_i64),
            Some(Value::Integer(p)) => Some(*p),
            _ => None,
        }
        .unwrap_or(5280);
        match external {
            Some(base) => format!("{base}{path}"),
            None => format!("http://{host}:{port}{path}"),
        }
    }

    fn measure(&self, name: &str, kind: &str, value: f64) {
        let family = match name.split_once('.') {
            Some((module, rest)) => format!("prosody_mod_{module}__{rest}"),
            None => format!("prosody_mod_{}__{name}", self.ctx.name()),
        };
        let measures = self.ctx.server().extension::<LuaMeasures>();
        let mut map = lock(&measures.0);
        let m = map
            .entry((family, self.ctx.host().name.clone()))
            .or_insert_with(|| Measure {
                kind: kind.to_string(),
                ..Measure::default()
            });
        m.record(value);
    }

    fn may(&self, action: &str, jid: &str) -> bool {
        let _ = action;
        self.is_admin(jid, &self.ctx.host().name)
    }

    fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
        host: &str,
    ) -> Result<(), HostError> {
        self.accounts(host)?
            .create_user(username, password)
            .map_err(|e| HostError::Failed(e.to_string()))
    }

    fn delete_user(&self, username: &str, host: &str) -> Result<(), HostError> {
        self.accounts(host)?
            .delete_user(username)
            .map_err(|e| HostError::Failed(e.to_string()))
    }

    fn set_password(&self, username: &str, password: &str, host: &str) -> Result<(), HostError> {
        self.accounts(host)?
            .set_password(username, password)
            .map_err(|e| HostError::Failed(e.to_string()))
    }

    fn is_contact_subscribed(&self, username: &str, host: &str, jid: &str) -> bool {
        let server = self.ctx.server();
        server.host(host).is_some_and(|h| {
            modules::roster::subscription::is_contact_subscribed(server, &h, username, jid)
                .unwrap_or(false)
        })
    }

    fn room_affiliation(&self, room: &str, jid: &str) -> Option<String> {
        let room = lock(&self.rooms).get(room).and_then(Weak::upgrade)?;
        let affiliation = room.get_affiliation(jid)?;
        Some(muc::util::affiliation_name(Some(affiliation)).to_string())
    }

    fn sessions(&self, host: &str) -> Option<Vec<UserSessions>> {
        let server = self.ctx.server();
        if server.host(host)?.is_component() {
            return None;
        }
        let mut by_user: Vec<UserSessions> = Vec::new();
        let mut numbers = lock(&self.sessions);
        for s in server.sessions.all() {
            let Some(jid) = s.full_jid() else { continue };
            let (Some(user), Some(resource)) = (jid.node(), jid.resource()) else {
                continue;
            };
            if jid.domain() != host {
                continue;
            }
            let n = numbers.number(&s);
            let entry = (resource.to_string(), n);
            match by_user.iter_mut().find(|u| u.username == user) {
                Some(u) => u.resources.push(entry),
                None => by_user.push(UserSessions {
                    username: user.to_string(),
                    resources: vec![entry],
                }),
            }
        }
        Some(by_user)
    }

    fn add_adhoc_command(&self, command: lua_compat::host::AdhocCommand) -> Result<(), HostError> {
        adhoc::add(self.ctx.host(), command, self.module.clone());
        Ok(())
    }

    fn shared_data(&self) -> Option<Arc<lua_compat::host::SharedData>> {
        Some(
            self.ctx
                .server()
                .extension::<lua_compat::host::SharedData>(),
        )
    }

    fn remove_adhoc_command(&self, node: &str) {
        adhoc::remove(self.ctx.host(), node);
    }

    fn hosts(&self) -> Vec<String> {
        self.ctx
            .server()
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .collect()
    }
}

/// Where a Lua module named `name` would be found (for messages).
pub fn find(config: &ServerConfig, name: &str) -> Option<PathBuf> {
    let mut search = ModuleSearch::from_config(config, &config.base_dir());
    search.builtin.clear();
    search.find_module(name)
}

#[cfg(test)]
mod tests {
    use super::Measure;

    #[test]
    fn amounts_keep_the_last_value_counters_add_up() {
        let mut amount = Measure {
            kind: "amount".into(),
            ..Measure::default()
        };
        amount.record(3.0);
        amount.record(5.0);
        assert_eq!((amount.value, amount.count), (5.0, 2));
        let mut rate = Measure {
            kind: "rate".into(),
            ..Measure::default()
        };
        rate.record(1.0);
        rate.record(1.0);
        assert_eq!((rate.value, rate.count), (2.0, 2));
    }
}
