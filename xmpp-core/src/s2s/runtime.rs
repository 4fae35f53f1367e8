//! The thin I/O layer under the s2s streams: sockets, TLS, timers. All
//! protocol decisions are the sans-IO streams'; this moves bytes and
//! carries out their [`Action`]s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::Action;
use super::conn::Conn;
use super::incoming::IncomingStream;
use super::manager::{Context, RouteCmd, S2sManager, bounce};
use super::outgoing::OutgoingStream;
use super::policy::PeerCert;
use crate::error::{StreamError, StreamErrorCondition};
use crate::server::Server;
use crate::session::{Outbound, Session, SessionKind};
use crate::stanza::Element;

const SEND_TIMEOUT: Duration = Duration::from_secs(180);

/// Accepts server connections until shutdown.
pub(super) async fn serve(
    listener: TcpListener,
    server: Arc<Server>,
    ctx: Arc<Context>,
    direct_tls: bool,
) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let (server, ctx) = (server.clone(), ctx.clone());
                    tokio::spawn(async move { incoming(tcp, peer, server, ctx, direct_tls).await });
                }
                Err(e) => {
                    tracing::warn!("s2s accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn accept_tls(ctx: &Context, tcp: TcpStream, host: Option<&str>) -> Option<(Conn, PeerCert)> {
    let cfg = ctx.tls.server_for(host)?;
    match TlsAcceptor::from(cfg).accept(tcp).await {
        Ok(tls) => {
            let chain = tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
            let cert = ctx.tls.judge(chain);
            Some((Conn::Server(Box::new(tls)), cert))
        }
        Err(e) => {
            tracing::info!("s2s TLS handshake failed: {e}");
            None
        }
    }
}

async fn incoming(
    tcp: TcpStream,
    peer: SocketAddr,
    server: Arc<Server>,
    ctx: Arc<Context>,
    direct_tls: bool,
) {
    let _ = tcp.set_nodelay(true);
    tracing::info!(%peer, "incoming s2s connection");
    let manager = server.extension::<S2sManager>();
    let mut reloaded = manager.reloaded();
    let mut policy = ctx.policy.clone();
    policy.filter = manager.filter();
    let mut stream = IncomingStream::new(policy, ctx.dialback.clone(), ctx.limits.clone());
    let mut conn = Conn::Plain(tcp);
    if direct_tls {
        let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Gone) else {
            return;
        };
        let Some((c, cert)) = accept_tls(&ctx, tcp, None).await else {
            return;
        };
        conn = c;
        stream.tls_established(cert);
    }
    let (vtx, mut vrx) = mpsc::unbounded_channel::<(String, String, bool)>();
    // What the router sends to this stream's session (errors to the
    // remote) goes out over the outgoing route, as in Prosody.
    let (stx, mut srx) = crate::session::outbound_queue();
    let mut session: Option<Arc<Session>> = None;
    // Our stanzas for the peer, when it asked for a bidirectional stream.
    let mut bidi: Option<Bidi> = None;
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_read = Instant::now();
    let setup_deadline = Instant::now() + ctx.connect_timeout;
    loop {
        let keepalive_at = last_read + ctx.keepalive;
        let actions = tokio::select! {
            read = conn.read(&mut buf) => match read {
                Ok(0) | Err(_) => { stream.handle_eof(); break; }
                Ok(n) => {
                    last_read = Instant::now();
                    tracing::trace!("s2s recv: {}", String::from_utf8_lossy(&buf[..n]));
                    stream.handle_bytes(&buf[..n])
                }
            },
            Some((local, remote, valid)) = vrx.recv() => stream.verified(&local, &remote, valid),
            Some(e) = bidi_recv(&mut bidi) => stream.send(&e),
            Some(item) = srx.recv() => {
                if let (Outbound::Stanza(e), Some(s)) = (item, &session) {
                    super::manager::route(&server, s, e);
                }
                Vec::new()
            }
            _ = tokio::time::sleep_until(setup_deadline), if session.is_none() => {
                stream.close(Some(StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "Authentication took too long")))
            }
            _ = tokio::time::sleep_until(keepalive_at) => { last_read = Instant::now(); vec![Action::Write(" ".into())] }
            _ = shutdown.changed() => stream.close(Some(StreamError::with_text(StreamErrorCondition::SystemShutdown, "Server is shutting down"))),
            Ok(()) = reloaded.changed() => match manager.still_allowed(stream.to_host(), stream.from_host()) {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::info!(%peer, "closing an incoming s2s stream the reloaded config no longer allows: {e}");
                    stream.close(Some(e))
                }
            },
        };
        let mut pending = String::new();
        let mut close = false;
        for a in actions {
            match a {
                Action::Write(s) => pending.push_str(&s),
                Action::StartTls => {
                    if write_timed(&mut conn, &pending).await.is_err() {
                        close = true;
                        break;
                    }
                    pending.clear();
                    let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Gone) else {
                        close = true;
                        break;
                    };
                    match accept_tls(&ctx, tcp, stream.to_host()).await {
                        Some((c, cert)) => {
                            conn = c;
                            stream.tls_established(cert);
                        }
                        None => {
                            close = true;
                            break;
                        }
                    }
                }
                Action::Deliver(e) => {
                    let Some(host) = stream.to_host().map(str::to_string) else {
                        continue;
                    };
                    let s = session.get_or_insert_with(|| {
                        let s = Session::new(SessionKind::S2sIn, &host, Some(peer), stx.clone());
                        s.state().secure = stream.is_secure();
                        Arc::new(s)
                    });
                    server.process_stanza(s, e);
                }
                Action::Verify {
                    local,
                    remote,
                    id,
                    key,
                } => {
                    manager.request_verify(&server, &local, &remote, &id, &key, vtx.clone());
                }
                Action::Authenticated { remote } => {
                    if stream.is_bidi()
                        && bidi.is_none()
                        && let Some(host) = stream.to_host()
                    {
                        tracing::info!(local = host, %remote, "bidirectional s2s stream: our stanzas go over it");
                        let (tx, rx) = mpsc::unbounded_channel();
                        manager.register_bidi(host, &remote, tx.clone());
                        bidi = Some(Bidi {
                            local: host.to_string(),
                            remote,
                            tx,
                            rx,
                        });
                    }
                    if session.is_none()
                        && let Some(host) = stream.to_host()
                    {
                        let s = Session::new(SessionKind::S2sIn, host, Some(peer), stx.clone());
                        s.state().secure = stream.is_secure();
                        session = Some(Arc::new(s));
                    }
                }
                Action::VerifyResult { .. } | Action::Failed(_) => {}
                Action::Close => {
                    close = true;
                    break;
                }
            }
        }
        if !pending.is_empty() && write_timed(&mut conn, &pending).await.is_err() {
            break;
        }
        if close || stream.is_closed() {
            conn.shutdown().await;
            break;
        }
    }
    if let Some(mut b) = bidi {
        // What was still waiting goes out on a route of its own.
        manager.bidi_ended(&b.local, &b.remote, &b.tx);
        b.rx.close();
        let origin = server_local_session(&server, &b.local);
        while let Ok(e) = b.rx.try_recv() {
            super::manager::route(&server, &origin, e);
        }
    }
    tracing::debug!(%peer, "incoming s2s connection ended");
}

/// An incoming bidirectional stream's channel for our stanzas.
struct Bidi {
    local: String,
    remote: String,
    tx: mpsc::UnboundedSender<Element>,
    rx: mpsc::UnboundedReceiver<Element>,
}

async fn bidi_recv(bidi: &mut Option<Bidi>) -> Option<Element> {
    match bidi {
        Some(b) => b.rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn write_timed(conn: &mut Conn, data: &str) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    tracing::trace!("s2s send: {data}");
    match tokio::time::timeout(SEND_TIMEOUT, conn.write_all(data.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Why a connection attempt ended.
enum Outcome {
    /// Could not connect at all: try the next address.
    NoConnection,
    /// The stream failed; `had_stream` says whether the peer opened one.
    Failed { had_stream: bool, reason: String },
    /// Closed after working (idle, shutdown, the peer closed).
    Done,
}

/// One outgoing route: resolve, connect, authenticate, send; bounce what
/// is queued if that fails within `s2s_timeout`.
pub(super) async fn outgoing(
    server: Arc<Server>,
    manager: Arc<S2sManager>,
    ctx: Arc<Context>,
    local: String,
    remote: String,
    mut rx: mpsc::UnboundedReceiver<RouteCmd>,
    tx: mpsc::UnboundedSender<RouteCmd>,
) {
    let mut queue: Vec<Element> = Vec::new();
    let deadline = Instant::now() + ctx.connect_timeout;
    let targets = match ctx.static_targets.get(&remote) {
        Some(t) => t.clone(),
        None => match super::resolve::system_resolver() {
            Ok(r) => {
                tokio::select! {
                    t = super::resolve::resolve(&r, &remote) => t,
                    _ = tokio::time::sleep_until(deadline) => Vec::new(),
                }
            }
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        },
    };
    let mut had_stream = false;
    let mut reason = format!("no address found for {remote}");
    let mut rest: &[super::resolve::Target] = &targets;
    while !rest.is_empty() {
        if Instant::now() >= deadline {
            break;
        }
        let (index, tcp) = match super::connect::connect_staggered(rest, deadline).await {
            Ok(c) => c,
            Err(e) => {
                reason = e;
                break;
            }
        };
        let Some(target) = rest.get(index).cloned() else {
            break;
        };
        rest = rest.get(index + 1..).unwrap_or_default();
        let _ = tcp.set_nodelay(true);
        tracing::info!(%local, %remote, addr = %target.addr, "outgoing s2s connection");
        let outcome = run_outgoing(
            &server,
            &manager,
            &ctx,
            &local,
            &remote,
            tcp,
            target.direct_tls,
            deadline,
            &mut rx,
            &mut queue,
        )
        .await;
        match outcome {
            Outcome::NoConnection => continue,
            Outcome::Failed {
                had_stream: h,
                reason: r,
            } => {
                had_stream |= h;
                reason = r;
                if h {
                    break;
                }
            }
            Outcome::Done => {
                manager.route_ended(&local, &remote, &tx);
                // Stanzas that raced with the end go out on a new route.
                rx.close();
                while let Ok(cmd) = rx.try_recv() {
                    if let RouteCmd::Stanza(e) = cmd {
                        queue.push(e);
                    }
                }
                let origin = server_local_session(&server, &local);
                // Not routed any more (a reload disabled s2s meanwhile):
                // bounced rather than lost.
                let unrouted: Vec<Element> = queue
                    .into_iter()
                    .filter_map(|e| super::manager::route_or_return(&server, &origin, e))
                    .collect();
                bounce(
                    &server,
                    &local,
                    unrouted,
                    true,
                    "server-to-server is disabled",
                );
                return;
            }
        }
    }
    manager.route_ended(&local, &remote, &tx);
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let RouteCmd::Stanza(e) = cmd {
            queue.push(e);
        }
    }
    tracing::info!(%local, %remote, "outgoing s2s connection failed: {reason}");
    bounce(&server, &local, queue, had_stream, &reason);
}

fn server_local_session(server: &Arc<Server>, local: &str) -> Arc<Session> {
    match server.host(local) {
        Some(h) => h.local_session.clone(),
        None => Arc::new(Session::local(local)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_outgoing(
    server: &Arc<Server>,
    manager: &Arc<S2sManager>,
    ctx: &Arc<Context>,
    local: &str,
    remote: &str,
    tcp: TcpStream,
    direct_tls: bool,
    deadline: Instant,
    rx: &mut mpsc::UnboundedReceiver<RouteCmd>,
    queue: &mut Vec<Element>,
) -> Outcome {
    let mut policy = ctx.policy.clone();
    policy.tls_available = true;
    policy.filter = manager.filter();
    let mut reloaded = manager.reloaded();
    let have_cert = ctx.tls.has_certificate(local);
    let mut stream = OutgoingStream::new(
        policy,
        ctx.dialback.clone(),
        ctx.limits.clone(),
        local,
        remote,
        have_cert,
    );
    let peer = tcp.peer_addr().ok();
    // Stanzas from the remote over a bidirectional stream enter through
    // this session; what the router sends back goes out as routed.
    let (stx, mut srx) = crate::session::outbound_queue();
    let mut session: Option<Arc<Session>> = None;
    let mut conn = Conn::Plain(tcp);
    if direct_tls {
        let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Gone) else {
            return Outcome::NoConnection;
        };
        match connect_tls(ctx, local, remote, tcp).await {
            Some((c, cert)) => {
                conn = c;
                stream.tls_established(cert);
            }
            None => return Outcome::NoConnection,
        }
    }
    let mut actions = stream.open();
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_read = Instant::now();
    let mut last_stanza = Instant::now();
    let mut rx_open = true;
    loop {
        let mut pending = String::new();
        let mut close = false;
        let mut failed: Option<String> = None;
        for a in std::mem::take(&mut actions) {
            match a {
                Action::Write(s) => pending.push_str(&s),
                Action::StartTls => {
                    if write_timed(&mut conn, &pending).await.is_err() {
                        failed = Some("write failed".into());
                        break;
                    }
                    pending.clear();
                    let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Gone) else {
                        failed = Some("TLS on a TLS connection".into());
                        break;
                    };
                    match connect_tls(ctx, local, remote, tcp).await {
                        Some((c, cert)) => {
                            conn = c;
                            pending.extend(stream.tls_established(cert).into_iter().filter_map(
                                |a| match a {
                                    Action::Write(s) => Some(s),
                                    _ => None,
                                },
                            ));
                        }
                        None => {
                            failed = Some("TLS handshake failed".into());
                            break;
                        }
                    }
                }
                Action::Authenticated { .. } => {
                    last_stanza = Instant::now();
                    for e in queue.drain(..) {
                        for a in stream.send(&e) {
                            if let Action::Write(s) = a {
                                pending.push_str(&s);
                            }
                        }
                    }
                }
                Action::VerifyResult {
                    local,
                    remote,
                    id,
                    valid,
                } => {
                    manager.verify_answer(&local, &remote, &id, valid);
                }
                Action::Failed(r) => failed = Some(r),
                Action::Close => close = true,
                Action::Deliver(e) => {
                    // A bidirectional stream in use both ways is not idle.
                    last_stanza = Instant::now();
                    let s = session.get_or_insert_with(|| {
                        let s = Session::new(SessionKind::S2sIn, local, peer, stx.clone());
                        s.state().secure = stream.is_secure();
                        Arc::new(s)
                    });
                    server.process_stanza(s, e);
                }
                Action::Verify { .. } => {}
            }
        }
        if write_timed(&mut conn, &pending).await.is_err() && failed.is_none() && !close {
            failed = Some("write failed".into());
        }
        if let Some(reason) = failed {
            conn.shutdown().await;
            if stream.was_ready() && queue.is_empty() {
                return Outcome::Done;
            }
            return Outcome::Failed {
                had_stream: stream.had_stream(),
                reason,
            };
        }
        if close || stream.is_closed() {
            conn.shutdown().await;
            return if stream.was_ready() {
                Outcome::Done
            } else {
                Outcome::Failed {
                    had_stream: stream.had_stream(),
                    reason: "stream closed".into(),
                }
            };
        }
        let ready = stream.is_ready();
        let keepalive_at = last_read + ctx.keepalive;
        let idle_at = last_stanza + ctx.idle_timeout;
        actions = tokio::select! {
            read = conn.read(&mut buf) => match read {
                Ok(0) | Err(_) => stream.handle_eof(),
                Ok(n) => {
                    last_read = Instant::now();
                    tracing::trace!("s2s recv: {}", String::from_utf8_lossy(&buf[..n]));
                    stream.handle_bytes(&buf[..n])
                }
            },
            cmd = rx.recv(), if rx_open => match cmd {
                Some(RouteCmd::Stanza(e)) => {
                    last_stanza = Instant::now();
                    if ready { stream.send(&e) } else { queue.push(e); Vec::new() }
                }
                Some(RouteCmd::Verify { id, key }) => stream.verify(&id, &key),
                None => { rx_open = false; Vec::new() }
            },
            Some(item) = srx.recv() => {
                if let (Outbound::Stanza(e), Some(s)) = (item, &session) {
                    super::manager::route(server, s, e);
                }
                Vec::new()
            }
            _ = tokio::time::sleep_until(deadline), if !ready => {
                let mut a = stream.close(Some(StreamError::with_text(StreamErrorCondition::ConnectionTimeout, "Authentication took too long")));
                a.push(Action::Failed("timed out".into()));
                a
            }
            _ = tokio::time::sleep_until(idle_at), if ready => {
                tracing::info!(%local, %remote, "closing idle outgoing s2s connection");
                stream.close(None)
            }
            _ = tokio::time::sleep_until(keepalive_at) => { last_read = Instant::now(); vec![Action::Write(" ".into())] }
            _ = shutdown.changed() => stream.close(Some(StreamError::with_text(StreamErrorCondition::SystemShutdown, "Server is shutting down"))),
            Ok(()) = reloaded.changed() => match manager.still_allowed(Some(local), Some(remote)) {
                Ok(()) => Vec::new(),
                Err(e) => {
                    tracing::info!(%local, %remote, "closing an outgoing s2s stream the reloaded config no longer allows: {e}");
                    stream.close(Some(e))
                }
            },
        };
    }
}

async fn connect_tls(
    ctx: &Context,
    local: &str,
    remote: &str,
    tcp: TcpStream,
) -> Option<(Conn, PeerCert)> {
    let name = rustls::pki_types::ServerName::try_from(remote.to_string()).ok()?;
    match TlsConnector::from(ctx.tls.client(local))
        .connect(name, tcp)
        .await
    {
        Ok(tls) => {
            let chain = tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
            Some((Conn::Client(Box::new(tls)), ctx.tls.judge(chain)))
        }
        Err(e) => {
            tracing::info!(%remote, "s2s TLS handshake failed: {e}");
            None
        }
    }
}
