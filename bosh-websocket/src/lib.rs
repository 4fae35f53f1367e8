//! # bosh-websocket
//!
//! lilt's HTTP server and the two ways browsers speak XMPP over it, as
//! Prosody's mod_http, mod_bosh and mod_websocket:
//!
//! - [`server`]: the `http_ports` / `https_ports` listeners (hyper 1 with
//!   axum), `trusted_proxies` ([`proxy`]), CORS ([`cors`]), error pages;
//! - [`routes`]: the route API modules serve endpoints with
//!   (`module:provides("http", ...)`), per host or global;
//! - [`bosh`]: XEP-0124/XEP-0206 at `/http-bind`, its sans-IO session
//!   bookkeeping in [`bosh::state`];
//! - [`websocket`]: RFC 7395 at `/xmpp-websocket`, its sans-IO frame codec
//!   in [`websocket::frames`];
//! - [`files`] (mod_http_files) and [`health`] (mod_http_health, `/health`).
//!
//! A module serves an endpoint like this (Prosody's
//! `module:provides("http", ...)`); the listeners start when any app is
//! provided:
//!
//! ```
//! use bosh_websocket::{HttpApp, HttpResponse, handler, provide};
//! let server = xmpp_core::Server::for_tests();
//! let host = server.host("localhost").unwrap();
//! let health = handler(|_request| async { HttpResponse::ok("text/plain", "ok") });
//! let base = provide(&server, Some(&host), HttpApp {
//!     name: "health".into(),
//!     default_path: None, // "/health", unless http_paths says otherwise
//!     cors: None,         // http_default_cors_enabled decides
//!     routes: vec![("GET".into(), health)],
//! })
//! .unwrap();
//! assert_eq!(base, "/health");
//! ```
//!
//! Both transports parse what arrives with the same [`xmpp_core::XmlStream`]
//! TCP uses ([`fragment`]) and feed the elements to the same
//! [`xmpp_core::c2s::negotiation::C2sStream`], so SASL, binding and every
//! module behave alike on all three transports. The HTTP request that
//! opened a session is kept on it ([`xmpp_core::Session::transport`]) and
//! announced with `bosh-session` / `websocket-session`.

pub mod bosh;
pub mod config;
pub mod cors;
pub mod files;
pub mod fragment;
pub mod health;
mod io;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod websocket;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use xmpp_core::config::OptionError;
use xmpp_core::module::{LoadOutcome, ModuleError, Registry, manager};
use xmpp_core::{Host, Server, Value};

pub use routes::{Handler, HttpApp, HttpRequest, HttpResponse, handler, provide};
pub use server::{HttpError, HttpListeners, HttpListening};

use bosh::BoshService;
use config::HttpConfig;
use routes::{HttpRoutes, RouteError};
use websocket::WebSocketService;

/// A module of this crate failed to load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// The modules this crate provides.
pub const MODULES: &[&str] = &[
    "http",
    "http_errors",
    "http_files",
    "http_health",
    "bosh",
    "websocket",
];

/// Server-wide state of the HTTP service.
struct HttpState {
    shutdown: watch::Sender<bool>,
    bosh: OnceLock<Arc<BoshService>>,
    websocket: OnceLock<Arc<WebSocketService>>,
    /// Apps already provided globally.
    global_apps: Mutex<HashSet<String>>,
}

impl Default for HttpState {
    fn default() -> HttpState {
        HttpState {
            shutdown: watch::channel(false).0,
            bosh: OnceLock::new(),
            websocket: OnceLock::new(),
            global_apps: Mutex::new(HashSet::new()),
        }
    }
}

/// Registers this crate's modules: `http` (which installs the HTTP
/// service modules provide apps to), `http_errors`, `bosh`, `websocket`,
/// `http_files`, `http_health`.
pub fn register(registry: &mut Registry) {
    registry
        .add_loader("http", load_http)
        .add_builtin("http_errors")
        .add_loader("bosh", load_bosh)
        .add_loader("websocket", load_websocket)
        .add_loader("http_files", files::load)
        .add_loader("http_health", health::load);
}

/// Installs this crate as the server's HTTP service (what
/// `ModuleContext::provide_http` provides apps to); the listeners start
/// when any app is provided.
pub fn install(server: &Server) {
    xmpp_core::http::set_service(server, Arc::new(Service));
}

fn load_http(server: &Arc<Server>, _host: &Arc<Host>) -> Result<(), LoadError> {
    install(server);
    Ok(())
}

/// The route table as [`xmpp_core::http::HttpService`].
struct Service;

impl xmpp_core::http::HttpService for Service {
    fn provide(
        &self,
        server: &Arc<Server>,
        host: Option<&Arc<Host>>,
        app: HttpApp,
    ) -> Result<String, String> {
        provide(server, host, app).map_err(|e| e.to_string())
    }
    fn remove(&self, server: &Server, host: Option<&str>, app: &str) {
        let http_host = host
            .and_then(|h| server.host(h))
            .map(|h| routes::http_host(&h));
        server
            .extension::<HttpRoutes>()
            .remove_app(host, http_host.as_deref(), app);
    }
}

/// Loads module `name` of this crate on `host` through the server's
/// registry (adding this crate's modules to it where it lacks them).
pub fn load_module(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Result<LoadOutcome, ModuleError> {
    manager::register(server, |r| {
        let mut ours = Registry::new();
        register(&mut ours);
        r.add_missing(ours);
    });
    manager::load(server, host, name)
}

fn load_bosh(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), LoadError> {
    let config = HttpConfig::from_config(&server.config)?;
    let state = server.extension::<HttpState>();
    let service = state
        .bosh
        .get_or_init(|| {
            Arc::new(BoshService::new(
                server,
                config.bosh.clone(),
                config.unauthed_timeout,
                state.shutdown.subscribe(),
            ))
        })
        .clone();
    let route = |service: Arc<BoshService>| handler(move |req| service.clone().handle(req));
    let routes = ["GET", "GET /", "POST", "POST /"]
        .iter()
        .map(|k| (k.to_string(), route(service.clone())))
        .collect();
    provide_app(
        server,
        host,
        HttpApp {
            name: "bosh".into(),
            default_path: Some("/http-bind".into()),
            cors: Some(true),
            routes,
        },
    )
}

fn load_websocket(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), LoadError> {
    let config = HttpConfig::from_config(&server.config)?;
    let state = server.extension::<HttpState>();
    let service = state
        .websocket
        .get_or_init(|| {
            Arc::new(WebSocketService::new(
                server,
                config.websocket.clone(),
                config.unauthed_timeout,
                config.read_timeout,
                state.shutdown.subscribe(),
            ))
        })
        .clone();
    let route = |service: Arc<WebSocketService>| handler(move |req| service.clone().handle(req));
    let routes = ["GET", "GET /"]
        .iter()
        .map(|k| (k.to_string(), route(service.clone())))
        .collect();
    provide_app(
        server,
        host,
        HttpApp {
            name: "websocket".into(),
            default_path: Some("/xmpp-websocket".into()),
            cors: Some(true),
            routes,
        },
    )
}

/// Provides a global module's app: once for every host when the module is
/// in the global `modules_enabled` (Prosody serves it for `"*"`), else for
/// the host that loads it.
pub(crate) fn provide_app(
    server: &Arc<Server>,
    host: &Arc<Host>,
    app: HttpApp,
) -> Result<(), LoadError> {
    if enabled_globally(server, &app.name) {
        let state = server.extension::<HttpState>();
        let mut done = state.global_apps.lock().unwrap_or_else(|e| e.into_inner());
        if done.insert(app.name.clone()) {
            let name = app.name.clone();
            provide(server, None, app)?;
            let state = state.clone();
            xmpp_core::module::scope::on_unload(move || {
                state
                    .global_apps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name);
            });
        }
        return Ok(());
    }
    provide(server, Some(host), app)?;
    Ok(())
}

fn enabled_globally(server: &Server, name: &str) -> bool {
    let listed = |option: &str| {
        server
            .config
            .get_global(option)
            .and_then(Value::as_string_list)
            .is_some_and(|l| l.iter().any(|m| m == name))
    };
    listed("modules_enabled") && !listed("modules_disabled")
}

/// What [`start`] opened.
#[derive(Default)]
pub struct Started {
    pub listening: Vec<HttpListening>,
    /// The accept task of each of `listening`, in its order: aborting one
    /// stops accepting there, the connections made through it go on.
    pub accept_tasks: Vec<JoinHandle<()>>,
    /// The service's other tasks (shutdown of BOSH and WebSocket sessions).
    pub tasks: Vec<JoinHandle<()>>,
    /// For listeners a reload opens (None: no HTTP service was started).
    pub listeners: Option<HttpListeners>,
}

/// Starts the HTTP service when a module provided an app: the listeners,
/// and shutdown of BOSH and WebSocket sessions when `shutdown` flips.
pub fn start(
    server: &Arc<Server>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Started, StartError> {
    let routes = server.extension::<HttpRoutes>();
    if routes.is_empty() {
        return Ok(Started::default());
    }
    let config = HttpConfig::from_config(&server.config)?;
    let started = server::start(server, routes.clone(), config, tls, shutdown.clone())?;
    let addrs: Vec<(&str, std::net::SocketAddr)> =
        started.listening.iter().map(|l| (l.kind, l.addr)).collect();
    routes.log_urls(server, &addrs);
    xmpp_core::http::set_bound(server, &addrs);
    let state = server.extension::<HttpState>();
    let task = tokio::spawn(async move {
        let _ = shutdown.changed().await;
        state.shutdown.send_replace(true);
    });
    Ok(Started {
        listening: started.listening,
        accept_tasks: started.tasks,
        tasks: vec![task],
        listeners: Some(started.listeners),
    })
}

/// Why [`start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Open BOSH sessions (for statistics and tests).
pub fn bosh_sessions(server: &Server) -> usize {
    server
        .extension::<HttpState>()
        .bosh
        .get()
        .map_or(0, |b| b.session_count())
}
