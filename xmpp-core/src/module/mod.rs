//! Modules as objects, as Prosody's `core/moduleapi.lua` and
//! `core/modulemanager.lua`.
//!
//! - [`Module`]: what a module is — `load` on a host (hooking events,
//!   announcing disco features, providing HTTP routes and ad-hoc commands
//!   through its [`ModuleContext`]) and an optional `unload`.
//! - [`ModuleContext`]: Prosody's `module` object for one module on one
//!   host: `hook`, `hook_global`, `fire_event`, `add_feature`,
//!   `add_identity`, `add_item`, `provides`, `depends`, `shared`, the typed
//!   `get_option_*` ([`options`]), `log`, `send`, `send_iq`, `add_timer`,
//!   `open_store`. It owns what the module registered, so unloading removes
//!   all of it.
//! - [`Registry`]: the modules the server can load, by name; every crate
//!   adds its own with a `register(&mut Registry)` function and an
//!   embedder adds theirs with the server builder.
//! - [`manager`]: loading, unloading and reloading by name at run time,
//!   per host, and bringing a host's modules in line with a new config
//!   ([`manager::sync_host`]).
//! - [`scope`]: how registrations made while a module loads are
//!   attributed to it, whichever API made them.
//!
//! A module is written like this:
//!
//! ```
//! use xmpp_core::module::{Module, ModuleContext, ModuleError, Registry};
//!
//! struct Hello;
//! impl Module for Hello {
//!     fn load(&self, ctx: &ModuleContext) -> Result<(), ModuleError> {
//!         let greeting = ctx.get_option_string("hello_greeting")?.unwrap_or("hi".into());
//!         ctx.add_feature("urn:example:hello");
//!         ctx.hook("message/host", 0, move |event| {
//!             event.reply(event.stanza().clone().attr("type", greeting.as_str()));
//!             true
//!         });
//!         Ok(())
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.add("hello", || Hello);
//! assert!(registry.contains("hello"));
//! ```

pub mod context;
pub mod manager;
pub mod options;
pub mod registry;
pub mod scope;

pub use context::{ModuleContext, SendIqError};
pub use manager::{LoadOutcome, SyncReport};
pub use registry::{ModuleFactory, Registry};

use crate::config::OptionError;

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("module {module} on {host}: {reason}")]
    Failed {
        module: String,
        host: String,
        reason: String,
    },
    /// A module's own error type, shown as it is.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
    #[error("module {module} on {host} depends on {dependency}, which lilt does not have")]
    MissingDependency {
        module: String,
        host: String,
        dependency: String,
    },
    #[error("module {module} on {host} depends on {dependency}, which failed: {source}")]
    Dependency {
        module: String,
        host: String,
        dependency: String,
        #[source]
        source: Box<ModuleError>,
    },
}

impl ModuleError {
    /// A failure with a reason of the module's own.
    pub fn failed(ctx: &ModuleContext, reason: impl std::fmt::Display) -> ModuleError {
        ModuleError::Failed {
            module: ctx.name().to_string(),
            host: ctx.host().name.clone(),
            reason: reason.to_string(),
        }
    }
}

impl ModuleError {
    /// Wraps a module's own error.
    pub fn other(e: impl std::error::Error + Send + Sync + 'static) -> ModuleError {
        ModuleError::Other(Box::new(e))
    }
}

/// A module: loaded once per host that enables it (a fresh instance from
/// its factory each time), unloaded when the host drops it or the server
/// reloads it.
pub trait Module: Send + Sync + 'static {
    /// Sets the module up on `ctx.host()`. What it registers (through `ctx`
    /// or directly on the host's bus) is removed again at unload.
    fn load(&self, ctx: &ModuleContext) -> Result<(), ModuleError>;
    /// Called before the module's registrations are removed (Prosody's
    /// `module.unload`); state that outlives a reload belongs in
    /// [`ModuleContext::shared`].
    fn unload(&self, _ctx: &ModuleContext) {}
}

/// A module made of one load function: how most of lilt's own modules are
/// registered ([`Registry::add_fn`]).
pub struct FnModule<F>(pub F);

impl<F> Module for FnModule<F>
where
    F: Fn(&ModuleContext) -> Result<(), ModuleError> + Send + Sync + 'static,
{
    fn load(&self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        (self.0)(ctx)
    }
}
