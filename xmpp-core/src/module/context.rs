//! [`ModuleContext`]: Prosody's `module` object — one module on one host,
//! and the owner of everything it registered.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::scope::{self, Owner};
use super::{ModuleError, manager};
use crate::hooks::{Event, HookId};
use crate::host::Host;
use crate::http::HttpApp;
use crate::server::Server;
use crate::stanza::Element;
use crate::storage::{ArchiveStore, KeyValueStore, MapStore, StorageResult};
use crate::value::Value;

/// XEP-0030's namespaces, where the host's disco answers are assembled.
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";

/// One loaded module on one host.
pub struct ModuleContext {
    name: String,
    server: Arc<Server>,
    host: Arc<Host>,
    owner: Arc<Owner>,
}

/// Another handle on the same module instance: what either registers is
/// the module's, and goes at its unload (for adapters that keep the
/// context, such as the Lua module host's).
impl Clone for ModuleContext {
    fn clone(&self) -> ModuleContext {
        ModuleContext {
            name: self.name.clone(),
            server: self.server.clone(),
            host: self.host.clone(),
            owner: self.owner.clone(),
        }
    }
}

/// Why [`ModuleContext::send_iq`] got no result.
#[derive(Debug, thiserror::Error)]
pub enum SendIqError {
    /// The entity answered with an error (the whole `<iq type='error'/>`).
    #[error("error reply: {}", .0.to_xml())]
    Error(Element),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("send_iq needs a running tokio runtime")]
    NoRuntime,
}

/// Values shared under a path, as `module:shared` (they outlive a reload).
#[derive(Default)]
struct SharedTables(Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>);

/// Items modules provide, per host and kind (`module:add_item`).
#[derive(Default)]
struct Items(Mutex<HashMap<String, Vec<OwnedItem>>>);

/// An item and the module instance that added it.
type OwnedItem = (u64, Arc<dyn Any + Send + Sync>);

impl ModuleContext {
    pub(crate) fn new(name: &str, server: &Arc<Server>, host: &Arc<Host>) -> ModuleContext {
        ModuleContext {
            name: name.to_string(),
            server: server.clone(),
            host: host.clone(),
            owner: Owner::new(),
        }
    }

    /// The module's name (`module.name`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The host it is loaded on (`module.host`, `module:get_host()`).
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }
    /// The record of this module's registrations.
    pub fn owner(&self) -> &Arc<Owner> {
        &self.owner
    }
    /// Runs `f` with this module current, so what `f` registers is its own.
    pub fn scoped<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = scope::enter(self.owner.clone());
        f()
    }

    // -- events -------------------------------------------------------------------

    /// `module:hook`: a handler on this host's bus.
    pub fn hook(
        &self,
        event: &str,
        priority: i32,
        handler: impl Fn(&mut Event) -> bool + Send + Sync + 'static,
    ) -> HookId {
        self.scoped(|| self.host.events.hook(event, priority, handler))
    }
    /// `module:hook_global`: a handler on the server's bus.
    pub fn hook_global(
        &self,
        event: &str,
        priority: i32,
        handler: impl Fn(&mut Event) -> bool + Send + Sync + 'static,
    ) -> HookId {
        self.scoped(|| self.server.events.hook(event, priority, handler))
    }
    /// `module:unhook`.
    pub fn unhook(&self, id: HookId) {
        self.host.events.unhook(id);
    }
    /// `module:fire_event` on this host.
    pub fn fire_event(&self, name: &str, event: &mut Event) -> bool {
        self.server.fire_on_host(&self.host, name, event)
    }
    /// A fresh event for this host.
    pub fn event(&self, name: &str) -> Event {
        let mut e = Event::new(&self.server, name);
        e.host = Some(self.host.clone());
        e
    }
    /// How many handlers this module has hooked, on every bus.
    pub fn hook_count(&self) -> usize {
        let id = self.owner.id();
        self.server.events.owned_count(id)
            + self
                .server
                .hosts()
                .iter()
                .map(|h| h.events.owned_count(id))
                .sum::<usize>()
    }
    /// Something to undo when the module unloads.
    pub fn on_unload(&self, cleanup: impl FnOnce() + Send + 'static) {
        self.owner.add_cleanup(Box::new(cleanup));
    }

    // -- disco ----------------------------------------------------------------------

    /// `module:add_feature`.
    pub fn add_feature(&self, var: &str) -> HookId {
        self.scoped(|| add_disco_info(&self.host, feature_element(var)))
    }
    /// `module:add_identity`.
    pub fn add_identity(&self, category: &str, type_: &str, name: Option<&str>) -> HookId {
        self.scoped(|| add_disco_info(&self.host, identity_element(category, type_, name)))
    }
    /// `module:add_extension`: a data form (or any element) in disco#info.
    pub fn add_extension(&self, element: Element) -> HookId {
        self.scoped(|| add_disco_info(&self.host, element))
    }
    /// A `disco-item` (Prosody's `module:add_item("disco-item", ...)`): an
    /// item in the host's disco#items.
    pub fn add_disco_item(&self, jid: &str, name: Option<&str>) -> HookId {
        let item = Element::new("item", NS_DISCO_ITEMS)
            .attr("jid", jid)
            .attr_opt("name", name);
        self.hook("host-disco-items", 0, move |event| {
            if let Some(q) = event
                .stanza
                .as_mut()
                .and_then(|iq| iq.get_child_mut("query", NS_DISCO_ITEMS))
            {
                q.push_child(item.clone());
            }
            false
        })
    }

    // -- ad-hoc commands ------------------------------------------------------------

    /// `module:provides("adhoc", ...)`: adds an ad-hoc command to this host
    /// (answered by the `adhoc` module, loaded here first); it goes when
    /// the module unloads.
    pub fn add_command(&self, command: crate::adhoc::Command) -> Result<(), ModuleError> {
        self.depends("adhoc")?;
        self.scoped(|| crate::adhoc::register(&self.host, command));
        Ok(())
    }

    // -- HTTP ------------------------------------------------------------------------

    /// `module:provides("http", app)`: serves `app` for this host (or for
    /// every host with `global`), loading `http` first; the routes go when
    /// the module unloads. Returns the app's base path.
    pub fn provide_http(&self, app: HttpApp, global: bool) -> Result<String, ModuleError> {
        self.depends("http")?;
        let Some(service) = crate::http::service(&self.server) else {
            return Err(ModuleError::failed(self, "no HTTP service is installed"));
        };
        let name = app.name.clone();
        let host = (!global).then(|| self.host.clone());
        let base = service
            .provide(&self.server, host.as_ref(), app)
            .map_err(|e| ModuleError::failed(self, e))?;
        let server = self.server.clone();
        let host_name = host.map(|h| h.name.clone());
        self.on_unload(move || service.remove(&server, host_name.as_deref(), &name));
        Ok(base)
    }

    // -- items and shared state -------------------------------------------------------

    /// `module:add_item` / `module:provides`: adds `item` to the host's list
    /// of `kind` and fires `item-added/<kind>` with it as the object field
    /// `item`; at unload it is taken out and `item-removed/<kind>` fired.
    pub fn add_item<T: Any + Send + Sync>(&self, kind: &str, item: Arc<T>) {
        let items = self.host.extension::<Items>();
        let any: Arc<dyn Any + Send + Sync> = item.clone();
        let owner = self.owner.id();
        items
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_default()
            .push((owner, any.clone()));
        let mut added = self.event(&format!("item-added/{kind}"));
        added.objects.insert("item".into(), any);
        self.fire_event(&format!("item-added/{kind}"), &mut added);
        let (server, host, kind) = (self.server.clone(), self.host.clone(), kind.to_string());
        self.on_unload(move || {
            let removed: Vec<_> = {
                let mut map = items.0.lock().unwrap_or_else(|e| e.into_inner());
                let list = map.entry(kind.clone()).or_default();
                let (gone, kept) = std::mem::take(list)
                    .into_iter()
                    .partition(|(o, _)| *o == owner);
                *list = kept;
                gone
            };
            for (_, item) in removed {
                let name = format!("item-removed/{kind}");
                let mut ev = Event::new(&server, name.clone());
                ev.objects.insert("item".into(), item);
                server.fire_on_host(&host, &name, &mut ev);
            }
        });
    }
    /// `module:provides(kind, item)`: [`add_item`](Self::add_item) under `kind`-provider.
    pub fn provides<T: Any + Send + Sync>(&self, kind: &str, item: Arc<T>) {
        self.add_item(&format!("{kind}-provider"), item);
    }
    /// `module:get_host_items`: every item of `kind` on this host of type `T`.
    pub fn host_items<T: Any + Send + Sync>(&self, kind: &str) -> Vec<Arc<T>> {
        host_items(&self.host, kind)
    }

    /// `module:shared(path)`: a value shared by every instance of this
    /// module (a relative path, per host) or by any module (a path starting
    /// with `/`); it survives a reload.
    pub fn shared<T: Any + Send + Sync + Default>(&self, path: &str) -> Arc<T> {
        let key = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{}/{}/{path}", self.host.name, self.name)
        };
        let tables = self.server.extension::<SharedTables>();
        let mut map = tables.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map.get(&key).and_then(|v| v.clone().downcast::<T>().ok()) {
            return v;
        }
        let fresh = Arc::new(T::default());
        map.insert(key, fresh.clone());
        fresh
    }

    /// `module:depends(name)`: loads `name` on this host first.
    pub fn depends(&self, name: &str) -> Result<(), ModuleError> {
        self.owner.add_dependency(name);
        match manager::load(&self.server, &self.host, name) {
            Ok(manager::LoadOutcome::Loaded) => Ok(()),
            Ok(manager::LoadOutcome::Unknown) => Err(ModuleError::MissingDependency {
                module: self.name.clone(),
                host: self.host.name.clone(),
                dependency: name.to_string(),
            }),
            Err(source) => Err(ModuleError::Dependency {
                module: self.name.clone(),
                host: self.host.name.clone(),
                dependency: name.to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// The modules this one asked for with [`depends`](Self::depends), or
    /// loaded by name while it loaded.
    pub fn dependencies(&self) -> Vec<String> {
        self.owner.dependencies()
    }

    // -- logging, sending, storage, timers ------------------------------------------------

    /// `module:log(level, message)`; levels as Prosody's (`debug`, `info`,
    /// `warn`, `error`).
    pub fn log(&self, level: &str, message: &str) {
        let (host, module) = (self.host.name.as_str(), self.name.as_str());
        match level {
            "error" => tracing::error!(host, module, "{message}"),
            "warn" => tracing::warn!(host, module, "{message}"),
            "info" => tracing::info!(host, module, "{message}"),
            _ => tracing::debug!(host, module, "{message}"),
        }
    }

    /// `module:send`: a stanza from this host.
    pub fn send(&self, stanza: Element) {
        self.server.send_from_host(&self.host, stanza);
    }

    /// `module:send_iq`: sends an IQ from this host and resolves with its
    /// result (or the error reply, or a timeout). An IQ without an id gets one.
    pub fn send_iq(
        &self,
        mut iq: Element,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Element, SendIqError>> + Send + 'static {
        let id = match iq.id() {
            Some(id) => id.to_string(),
            None => {
                let id = format!("lilt-{}", rand::random::<u64>());
                iq.set_attr("id", Some(id.clone()));
                id
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<Element>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let mut ids = Vec::new();
        for t in ["result", "error"] {
            let tx = tx.clone();
            ids.push(self.hook(&format!("iq-{t}/host/{id}"), 0, move |event| {
                if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = tx.send(event.stanza().clone());
                }
                true
            }));
        }
        let host = self.host.clone();
        let runtime = tokio::runtime::Handle::try_current().is_ok();
        if runtime {
            self.send(iq);
        }
        async move {
            let out = if !runtime {
                Err(SendIqError::NoRuntime)
            } else {
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(reply)) if reply.type_() == Some("error") => {
                        Err(SendIqError::Error(reply))
                    }
                    Ok(Ok(reply)) => Ok(reply),
                    _ => Err(SendIqError::Timeout(timeout)),
                }
            };
            for id in ids {
                host.events.unhook(id);
            }
            out
        }
    }

    /// `module:add_timer(delay, f)`: runs `f` after `delay`, then again
    /// after whatever delay it returns, until it returns `None` or the
    /// module unloads. Needs a tokio runtime (none: a warning, no timer).
    pub fn add_timer(
        &self,
        delay: Duration,
        mut f: impl FnMut() -> Option<Duration> + Send + 'static,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.log(
                "warn",
                "add_timer outside a tokio runtime: timer not started",
            );
            return;
        };
        let task = runtime.spawn(async move {
            let mut next = Some(delay);
            while let Some(d) = next {
                tokio::time::sleep(d).await;
                next = f();
            }
        });
        self.on_unload(move || task.abort());
    }

    /// `module:open_store(name, "keyval")`.
    pub fn open_keyval(&self, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        self.host.open_keyval(store)
    }
    /// `module:open_store(name, "map")`.
    pub fn open_map(&self, store: &str) -> StorageResult<Arc<dyn MapStore>> {
        self.host.open_map(store)
    }
    /// `module:open_store(name, "archive")`.
    pub fn open_archive(&self, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        self.host.open_archive(store)
    }

    /// An option as it is in the config (host value, else global).
    pub fn get_option(&self, name: &str) -> Option<&Value> {
        self.host.option(name)
    }

    /// Removes what the module registered: cleanups (latest first), then
    /// its hooks on every bus; returns how many hooks went.
    pub(crate) fn release(&self) -> usize {
        self.owner.run_cleanups();
        let id = self.owner.id();
        self.server.events.unhook_owner(id)
            + self
                .server
                .hosts()
                .iter()
                .map(|h| h.events.unhook_owner(id))
                .sum::<usize>()
    }
}

/// Every item of `kind` on `host` of type `T` (`module:get_host_items`).
pub fn host_items<T: Any + Send + Sync>(host: &Host, kind: &str) -> Vec<Arc<T>> {
    let items = host.extension::<Items>();
    let map = items.0.lock().unwrap_or_else(|e| e.into_inner());
    map.get(kind)
        .map(|l| {
            l.iter()
                .filter_map(|(_, i)| i.clone().downcast::<T>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `<feature var=.../>`.
pub fn feature_element(var: &str) -> Element {
    Element::new("feature", NS_DISCO_INFO).attr("var", var)
}

/// `<identity category=... type=... name=.../>`.
pub fn identity_element(category: &str, type_: &str, name: Option<&str>) -> Element {
    Element::new("identity", NS_DISCO_INFO)
        .attr("category", category)
        .attr("type", type_)
        .attr_opt("name", name)
}

/// Adds `element` to the host's disco#info: a `host-disco-info` handler
/// appending it to the `<query/>` being built (see mod_disco).
pub fn add_disco_info(host: &Host, element: Element) -> HookId {
    host.events.hook("host-disco-info", 0, move |event| {
        if let Some(q) = event
            .stanza
            .as_mut()
            .and_then(|iq| iq.get_child_mut("query", NS_DISCO_INFO))
        {
            q.push_child(element.clone());
        }
        false
    })
}
