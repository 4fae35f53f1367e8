//! Loading and unloading modules by name at run time, as Prosody's
//! `core/modulemanager.lua`: [`load`], [`unload`], [`reload`], and
//! [`sync_host`] for a config reload (the host's new module list in, what
//! was loaded and unloaded out). Which names a host loads is the config's
//! business (`modules_enabled`, `modules_disabled`, a component's module,
//! the autoloaded ones); this resolves names against the server's
//! [`Registry`] ([`set_registry`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::{Module, ModuleContext, ModuleError, Registry};
use crate::host::Host;
use crate::server::Server;

/// What asking for a module did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// It is loaded (now, or already was).
    Loaded,
    /// The registry has no module of that name.
    Unknown,
}

struct Loaded {
    name: String,
    module: Box<dyn Module>,
    ctx: Arc<ModuleContext>,
}

/// The server's registry and what is loaded where.
#[derive(Default)]
struct Modules {
    registry: RwLock<Registry>,
    /// Per host name, in load order.
    loaded: Mutex<HashMap<String, Vec<Loaded>>>,
}

/// Makes `registry` the server's (replacing any earlier one).
pub fn set_registry(server: &Server, registry: Registry) {
    let m = server.extension::<Modules>();
    *m.registry.write().unwrap_or_else(|e| e.into_inner()) = registry;
}

/// Adds to the server's registry at run time.
pub fn register(server: &Server, f: impl FnOnce(&mut Registry)) {
    let m = server.extension::<Modules>();
    f(&mut m.registry.write().unwrap_or_else(|e| e.into_inner()));
}

/// Is `name` in the server's registry?
pub fn is_registered(server: &Server, name: &str) -> bool {
    let m = server.extension::<Modules>();
    m.registry
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(name)
}

/// Loads module `name` on `host`; a module already loaded there is left
/// as it is. On failure whatever it had registered is removed again.
pub fn load(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Result<LoadOutcome, ModuleError> {
    // Asked for while another module loads: that module depends on it
    // (kept by [`sync_host`] while the other is wanted).
    if let Some(loading) = super::scope::current() {
        loading.add_dependency(name);
    }
    if host.has_module(name) {
        return Ok(LoadOutcome::Loaded);
    }
    let m = server.extension::<Modules>();
    let Some(factory) = m
        .registry
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
    else {
        return Ok(LoadOutcome::Unknown);
    };
    let module = factory();
    let ctx = Arc::new(ModuleContext::new(name, server, host));
    // Marked first, so a module depending on itself (through another) stops.
    host.mark_module_loaded(name);
    let result = ctx.scoped(|| module.load(&ctx));
    if let Err(e) = result {
        ctx.release();
        host.unmark_module(name);
        return Err(e);
    }
    tracing::debug!(host = %host.name, module = name, "module loaded");
    m.loaded
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(host.name.clone())
        .or_default()
        .push(Loaded {
            name: name.to_string(),
            module,
            ctx,
        });
    Ok(LoadOutcome::Loaded)
}

/// Unloads module `name` from `host`: its `unload`, then every hook,
/// route, command, item and timer it registered. `false` if it was not
/// loaded through the registry.
pub fn unload(server: &Arc<Server>, host: &Arc<Host>, name: &str) -> bool {
    let m = server.extension::<Modules>();
    let taken = {
        let mut loaded = m.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let list = loaded.entry(host.name.clone()).or_default();
        list.iter()
            .position(|l| l.name == name)
            .map(|i| list.remove(i))
    };
    let Some(l) = taken else {
        return false;
    };
    l.module.unload(&l.ctx);
    let hooks = l.ctx.release();
    host.unmark_module(name);
    tracing::debug!(host = %host.name, module = name, hooks, "module unloaded");
    true
}

/// Unloads and loads `name` again (Prosody's `module:reload`); state kept
/// in [`ModuleContext::shared`] carries over.
pub fn reload(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Result<LoadOutcome, ModuleError> {
    unload(server, host, name);
    load(server, host, name)
}

/// The modules loaded on `host` through the registry, in load order.
pub fn loaded(server: &Server, host: &Host) -> Vec<String> {
    let m = server.extension::<Modules>();
    let loaded = m.loaded.lock().unwrap_or_else(|e| e.into_inner());
    loaded
        .get(&host.name)
        .map(|l| l.iter().map(|l| l.name.clone()).collect())
        .unwrap_or_default()
}

/// The context of module `name` on `host`, while it is loaded.
pub fn context(server: &Server, host: &Host, name: &str) -> Option<Arc<ModuleContext>> {
    let m = server.extension::<Modules>();
    let loaded = m.loaded.lock().unwrap_or_else(|e| e.into_inner());
    loaded
        .get(&host.name)?
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.ctx.clone())
}

/// What [`sync_host`] did.
#[derive(Debug, Default, PartialEq)]
pub struct SyncReport {
    pub loaded: Vec<String>,
    pub unloaded: Vec<String>,
    /// Asked for, but the registry has no such module.
    pub unknown: Vec<String>,
    /// Asked for, and failed to load (with why).
    pub failed: Vec<(String, String)>,
}

/// Brings `host` in line with `wanted` (its module list under a new
/// config): wanted modules not loaded yet are loaded, then modules loaded
/// through the registry and no longer wanted are unloaded (latest first),
/// except the dependencies of a wanted module.
pub fn sync_host(server: &Arc<Server>, host: &Arc<Host>, wanted: &[String]) -> SyncReport {
    let mut report = SyncReport::default();
    for name in wanted {
        if host.has_module(name) {
            continue;
        }
        match load(server, host, name) {
            Ok(LoadOutcome::Loaded) => report.loaded.push(name.clone()),
            Ok(LoadOutcome::Unknown) => report.unknown.push(name.clone()),
            Err(e) => report.failed.push((name.clone(), e.to_string())),
        }
    }
    for name in loaded(server, host).into_iter().rev() {
        if !wanted.contains(&name)
            && !is_dependency_of_wanted(server, host, &name, wanted)
            && unload(server, host, &name)
        {
            report.unloaded.push(name);
        }
    }
    report
}

/// Is `name` a dependency ([`ModuleContext::depends`]) of a wanted module
/// loaded on `host`?
fn is_dependency_of_wanted(server: &Server, host: &Host, name: &str, wanted: &[String]) -> bool {
    let m = server.extension::<Modules>();
    let loaded = m.loaded.lock().unwrap_or_else(|e| e.into_inner());
    loaded.get(&host.name).is_some_and(|list| {
        list.iter()
            .any(|l| wanted.contains(&l.name) && l.ctx.dependencies().iter().any(|d| d == name))
    })
}
