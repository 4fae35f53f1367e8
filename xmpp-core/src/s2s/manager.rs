//! The s2s manager, as Prosody's mod_s2s keeps `hosts[from].s2sout[to]`:
//! one outgoing route per (local host, remote domain), created by the first
//! stanza for the domain and queued until its stream is authenticated;
//! dialback verification requests from incoming streams travel over the
//! same routes and their answers are handed back here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::certs::S2sTls;
use super::dialback::Dialback;
use super::filter::DomainFilter;
use super::policy::Policy;
use crate::config::{OptionError, ServerConfig};
use crate::error::{ErrorType, StanzaError};
use crate::jid::Jid;
use crate::router::is_reply_type;
use crate::server::Server;
use crate::session::Session;
use crate::stanza::Element;
use crate::stream::StreamLimits;
use crate::value::Value;

/// Prosody's default `s2s_stanza_size_limit`.
pub const DEFAULT_STANZA_SIZE_LIMIT: usize = 512 * 1024;

/// What a running s2s service knows (set by [`start`]).
pub(crate) struct Context {
    pub policy: Policy,
    pub dialback: Dialback,
    pub tls: S2sTls,
    pub limits: StreamLimits,
    /// `s2s_timeout`: how long a new route may take to authenticate.
    pub connect_timeout: Duration,
    /// `network_settings.read_timeout`: whitespace keepalive after this.
    pub keepalive: Duration,
    /// `s2s_idle_timeout` (mod_s2s_idle_timeout's option, 300 s): an
    /// outgoing stream with no stanza for this long is closed.
    pub idle_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Addresses used instead of DNS, for embedders and tests that have no
    /// resolver (empty in a normal start).
    pub static_targets: HashMap<String, Vec<super::resolve::Target>>,
}

/// What goes to an outgoing route's task.
pub(crate) enum RouteCmd {
    Stanza(Element),
    Verify { id: String, key: String },
}

/// Who waits for a dialback verification: (local, remote, stream id).
type VerifyKey = (String, String, String);
/// An incoming stream's channel for verification answers.
pub(crate) type VerifyTx = mpsc::UnboundedSender<(String, String, bool)>;

/// The outgoing routes and pending verifications of one server.
#[derive(Default)]
pub struct S2sManager {
    ctx: OnceLock<Arc<Context>>,
    routes: Mutex<HashMap<(String, String), mpsc::UnboundedSender<RouteCmd>>>,
    verifies: Mutex<HashMap<VerifyKey, VerifyTx>>,
    /// Incoming bidirectional streams (XEP-0288) that carry our stanzas
    /// for their domain, by (local host, remote domain).
    bidi: Mutex<HashMap<(String, String), mpsc::UnboundedSender<Element>>>,
    /// What [`start`] was given, for starting later when s2s was disabled
    /// then and a reload enables it ([`listen`]).
    later: Mutex<Option<Later>>,
    /// What a reload changes while streams run (see [`super::reload`]).
    pub(crate) live: Mutex<Live>,
    /// Bumped by each reload: every stream checks it is still allowed.
    pub(crate) reloads: Reloads,
    /// The `config-reloaded` hook is in place.
    pub(crate) hooked: OnceLock<()>,
}

/// Whether s2s is on and which domains each host may federate with, as
/// the config in force says.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    /// `false` once a reload disabled s2s (`modules_disabled`,
    /// `disallow_s2s`) after it had been started.
    pub disabled: bool,
    pub filter: Option<DomainFilter>,
}

pub(crate) struct Reloads(pub watch::Sender<u64>);

impl Default for Reloads {
    fn default() -> Reloads {
        Reloads(watch::channel(0).0)
    }
}

type Later = (
    watch::Receiver<bool>,
    HashMap<String, Vec<super::resolve::Target>>,
);

impl S2sManager {
    pub(crate) fn context(&self) -> Option<Arc<Context>> {
        self.ctx.get().cloned()
    }

    /// Is s2s running (so remote stanzas are routed rather than refused)?
    pub fn is_running(&self) -> bool {
        self.ctx.get().is_some() && !lock(&self.live).disabled
    }

    /// The whitelists and blacklists in force.
    pub(crate) fn filter(&self) -> DomainFilter {
        let live = lock(&self.live);
        match (&live.filter, self.ctx.get()) {
            (Some(f), _) => f.clone(),
            (None, Some(ctx)) => ctx.policy.filter.clone(),
            (None, None) => DomainFilter::default(),
        }
    }

    /// May a stream between `local` (when known) and `remote` go on?
    /// `Err` with the stream error to close it with when not.
    pub(crate) fn still_allowed(
        &self,
        local: Option<&str>,
        remote: Option<&str>,
    ) -> Result<(), crate::error::StreamError> {
        use crate::error::{StreamError, StreamErrorCondition};
        if lock(&self.live).disabled {
            // Prosody's mod_s2s closes its streams so when unloaded.
            return Err(StreamError::with_text(
                StreamErrorCondition::HostGone,
                "Server-to-server connections are disabled",
            ));
        }
        match remote {
            Some(r) if !self.filter().allows(local, r) => Err(StreamError::with_text(
                StreamErrorCondition::PolicyViolation,
                super::policy::RESTRICTED,
            )),
            _ => Ok(()),
        }
    }

    /// A receiver that changes at each reload.
    pub(crate) fn reloaded(&self) -> watch::Receiver<u64> {
        self.reloads.0.subscribe()
    }

    /// Is an outgoing route from `local` to `remote` open or opening?
    pub fn has_route(&self, local: &str, remote: &str) -> bool {
        lock(&self.routes)
            .get(&(local.to_string(), remote.to_string()))
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Is an incoming bidirectional stream carrying our stanzas from
    /// `local` to `remote`?
    pub fn has_bidi_route(&self, local: &str, remote: &str) -> bool {
        lock(&self.bidi)
            .get(&(local.to_string(), remote.to_string()))
            .is_some_and(|tx| !tx.is_closed())
    }

    /// An incoming bidirectional stream authenticated `remote` for
    /// `local`: our stanzas for `remote` go over it from now on.
    pub(crate) fn register_bidi(
        &self,
        local: &str,
        remote: &str,
        tx: mpsc::UnboundedSender<Element>,
    ) {
        lock(&self.bidi).insert((local.to_string(), remote.to_string()), tx);
    }

    /// That stream ended (unless already replaced).
    pub(crate) fn bidi_ended(
        &self,
        local: &str,
        remote: &str,
        tx: &mpsc::UnboundedSender<Element>,
    ) {
        let key = (local.to_string(), remote.to_string());
        let mut bidi = lock(&self.bidi);
        if bidi.get(&key).is_some_and(|t| t.same_channel(tx)) {
            bidi.remove(&key);
        }
    }

    fn send_cmd(self: &Arc<Self>, server: &Arc<Server>, local: &str, remote: &str, cmd: RouteCmd) {
        let Some(ctx) = self.context() else {
            return;
        };
        let key = (local.to_string(), remote.to_string());
        let cmd = match cmd {
            RouteCmd::Stanza(e) => match lock(&self.bidi).get(&key) {
                Some(tx) => match tx.send(e) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(e)) => RouteCmd::Stanza(e),
                },
                None => RouteCmd::Stanza(e),
            },
            other => other,
        };
        let mut routes = lock(&self.routes);
        let cmd = match routes.get(&key) {
            Some(tx) => match tx.send(cmd) {
                Ok(()) => return,
                Err(mpsc::error::SendError(cmd)) => cmd,
            },
            None => cmd,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(cmd);
        routes.insert(key, tx.clone());
        drop(routes);
        tracing::debug!(local, remote, "opening an outgoing s2s route");
        tokio::spawn(super::runtime::outgoing(
            server.clone(),
            self.clone(),
            ctx,
            local.to_string(),
            remote.to_string(),
            rx,
            tx,
        ));
    }

    /// The route's task ended: forget it (unless already replaced).
    pub(crate) fn route_ended(
        &self,
        local: &str,
        remote: &str,
        tx: &mpsc::UnboundedSender<RouteCmd>,
    ) {
        let key = (local.to_string(), remote.to_string());
        let mut routes = lock(&self.routes);
        if routes.get(&key).is_some_and(|t| t.same_channel(tx)) {
            routes.remove(&key);
        }
    }

    /// An incoming stream asks `remote`'s authoritative server about a key.
    pub(crate) fn request_verify(
        self: &Arc<Self>,
        server: &Arc<Server>,
        local: &str,
        remote: &str,
        id: &str,
        key: &str,
        answer: VerifyTx,
    ) {
        lock(&self.verifies).insert(
            (local.to_string(), remote.to_string(), id.to_string()),
            answer,
        );
        self.send_cmd(
            server,
            local,
            remote,
            RouteCmd::Verify {
                id: id.to_string(),
                key: key.to_string(),
            },
        );
    }

    /// The authoritative server answered; an answer nobody asked for is
    /// dropped.
    pub(crate) fn verify_answer(&self, local: &str, remote: &str, id: &str, valid: bool) {
        let key = (local.to_string(), remote.to_string(), id.to_string());
        match lock(&self.verifies).remove(&key) {
            Some(tx) => {
                let _ = tx.send((local.to_string(), remote.to_string(), valid));
            }
            None => tracing::debug!(remote, id, "dropping a dialback answer nobody waits for"),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Routes a stanza for a remote domain; `false` when s2s is not running
/// or the stanza names no remote domain.
pub fn route(server: &Arc<Server>, origin: &Arc<Session>, stanza: Element) -> bool {
    route_or_return(server, origin, stanza).is_none()
}

/// [`route`], giving the stanza back when it was not routed (the router
/// then answers as Prosody without s2s).
pub fn route_or_return(
    server: &Arc<Server>,
    origin: &Arc<Session>,
    stanza: Element,
) -> Option<Element> {
    let manager = server.extension::<S2sManager>();
    if !manager.is_running() {
        return Some(stanza);
    }
    let local = stanza
        .from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.domain().to_string())
        .filter(|d| server.is_local_host(d))
        .unwrap_or_else(|| origin.host.clone());
    let Some(remote) = stanza
        .to()
        .and_then(|t| Jid::parse(t).ok())
        .map(|j| j.domain().to_string())
    else {
        return Some(stanza);
    };
    if server.is_local_host(&remote) {
        return Some(stanza);
    }
    let mut stanza = stanza;
    if stanza.from().is_none() {
        stanza.set_attr("from", Some(local.clone()));
    }
    if !manager.filter().allows(Some(&local), &remote) {
        // mod_s2s_whitelist/mod_s2s_blacklist: refused before any
        // connection is made.
        if !is_reply_type(&stanza)
            && let Some(host) = server.host(&local)
        {
            let reply = StanzaError::new(ErrorType::Cancel, "not-allowed")
                .with_text(super::policy::RESTRICTED)
                .reply_to(&stanza);
            server.post_stanza(&host.local_session, reply, false);
        }
        return None;
    }
    manager.send_cmd(server, &local, &remote, RouteCmd::Stanza(stanza));
    None
}

/// Bounces stanzas that could not be sent, as Prosody's `bounce_sendq`:
/// `remote-server-timeout` (wait) when the remote opened a stream,
/// `remote-server-not-found` (cancel) when it never did.
pub(crate) fn bounce(
    server: &Arc<Server>,
    local: &str,
    queue: Vec<Element>,
    had_stream: bool,
    reason: &str,
) {
    if queue.is_empty() {
        return;
    }
    tracing::info!(
        local,
        "sending error replies for {} queued stanzas: {reason}",
        queue.len()
    );
    let Some(host) = server.host(local) else {
        return;
    };
    let (ty, cond) = if had_stream {
        (ErrorType::Wait, "remote-server-timeout")
    } else {
        (ErrorType::Cancel, "remote-server-not-found")
    };
    for stanza in queue {
        if is_reply_type(&stanza) || !matches!(stanza.name(), "message" | "presence" | "iq") {
            continue;
        }
        let e = StanzaError::new(ty, cond)
            .with_text(format!("Server-to-server connection failed: {reason}"));
        let reply = e.reply_to(&stanza);
        server.post_stanza(&host.local_session, reply, false);
    }
}

/// Why the s2s service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Option(#[from] OptionError),
}

fn global_secs(config: &ServerConfig, name: &str, default: u64) -> Duration {
    Duration::from_secs(
        config
            .get_global(name)
            .and_then(Value::as_i64)
            .map(|n| n.max(1) as u64)
            .unwrap_or(default),
    )
}

/// Is s2s on? As Prosody, unless `modules_disabled` lists `s2s` (or
/// `disallow_s2s` is set).
pub fn enabled(config: &ServerConfig) -> bool {
    let disabled = config
        .get_global("modules_disabled")
        .and_then(Value::as_string_list)
        .unwrap_or_default();
    let disallow = config
        .get_global("disallow_s2s")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    !disallow && !disabled.iter().any(|m| m == "s2s")
}

/// Starts s2s: the manager's context, and listeners on `s2s_ports` (5269)
/// and `s2s_direct_tls_ports` (none by default) on `s2s_interfaces` (else
/// `interfaces`, else all). A port that cannot be bound is logged and
/// skipped, as Prosody's portmanager does. Returns the bound addresses.
pub fn start(
    server: &Arc<Server>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<(SocketAddr, JoinHandle<()>)>, StartError> {
    start_with(server, shutdown, HashMap::new())
}

/// [`start`], with fixed addresses for some domains instead of DNS.
pub fn start_with(
    server: &Arc<Server>,
    shutdown: watch::Receiver<bool>,
    static_targets: HashMap<String, Vec<super::resolve::Target>>,
) -> Result<Vec<(SocketAddr, JoinHandle<()>)>, StartError> {
    let manager = server.extension::<S2sManager>();
    *lock(&manager.later) = Some((shutdown.clone(), static_targets.clone()));
    super::reload::hook(server);
    let config = &server.config;
    if !enabled(config) {
        return Ok(Vec::new());
    }
    let _ = manager.ctx.set(context(config, shutdown, static_targets));
    let mut out = Vec::new();
    for direct_tls in [false, true] {
        for addr in wanted(config, direct_tls)? {
            match listen(server, addr, direct_tls) {
                Ok(bound) => out.push(bound),
                Err(e) => tracing::error!("failed to open the s2s port {addr}: {e}"),
            }
        }
    }
    Ok(out)
}

/// What the streams and routes of a server with `config` work with.
fn context(
    config: &ServerConfig,
    shutdown: watch::Receiver<bool>,
    static_targets: HashMap<String, Vec<super::resolve::Target>>,
) -> Arc<Context> {
    let (tls, warnings) = S2sTls::from_config(config);
    for w in warnings {
        tracing::warn!("{w}");
    }
    let modules = |m: &str| {
        let disabled = config
            .get_global("modules_disabled")
            .and_then(Value::as_string_list)
            .unwrap_or_default();
        !disabled.iter().any(|d| d == m)
    };
    let mut policy = Policy::from_config(config);
    policy.tls_available = tls.server.is_some();
    policy.dialback = modules("dialback");
    policy.sasl_external = modules("s2s_auth_certs");
    let enabled_modules = config
        .get_global("modules_enabled")
        .and_then(Value::as_string_list)
        .unwrap_or_default();
    policy.bidi = modules("s2s_bidi") && enabled_modules.iter().any(|e| e == "s2s_bidi");
    policy.filter = DomainFilter::from_config(config);
    let size = config
        .get_global("s2s_stanza_size_limit")
        .and_then(Value::as_i64)
        .map(|n| n.max(10_000) as usize)
        .unwrap_or(DEFAULT_STANZA_SIZE_LIMIT);
    Arc::new(Context {
        policy,
        dialback: Dialback::new(config.get_global("dialback_secret").and_then(Value::as_str)),
        tls,
        limits: StreamLimits {
            max_stanza_size: size,
            ..StreamLimits::default()
        },
        connect_timeout: global_secs(config, "s2s_timeout", 90),
        keepalive: Duration::from_secs(
            config
                .get_global("network_settings")
                .and_then(|n| n.get("read_timeout"))
                .and_then(Value::as_i64)
                .unwrap_or(840)
                .max(1) as u64,
        ),
        idle_timeout: global_secs(config, "s2s_idle_timeout", 300),
        shutdown,
        static_targets,
    })
}

/// The addresses the config asks s2s to listen on: `s2s_ports` (5269), or
/// with `direct_tls` `s2s_direct_tls_ports` (none), on the s2s interfaces
/// (`s2s_interfaces`, else `interfaces`); none when s2s is disabled.
pub fn wanted(config: &ServerConfig, direct_tls: bool) -> Result<Vec<SocketAddr>, OptionError> {
    if !enabled(config) {
        return Ok(Vec::new());
    }
    let (option, default) = if direct_tls {
        ("s2s_direct_tls_ports", &[][..])
    } else {
        ("s2s_ports", &[super::DEFAULT_PORT][..])
    };
    let ports = crate::listen::ports(config, option, default)?;
    let ifaces = crate::listen::service_interfaces(config, "s2s")?;
    Ok(ports
        .iter()
        .flat_map(|p| ifaces.iter().map(move |ip| SocketAddr::new(*ip, *p)))
        .collect())
}

/// Listens for servers on `addr` (after [`start`], whose settings the
/// connections get; a reload adding a port calls it). Aborting the task
/// stops accepting; the streams made through it go on.
pub fn listen(
    server: &Arc<Server>,
    addr: SocketAddr,
    direct_tls: bool,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let manager = server.extension::<S2sManager>();
    let ctx = match manager.context() {
        Some(ctx) => ctx,
        None => {
            // s2s was disabled at start and a reload enables it: start
            // it now, with the configuration in force.
            let (shutdown, targets) = lock(&manager.later)
                .clone()
                .ok_or_else(|| std::io::Error::other("server-to-server was not started"))?;
            tracing::info!("server-to-server enabled by a reload");
            let _ = manager.ctx.set(context(&server.config, shutdown, targets));
            manager
                .context()
                .ok_or_else(|| std::io::Error::other("server-to-server was not started"))?
        }
    };
    let l = crate::listen::bind(addr)?;
    let addr = l.local_addr().unwrap_or(addr);
    tracing::info!(
        "listening for servers on {addr}{}",
        if direct_tls { " (direct TLS)" } else { "" }
    );
    let task = tokio::spawn(super::runtime::serve(l, server.clone(), ctx, direct_tls));
    Ok((addr, task))
}
