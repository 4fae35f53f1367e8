//! Starting and stopping a server from a loaded configuration: storage
//! drivers, auth providers and modules per host, then the listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use xmpp_core::c2s::{ListenerContext, serve};
use xmpp_core::config::OptionError;
use xmpp_core::listen;
use xmpp_core::module::{LoadOutcome, Registry, manager};
use xmpp_core::{Clock, HostKind, Server, ServerConfig, Value};

use crate::reload::listeners::{self, Listeners};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("cannot listen on {addr} for {kind}: {source}{}", in_use_hint(source))]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("host {host}: {reason}")]
    Host { host: String, reason: String },
    #[error(transparent)]
    Http(#[from] bosh_websocket::StartError),
    #[error("{0}")]
    Media(String),
}

pub(crate) fn in_use_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        " (is another XMPP server, or another lilt, already running and using this port?)"
    } else {
        ""
    }
}

impl StartError {
    /// The exit status for this failure ([`crate::process::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::process::exit;
        match self {
            StartError::Bind { .. } => exit::UNAVAILABLE,
            StartError::Option(_) | StartError::Host { .. } => exit::CONFIG,
            StartError::Http(_) | StartError::Media(_) => exit::FAILURE,
        }
    }
}

/// A listening socket, as printed at start-up.
#[derive(Debug, Clone)]
pub struct Listening {
    pub kind: &'static str,
    pub addr: SocketAddr,
}

/// A started server.
pub struct RunningServer {
    pub server: Arc<Server>,
    pub listening: Vec<Listening>,
    /// The certificates served, replaced on reload (None: no TLS).
    pub certificates: Option<Arc<crate::reload::Certificates>>,
    /// The c2s, HTTP, s2s and component listeners, which follow a reload
    /// ([`crate::reload::Reloader::with_listeners`]).
    pub listeners: Arc<Listeners>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The in-process focus and bridge: stopped first at shutdown.
    media_tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// A receiver that flips to true at shutdown (for listeners opened later,
    /// by a reload).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Closes every stream (`system-shutdown`) and stops listening.
    pub async fn shutdown(self) {
        // Prosody's `server-stopping` is not fired yet: with it the MUC would
        // save temporary rooms' state as Prosody 13 does, which Prosody 0.12
        // then reads as existing rooms (see the closing note of issue 4).
        for t in &self.media_tasks {
            t.abort();
        }
        let _ = self.shutdown.send(true);
        // XEP-0198: hibernating sessions end, their counters kept.
        xmpp_core::smacks::server_stopping(&self.server);
        for t in self.tasks.into_iter().chain(self.listeners.take_tasks()) {
            let _ = t.await;
        }
        // Give connection tasks a moment to flush their closing bytes.
        for _ in 0..50 {
            if self.server.sessions.all().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where Prosody keeps data when `data_path` is not set (Debian's build).
pub const DEFAULT_DATA_PATH: &str = "/var/lib/prosody";

/// The data directory for this config.
pub fn data_path(config: &ServerConfig) -> PathBuf {
    config
        .get_global("data_path")
        .and_then(Value::as_str)
        .map(|p| config.resolve_path(p))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_PATH))
}

/// What lilt could not provide for a config: modules it does not have
/// (with the hosts that asked) and auth providers it does not have.
#[derive(Debug, Default)]
pub struct Unsupported {
    pub modules: Vec<(String, Vec<String>)>,
    pub auth: Vec<String>,
}

impl Unsupported {
    /// One line each, as logged at start-up and printed by `check config`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = self.auth.clone();
        for (name, hosts) in &self.modules {
            out.push(format!(
                "module {name:?} {}; not loaded on {}",
                why_unavailable(name),
                hosts.join(", ")
            ));
        }
        out
    }
    /// What the config itself asks for and lilt lacks: everything but the
    /// modules Prosody loads on its own (`s2s`, ...), which every config
    /// gets, and those lilt deliberately does without ([`Self::not_needed`]).
    pub fn requested(&self) -> Vec<String> {
        self.only(
            |m| {
                !lua_compat::modulemanager::AUTOLOAD_MODULES.contains(&m)
                    && !NOT_NEEDED.contains(&m)
            },
            true,
        )
    }

    /// Modules the config asks for that lilt deliberately does without
    /// (`posix`: lilt leaves daemonising to the service manager): named by
    /// `check config`, but not problems of the config.
    pub fn not_needed(&self) -> Vec<String> {
        self.only(|m| NOT_NEEDED.contains(&m), false)
    }

    fn only(&self, keep: impl Fn(&str) -> bool, with_auth: bool) -> Vec<String> {
        Unsupported {
            modules: self
                .modules
                .iter()
                .filter(|(m, _)| keep(m))
                .cloned()
                .collect(),
            auth: if with_auth {
                self.auth.clone()
            } else {
                Vec::new()
            },
        }
        .lines()
    }
}

/// Modules of Prosody's configs that lilt deliberately does without.
const NOT_NEEDED: &[&str] = &["posix"];

/// Why lilt does not load a module, for the start-up warning and `check
/// config`: what is not needed in lilt, what is out of its scope so far
/// (Prosody's admin console), and the general IM modules
/// that Jitsi Meet does not use and lilt does not have yet.
fn why_unavailable(name: &str) -> &'static str {
    match name {
        "posix" => {
            "is not needed: lilt runs in the foreground and leaves daemonising, \
             pidfiles and user switching to the service manager (systemd, docker)"
        }
        "admin_telnet" => {
            "is not available: lilt's console is admin_shell (`lilt shell`, or prosodyctl shell), \
             on the admin_socket; telnet to port 5582 is not served"
        }
        "watchregistrations" => {
            "is run from Prosody's own module file (mod_<name>.lua in /usr/lib/prosody/modules \
             or on plugin_paths), and none was found"
        }
        "groups" | "proxy65" | "mimicking" | "cloud_notify" => {
            "is a general IM module Jitsi Meet does not use, and lilt does not have it yet"
        }
        _ => "is not available in lilt",
    }
}

/// Builds the server: storage, auth and modules on every host. What lilt
/// does not have is logged once (modules by name, with the hosts that
/// asked) and the server runs without it. [`crate::ServerBuilder`] does
/// the same with modules of one's own.
pub fn build_server(config: ServerConfig, clock: Clock) -> Result<Arc<Server>, StartError> {
    crate::ServerBuilder::new(config).clock(clock).build()
}

/// [`build_server`], returning what is unsupported instead of logging it.
pub fn build_server_reporting(
    config: ServerConfig,
    clock: Clock,
) -> Result<(Arc<Server>, Unsupported), StartError> {
    crate::ServerBuilder::new(config)
        .clock(clock)
        .build_reporting()
}

/// Builds the server with the modules of `registry`: each host loads what
/// its `modules_enabled`, `modules_disabled`, component module and the
/// autoloaded modules say (Prosody's modulemanager, in
/// [`lua_compat::modulemanager::modules_for_host`]).
pub(crate) fn build_with_registry(
    config: ServerConfig,
    clock: Clock,
    registry: Registry,
) -> Result<(Arc<Server>, Unsupported), StartError> {
    let data = data_path(&config);
    let mut registry = registry;
    // Names no Rust module has: `mod_<name>.lua` on `plugin_paths`.
    if let Some(fallback) = crate::lua_modules::fallback(&config) {
        crate::lua_modules::prefer_lua(&config, &mut registry);
        registry.set_fallback(fallback);
    }
    let server = Server::new(config, clock);
    modules::storage::register_builtin_drivers(&server, data.clone());
    storage_sql::register(&server, &data);
    manager::set_registry(&server, registry);
    let mut unsupported = Unsupported::default();
    for host in server.hosts() {
        let activated = activate_host(&server, &host)?;
        unsupported.auth.extend(activated.auth_problem);
        for name in activated.unknown_modules {
            match unsupported.modules.iter_mut().find(|(m, _)| *m == name) {
                Some((_, hosts)) => hosts.push(host.name.clone()),
                None => unsupported.modules.push((name, vec![host.name.clone()])),
            }
        }
    }
    // The in-process focus and bridge start with the listeners; their
    // options are checked now, so `check config` reports them too.
    crate::media::settings(&server.config)?;
    Ok((server, unsupported))
}

/// What bringing a host into service found missing.
#[derive(Debug, Default)]
pub(crate) struct Activated {
    /// The auth provider is one lilt lacks (nobody can log in).
    pub auth_problem: Option<String>,
    /// Modules the host asks for that lilt does not have.
    pub unknown_modules: Vec<String>,
}

/// Brings a host into service: its auth provider, its modules (as the
/// config in force lists them) and, for a `Component` without a module,
/// mod_component. At start-up and for a host a reload adds.
pub(crate) fn activate_host(
    server: &Arc<Server>,
    host: &Arc<xmpp_core::Host>,
) -> Result<Activated, StartError> {
    let mut activated = Activated::default();
    if !host.is_component() {
        activated.auth_problem = install_auth_provider(host)?;
    }
    for name in lua_compat::modulemanager::modules_for_host(&server.config, &host.name) {
        match manager::load(server, host, &name) {
            Ok(LoadOutcome::Loaded) => {}
            Ok(LoadOutcome::Unknown) => activated.unknown_modules.push(name),
            Err(e) => {
                return Err(StartError::Host {
                    host: host.name.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    if let HostKind::Component { module: None } = &host.kind {
        // mod_component: served by an external (XEP-0114) or in-process component.
        xmpp_core::component::load(host);
    }
    Ok(activated)
}

/// Sets the host's auth provider. A provider lilt does not have yet is
/// returned as a problem and the host keeps running without logins, as
/// Prosody does when an auth module fails to load.
fn install_auth_provider(host: &Arc<xmpp_core::Host>) -> Result<Option<String>, StartError> {
    let fail = |e: auth::AuthError| StartError::Host {
        host: host.name.clone(),
        reason: e.to_string(),
    };
    match auth::provider_for_host(host) {
        Ok(p) => host.set_auth_provider(p),
        Err(
            e @ (auth::AuthError::ProviderNotYetImplemented { .. }
            | auth::AuthError::UnknownProvider { .. }),
        ) => {
            return Ok(Some(format!(
                "{e}; nobody can log in to {} until this is fixed",
                host.name
            )));
        }
        Err(e) => return Err(fail(e)),
    }
    Ok(None)
}

/// Starts listening for clients.
pub async fn start(server: Arc<Server>) -> Result<RunningServer, StartError> {
    let config = server.config.current().clone();
    let (tls, warnings) = xmpp_core::tls::build_tls(&config);
    for w in warnings {
        tracing::warn!("{w}");
    }
    // The certificates go through a resolver a reload can swap.
    let (tls_config, certificates) = match &tls {
        Some(t) => {
            let certs = crate::reload::Certificates::new(t.config.cert_resolver.clone());
            let mut cfg = (*t.config).clone();
            cfg.cert_resolver = certs.clone();
            (Some(Arc::new(cfg)), Some(certs))
        }
        None => (None, None),
    };
    let keepalive = config
        .get_global("network_settings")
        .and_then(|n| n.get("read_timeout"))
        .and_then(Value::as_i64)
        .unwrap_or(840)
        .max(1) as u64;
    // server_epoll's defaults (send_timeout as bosh-websocket reads it).
    let network = |name: &str, default: i64| {
        config
            .get_global("network_settings")
            .and_then(|n| n.get(name))
            .and_then(Value::as_i64)
            .unwrap_or(default)
            .max(1) as u64
    };
    let send_timeout = network("send_timeout", 180);
    let handshake_timeout = network("ssl_handshake_timeout", 60);
    // Read again for every connection, from the config in force then.
    let settings = xmpp_core::c2s::settings::from_config(&config, tls.is_some())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ctx = ListenerContext {
        server: server.clone(),
        tls: tls_config.clone().map(TlsAcceptor::from),
        settings,
        follow_config: true,
        keepalive: Duration::from_secs(keepalive),
        send_timeout: Duration::from_secs(send_timeout),
        handshake_timeout: Duration::from_secs(handshake_timeout),
        shutdown: shutdown_rx,
    };
    let mut listening = Vec::new();
    let mut tasks = Vec::new();
    let followed = Listeners::new();
    let ifaces = listen::service_interfaces(&config, "c2s")?;
    let plans: [(&'static str, Vec<u16>, bool, listeners::Wanted); 2] = [
        (
            "c2s",
            listen::ports(&config, "c2s_ports", &[5222])?,
            false,
            listeners::c2s_wanted,
        ),
        (
            "c2s_direct_tls",
            listen::ports(&config, "c2s_direct_tls_ports", &[])?,
            true,
            listeners::c2s_direct_tls_wanted,
        ),
    ];
    for (kind, port_list, direct, wanted) in plans {
        if direct && ctx.tls.is_none() {
            if !port_list.is_empty() {
                tracing::warn!(
                    "c2s_direct_tls_ports is set but no certificate is available; not listening for direct TLS"
                );
            }
            continue;
        }
        let listeners = listen::bind_all(&port_list, &ifaces)
            .map_err(|(addr, source)| StartError::Bind { kind, addr, source })?;
        let mut bound = Vec::new();
        for listener in listeners {
            if let Ok(addr) = listener.local_addr() {
                listening.push(Listening { kind, addr });
                bound.push((addr, tokio::spawn(serve(listener, ctx.clone(), direct))));
            }
        }
        let c = ctx.clone();
        let open: listeners::Open = Box::new(move |addr| {
            let listener = listen::bind(addr)?;
            let at = listener.local_addr()?;
            Ok((at, tokio::spawn(serve(listener, c.clone(), direct))))
        });
        let bound = listeners::match_bound(&wanted(&config)?, bound);
        followed.add(kind, wanted, open, bound);
    }
    // lilt's own focus and bridge (jitsi_focus, jitsi_videobridge), before
    // the HTTP server: the bridge's channel routes are mounted on it.
    let media = crate::media::settings(&config)?;
    let started_media = crate::media::start(&server, &media)
        .await
        .map_err(|e| StartError::Media(e.to_string()))?;
    for (kind, addr) in started_media.listening {
        listening.push(Listening { kind, addr });
    }
    // HTTP (BOSH, WebSocket, module routes), when a module serves any.
    let http = bosh_websocket::start(&server, tls_config.clone(), ctx.shutdown.clone())?;
    listening.extend(http.listening.iter().map(|l| Listening {
        kind: l.kind,
        addr: l.addr,
    }));
    tasks.extend(http.tasks);
    if http.listeners.is_some() {
        followed.add_http(http.listening, http.accept_tasks, http.listeners, &config)?;
    } else {
        // No module serves HTTP yet: the reload that loads one starts it.
        followed.http_later(tls_config.clone(), ctx.shutdown.clone());
    }
    // External components (XEP-0114), when a host is served by one.
    use xmpp_core::component::{ListenError, start_listeners};
    let components = start_listeners(&server, ctx.shutdown.clone()).map_err(|e| match e {
        ListenError::Option(e) => StartError::Option(e),
        ListenError::Bind { addr, source } => StartError::Bind {
            kind: "component",
            addr,
            source,
        },
    })?;
    for (addr, _) in &components {
        listening.push(Listening {
            kind: "component",
            addr: *addr,
        });
    }
    if !components.is_empty() {
        followed.add_components(&server, ctx.shutdown.clone(), components)?;
    }
    // Prosody's console (mod_admin_shell on mod_admin_socket): a socket
    // that cannot be made is logged, as Prosody does, and the server runs.
    if crate::shell::enabled(&config) {
        match crate::shell::start(server.clone(), ctx.shutdown.clone()) {
            Ok((path, task)) => {
                tracing::debug!(target: "admin_socket", "console on {}", path.display());
                tasks.push(task);
            }
            Err(e) => tracing::error!(
                target: "admin_socket",
                "Unable to bind admin socket {}: {e}",
                crate::shell::socket_path(&config).display()
            ),
        }
    }
    // Server-to-server connections (federation), unless disabled.
    let s2s = xmpp_core::s2s::start(&server, ctx.shutdown.clone()).map_err(|e| match e {
        xmpp_core::s2s::manager::StartError::Option(e) => StartError::Option(e),
    })?;
    for (addr, _) in &s2s {
        listening.push(Listening {
            kind: "s2s",
            addr: *addr,
        });
    }
    followed.add_s2s(&server, s2s)?;
    let mut started = xmpp_core::Event::new(&server, "server-started");
    server.fire_global("server-started", &mut started);
    Ok(RunningServer {
        server,
        listening,
        certificates,
        listeners: followed,
        shutdown: shutdown_tx,
        tasks,
        media_tasks: started_media.tasks,
    })
}

/// A server with only its storage drivers, for account commands.
pub fn build_storage_only(config: ServerConfig, clock: Clock) -> Arc<Server> {
    let data = data_path(&config);
    let server = Server::new(config, clock);
    modules::storage::register_builtin_drivers(&server, data.clone());
    storage_sql::register(&server, &data);
    server
}
