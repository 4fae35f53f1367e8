//! Hosts: every `VirtualHost` and `Component` is a [`Host`] with its options,
//! its event bus, its loaded modules, its storage and its auth provider.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::auth::AuthProvider;
use crate::config::{HostKind, OptionError, ServerConfig};
use crate::hooks::EventBus;
use crate::live_config::LiveConfig;
use crate::session::Session;
use crate::storage::{
    ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError, StorageResult,
};
use crate::value::Value;

/// The storage drivers known to the server, by name.
#[derive(Default)]
pub struct StorageDrivers {
    drivers: Mutex<HashMap<String, Arc<dyn StorageDriver>>>,
}

impl StorageDrivers {
    pub fn register(&self, driver: Arc<dyn StorageDriver>) {
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(driver.name().to_string(), driver);
    }
    pub fn get(&self, name: &str) -> Option<Arc<dyn StorageDriver>> {
        self.drivers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// A served host.
pub struct Host {
    pub name: String,
    pub kind: HostKind,
    pub events: EventBus,
    /// The server's config, as a reload leaves it.
    config: Arc<LiveConfig>,
    drivers: Arc<StorageDrivers>,
    auth: OnceLock<Arc<dyn AuthProvider>>,
    modules: Mutex<Vec<String>>,
    /// The host as the origin of stanzas modules send.
    pub local_session: Arc<Session>,
    /// Per-host state shared by modules, one value per type (what Prosody
    /// keeps as fields of `hosts[host]`, e.g. `roster_cache`).
    extensions: crate::extensions::Extensions,
}

impl Host {
    pub fn new(
        name: &str,
        kind: HostKind,
        config: Arc<LiveConfig>,
        drivers: Arc<StorageDrivers>,
    ) -> Host {
        Host {
            name: name.to_string(),
            kind,
            events: EventBus::new(),
            config,
            drivers,
            auth: OnceLock::new(),
            modules: Mutex::new(Vec::new()),
            local_session: Arc::new(Session::local(name)),
            extensions: Default::default(),
        }
    }

    /// This host's shared value of type `T`, created with `T::default()` on
    /// first use (Prosody's fields on `hosts[host]`, such as `roster_cache`).
    pub fn extension<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        self.extensions.get()
    }

    pub fn is_component(&self) -> bool {
        matches!(self.kind, HostKind::Component { .. })
    }

    /// The config in force now (a reload replaces it: read it per use,
    /// do not keep what it says).
    pub fn config(&self) -> &Arc<ServerConfig> {
        self.config.current()
    }

    // -- options (host value, else global) ------------------------------------

    pub fn option(&self, name: &str) -> Option<&Value> {
        self.config().get(Some(&self.name), name)
    }
    pub fn option_str(&self, name: &str) -> Option<&str> {
        self.option(name).and_then(Value::as_str)
    }
    /// A boolean option; a value of another type is an error naming the option.
    pub fn option_bool(&self, name: &str, default: bool) -> Result<bool, OptionError> {
        match self.option(name) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| {
                self.option_error(
                    name,
                    format!("must be true or false, not a {}", v.type_name()),
                )
            }),
        }
    }
    /// A number option, accepting Lua floats with no fraction.
    pub fn option_i64(&self, name: &str, default: i64) -> Result<i64, OptionError> {
        match self.option(name) {
            None => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| {
                self.option_error(
                    name,
                    format!("must be a whole number, not a {}", v.type_name()),
                )
            }),
        }
    }
    pub fn option_list(&self, name: &str) -> Vec<String> {
        self.option(name)
            .and_then(Value::as_string_list)
            .unwrap_or_default()
    }
    pub fn option_error(&self, name: &str, problem: String) -> OptionError {
        OptionError {
            option: name.to_string(),
            defined_at: self.config().source_of(Some(&self.name), name).cloned(),
            problem,
        }
    }

    // -- modules ----------------------------------------------------------------

    pub fn mark_module_loaded(&self, name: &str) {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
    }
    /// Forgets that `name` is loaded (it was unloaded).
    pub fn unmark_module(&self, name: &str) {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|m| m != name);
    }
    pub fn has_module(&self, name: &str) -> bool {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m == name)
    }
    pub fn loaded_modules(&self) -> Vec<String> {
        self.modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    // -- authentication -------------------------------------------------------------

    pub fn set_auth_provider(&self, provider: Arc<dyn AuthProvider>) {
        let _ = self.auth.set(provider);
    }
    pub fn auth_provider(&self) -> Option<&Arc<dyn AuthProvider>> {
        self.auth.get()
    }
    /// Does `username` have an account here? (false with no provider)
    pub fn user_exists(&self, username: &str) -> bool {
        match self.auth.get().map(|a| a.user_exists(username)) {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                tracing::warn!(host = %self.name, "user_exists({username}) failed: {e}");
                false
            }
            None => false,
        }
    }

    // -- storage ------------------------------------------------------------------

    /// The driver for `store`, as Prosody's storagemanager picks it:
    /// `storage` as a string applies to every store; as a table, its entry
    /// for the store, else `default_storage`, else `internal`.
    pub fn storage_driver_name(&self, store: &str) -> String {
        let default = || {
            self.option_str("default_storage")
                .unwrap_or("internal")
                .to_string()
        };
        match self.option("storage") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Table(t)) => t
                .get(store)
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(default),
            _ => default(),
        }
    }
    fn driver_for(&self, store: &str) -> StorageResult<Arc<dyn StorageDriver>> {
        let name = self.storage_driver_name(store);
        self.drivers
            .get(&name)
            .ok_or_else(|| StorageError::Unavailable {
                driver: name.clone(),
                reason: format!(
                    "no storage driver named {name:?} (store {store:?} on host {})",
                    self.name
                ),
            })
    }
    pub fn open_keyval(&self, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        self.driver_for(store)?.open_keyval(&self.name, store)
    }
    pub fn open_map(&self, store: &str) -> StorageResult<Arc<dyn MapStore>> {
        self.driver_for(store)?.open_map(&self.name, store)
    }
    pub fn open_archive(&self, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        self.driver_for(store)?.open_archive(&self.name, store)
    }

    /// Removes everything `user` has in this host's storage (account
    /// deletion), as Prosody's `storagemanager.purge`: each driver named in a
    /// `storage` table, then the default driver, then `internal` (Prosody
    /// always purges its data directory too) when it is registered.
    pub fn purge_user(&self, user: &str) -> StorageResult<()> {
        let mut names: Vec<String> = Vec::new();
        if let Some(Value::Table(t)) = self.option("storage") {
            names.extend(t.map.values().filter_map(Value::as_str).map(str::to_string));
        }
        let default = match self.option("storage") {
            Some(Value::String(s)) => s.clone(),
            _ => self
                .option_str("default_storage")
                .unwrap_or("internal")
                .to_string(),
        };
        names.push(default);
        let mut done: Vec<String> = Vec::new();
        for name in names {
            if done.contains(&name) {
                continue;
            }
            let driver = self
                .drivers
                .get(&name)
                .ok_or_else(|| StorageError::Unavailable {
                    driver: name.clone(),
                    reason: format!(
                        "no storage driver named {name:?} to purge {user}@{}",
                        self.name
                    ),
                })?;
            driver.purge_user(&self.name, user)?;
            done.push(name);
        }
        if let Some(internal) = self
            .drivers
            .get("internal")
            .filter(|_| !done.iter().any(|n| n == "internal"))
        {
            internal.purge_user(&self.name, user)?;
        }
        Ok(())
    }
}
