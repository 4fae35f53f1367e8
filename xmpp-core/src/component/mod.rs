//! Components: external ones over XEP-0114 (`jabber:component:accept`) and
//! in-process ones in Rust, both attached to a `Component "x.example"` host
//! the way Prosody's mod_component attaches its one connection.
//!
//! - [`load`] turns a component host without a module into one served by a
//!   component: stanzas to the host, to `user@host` and to `user@host/res`
//!   go to the connected component; while none is connected, they are
//!   answered with Prosody's `remote-server-timeout` "Component unavailable"
//!   error (with `<not-connected xmlns='xmpp:prosody.im/protocol/component'/>`),
//!   and a disco#info query to the host is answered by the server when the
//!   section sets `name`. As in Prosody, subdomains of a component are other
//!   hosts: `sub.comp.example` is not routed to `comp.example`'s component.
//! - [`stream::ComponentStream`] is the sans-IO accept stream (header,
//!   handshake, stanzas); [`serve`] and [`start_listeners`] run it on the
//!   `component_ports` (default 5347) and `component_interfaces` (default
//!   `local_interfaces`, else loopback: 127.0.0.1 and ::1, as Prosody's
//!   private services).
//! - [`Component`] and [`attach`] are the in-process API: a Rust value gets
//!   the host's stanzas through [`Component::handle`] and sends with
//!   [`ComponentSender::send`], which routes exactly as a connected
//!   component's stanzas are routed. The same [`Component`] runs in another
//!   process with [`connect`], which speaks XEP-0114 to a server's
//!   component port (lilt's or Prosody's).
//!
//! What a component sends is routed with [`Server::process_stanza`] from a
//! [`Session`] of kind [`SessionKind::Component`], whose `host` is the
//! component's domain. `component-authenticated` and `component-disconnected`
//! fire on the host, as in Prosody.
//!
//! [`SessionKind::Component`]: crate::session::SessionKind::Component

mod connect;
mod in_process;
mod routing;
pub mod stream;
#[cfg(test)]
mod tests;

pub use connect::{ConnectError, ConnectedComponent, connect};
pub use in_process::{
    AttachError, AttachedComponent, Component, ComponentSender, SendError, attach,
};
use routing::parse_raw;
pub use routing::{ComponentLink, NS_COMPONENT_STATUS, load};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{OptionError, ServerConfig};
use crate::error::{StreamError, StreamErrorCondition};
use crate::server::Server;
use crate::session::Session;
use crate::stream::StreamLimits;
use stream::{Action, ComponentStream, DEFAULT_STANZA_SIZE_LIMIT};

/// Prosody's default port for component connections.
pub const DEFAULT_PORT: u16 = 5347;

/// What a component connection needs from its listener.
#[derive(Clone)]
pub struct ListenerContext {
    pub server: Arc<Server>,
    pub limits: StreamLimits,
    /// Idle time after which a whitespace keepalive is sent
    /// (`network_settings.read_timeout`, 840 s).
    pub keepalive: Duration,
    /// How long one write may wait for the component to read before the
    /// connection is dropped (`network_settings.send_timeout`, 180 s).
    pub send_timeout: Duration,
    /// Flips to true at shutdown.
    pub shutdown: watch::Receiver<bool>,
}

impl ListenerContext {
    /// The settings Prosody reads: `component_stanza_size_limit`, else
    /// `s2s_stanza_size_limit`, else 512 KiB; `network_settings.read_timeout`.
    pub fn from_config(
        server: &Arc<Server>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<ListenerContext, OptionError> {
        let config = &server.config;
        let size = match global_number(config, "component_stanza_size_limit")? {
            Some(n) => n,
            None => global_number(config, "s2s_stanza_size_limit")?
                .unwrap_or(DEFAULT_STANZA_SIZE_LIMIT as i64),
        };
        let network = |name: &str, default: i64| {
            config
                .get_global("network_settings")
                .and_then(|n| n.get(name))
                .and_then(crate::value::Value::as_i64)
                .unwrap_or(default)
                .max(1) as u64
        };
        let keepalive = network("read_timeout", 840);
        let send_timeout = network("send_timeout", 180);
        Ok(ListenerContext {
            server: server.clone(),
            limits: StreamLimits {
                max_stanza_size: size.max(1024) as usize,
                ..StreamLimits::default()
            },
            keepalive: Duration::from_secs(keepalive),
            send_timeout: Duration::from_secs(send_timeout),
            shutdown,
        })
    }
}

/// Writes all of `data`, failing when the peer has not taken it within
/// `timeout` (`send_timeout`).
async fn write_timed(tcp: &mut TcpStream, data: &[u8], timeout: Duration) -> std::io::Result<()> {
    match tokio::time::timeout(timeout, tcp.write_all(data)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "send timeout: the component is not reading",
        )),
    }
}

fn global_number(config: &ServerConfig, name: &str) -> Result<Option<i64>, OptionError> {
    match config.get_global(name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| OptionError {
            option: name.to_string(),
            defined_at: config.source_of(None, name).cloned(),
            problem: format!("must be a number, not a {}", v.type_name()),
        }),
    }
}

/// Why component listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Option(#[from] OptionError),
    #[error("cannot listen on {addr} for components: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the component listeners when some host is served by an external
/// component (as Prosody opens them when mod_component is loaded), and
/// serves them until shutdown. Returns each bound address with its task.
pub fn start_listeners(
    server: &Arc<Server>,
    shutdown: watch::Receiver<bool>,
) -> Result<Vec<(SocketAddr, JoinHandle<()>)>, ListenError> {
    let any = server
        .hosts()
        .iter()
        .any(|h| h.extension::<ComponentLink>().is_external());
    if !any {
        return Ok(Vec::new());
    }
    let ctx = ListenerContext::from_config(server, shutdown)?;
    let config = &server.config;
    let ports = crate::listen::ports(config, "component_ports", &[DEFAULT_PORT])?;
    let ifaces = crate::listen::private_service_interfaces(config, "component")?;
    let listeners = crate::listen::bind_all(&ports, &ifaces)
        .map_err(|(addr, source)| ListenError::Bind { addr, source })?;
    let mut out = Vec::new();
    for listener in listeners {
        let addr = listener.local_addr().map_err(|source| ListenError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        tracing::info!("listening for components on {addr}");
        out.push((addr, tokio::spawn(serve(listener, ctx.clone()))));
    }
    Ok(out)
}

/// Accepts component connections until shutdown.
pub async fn serve(listener: TcpListener, ctx: ListenerContext) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { handle_connection(tcp, peer, ctx).await });
                }
                Err(e) => {
                    tracing::warn!("component accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn handle_connection(mut tcp: TcpStream, peer: SocketAddr, ctx: ListenerContext) {
    let _ = tcp.set_nodelay(true);
    tracing::info!(%peer, "incoming component connection");
    // Bounded as a client's (see crate::session::outbound): a component
    // that stops reading costs at most that, then stanzas to it bounce.
    let (tx, mut rx) = crate::session::outbound_queue();
    let mut stream = ComponentStream::new(ctx.server.clone(), tx, Some(peer), ctx.limits.clone());
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_read = Instant::now();
    let mut reason = "connection closed";
    'conn: loop {
        let keepalive_at = last_read + ctx.keepalive;
        let actions = tokio::select! {
            biased;
            Some(first) = rx.recv() => {
                let mut actions = stream.outbound(first);
                while !actions.iter().any(|a| matches!(a, Action::Close)) {
                    match rx.try_recv() {
                        Ok(next) => actions.extend(stream.outbound(next)),
                        Err(_) => break,
                    }
                }
                actions
            },
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => { stream.handle_eof(); break 'conn; }
                Ok(n) => { last_read = Instant::now(); stream.handle_bytes(&buf[..n]) }
            },
            _ = tokio::time::sleep_until(keepalive_at) => {
                last_read = Instant::now();
                if stream.is_open() { vec![Action::Write(" ".to_string())] } else { Vec::new() }
            }
            _ = shutdown.changed() => stream.close(Some(StreamError::with_text(StreamErrorCondition::SystemShutdown, "Server is shutting down"))),
        };
        let mut pending = String::new();
        for action in actions {
            match action {
                Action::Write(s) => pending.push_str(&s),
                Action::Close => {
                    let _ = write_timed(&mut tcp, pending.as_bytes(), ctx.send_timeout).await;
                    let _ = tokio::time::timeout(ctx.send_timeout, tcp.shutdown()).await;
                    reason = "stream closed";
                    break 'conn;
                }
            }
        }
        if !pending.is_empty()
            && let Err(e) = write_timed(&mut tcp, pending.as_bytes(), ctx.send_timeout).await
        {
            if e.kind() == std::io::ErrorKind::TimedOut {
                tracing::info!(%peer, "component not reading for send_timeout; dropping the connection");
                reason = "send timeout";
            }
            stream.handle_eof();
            break;
        }
        if stream.is_closed() {
            break;
        }
    }
    rx.close();
    stream.end_session(reason);
    tracing::debug!(%peer, "component connection ended");
}

/// The session a component's stanzas come from, for hosts that want to
/// know whether one is connected (`None` while none is).
pub fn connected_session(host: &crate::host::Host) -> Option<Arc<Session>> {
    host.extension::<ComponentLink>().session()
}
