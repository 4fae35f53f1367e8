//! The modules a server can load, by the name `modules_enabled` uses.
//!
//! Every crate that has modules exposes `pub fn register(registry: &mut
//! Registry)`; the server builder calls them all and adds the embedder's
//! own ([`Registry::add`]). A later registration under the same name
//! replaces the earlier one, so an embedder can override a built-in module.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{FnModule, Module, ModuleContext, ModuleError};
use crate::host::Host;
use crate::server::Server;

/// Makes a fresh instance of a module for each host that loads it.
pub type ModuleFactory = Arc<dyn Fn() -> Box<dyn Module> + Send + Sync>;

/// Makes a factory for a name the registry does not list (Lua modules
/// found on `plugin_paths`), or says it has none.
pub type Fallback = Arc<dyn Fn(&str) -> Option<ModuleFactory> + Send + Sync>;

/// Modules by name.
#[derive(Clone, Default)]
pub struct Registry {
    modules: BTreeMap<String, ModuleFactory>,
    fallback: Option<Fallback>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers module `name`, made by `factory`.
    pub fn add<M: Module>(
        &mut self,
        name: &str,
        factory: impl Fn() -> M + Send + Sync + 'static,
    ) -> &mut Registry {
        let factory: ModuleFactory = Arc::new(move || Box::new(factory()) as Box<dyn Module>);
        self.modules.insert(name.to_string(), factory);
        self
    }

    /// Registers a ready-made factory.
    pub fn add_factory(&mut self, name: &str, factory: ModuleFactory) -> &mut Registry {
        self.modules.insert(name.to_string(), factory);
        self
    }

    /// Registers a module made of one load function taking its context.
    pub fn add_fn(
        &mut self,
        name: &str,
        load: impl Fn(&ModuleContext) -> Result<(), ModuleError> + Send + Sync + Clone + 'static,
    ) -> &mut Registry {
        self.add(name, move || FnModule(load.clone()))
    }

    /// Registers a module written as `load(server, host)` hooking the host
    /// directly; its hooks and other registrations are still its own (see
    /// [`super::scope`]) and go at unload.
    pub fn add_loader<E>(
        &mut self,
        name: &str,
        load: fn(&Arc<Server>, &Arc<Host>) -> Result<(), E>,
    ) -> &mut Registry
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.add_fn(name, move |ctx| {
            load(ctx.server(), ctx.host()).map_err(ModuleError::other)
        })
    }

    /// Registers a module whose work lilt's core does (`c2s`, `tls`,
    /// `saslauth`, ...): loading it only marks it loaded.
    pub fn add_builtin(&mut self, name: &str) -> &mut Registry {
        self.add_fn(name, |_| Ok(()))
    }

    /// Removes module `name` from the registry (not from hosts it is loaded on).
    pub fn remove(&mut self, name: &str) -> Option<ModuleFactory> {
        self.modules.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.modules.contains_key(name)
    }

    /// The factory of module `name`: a registered one, else the fallback's.
    pub fn get(&self, name: &str) -> Option<ModuleFactory> {
        match self.modules.get(name) {
            Some(f) => Some(f.clone()),
            None => self.fallback.as_ref().and_then(|f| f(name)),
        }
    }

    /// Where names nobody registered are looked up last (lilt's Lua
    /// module host, for `mod_<name>.lua` on `plugin_paths`).
    pub fn set_fallback(&mut self, fallback: Fallback) -> &mut Registry {
        self.fallback = Some(fallback);
        self
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.modules.keys().cloned().collect()
    }

    /// Adds the modules of `other` this registry does not have yet.
    pub fn add_missing(&mut self, other: Registry) {
        for (name, factory) in other.modules {
            self.modules.entry(name).or_insert(factory);
        }
    }

    /// Adds every module of `other` (later wins), and its fallback if it has one.
    pub fn extend(&mut self, other: Registry) {
        self.modules.extend(other.modules);
        if other.fallback.is_some() {
            self.fallback = other.fallback;
        }
    }
}
