//! Listening ports that follow the config, as Prosody's portmanager does on
//! `config-reloaded`: for each service the wanted (interface, port) pairs
//! are compared with the bound ones; a new pair is bound (a failure is
//! logged and the others go on), a removed one stops accepting while the
//! sessions that came through it stay.
//!
//! Services followed: `c2s` (`c2s_ports`), `c2s_direct_tls`
//! (`c2s_direct_tls_ports`), both on `c2s_interfaces` / `interfaces`; the
//! HTTP server's `http` and `https` (`http_ports`, `https_ports` and their
//! interfaces); `s2s` and `s2s_direct_tls` (`s2s_ports`,
//! `s2s_direct_tls_ports` on `s2s_interfaces` / `interfaces`) when s2s was
//! started; `component` (`component_ports` on `component_interfaces` /
//! `local_interfaces`) once the component listener is open.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use xmpp_core::config::OptionError;
use xmpp_core::listen;
use xmpp_core::{Server, ServerConfig};

/// Opens a listener on an address: the address bound (the port the
/// system chose for port 0) and its accept task.
pub type Open = Box<dyn Fn(SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> + Send>;

/// The addresses a config asks a service to listen on, in binding order.
pub type Wanted = fn(&ServerConfig) -> Result<Vec<SocketAddr>, OptionError>;

/// One listening service.
struct Service {
    kind: &'static str,
    wanted: Wanted,
    open: Open,
    /// (address as configured, address bound, accept task).
    bound: Vec<(SocketAddr, SocketAddr, JoinHandle<()>)>,
}

/// The services whose listeners follow a reload; shared by the running
/// server (which stops them at shutdown) and the reloader.
#[derive(Default)]
pub struct Listeners {
    services: Mutex<Vec<Service>>,
    /// What starting the HTTP server needs, while no module serves HTTP
    /// (the certificates, the shutdown signal).
    http_later: Mutex<Option<HttpLater>>,
}

type HttpLater = (Option<Arc<rustls::ServerConfig>>, watch::Receiver<bool>);

/// What [`Listeners::follow`] did, one line each.
#[derive(Debug, Default)]
pub struct Followed {
    pub opened: Vec<String>,
    pub closed: Vec<String>,
    pub failed: Vec<String>,
}

impl Listeners {
    pub fn new() -> Arc<Listeners> {
        Arc::new(Listeners::default())
    }

    /// Adds a service with the listeners start-up opened: `bound` pairs
    /// each configured address with the address bound and its task.
    pub fn add(
        &self,
        kind: &'static str,
        wanted: Wanted,
        open: Open,
        bound: Vec<(SocketAddr, SocketAddr, JoinHandle<()>)>,
    ) {
        self.lock().push(Service {
            kind,
            wanted,
            open,
            bound,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Service>> {
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses bound now, per service kind.
    pub fn bound(&self) -> Vec<(&'static str, SocketAddr)> {
        self.lock()
            .iter()
            .flat_map(|s| s.bound.iter().map(|(_, at, _)| (s.kind, *at)))
            .collect()
    }

    /// Brings every service's listeners in line with `config` (inside a
    /// Tokio runtime).
    pub fn follow(&self, config: &ServerConfig) -> Followed {
        let mut done = Followed::default();
        for service in self.lock().iter_mut() {
            let wanted = match (service.wanted)(config) {
                Ok(w) => w,
                Err(e) => {
                    done.failed
                        .push(format!("{} listeners unchanged: {e}", service.kind));
                    continue;
                }
            };
            // Removed: stop accepting (the accept task owns the socket;
            // connections run in tasks of their own and stay).
            let kind = service.kind;
            service.bound.retain(|(configured, at, task)| {
                if wanted.contains(configured) {
                    return true;
                }
                task.abort();
                tracing::info!(
                    target: "portmanager",
                    "Deactivated service '{kind}' on [{}]:{}",
                    at.ip(),
                    at.port()
                );
                done.closed
                    .push(format!("stopped listening for {kind} on {at}"));
                false
            });
            let several = wanted.len() > 1;
            for addr in wanted {
                if service.bound.iter().any(|(c, _, _)| *c == addr) {
                    continue;
                }
                match (service.open)(addr) {
                    Ok((at, task)) => {
                        tracing::info!(
                            target: "portmanager",
                            "Activated service '{kind}' on [{}]:{}",
                            at.ip(),
                            at.port()
                        );
                        done.opened.push(format!("listening for {kind} on {at}"));
                        service.bound.push((addr, at, task));
                    }
                    // `::` next to `*` on a dual-stack system: skipped, as
                    // at start-up.
                    Err(e) if addr.is_ipv6() && several => {
                        tracing::debug!("not listening on {addr}: {e}");
                    }
                    Err(e) => {
                        // Prosody's portmanager words it so.
                        tracing::error!(
                            target: "portmanager",
                            "Failed to open server port {} on {}, {e}",
                            addr.port(),
                            addr.ip()
                        );
                        done.failed.push(format!(
                            "cannot listen for {kind} on {addr}: {e}{}",
                            crate::startup::in_use_hint(&e)
                        ));
                    }
                }
            }
        }
        done
    }

    /// Follows the HTTP and HTTPS listeners [`bosh_websocket::start`]
    /// opened (`listening`, with their `accept` tasks in the same order).
    pub fn add_http(
        &self,
        listening: Vec<bosh_websocket::HttpListening>,
        accept: Vec<JoinHandle<()>>,
        opener: Option<bosh_websocket::HttpListeners>,
        config: &ServerConfig,
    ) -> Result<(), OptionError> {
        let Some(opener) = opener else {
            return Ok(());
        };
        let mut accept: Vec<_> = listening
            .iter()
            .map(|l| (l.kind, l.addr))
            .zip(accept)
            .collect();
        let plans: [(&'static str, Wanted); 2] = [("http", http_wanted), ("https", https_wanted)];
        for (kind, wanted) in plans {
            if !opener.serves(kind) {
                continue;
            }
            let (mine, rest): (Vec<_>, Vec<_>) =
                accept.into_iter().partition(|((k, _), _)| *k == kind);
            accept = rest;
            let bound = mine.into_iter().map(|((_, at), t)| (at, t)).collect();
            let bound = match_bound(&wanted(config)?, bound);
            let o = opener.clone();
            let open: Open = Box::new(move |addr| {
                o.listen(kind, addr).map_err(|e| match e {
                    bosh_websocket::HttpError::Bind { source, .. } => source,
                })
            });
            self.add(kind, wanted, open, bound);
        }
        Ok(())
    }

    /// No module serves HTTP at start: keeps what starting the HTTP server
    /// needs for the reload that loads one ([`Listeners::start_http`]).
    pub fn http_later(
        &self,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: watch::Receiver<bool>,
    ) {
        *self.http_later.lock().unwrap_or_else(|e| e.into_inner()) = Some((tls, shutdown));
    }

    /// Starts the HTTP server if it was not started and a module now
    /// serves HTTP (a reload loaded `bosh`, `websocket`, ...).
    pub fn start_http(&self, server: &Arc<Server>) -> Followed {
        let mut done = Followed::default();
        let mut later = self.http_later.lock().unwrap_or_else(|e| e.into_inner());
        let Some((tls, shutdown)) = later.clone() else {
            return done;
        };
        let started = match bosh_websocket::start(server, tls, shutdown) {
            Ok(s) if s.listeners.is_none() => return done,
            Ok(s) => s,
            Err(e) => {
                done.failed
                    .push(format!("cannot start the HTTP server: {e}"));
                return done;
            }
        };
        *later = None;
        for l in &started.listening {
            tracing::info!(
                target: "portmanager",
                "Activated service '{}' on [{}]:{}",
                l.kind,
                l.addr.ip(),
                l.addr.port()
            );
            done.opened
                .push(format!("listening for {} on {}", l.kind, l.addr));
        }
        // The task ending BOSH and WebSocket sessions at shutdown runs on
        // its own.
        drop(started.tasks);
        if let Err(e) = self.add_http(
            started.listening,
            started.accept_tasks,
            started.listeners,
            server.config.current(),
        ) {
            done.failed.push(e.to_string());
        }
        done
    }

    /// Follows the XEP-0114 component listener opened (at start, or by the
    /// reload that added the first external component) on `opened`.
    pub fn add_components(
        &self,
        server: &Arc<Server>,
        shutdown: watch::Receiver<bool>,
        opened: Vec<(SocketAddr, JoinHandle<()>)>,
    ) -> Result<(), OptionError> {
        let ctx = xmpp_core::component::ListenerContext::from_config(server, shutdown)?;
        let bound = match_bound(&component_wanted(&server.config)?, opened);
        let open: Open = Box::new(move |addr| {
            let listener = listen::bind(addr)?;
            let at = listener.local_addr()?;
            Ok((
                at,
                tokio::spawn(xmpp_core::component::serve(listener, ctx.clone())),
            ))
        });
        self.add("component", component_wanted, open, bound);
        Ok(())
    }

    /// Follows the s2s listeners [`xmpp_core::s2s::start`] opened on
    /// `opened` (plain ones first). When s2s was disabled at start, none
    /// are open and a reload that enables it opens them (and starts s2s).
    pub fn add_s2s(
        &self,
        server: &Arc<Server>,
        opened: Vec<(SocketAddr, JoinHandle<()>)>,
    ) -> Result<(), OptionError> {
        use xmpp_core::s2s::manager;
        let config = server.config.current();
        let plain = manager::wanted(config, false)?;
        let mut all = plain.clone();
        all.extend(manager::wanted(config, true)?);
        let (plain_bound, direct_bound): (Vec<_>, Vec<_>) = match_bound(&all, opened)
            .into_iter()
            .partition(|(configured, _, _)| plain.contains(configured));
        for (kind, direct_tls, bound) in [
            ("s2s", false, plain_bound),
            ("s2s_direct_tls", true, direct_bound),
        ] {
            let server = server.clone();
            let open: Open = Box::new(move |addr| manager::listen(&server, addr, direct_tls));
            let wanted: Wanted = if direct_tls {
                |c| xmpp_core::s2s::manager::wanted(c, true)
            } else {
                |c| xmpp_core::s2s::manager::wanted(c, false)
            };
            self.add(kind, wanted, open, bound);
        }
        Ok(())
    }

    /// Takes every accept task (at shutdown: they end when the shutdown
    /// signal flips).
    pub fn take_tasks(&self) -> Vec<JoinHandle<()>> {
        self.lock()
            .iter_mut()
            .flat_map(|s| s.bound.drain(..).map(|(_, _, t)| t))
            .collect()
    }
}

/// Every port of `ports` on every interface of `interfaces`, in binding
/// order (as [`listen::bind_all`] binds them).
fn pairs(
    ports: Result<Vec<u16>, OptionError>,
    interfaces: Result<Vec<std::net::IpAddr>, OptionError>,
) -> Result<Vec<SocketAddr>, OptionError> {
    let (ports, interfaces) = (ports?, interfaces?);
    Ok(ports
        .iter()
        .flat_map(|p| interfaces.iter().map(|ip| SocketAddr::new(*ip, *p)))
        .collect())
}

/// `c2s_ports` (5222) on the c2s interfaces.
pub fn c2s_wanted(config: &ServerConfig) -> Result<Vec<SocketAddr>, OptionError> {
    pairs(
        listen::ports(config, "c2s_ports", &[5222]),
        listen::service_interfaces(config, "c2s"),
    )
}

/// `c2s_direct_tls_ports` (none) on the c2s interfaces.
pub fn c2s_direct_tls_wanted(config: &ServerConfig) -> Result<Vec<SocketAddr>, OptionError> {
    pairs(
        listen::ports(config, "c2s_direct_tls_ports", &[]),
        listen::service_interfaces(config, "c2s"),
    )
}

/// `http_ports` on the HTTP interfaces.
pub fn http_wanted(config: &ServerConfig) -> Result<Vec<SocketAddr>, OptionError> {
    let c = bosh_websocket::config::HttpConfig::from_config(config)?;
    pairs(Ok(c.http_ports), Ok(c.http_interfaces))
}

/// `https_ports` on the HTTPS interfaces.
pub fn https_wanted(config: &ServerConfig) -> Result<Vec<SocketAddr>, OptionError> {
    let c = bosh_websocket::config::HttpConfig::from_config(config)?;
    pairs(Ok(c.https_ports), Ok(c.https_interfaces))
}

/// `component_ports` (5347) on the component interfaces.
pub fn component_wanted(config: &ServerConfig) -> Result<Vec<SocketAddr>, OptionError> {
    pairs(
        listen::ports(
            config,
            "component_ports",
            &[xmpp_core::component::DEFAULT_PORT],
        ),
        listen::private_service_interfaces(config, "component"),
    )
}

/// Pairs the listeners start-up bound (in binding order, some `::` maybe
/// skipped) with the configured addresses they came from.
pub fn match_bound(
    wanted: &[SocketAddr],
    bound: Vec<(SocketAddr, JoinHandle<()>)>,
) -> Vec<(SocketAddr, SocketAddr, JoinHandle<()>)> {
    let mut out = Vec::new();
    let mut rest = wanted.iter();
    for (at, task) in bound {
        // The next configured address of the same IP (port 0 was given a
        // port by the system).
        let configured = rest
            .by_ref()
            .find(|c| c.ip() == at.ip() && (c.port() == at.port() || c.port() == 0))
            .copied()
            .unwrap_or(at);
        out.push((configured, at, task));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(src: &str) -> ServerConfig {
        lua_compat::config::load_str(src, std::path::Path::new("/tmp/t.cfg.lua")).unwrap()
    }

    fn opener() -> Open {
        Box::new(|addr| {
            let l = listen::bind(addr)?;
            let at = l.local_addr()?;
            Ok((
                at,
                tokio::spawn(async move {
                    std::future::pending::<()>().await;
                    drop(l)
                }),
            ))
        })
    }

    #[tokio::test]
    async fn ports_added_are_bound_and_removed_ones_closed() {
        let listeners = Listeners::new();
        // Two free ports, found by binding and letting go.
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (a, b) = (free(), free());
        let first = cfg(&format!(
            "interfaces = {{ '127.0.0.1' }}\nc2s_ports = {{ {a} }}\n"
        ));
        listeners.add("c2s", c2s_wanted, opener(), Vec::new());
        let done = listeners.follow(&first);
        assert_eq!(done.opened.len(), 1, "{done:?}");
        let both = cfg(&format!(
            "interfaces = {{ '127.0.0.1' }}\nc2s_ports = {{ {a}, {b} }}\n"
        ));
        let done = listeners.follow(&both);
        assert_eq!(done.opened, [format!("listening for c2s on 127.0.0.1:{b}")]);
        assert!(done.closed.is_empty());
        let only_b = cfg(&format!(
            "interfaces = {{ '127.0.0.1' }}\nc2s_ports = {{ {b} }}\n"
        ));
        let done = listeners.follow(&only_b);
        assert_eq!(
            done.closed,
            [format!("stopped listening for c2s on 127.0.0.1:{a}")]
        );
        let d = free();
        assert_eq!(
            listeners.bound(),
            [("c2s", SocketAddr::from(([127, 0, 0, 1], b)))]
        );
        // A port taken by someone else: logged, the rest goes on.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = taken.local_addr().unwrap().port();
        let more = cfg(&format!(
            "interfaces = {{ '127.0.0.1' }}\nc2s_ports = {{ {b}, {c}, {d} }}\n"
        ));
        let done = listeners.follow(&more);
        assert_eq!(done.failed.len(), 1, "{done:?}");
        assert_eq!(done.opened, [format!("listening for c2s on 127.0.0.1:{d}")]);
        assert_eq!(listeners.take_tasks().len(), 2);
    }
}
