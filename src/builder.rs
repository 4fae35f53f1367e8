//! [`ServerBuilder`]: a server from a loaded configuration, with every
//! crate's modules in its registry and an embedder's own added by name
//! ([`ServerBuilder::with_module`]), so `modules_enabled` in a
//! `prosody.cfg.lua` can name them.
//!
//! ```
//! use lilt::ServerBuilder;
//! use lilt::xmpp_core::module::{FnModule, ModuleContext, ModuleError};
//!
//! let config = lilt::lua_compat::config::load_str(
//!     r#"modules_enabled = { "hello" }
//!        VirtualHost "localhost""#,
//!     std::path::Path::new("/tmp/prosody.cfg.lua"),
//! )
//! .unwrap();
//! let server = ServerBuilder::new(config)
//!     .with_module("hello", || {
//!         FnModule(|ctx: &ModuleContext| -> Result<(), ModuleError> {
//!             ctx.add_feature("urn:example:hello");
//!             Ok(())
//!         })
//!     })
//!     .build()
//!     .unwrap();
//! assert!(server.host("localhost").unwrap().has_module("hello"));
//! ```

use std::sync::Arc;

use xmpp_core::module::{Module, ModuleError, Registry};
use xmpp_core::{Clock, Server, ServerConfig};

use crate::startup::{StartError, Unsupported};

/// Builds a [`Server`] from a config.
pub struct ServerBuilder {
    config: ServerConfig,
    clock: Clock,
    registry: Registry,
}

impl ServerBuilder {
    /// A builder whose registry holds every module of lilt's crates.
    pub fn new(config: ServerConfig) -> ServerBuilder {
        ServerBuilder {
            config,
            clock: Clock::System,
            registry: builtin_registry(),
        }
    }

    /// The clock timestamps come from (fixed in tests).
    pub fn clock(mut self, clock: Clock) -> ServerBuilder {
        self.clock = clock;
        self
    }

    /// Adds module `name`, made by `factory` for each host that enables it
    /// (replacing a built-in module of that name).
    pub fn with_module<M: Module>(
        mut self,
        name: &str,
        factory: impl Fn() -> M + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.registry.add(name, factory);
        self
    }

    /// Adds the modules a crate registers (its `register(&mut Registry)`).
    pub fn with_modules(mut self, register: impl FnOnce(&mut Registry)) -> ServerBuilder {
        register(&mut self.registry);
        self
    }

    /// The registry so far.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Builds the server, logging what lilt could not provide.
    pub fn build(self) -> Result<Arc<Server>, StartError> {
        let (server, unsupported) = self.build_reporting()?;
        for line in unsupported.lines() {
            tracing::warn!("{line}");
        }
        Ok(server)
    }

    /// Builds the server, returning what is unsupported instead of logging it.
    pub fn build_reporting(self) -> Result<(Arc<Server>, Unsupported), StartError> {
        crate::startup::build_with_registry(self.config, self.clock, self.registry)
    }
}

/// Modules whose job lilt's core does itself (stream negotiation, TLS,
/// SASL, storage drivers; `limit_auth` is the auth crate's login throttle,
/// `log_auth` its guard's log lines, `smacks` xmpp-core's XEP-0198).
pub const CORE_MODULES: &[&str] = &[
    "c2s",
    // Server-to-server (xmpp_core::s2s), started with the listeners.
    "s2s",
    "dialback",
    "s2s_auth_certs",
    // XEP-0288 and the community modules' s2s_whitelist/s2s_blacklist.
    "s2s_bidi",
    "s2s_whitelist",
    "s2s_blacklist",
    "component",
    "tls",
    "saslauth",
    "auth_internal_hashed",
    "auth_internal_plain",
    "auth_anonymous",
    "auth_insecure",
    "auth_jitsi-anonymous",
    "limit_auth",
    "log_auth",
    "storage_internal",
    "storage_memory",
    "storage_none",
    "smacks",
    // mod_admin_shell on mod_admin_socket: started with the listeners
    // (crate::shell).
    "admin_shell",
    "admin_socket",
];

/// Every module of lilt's own crates, by name.
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    for name in CORE_MODULES {
        r.add_builtin(name);
    }
    modules::register(&mut r);
    muc::register(&mut r);
    jitsi::register(&mut r);
    bosh_websocket::register(&mut r);
    // mod_http_openmetrics: /metrics (crate::metrics).
    r.add_fn("http_openmetrics", |ctx| {
        crate::metrics::load(ctx.server(), ctx.host())
            .map_err(|reason| ModuleError::Other(reason.into()))
    });
    r
}
