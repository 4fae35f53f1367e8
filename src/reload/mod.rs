//! SIGHUP: reload without dropping anyone, as `systemctl reload` and
//! `lilt reload` (prosodyctl reload) ask.
//!
//! A reload re-reads the config file. A config that does not load, or
//! that start-up would refuse (`daemonize = true`, an unreadable
//! certificate named in `ssl`), is refused (the error names file and line)
//! and the server goes on as it was. Otherwise the log sinks are replaced (every file reopened, for
//! logrotate; levels and sinks changed as the new `log` says), the
//! certificates are read again, each host's modules are brought in line
//! with the new `modules_enabled`/`modules_disabled` (modules no longer
//! listed are unloaded with everything they registered, new ones loaded:
//! [`xmpp_core::module::manager::sync_host`]), and the log says what
//! changed and which changes need a restart (hosts and the other options
//! are read once at start-up for now; a module loaded at reload reads the
//! options the server started with).

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use xmpp_core::config::Section;
use xmpp_core::{HostKind, ServerConfig};

use crate::logging;

/// Options a reload puts in force without a restart.
const APPLIED_AT_RUN_TIME: &[&str] = &[
    "log",
    "debug",
    "syslog_facility",
    "certificates",
    "ssl",
    "pidfile",
];

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
    /// The config the server was started with (what modules, hosts and
    /// listeners run with).
    started: ServerConfig,
    /// The config of the last successful reload (for what changed since).
    last: ServerConfig,
    certificates: Option<Arc<Certificates>>,
    /// The running server whose modules follow the config (None: only
    /// logs and certificates are reloaded).
    server: Option<Arc<xmpp_core::Server>>,
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
        }
    }

    /// Also loads and unloads `server`'s modules as the new config says.
    pub fn with_server(mut self, server: Arc<xmpp_core::Server>) -> Reloader {
        self.server = Some(server);
        self
    }

    /// Brings every host's modules in line with `config`.
    fn sync_modules(&self, config: &ServerConfig, report: &mut ReloadReport) {
        let Some(server) = &self.server else {
            return;
        };
        for host in server.hosts() {
            if config.host(&host.name).is_none() {
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
        let mut report = ReloadReport {
            warnings: config.warnings.clone(),
            ..ReloadReport::default()
        };
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
        self.sync_modules(&config, &mut report);
        let modules_follow = self.server.is_some();
        let changed_now = changes(&self.last, &config);
        for change in changes(&self.started, &config) {
            if modules_follow && change.is_module_list() {
                continue;
            }
            if change.applied_at_run_time() {
                if changed_now.contains(&change) && !change.is_log() {
                    report.applied.push(change.to_string());
                }
            } else {
                report.needs_restart.push(change.to_string());
            }
        }
        self.last = config;
        Ok(report)
    }

    /// [`Reloader::reload`], logging the outcome.
    pub fn reload_and_log(&mut self) {
        tracing::info!(
            target: "mod_posix",
            "Received SIGHUP: reloading the config from {}",
            self.file.display()
        );
        match self.reload() {
            Ok(report) => {
                for w in &report.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!("{report}");
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
}

/// One difference between two configs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Option { host: Option<String>, name: String },
    HostAdded(String, bool),
    HostRemoved(String, bool),
}

impl Change {
    fn applied_at_run_time(&self) -> bool {
        matches!(self, Change::Option { name, .. } if APPLIED_AT_RUN_TIME.contains(&name.as_str()))
    }
    fn is_module_list(&self) -> bool {
        matches!(self, Change::Option { name, .. } if name == "modules_enabled" || name == "modules_disabled")
    }
    fn is_log(&self) -> bool {
        matches!(self, Change::Option { name, host: None } if name == "log")
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |component: &bool| {
            if *component {
                "Component"
            } else {
                "VirtualHost"
            }
        };
        match self {
            Change::Option { host: None, name } => write!(f, "option {name} changed"),
            Change::Option {
                host: Some(h),
                name,
            } => write!(f, "option {name} of {h} changed"),
            Change::HostAdded(h, c) => write!(f, "{} {h:?} added", kind(c)),
            Change::HostRemoved(h, c) => write!(f, "{} {h:?} removed", kind(c)),
        }
    }
}

fn section_changes(host: Option<&str>, old: &Section, new: &Section, out: &mut Vec<Change>) {
    let names: BTreeSet<&String> = old.options.keys().chain(new.options.keys()).collect();
    for name in names {
        if old.options.get(name) != new.options.get(name) {
            out.push(Change::Option {
                host: host.map(str::to_string),
                name: name.clone(),
            });
        }
    }
}

fn changes(old: &ServerConfig, new: &ServerConfig) -> Vec<Change> {
    let mut out = Vec::new();
    section_changes(None, &old.global, &new.global, &mut out);
    let is_component = |k: &HostKind| matches!(k, HostKind::Component { .. });
    for h in &new.hosts {
        match old.host(&h.name) {
            Some(o) if o.kind == h.kind => {
                section_changes(Some(&h.name), &o.section, &h.section, &mut out)
            }
            Some(o) => {
                out.push(Change::HostRemoved(o.name.clone(), is_component(&o.kind)));
                out.push(Change::HostAdded(h.name.clone(), is_component(&h.kind)));
            }
            None => out.push(Change::HostAdded(h.name.clone(), is_component(&h.kind))),
        }
    }
    for o in &old.hosts {
        if new.host(&o.name).is_none() {
            out.push(Change::HostRemoved(o.name.clone(), is_component(&o.kind)));
        }
    }
    out
}

/// Serves signals until SIGTERM or SIGINT: SIGHUP reloads.
pub async fn until_stopped(mut reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::Value;

    fn cfg(src: &str) -> ServerConfig {
        lua_compat::config::load_str(src, std::path::Path::new("/tmp/t.cfg.lua")).unwrap()
    }

    #[test]
    fn changes_name_options_and_hosts() {
        let old = cfg("log = 'a'\nmodules_enabled = { 'ping' }\nVirtualHost 'a.example'\n");
        let new = cfg(
            "log = 'b'\nmodules_enabled = { 'ping', 'time' }\nVirtualHost 'a.example'\nfoo = 1\nComponent 'c.example' 'muc'\n",
        );
        let c = changes(&old, &new);
        let text: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "option log changed",
                "option modules_enabled changed",
                "option foo of a.example changed",
                "Component \"c.example\" added"
            ]
        );
        assert!(c[0].applied_at_run_time());
        assert!(!c[1].applied_at_run_time());
        assert!(changes(&new, &new).is_empty());
        assert_eq!(
            new.host("a.example").and_then(|h| h.section.get("foo")),
            Some(&Value::Integer(1))
        );
    }
}
