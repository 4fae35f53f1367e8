//! Client-to-server connections: the listeners (`c2s_ports`,
//! `c2s_direct_tls_ports`) and the task that moves bytes between a socket
//! and a [`negotiation::C2sStream`].

pub mod frame;
pub mod negotiation;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::error::{StreamError, StreamErrorCondition};
use crate::server::Server;
use crate::session::Outbound;
use negotiation::{Action, C2sSettings, C2sStream, ReadTimeout, SmOutbound, stream_element_xml};

/// What a connection needs from the listener.
#[derive(Clone)]
pub struct ListenerContext {
    pub server: Arc<Server>,
    pub tls: Option<TlsAcceptor>,
    pub settings: C2sSettings,
    /// Each connection reads its settings from the config in force when
    /// it connects ([`settings::from_config`], so a reload applies to new
    /// connections); `settings` is then only the fallback.
    pub follow_config: bool,
    /// Idle time after which a whitespace keepalive is sent
    /// (Prosody's `network_settings.read_timeout`, 840 s).
    pub keepalive: Duration,
    /// How long one write may wait for the client to read before the
    /// connection is dropped (Prosody's `network_settings.send_timeout`,
    /// 180 s in server_epoll): a client that stops reading is let go of,
    /// with what was queued for it.
    pub send_timeout: Duration,
    /// How long a TLS handshake (direct TLS or after `<starttls/>`) may
    /// take (Prosody's `network_settings.ssl_handshake_timeout`, 60 s);
    /// the unauthenticated stream's `c2s_timeout` keeps running meanwhile.
    pub handshake_timeout: Duration,
    /// Flips to true at shutdown.
    pub shutdown: watch::Receiver<bool>,
}

/// Accepts connections until shutdown. `direct_tls` wraps each in TLS first.
pub async fn serve(listener: TcpListener, ctx: ListenerContext, direct_tls: bool) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let ctx = ctx.clone();
                    // Spawned as it is (an async block around it would keep
                    // a second copy of the arguments for the task's life).
                    tokio::spawn(handle_connection(tcp, peer, ctx, direct_tls));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// A socket, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// What [`Conn::incoming`] found.
enum Incoming<'a> {
    /// The plain socket is readable: read it with [`Conn::read_now`].
    Ready,
    /// Decrypted bytes held by TLS (empty at EOF); [`Conn::consume`] them
    /// once used.
    Decrypted(&'a [u8]),
}

/// Input-less time after which a connection lets go of its XML parser
/// (re-made at the next read for about the cost of parsing a short
/// stanza).
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Bytes read from a plain socket at once (the same for every
/// connection of a worker thread).
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// The read buffer of this worker thread. Connections borrow it only
    /// while bytes are there, so an idle connection holds no buffer.
    static READ_BUF: std::cell::Cell<Option<Box<[u8]>>> = const { std::cell::Cell::new(None) };
}

/// What [`Conn::read_now`] did.
enum ReadNow<R> {
    Data(R),
    /// Nothing there after all (the readiness was stale).
    Nothing,
    Eof,
}

impl Conn {
    /// Waits until there is something to read, holding no buffer: a plain
    /// socket's readiness, or TLS's decrypted bytes (rustls keeps its own
    /// buffers).
    async fn incoming(&mut self) -> std::io::Result<Incoming<'_>> {
        match self {
            Conn::Plain(s) => s.readable().await.map(|()| Incoming::Ready),
            Conn::Tls(s) => s.fill_buf().await.map(Incoming::Decrypted),
        }
    }
    /// Reads what a plain socket holds into the worker's buffer and gives
    /// it to `f`.
    fn read_now<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> ReadNow<R> {
        let Conn::Plain(s) = self else {
            return ReadNow::Nothing;
        };
        let mut buf = READ_BUF
            .with(|b| b.take())
            .unwrap_or_else(|| vec![0u8; READ_CHUNK].into_boxed_slice());
        let outcome = match s.try_read(&mut buf) {
            Ok(0) => ReadNow::Eof,
            Ok(n) => ReadNow::Data(f(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ReadNow::Nothing,
            Err(_) => ReadNow::Eof,
        };
        READ_BUF.with(|b| b.set(Some(buf)));
        outcome
    }
    /// Marks `n` decrypted bytes as used.
    fn consume(&mut self, n: usize) {
        if let Conn::Tls(s) = self {
            std::pin::Pin::new(s.as_mut()).consume(n);
        }
    }
    /// Writes all of `data`, or fails when the client has not taken it
    /// within `timeout` (`send_timeout`).
    async fn write_all(&mut self, data: &[u8], timeout: Duration) -> std::io::Result<()> {
        let write = async {
            match self {
                Conn::Plain(s) => write_flush(s, data).await,
                Conn::Tls(s) => write_flush(s.as_mut(), data).await,
            }
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "send timeout: the client is not reading",
            )),
        }
    }
    /// Closes the connection (TLS's close_notify is not waited for longer
    /// than `timeout`).
    async fn shutdown(&mut self, timeout: Duration) {
        let close = async {
            let _ = match self {
                Conn::Plain(s) => s.shutdown().await,
                Conn::Tls(s) => s.shutdown().await,
            };
        };
        let _ = tokio::time::timeout(timeout, close).await;
    }
}

async fn write_flush<S: AsyncWrite + Unpin + ?Sized>(
    s: &mut S,
    data: &[u8],
) -> std::io::Result<()> {
    s.write_all(data).await?;
    s.flush().await
}

/// Runs the TLS handshake, giving up after `limit`.
async fn tls_accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    limit: Duration,
) -> std::io::Result<(Conn, Option<Vec<u8>>)> {
    let tls = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(tls) => tls?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
    };
    let exporter = crate::tls::tls_exporter(tls.get_ref().1);
    Ok((Conn::Tls(Box::new(tls)), exporter))
}

/// How long a handshake may take now: `ssl_handshake_timeout`, or less
/// when the unauthenticated stream's deadline comes first.
fn handshake_limit(stream: &C2sStream, ctx: &ListenerContext) -> Duration {
    let now = std::time::Instant::now();
    match stream.deadline() {
        Some(d) => ctx.handshake_timeout.min(d.saturating_duration_since(now)),
        None => ctx.handshake_timeout,
    }
}

async fn handle_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: ListenerContext,
    direct_tls: bool,
) {
    let _ = tcp.set_nodelay(true);
    // The lean queue: an idle session holds no buffer for its outbound.
    let (tx, mut rx) = crate::session::outbound_queue();
    tracing::debug!(%peer, "connection accepted");
    let mut settings = match ctx.follow_config {
        true => settings::from_config(&ctx.server.config, ctx.settings.tls_available)
            .unwrap_or_else(|_| ctx.settings.clone()),
        false => ctx.settings.clone(),
    };
    settings.direct_tls = direct_tls;
    let mut stream = C2sStream::new(
        ctx.server.clone(),
        tx,
        Some(peer),
        settings,
        std::time::Instant::now(),
    );
    // Prosody's mod_c2s lines, word for word (log watchers match them).
    tracing::info!(session = %stream.log_id(), "Client connected");
    // mod_limits: a throttle when the server has a rate for c2s.
    stream.set_throttle(
        ctx.server
            .extension::<crate::limits::ConnectionLimits>()
            .throttle("c2s", std::time::Instant::now()),
    );

    let mut conn = if direct_tls {
        let Some(acceptor) = &ctx.tls else { return };
        let limit = handshake_limit(&stream, &ctx);
        match Box::pin(tls_accept(acceptor, tcp, limit)).await {
            Ok((c, exporter)) => {
                stream.tls_established(exporter);
                c
            }
            Err(e) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
        }
    } else {
        Conn::Plain(tcp)
    };

    let mut shutdown = ctx.shutdown.clone();
    let mut last_read = Instant::now();
    let mut outbound_open = true;
    // The XML parser was let go of since the last read.
    let mut parked = false;
    'conn: loop {
        // A client that keeps the socket readable never makes this task
        // wait (a socket's readiness takes nothing from tokio's
        // cooperative budget): give way now and then, or a task woken
        // from here (the recipient's connection, put in this worker's
        // LIFO slot, which other workers cannot steal) waits until this
        // client pauses.
        tokio::task::consume_budget().await;
        let deadline = stream.deadline().map(Instant::from_std);
        let keepalive_at = last_read + ctx.keepalive;
        // Over its rate (mod_limits), the connection is not read until then.
        let read_at = stream
            .read_delay(std::time::Instant::now())
            .map(|d| Instant::now() + d);
        let park_at = (!parked).then_some(last_read + PARK_AFTER);
        // One timer for them all (each is a few hundred bytes of every
        // connection's task).
        let wake_at = [read_at, deadline, Some(keepalive_at), park_at]
            .into_iter()
            .flatten()
            .min();
        // Biased: what is queued for the client goes out before anything
        // else, so stanzas sent just before a close (MUC's 332 at shutdown,
        // a conflict's last words) are never overtaken by it.
        let actions = tokio::select! {
            biased;
            out = rx.recv(), if outbound_open => match out {
                Some(first) => {
                    // What is queued already goes out in one write, as
                    // Prosody's buffered connections send what one event
                    // produced (a reply and the broadcast after it).
                    // At most MAX_BATCH bytes: a queue refilled as fast as
                    // it is drained does not make one write grow unbounded.
                    let mut actions = outbound_actions(&mut stream, first);
                    let mut batch = written_len(&actions);
                    while batch < MAX_BATCH && !actions.iter().any(|a| matches!(a, Action::Close)) {
                        match rx.try_recv() {
                            Ok(next) => {
                                let more = outbound_actions(&mut stream, next);
                                batch += written_len(&more);
                                actions.extend(more);
                            }
                            Err(_) => break,
                        }
                    }
                    coalesce_writes(actions)
                }
                None => {
                    outbound_open = false;
                    Vec::new()
                }
            },
            incoming = conn.incoming(), if read_at.is_none() => {
                let read = match incoming {
                    Ok(Incoming::Decrypted(data)) if !data.is_empty() => {
                        let n = data.len();
                        let actions = stream.handle_bytes(data);
                        conn.consume(n);
                        ReadNow::Data(actions)
                    }
                    Ok(Incoming::Ready) => conn.read_now(|data| stream.handle_bytes(data)),
                    Ok(Incoming::Decrypted(_)) | Err(_) => ReadNow::Eof,
                };
                match read {
                    ReadNow::Data(actions) => { last_read = Instant::now(); parked = false; actions }
                    ReadNow::Nothing => Vec::new(),
                    ReadNow::Eof => { stream.handle_eof(); break 'conn; }
                }
            },
            _ = sleep_until_opt(wake_at) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    stream.handle_timeout(now.into_std())
                } else if keepalive_at <= now {
                    last_read = now;
                    // Stream management forces an <r/> instead, and gives up
                    // on a connection that did not answer the last one.
                    match stream.handle_read_timeout() {
                        ReadTimeout::Keepalive => vec![Action::Write(" ".to_string())],
                        ReadTimeout::Request(actions) => actions,
                        ReadTimeout::Dead => vec![Action::Close],
                    }
                } else {
                    // Idle: the parser's state goes until the next read.
                    if park_at.is_some_and(|p| p <= now) {
                        stream.park_parser();
                        parked = true;
                    }
                    // (Or the end of mod_limits' read delay.)
                    Vec::new()
                }
            }
            _ = shutdown.changed() => match stream.smacks_server_stopping() {
                // A resumable session's connection just goes (its counter kept).
                Some(actions) => actions,
                None => stream.close(Some(StreamError::with_text(StreamErrorCondition::SystemShutdown, "Server is shutting down"))),
            },
        };
        for action in actions {
            match action {
                Action::Write(s) => {
                    if let Err(e) = conn.write_all(s.as_bytes(), ctx.send_timeout).await {
                        write_failed(&stream, &peer, &e);
                        stream.handle_eof();
                        break 'conn;
                    }
                }
                Action::Frame(f) => {
                    // Only framed transports are given frames; write it as TCP would.
                    let text = f.to_tcp();
                    if let Err(e) = conn.write_all(text.as_bytes(), ctx.send_timeout).await {
                        write_failed(&stream, &peer, &e);
                        stream.handle_eof();
                        break 'conn;
                    }
                }
                Action::StartTls => {
                    let (Conn::Plain(tcp), Some(acceptor)) = (conn, ctx.tls.as_ref()) else {
                        break 'conn;
                    };
                    let limit = handshake_limit(&stream, &ctx);
                    match Box::pin(tls_accept(acceptor, tcp, limit)).await {
                        Ok((c, exporter)) => {
                            conn = c;
                            stream.tls_established(exporter);
                        }
                        Err(e) => {
                            tracing::debug!(%peer, "STARTTLS handshake failed: {e}");
                            stream.handle_eof();
                            break 'conn;
                        }
                    }
                }
                Action::Close => {
                    conn.shutdown(ctx.send_timeout).await;
                    break 'conn;
                }
            }
        }
        // A resumed session (XEP-0198): its outbound queue is ours now.
        if let Some(resumed) = stream.take_resumed_outbound() {
            rx = resumed;
            outbound_open = true;
        }
        if stream.is_closed() {
            break;
        }
    }
    // Hibernate (XEP-0198), or deliver nothing more and let modules react
    // (unavailable presence, ...).
    stream.connection_ended(rx);
    tracing::info!(session = %stream.log_id(), "Client disconnected: connection closed");
}

/// A write failed: a `send_timeout` is worth a line at INFO (Prosody logs
/// its "write timeout" disconnects); a reset connection is not.
fn write_failed(stream: &C2sStream, peer: &SocketAddr, e: &std::io::Error) {
    let session = stream.session().map(|s| s.id.clone());
    if e.kind() == std::io::ErrorKind::TimedOut {
        tracing::info!(?session, %peer, "client not reading for send_timeout; dropping the connection");
    } else {
        tracing::debug!(?session, %peer, "write failed: {e}");
    }
}

/// What an outbound item becomes on the stream.
fn outbound_actions(stream: &mut C2sStream, out: Outbound) -> Vec<Action> {
    // Stream management counts and keeps what is written (XEP-0198).
    let after = match stream.smacks_outbound(&out) {
        SmOutbound::Write(after) => after,
        SmOutbound::Instead(actions) => return actions,
    };
    let mut actions = match out {
        Outbound::Stanza(e) => vec![Action::Write(stream_element_xml(&e))],
        Outbound::Close(err) => stream.close(err),
        Outbound::Raw(parts) => vec![Action::Write(raw_stanza_text(&parts))],
    };
    actions.extend(after);
    actions
}

/// Bytes queued items are gathered into one write at most (one item may
/// be larger).
const MAX_BATCH: usize = 256 * 1024;

/// The bytes the write actions among `actions` carry.
fn written_len(actions: &[Action]) -> usize {
    actions
        .iter()
        .map(|a| match a {
            Action::Write(s) => s.len(),
            _ => 0,
        })
        .sum()
}

/// Merges consecutive writes into one.
fn coalesce_writes(actions: Vec<Action>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::with_capacity(actions.len());
    for a in actions {
        match (out.last_mut(), a) {
            (Some(Action::Write(prev)), Action::Write(s)) => prev.push_str(&s),
            (_, a) => out.push(a),
        }
    }
    out
}

/// The text of a pre-serialised stanza ([`Outbound::Raw`]).
fn raw_stanza_text(parts: &[bytes::Bytes]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(&String::from_utf8_lossy(p));
    }
    s
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod task_size {
    use super::*;

    /// Every connection's task holds this future for its life: what an
    /// idle client costs besides its session. Debug builds lay futures out
    /// larger than release builds (about 2.2 KiB here when written; an
    /// awaited TLS handshake inlined would add over 1 KiB).
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let ctx = ListenerContext {
            server: Server::new(crate::ServerConfig::default(), crate::server::Clock::System),
            tls: None,
            settings: C2sSettings {
                tls_available: false,
                direct_tls: false,
                unauthed_timeout: Duration::from_secs(1),
                limits: Default::default(),
                max_unauthed_stanza_size: None,
            },
            follow_config: false,
            keepalive: Duration::from_secs(1),
            send_timeout: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(1),
            shutdown,
        };
        let size = std::mem::size_of_val(&handle_connection(tcp, addr, ctx, false));
        assert!(size <= 3072, "the connection task's future is {size} bytes");
    }
}
