//! SIGHUP: reload without dropping anyone, as `systemctl reload` and
//! `lilt reload` (prosodyctl reload) ask.
//!
//! A reload re-reads the config file. A config that does not load, or
//! that start-up would refuse (`daemonize = true`, an unreadable
//! certificate named in `ssl`, a c2s or media option of the wrong type),
//! is refused (the error names file and line) and the server goes on as it
//! was. Otherwise:
//!
//! - the new config is put in force ([`xmpp_core::Server::reconfigure`]):
//!   every option read after this sees it (hosts and modules read options
//!   per use; each new c2s connection reads `c2s_*` then);
//! - hosts the config adds are served at once (auth provider, modules;
//!   `hosts::activate`), hosts it removes have their sessions closed
//!   with `host-gone` and their modules unloaded (`hosts::deactivate`);
//! - each remaining host's modules follow `modules_enabled` /
//!   `modules_disabled` ([`xmpp_core::module::manager::sync_host`]);
//! - the log sinks are replaced (files reopened, for logrotate; levels as
//!   the new `log` says) and the certificates read again;
//! - `config-reloaded` fires on the global bus, as in Prosody;
//! - the c2s and HTTP listeners follow their ports and interfaces
//!   ([`listeners`]): new ones are bound, removed ones stop accepting
//!   while the sessions made through them go on; the HTTP server reads its
//!   options per request, BOSH and WebSocket per new session
//!   (`c2s_stanza_size_limit`, `bosh_max_*`, `consider_*_secure`, CORS);
//! - the log says what changed, one line per change, and which changes
//!   wait for a restart (the s2s and component listeners' ports and
//!   interfaces, `data_path`, `sql`, ...: [`changes`]).

mod changes;
mod hosts;
pub mod listeners;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use xmpp_core::{Event, ServerConfig};

use crate::logging;
pub use changes::{Change, changes};

/// The TLS certificates a running server serves, replaceable on reload.
#[derive(Debug)]
pub struct Certificates {
    current: RwLock<Arc<dyn ResolvesServerCert>>,
}

impl Certificates {
    pub fn new(resolver: Arc<dyn ResolvesServerCert>) -> Arc<Certificates> {
        Arc::new(Certificates {
            current: RwLock::new(resolver),
        })
    }
    fn replace(&self, resolver: Arc<dyn ResolvesServerCert>) {
        if let Ok(mut current) = self.current.write() {
            *current = resolver;
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.resolve(hello)
    }
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
#[error("not reloading, the running configuration stays in force: {0}")]
pub struct ReloadError(String);

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Changes now in force.
    pub applied: Vec<String>,
    /// Changes that take effect at the next restart.
    pub needs_restart: Vec<String>,
    /// Problems met while applying (a log file that cannot be opened, ...).
    pub warnings: Vec<String>,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config reloaded, log files reopened")?;
        if !self.applied.is_empty() {
            write!(f, "; applied: {}", self.applied.join("; "))?;
        }
        if !self.needs_restart.is_empty() {
            write!(f, "; needs a restart: {}", self.needs_restart.join("; "))?;
        }
        if self.applied.is_empty() && self.needs_restart.is_empty() {
            f.write_str("; no option changed")?;
        }
        Ok(())
    }
}

/// Reloads a running server's config from its file.
pub struct Reloader {
    file: PathBuf,
    options: lua_compat::config::LoadOptions,
    /// The config the server was started with (what listeners and the
    /// HTTP server run with until a restart).
    started: ServerConfig,
    /// The config of the last successful reload (for what changed since).
    last: ServerConfig,
    certificates: Option<Arc<Certificates>>,
    /// The running server the config is put in force on (None: only logs
    /// and certificates are reloaded).
    server: Option<Arc<xmpp_core::Server>>,
    /// The shutdown signal for listeners a reload opens, and whether the
    /// XEP-0114 component listener is open yet.
    components: Option<(tokio::sync::watch::Receiver<bool>, bool)>,
    /// The listeners that follow the config (None: they stay as started).
    listeners: Option<Arc<listeners::Listeners>>,
}

impl Reloader {
    pub fn new(
        file: PathBuf,
        options: lua_compat::config::LoadOptions,
        started: ServerConfig,
        certificates: Option<Arc<Certificates>>,
    ) -> Reloader {
        Reloader {
            file,
            options,
            last: started.clone(),
            started,
            certificates,
            server: None,
            components: None,
            listeners: None,
        }
    }

    /// Lets a reload open and close the c2s and HTTP listeners as the new
    /// config's ports and interfaces say.
    pub fn with_listeners(mut self, listeners: Arc<listeners::Listeners>) -> Reloader {
        self.listeners = Some(listeners);
        self
    }

    /// Lets a reload open the component listener (`component_ports`) when
    /// it adds the first external `Component`; `listening`: it is open.
    pub fn with_component_listener(
        mut self,
        shutdown: tokio::sync::watch::Receiver<bool>,
        listening: bool,
    ) -> Reloader {
        self.components = Some((shutdown, listening));
        self
    }

    /// Opens the component listener if an external component now needs it.
    fn open_component_listener(
        &mut self,
        server: &Arc<xmpp_core::Server>,
        report: &mut ReloadReport,
    ) {
        let Some((shutdown, listening)) = &mut self.components else {
            return;
        };
        if *listening || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        match xmpp_core::component::start_listeners(server, shutdown.clone()) {
            Ok(opened) if opened.is_empty() => {}
            Ok(opened) => {
                *listening = true;
                for (addr, _task) in &opened {
                    report
                        .applied
                        .push(format!("listening for components on {addr}"));
                }
                // From now on its ports follow the config too.
                if let Some(listeners) = &self.listeners
                    && let Err(e) = listeners.add_components(server, shutdown.clone(), opened)
                {
                    report.warnings.push(e.to_string());
                }
            }
            Err(e) => report
                .warnings
                .push(format!("cannot listen for components: {e}")),
        }
    }

    /// Also puts the new config in force on `server`: its options, hosts
    /// and modules.
    pub fn with_server(mut self, server: Arc<xmpp_core::Server>) -> Reloader {
        self.server = Some(server);
        self
    }

    /// Brings every host's modules in line with `config`.
    fn sync_modules(
        &self,
        config: &ServerConfig,
        added: &[Arc<xmpp_core::Host>],
        report: &mut ReloadReport,
    ) {
        let Some(server) = &self.server else {
            return;
        };
        for host in server.hosts() {
            if config.host(&host.name).is_none() || added.iter().any(|a| Arc::ptr_eq(a, &host)) {
                continue;
            }
            let wanted = lua_compat::modulemanager::modules_for_host(config, &host.name);
            let done = xmpp_core::module::manager::sync_host(server, &host, &wanted);
            if !done.loaded.is_empty() {
                report.applied.push(format!(
                    "modules loaded on {}: {}",
                    host.name,
                    done.loaded.join(", ")
                ));
            }
            if !done.unloaded.is_empty() {
                report.applied.push(format!(
                    "modules unloaded from {}: {}",
                    host.name,
                    done.unloaded.join(", ")
                ));
            }
            for (name, why) in done.failed {
                report.warnings.push(format!(
                    "module {name} failed to load on {}: {why}",
                    host.name
                ));
            }
            let before = lua_compat::modulemanager::modules_for_host(&self.last, &host.name);
            for name in done.unknown.into_iter().filter(|n| !before.contains(n)) {
                report.warnings.push(format!(
                    "module {name:?} is not available in lilt; not loaded on {}",
                    host.name
                ));
            }
        }
    }

    /// Re-reads the config file and applies it; on error nothing changes.
    pub fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let config = lua_compat::config::load_with(&self.file, &self.options)
            .map_err(|e| ReloadError(e.to_string()))?;
        // What start-up would refuse, a reload refuses too.
        crate::process::check_foreground(&config)
            .and_then(|()| crate::process::check_certificates(&config))
            .map_err(|e| ReloadError(e.to_string()))?;
        xmpp_core::c2s::settings::from_config(&config, true)
            .map_err(|e| ReloadError(e.to_string()))?;
        crate::media::settings(&config).map_err(|e| ReloadError(e.to_string()))?;
        let mut report = ReloadReport {
            warnings: config.warnings.clone(),
            ..ReloadReport::default()
        };
        let changed_now = changes(&self.last, &config);
        // The new config first: hosts and modules loaded below read it.
        if let Some(server) = self.server.clone()
            && !changed_now.is_empty()
        {
            let table = server.reconfigure(config.clone());
            for host in &table.removed {
                hosts::deactivate(&server, host, &mut report);
            }
            for host in &table.added {
                hosts::activate(&server, host, &mut report);
            }
            if !table.added.is_empty() {
                self.open_component_listener(&server, &mut report);
            }
            self.sync_modules(&config, &table.added, &mut report);
        }
        if let Some(listeners) = &self.listeners
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let mut done = match &self.server {
                Some(server) => listeners.start_http(server),
                None => listeners::Followed::default(),
            };
            let followed = listeners.follow(&config);
            done.opened.extend(followed.opened);
            done.closed.extend(followed.closed);
            done.failed.extend(followed.failed);
            report.applied.extend(done.opened);
            report.applied.extend(done.closed);
            report.warnings.extend(done.failed);
        }
        let logging = logging::reload(&config);
        report.applied.extend(logging.changes);
        report.warnings.extend(logging.warnings);
        if let Some(certs) = &self.certificates {
            let (tls, warnings) = xmpp_core::tls::build_tls(&config);
            report.warnings.extend(warnings);
            match tls {
                Some(t) => {
                    certs.replace(t.config.cert_resolver.clone());
                    let mut hosts = t.hosts;
                    hosts.sort();
                    report
                        .applied
                        .push(format!("certificates reloaded for {}", hosts.join(", ")));
                }
                None => report
                    .warnings
                    .push("no certificate could be loaded; keeping the previous ones".into()),
            }
        }
        let modules_follow = self.server.is_some();
        for change in &changed_now {
            if change.is_log() || (modules_follow && change.is_module_list()) {
                // Worded by the logging reload and the module sync.
                continue;
            }
            if change.applied_at_run_time() && (modules_follow || !change.is_host()) {
                report.applied.push(change.to_string());
            }
        }
        // What still waits for a restart, since start-up (not only since
        // the last reload: it stays true until the restart).
        for change in changes(&self.started, &config) {
            if !change.applied_at_run_time() || (!modules_follow && change.is_host()) {
                report.needs_restart.push(change.to_string());
            }
        }
        if let Some(server) = &self.server {
            let mut event = Event::new(server, "config-reloaded")
                .with_field("filename", self.file.to_string_lossy().into_owned());
            server.fire_global("config-reloaded", &mut event);
        }
        self.last = config;
        Ok(report)
    }

    /// [`Reloader::reload`], logging the outcome: a line per change
    /// applied, a line per change waiting for a restart, then a summary.
    pub fn reload_and_log(&mut self) {
        tracing::info!(
            target: "mod_posix",
            "Received SIGHUP: reloading the config from {}",
            self.file.display()
        );
        match self.reload() {
            Ok(report) => {
                for w in &report.warnings {
                    tracing::warn!(target: "config", "{w}");
                }
                for change in &report.applied {
                    tracing::info!(target: "config", "Reload applied: {change}");
                }
                for change in &report.needs_restart {
                    tracing::warn!(target: "config", "Reload: {change}, in force after a restart");
                }
                tracing::info!(target: "config", "{report}");
            }
            Err(e) => tracing::error!(target: "config", "{e}"),
        }
    }
}

/// The signals a running server serves (SIGTERM, SIGINT, SIGHUP), installed
/// before it announces its listeners: a SIGHUP sent as soon as the server
/// answers waits for the reload loop instead of being lost.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside the runtime); None if that fails.
    pub fn install() -> Option<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }
}

/// Serves signals until SIGTERM or SIGINT: SIGHUP reloads.
pub async fn until_stopped(mut reloader: Reloader, signals: Option<Signals>) {
    let Some(Signals {
        mut term,
        mut int,
        mut hup,
    }) = signals.or_else(Signals::install)
    else {
        tracing::error!("cannot install signal handlers; stopping on Ctrl-C only");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!(target: "mod_posix", "Received SIGTERM");
                return;
            }
            _ = int.recv() => {
                tracing::info!(target: "mod_posix", "Received SIGINT");
                return;
            }
            _ = hup.recv() => {
                // Reading files and building TLS keys blocks; not on a worker.
                reloader = match tokio::task::spawn_blocking(move || {
                    reloader.reload_and_log();
                    reloader
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("reload failed: {e}");
                        return;
                    }
                };
            }
        }
    }
}
