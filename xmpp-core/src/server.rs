//! The server: hosts, the global event bus, bound sessions, storage drivers
//! and the clock. One [`Server`] is what Prosody's `prosody` global holds.
//!
//! The configuration ([`Server::config`]) and the host table follow a
//! reload: [`Server::reconfigure`] puts a new config in force and adds and
//! removes hosts to match it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::{HostKind, ServerConfig};
use crate::hooks::{Event, EventBus};
use crate::host::{Host, StorageDrivers};
use crate::live_config::LiveConfig;
use crate::session::SessionRegistry;

/// Wall-clock time for timestamps; fixed in tests so output is stable.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// Always this Unix time (seconds).
    Fixed(f64),
}

impl Clock {
    /// Unix time in seconds.
    pub fn now(&self) -> f64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            Clock::Fixed(t) => *t,
        }
    }
}

pub struct Server {
    /// The config in force (dereferences to [`ServerConfig`]; a reload
    /// replaces it, see [`Server::reconfigure`]).
    pub config: Arc<LiveConfig>,
    /// Global events (`prosody.events`).
    pub events: EventBus,
    hosts: RwLock<HashMap<String, Arc<Host>>>,
    pub sessions: SessionRegistry,
    pub storage: Arc<StorageDrivers>,
    pub clock: Clock,
    pub started: Instant,
    /// Server-wide state shared by global modules, one value per type (what
    /// Prosody's global modules keep in `module:shared`), e.g. the HTTP
    /// routes of modules loaded for `"*"`.
    extensions: crate::extensions::Extensions,
}

impl Server {
    /// A server for `config`, with a host per configured section and no
    /// modules loaded yet.
    pub fn new(config: ServerConfig, clock: Clock) -> Arc<Server> {
        let config = Arc::new(LiveConfig::new(Arc::new(config)));
        let storage = Arc::new(StorageDrivers::default());
        let hosts = config
            .hosts
            .iter()
            .map(|h| {
                (
                    h.name.clone(),
                    Arc::new(Host::new(
                        &h.name,
                        h.kind.clone(),
                        config.clone(),
                        storage.clone(),
                    )),
                )
            })
            .collect();
        Arc::new(Server {
            config,
            events: EventBus::new(),
            hosts: RwLock::new(hosts),
            sessions: SessionRegistry::default(),
            storage,
            clock,
            started: Instant::now(),
            extensions: Default::default(),
        })
    }

    /// A server with one VirtualHost `localhost`, for unit tests.
    pub fn for_tests() -> Arc<Server> {
        let mut cfg = ServerConfig::default();
        cfg.hosts.push(crate::config::HostConfig {
            name: "localhost".into(),
            kind: HostKind::VirtualHost,
            section: Default::default(),
            defined_at: Default::default(),
        });
        Server::new(cfg, Clock::Fixed(1219439344.0))
    }

    pub fn host(&self, name: &str) -> Option<Arc<Host>> {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
    pub fn hosts(&self) -> Vec<Arc<Host>> {
        let mut v: Vec<_> = self
            .hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
    pub fn is_local_host(&self, name: &str) -> bool {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Fires an event on the global bus.
    pub fn fire_global(self: &Arc<Self>, name: &str, event: &mut Event) -> bool {
        event.host = None;
        self.events.fire(name, event)
    }

    /// Fires an event on a host's bus.
    pub fn fire_on_host(self: &Arc<Self>, host: &Arc<Host>, name: &str, event: &mut Event) -> bool {
        event.host = Some(host.clone());
        host.events.fire(name, event)
    }

    /// The server's shared value of type `T`, created with `T::default()`
    /// on first use (as [`Host::extension`] is per host).
    pub fn extension<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        self.extensions.get()
    }

    /// Puts `config` in force: option reads from now on see it, hosts it
    /// declares that are not served yet are added (with no modules
    /// loaded), and hosts it no longer declares (or declares with another
    /// kind) are taken out of the table. The caller loads the added hosts'
    /// modules and winds the removed ones down.
    pub fn reconfigure(&self, config: ServerConfig) -> Reconfigured {
        let new_hosts: Vec<(String, HostKind)> = config
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.kind.clone()))
            .collect();
        self.config.replace(Arc::new(config));
        let mut done = Reconfigured::default();
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        let stale: Vec<String> = hosts
            .iter()
            .filter(|(name, host)| {
                !new_hosts
                    .iter()
                    .any(|(n, kind)| n == *name && *kind == host.kind)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(host) = hosts.remove(&name) {
                done.removed.push(host);
            }
        }
        for (name, kind) in new_hosts {
            if hosts.contains_key(&name) {
                continue;
            }
            let host = Arc::new(Host::new(
                &name,
                kind,
                self.config.clone(),
                self.storage.clone(),
            ));
            hosts.insert(name, host.clone());
            done.added.push(host);
        }
        done.removed.sort_by(|a, b| a.name.cmp(&b.name));
        done.added.sort_by(|a, b| a.name.cmp(&b.name));
        done
    }

    /// Seconds since start-up.
    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// What [`Server::reconfigure`] changed in the host table.
#[derive(Default)]
pub struct Reconfigured {
    /// New hosts, served from now on (no modules loaded yet).
    pub added: Vec<Arc<Host>>,
    /// Hosts no longer served (their sessions are still open).
    pub removed: Vec<Arc<Host>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostConfig;
    use crate::value::Value;

    fn host(name: &str, kind: HostKind, options: &[(&str, Value)]) -> HostConfig {
        let mut h = HostConfig {
            name: name.into(),
            kind,
            section: Default::default(),
            defined_at: Default::default(),
        };
        for (k, v) in options {
            h.section.set(*k, v.clone());
        }
        h
    }

    #[test]
    fn reconfigure_swaps_options_and_the_host_table() {
        let mut first = ServerConfig::default();
        first.global.set("limit", Value::Integer(1));
        first
            .hosts
            .push(host("a.example", HostKind::VirtualHost, &[]));
        first
            .hosts
            .push(host("b.example", HostKind::VirtualHost, &[]));
        let server = Server::new(first, Clock::Fixed(0.0));
        let a = server.host("a.example").unwrap();
        let b = server.host("b.example").unwrap();
        assert_eq!(a.option_i64("limit", 0).unwrap(), 1);

        let mut second = ServerConfig::default();
        second.global.set("limit", Value::Integer(2));
        second.hosts.push(host(
            "a.example",
            HostKind::VirtualHost,
            &[("limit", Value::Integer(3))],
        ));
        // b.example becomes a component: removed, then added anew.
        second
            .hosts
            .push(host("b.example", HostKind::Component { module: None }, &[]));
        second
            .hosts
            .push(host("c.example", HostKind::VirtualHost, &[]));
        let done = server.reconfigure(second);
        let names = |v: &[Arc<Host>]| v.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&done.removed), ["b.example"]);
        assert_eq!(names(&done.added), ["b.example", "c.example"]);
        assert!(Arc::ptr_eq(&done.removed[0], &b));
        // The same host object reads the new options; new hosts see them too.
        assert!(Arc::ptr_eq(&server.host("a.example").unwrap(), &a));
        assert_eq!(a.option_i64("limit", 0).unwrap(), 3);
        let c = server.host("c.example").unwrap();
        assert_eq!(c.option_i64("limit", 0).unwrap(), 2);
        assert_eq!(server.config.get_global("limit"), Some(&Value::Integer(2)));
        assert!(server.host("b.example").unwrap().is_component());
        assert_eq!(server.hosts().len(), 3);
    }
}
