//! The thin tokio runtime around the sans-IO [`Bridge`]: one task owns the
//! bridge, the UDP socket, the stanza link and the timer; the HTTP side
//! (colibri-ws, stats) reaches it through a [`BridgeHandle`].
//!
//! [`run_with_link`] starts a bridge on a bound XMPP [`ClientLink`] (made
//! by `xmpp_core::client::connect` standalone, or `local` inside lilt);
//! [`start`] does the same on plain stanza channels.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use xmpp_core::Element;
use xmpp_core::client::{ClientError, ClientLink};

use crate::brewery::{BreweryConfig, DEFAULT_REFRESH};
use crate::bridge::{Bridge, BridgeConfig, ChannelRefused, Output};
use crate::media::MediaConfig;
use crate::stats::BridgeStats;

/// Videobridge's default `websocket.server-id`.
pub const DEFAULT_BRIDGE_ID: &str = "default-id";

/// How a bridge runs (both in-process and standalone).
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// The brewery room's bare JID; `None`: join none.
    pub brewery: Option<String>,
    /// The nick in the brewery.
    pub nick: String,
    /// The bridge id in colibri-ws URLs (Videobridge's
    /// `websocket.server-id`); `default-id` by default, the path Jitsi's
    /// nginx configs proxy (`/colibri-ws/default-id/`).
    pub bridge_id: String,
    /// Where the media socket is bound (Videobridge: port 10000).
    pub udp_bind: SocketAddr,
    /// Addresses offered as ICE host candidates (with the socket's port);
    /// empty: the bound address, or (bound to an unspecified address) the
    /// host's non-loopback IPv4 addresses, else 127.0.0.1.
    pub addresses: Vec<IpAddr>,
    /// Serve the HTTP routes on this address (standalone).
    pub http: Option<SocketAddr>,
    /// Public base of the colibri-ws URL; `None`: `ws://<http>/colibri-ws`.
    pub ws_url_base: Option<String>,
    pub region: Option<String>,
    pub relay_id: Option<String>,
    /// Accept any certificate of a peer bridge's `wss://` relay channel.
    pub relay_insecure_tls: bool,
    /// A silent endpoint expires after this long.
    pub endpoint_timeout: Duration,
    /// Bandwidth allocation (Videobridge's `videobridge.cc`: last-N, ...).
    pub allocation: crate::allocation::AllocationConfig,
}

impl BridgeOptions {
    pub fn new(nick: &str) -> BridgeOptions {
        BridgeOptions {
            brewery: None,
            nick: nick.to_string(),
            bridge_id: DEFAULT_BRIDGE_ID.to_string(),
            udp_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 10000),
            addresses: Vec::new(),
            http: None,
            ws_url_base: None,
            region: None,
            relay_id: None,
            relay_insecure_tls: false,
            endpoint_timeout: Duration::from_secs(60),
            allocation: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Config(String),
    #[error("the XMPP link closed")]
    LinkClosed,
}

/// Commands queued for the bridge task.
const COMMAND_QUEUE: usize = 1024;

/// Messages queued for one bridge channel's socket before more are
/// dropped (an endpoint that does not read cannot grow the bridge).
pub const CHANNEL_QUEUE: usize = 256;

/// What the bridge task sends to one bridge channel's socket.
#[derive(Debug)]
pub enum ChannelOut {
    Text(String),
    Close,
}

/// Requests to the bridge task from the HTTP side and the owner.
#[derive(Debug)]
pub enum Command {
    ChannelOpen {
        conference: String,
        endpoint: String,
        pwd: String,
        sink: mpsc::Sender<ChannelOut>,
        /// The channel's serial (to tell a replaced channel's close apart).
        reply: oneshot::Sender<Result<u64, ChannelRefused>>,
    },
    ChannelMessage {
        conference: String,
        endpoint: String,
        text: String,
    },
    ChannelClose {
        conference: String,
        endpoint: String,
        serial: u64,
    },
    /// This bridge's WebSocket to a peer's colibri-relay-ws is up
    /// (`relay/ws_client.rs`); replies the channel's serial.
    RelayChannelConnected {
        conference: String,
        relay: String,
        sink: mpsc::Sender<ChannelOut>,
        reply: oneshot::Sender<u64>,
    },
    /// Every conference's debug state (`/debug`), made when asked for.
    Debug {
        reply: oneshot::Sender<std::collections::BTreeMap<String, serde_json::Value>>,
    },
    GracefulShutdown,
    Drain(bool),
    /// Stop now (no graceful shutdown).
    Stop,
}

/// A cheap handle on a running bridge.
#[derive(Debug, Clone)]
pub struct BridgeHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<Mutex<BridgeStats>>,
    bridge_id: Arc<str>,
}

impl BridgeHandle {
    /// Queues a command without waiting; false once the bridge has
    /// stopped or while its queue is full.
    pub fn command(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Queues a command, waiting for room (the bridge channel's reader
    /// slows down instead of growing the queue); false once stopped.
    pub async fn send_command(&self, command: Command) -> bool {
        self.commands.send(command).await.is_ok()
    }

    /// The latest stats snapshot (refreshed every second).
    pub fn stats(&self) -> BridgeStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every conference's debug state, made by the bridge task now;
    /// `None` once it has stopped.
    pub async fn debug_states(
        &self,
    ) -> Option<std::collections::BTreeMap<String, serde_json::Value>> {
        let (reply, answer) = oneshot::channel();
        if !self.send_command(Command::Debug { reply }).await {
            return None;
        }
        answer.await.ok()
    }

    pub fn bridge_id(&self) -> &str {
        &self.bridge_id
    }

    pub fn graceful_shutdown(&self) -> bool {
        self.command(Command::GracefulShutdown)
    }

    /// Drain mode on or off (`drain` in the stats).
    pub fn drain(&self, on: bool) -> bool {
        self.command(Command::Drain(on))
    }

    pub fn stop(&self) -> bool {
        self.command(Command::Stop)
    }
}

/// Stanzas in and out, for [`start`].
pub struct StanzaIo {
    /// Bounded ([`STANZA_QUEUE`]): a server that floods the bridge is read
    /// no faster than the bridge handles it.
    pub incoming: mpsc::Receiver<Element>,
    pub outgoing: mpsc::UnboundedSender<Element>,
}

/// A started bridge.
pub struct RunningBridge {
    pub handle: BridgeHandle,
    /// The media socket's local address.
    pub udp_address: SocketAddr,
    /// The HTTP listener's address, when `http` was set.
    pub http_address: Option<SocketAddr>,
    task: JoinHandle<Result<(), BridgeError>>,
}

impl RunningBridge {
    /// The HTTP routes, to mount on lilt's own server (in-process).
    pub fn router(&self) -> axum::Router {
        crate::http::router(self.handle.clone())
    }

    /// The routes for lilt's own HTTP server ([`crate::http::shared_router`]).
    pub fn shared_router(&self) -> axum::Router {
        crate::http::shared_router(self.handle.clone())
    }

    /// Waits until the bridge task ends (graceful shutdown finished, stop,
    /// or the link closed).
    pub async fn wait(self) -> Result<(), BridgeError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(BridgeError::Config(format!("bridge task failed: {e}"))),
        }
    }
}

/// Stanzas from the server waiting for the bridge task.
pub const STANZA_QUEUE: usize = 256;

/// Starts a bridge on a bound client session: joins the brewery and
/// answers Colibri2 until the link closes or the bridge is stopped.
pub async fn run_with_link(
    mut link: ClientLink,
    options: BridgeOptions,
) -> Result<RunningBridge, BridgeError> {
    let sender = link.sender();
    let (in_tx, in_rx) = mpsc::channel(STANZA_QUEUE);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Element>();
    let outgoing = tokio::spawn(async move {
        while let Some(stanza) = out_rx.recv().await {
            if !sender.send(stanza) {
                break;
            }
        }
    });
    // The session lives as long as the bridge task: once the task has
    // ended and everything it said was handed to the link, the link goes.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                stanza = link.recv() => match stanza {
                    Some(s) => {
                        if in_tx.send(s).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = in_tx.closed() => break,
            }
        }
        let _ = outgoing.await;
        drop(link);
    });
    start(
        options,
        StanzaIo {
            incoming: in_rx,
            outgoing: out_tx,
        },
    )
    .await
}

/// The kernel buffers the bridge asks for on its one UDP socket: a burst
/// (a key frame from several senders at once, a slow turn of the loop)
/// waits there instead of being dropped. Not more: a bridge that cannot
/// keep up should drop rather than hold media back for a hundred
/// milliseconds (an 8 MiB buffer held 179 ms at saturation in `bench
/// --media`). The kernel caps the request at `net.core.rmem_max`.
const UDP_BUFFER_BYTES: usize = 1 << 20;

fn enlarge_buffers(socket: &UdpSocket) {
    let s = socket2::SockRef::from(socket);
    // Best effort: a smaller buffer still works, it only drops sooner.
    let _ = s.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(UDP_BUFFER_BYTES);
    let got = s.recv_buffer_size().unwrap_or(0);
    if got < UDP_BUFFER_BYTES {
        tracing::info!(
            "UDP receive buffer is {} KiB (asked for {} KiB): raise net.core.rmem_max for large conferences",
            got / 1024,
            UDP_BUFFER_BYTES / 1024
        );
    }
}

/// The media socket. On the unspecified address, replies would leave from
/// whichever address the kernel picks: with one advertised address that is
/// this host's, the socket binds to it, so an endpoint's ICE checks are
/// answered from the candidate it was given (as Videobridge binds a socket
/// per local address). An advertised address the host does not have (a
/// NAT's public one) leaves the socket on the unspecified address.
async fn bind_udp(options: &BridgeOptions) -> Result<UdpSocket, BridgeError> {
    if let [address] = options.addresses[..]
        && options.udp_bind.ip().is_unspecified()
        && address.is_ipv4() == options.udp_bind.is_ipv4()
        && let Ok(socket) = UdpSocket::bind(SocketAddr::new(address, options.udp_bind.port())).await
    {
        return Ok(socket);
    }
    UdpSocket::bind(options.udp_bind)
        .await
        .map_err(io_error(format!("binding UDP {}", options.udp_bind)))
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BridgeError {
    let what = what.into();
    move |source| BridgeError::Io { what, source }
}

/// Starts a bridge on stanza channels: binds the UDP socket (and the HTTP
/// listener when asked), then runs the bridge task.
pub async fn start(options: BridgeOptions, io: StanzaIo) -> Result<RunningBridge, BridgeError> {
    let socket = bind_udp(&options).await?;
    enlarge_buffers(&socket);
    let udp_address = socket.local_addr().map_err(io_error("UDP address"))?;
    let mut ips = options.addresses.clone();
    if ips.is_empty() {
        if !udp_address.ip().is_unspecified() {
            ips.push(udp_address.ip());
        } else {
            ips = crate::host_addresses::host_addresses();
            if ips.is_empty() {
                tracing::warn!("no --address given: offering 127.0.0.1 as the only ICE candidate");
                ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
            }
        }
    }
    let candidates: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, udp_address.port()))
        .collect();
    let listener = match options.http {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io_error(format!("binding HTTP {addr}")))?,
        ),
        None => None,
    };
    let http_address = match &listener {
        Some(l) => Some(l.local_addr().map_err(io_error("HTTP address"))?),
        None => None,
    };
    let ws_url_base = match (&options.ws_url_base, http_address) {
        (Some(base), _) => base.clone(),
        (None, Some(addr)) => format!("ws://{addr}/colibri-ws"),
        (None, None) => {
            return Err(BridgeError::Config(
                "no colibri-ws URL base: give --ws-url-base or --http".into(),
            ));
        }
    };
    let media = MediaConfig {
        candidate_addresses: candidates.clone(),
        endpoint_timeout: options.endpoint_timeout,
    };
    let mut config = BridgeConfig::new(&options.bridge_id, &ws_url_base, media);
    config.region = options.region.clone();
    config.relay_id = options.relay_id.clone();
    config.allocation = options.allocation.clone();
    config.brewery = options.brewery.as_ref().map(|room| BreweryConfig {
        room: room.clone(),
        nick: options.nick.clone(),
        refresh: DEFAULT_REFRESH,
    });
    let bridge = Bridge::new(config);
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = BridgeHandle {
        commands: cmd_tx,
        stats: Arc::new(Mutex::new(bridge.stats())),
        bridge_id: Arc::from(options.bridge_id.as_str()),
    };
    // The listener stops when the bridge task ends (its sender dropped).
    let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
    if let Some(listener) = listener {
        let app = crate::http::router(handle.clone());
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped_rx.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(error = %e, "bridge HTTP listener ended");
            }
        });
    }
    tracing::info!(udp = %udp_address, ?candidates, http = ?http_address, "bridge started");
    let task = tokio::spawn(
        BridgeTask {
            bridge,
            local: socket.local_addr().ok(),
            socket,
            candidates,
            io,
            commands: cmd_rx,
            stats: handle.stats.clone(),
            channels: HashMap::new(),
            next_serial: 1,
            relay_commands: handle.commands.downgrade(),
            relay_insecure_tls: options.relay_insecure_tls,
            _stopped: stopped_tx,
        }
        .run(),
    );
    Ok(RunningBridge {
        handle,
        udp_address,
        http_address,
        task,
    })
}

struct BridgeTask {
    bridge: Bridge,
    socket: UdpSocket,
    /// The socket's address (read once, not per datagram).
    local: Option<SocketAddr>,
    candidates: Vec<SocketAddr>,
    io: StanzaIo,
    commands: mpsc::Receiver<Command>,
    stats: Arc<Mutex<BridgeStats>>,
    /// (conference, endpoint) → (serial, socket sink).
    channels: HashMap<(String, String), (u64, mpsc::Sender<ChannelOut>)>,
    next_serial: u64,
    /// For relay channels this bridge connects (weak: they do not keep
    /// the command queue open).
    relay_commands: mpsc::WeakSender<Command>,
    relay_insecure_tls: bool,
    /// Dropped with the task: stops the HTTP listener.
    _stopped: oneshot::Sender<()>,
}

/// How often the stats snapshot for HTTP is refreshed.
const STATS_PERIOD: Duration = Duration::from_secs(1);

impl BridgeTask {
    async fn run(mut self) -> Result<(), BridgeError> {
        self.bridge.start(Instant::now());
        let mut buf = vec![0u8; 2048];
        let mut next_stats = Instant::now();
        loop {
            if self.flush().await {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_stats {
                self.publish_stats();
                next_stats = now + STATS_PERIOD;
            }
            let deadline = self
                .bridge
                .next_timeout()
                .map_or(next_stats, |t| t.min(next_stats));
            tokio::select! {
                stanza = self.io.incoming.recv() => match stanza {
                    Some(s) => self.bridge.handle_stanza(Instant::now(), s),
                    None => return Err(BridgeError::LinkClosed),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Stop) | None => return Ok(()),
                    Some(c) => self.handle_command(c),
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => {
                        let destination = self.destination_for(source);
                        let data = buf.get(..n).unwrap_or_default();
                        self.bridge.handle_datagram(Instant::now(), source, destination, data);
                    }
                    Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
                },
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.bridge.handle_timeout(Instant::now());
                }
            }
        }
    }

    /// The local address a datagram from `source` was sent to: the socket's
    /// own, or (bound to an unspecified address) the first candidate of the
    /// same family.
    fn destination_for(&self, source: SocketAddr) -> SocketAddr {
        match self.local {
            Some(l) if !l.ip().is_unspecified() => l,
            _ => self
                .candidates
                .iter()
                .find(|c| c.is_ipv4() == source.is_ipv4())
                .or(self.candidates.first())
                .copied()
                .unwrap_or(source),
        }
    }

    fn publish_stats(&self) {
        if let Ok(mut s) = self.stats.lock() {
            *s = self.bridge.stats();
        }
    }

    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::ChannelOpen {
                conference,
                endpoint,
                pwd,
                sink,
                reply,
            } => {
                let serial = self.next_serial;
                self.next_serial += 1;
                let key = (conference.clone(), endpoint.clone());
                // Registered first so that ServerHello finds it.
                let previous = self.channels.insert(key.clone(), (serial, sink));
                match self
                    .bridge
                    .handle_channel_open(now, &conference, &endpoint, &pwd)
                {
                    Ok(()) => {
                        if let Some((_, old)) = previous {
                            let _ = old.try_send(ChannelOut::Close);
                        }
                        let _ = reply.send(Ok(serial));
                    }
                    Err(e) => {
                        match previous {
                            Some(p) => self.channels.insert(key, p),
                            None => self.channels.remove(&key),
                        };
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::ChannelMessage {
                conference,
                endpoint,
                text,
            } => self
                .bridge
                .handle_channel_message(now, &conference, &endpoint, &text),
            Command::ChannelClose {
                conference,
                endpoint,
                serial,
            } => {
                let key = (conference, endpoint);
                if self.channels.get(&key).is_some_and(|(s, _)| *s == serial) {
                    self.channels.remove(&key);
                    self.bridge.handle_channel_close(now, &key.0, &key.1);
                }
            }
            Command::RelayChannelConnected {
                conference,
                relay,
                sink,
                reply,
            } => {
                let serial = self.next_serial;
                self.next_serial += 1;
                let key = (conference.clone(), crate::media::relay_key(&relay));
                if let Some((_, old)) = self.channels.insert(key, (serial, sink)) {
                    let _ = old.try_send(ChannelOut::Close);
                }
                self.bridge
                    .handle_relay_channel_connected(now, &conference, &relay);
                let _ = reply.send(serial);
            }
            Command::Debug { reply } => {
                let _ = reply.send(self.bridge.debug_states());
                return;
            }
            Command::GracefulShutdown => self.bridge.graceful_shutdown(now),
            Command::Drain(on) => self.bridge.set_drain(now, on),
            Command::Stop => {}
        }
        self.publish_stats();
    }

    /// Carries out every pending output; true once the bridge is finished.
    async fn flush(&mut self) -> bool {
        let mut finished = false;
        while let Some(output) = self.bridge.poll_output() {
            match output {
                Output::Stanza(s) => {
                    if self.io.outgoing.send(s).is_err() {
                        tracing::warn!("stanza dropped: the link is gone");
                    }
                }
                Output::Channel {
                    conference,
                    endpoint,
                    message,
                } => {
                    let key = (conference, endpoint);
                    let gone = match self.channels.get(&key) {
                        Some((_, sink)) => match sink.try_send(ChannelOut::Text(message)) {
                            Ok(()) => false,
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                // The endpoint does not read: drop, as UDP would.
                                tracing::debug!(conference = %key.0, endpoint = %key.1, "bridge channel full, message dropped");
                                false
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => true,
                        },
                        None => false,
                    };
                    if gone {
                        self.channels.remove(&key);
                        self.bridge
                            .handle_channel_close(Instant::now(), &key.0, &key.1);
                    }
                }
                Output::CloseChannel {
                    conference,
                    endpoint,
                } => {
                    if let Some((_, sink)) = self.channels.remove(&(conference, endpoint)) {
                        let _ = sink.try_send(ChannelOut::Close);
                    }
                }
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => {
                    if let Err(e) = self.socket.send_to(&contents, destination).await {
                        tracing::debug!(%destination, error = %e, "UDP send failed");
                    }
                }
                Output::Finished => finished = true,
            }
        }
        for (conference, relay, url) in self.bridge.take_relay_connects() {
            tokio::spawn(crate::relay::ws_client::run_relay_channel(
                url,
                self.relay_insecure_tls,
                self.relay_commands.clone(),
                conference,
                relay,
            ));
        }
        if finished {
            self.publish_stats();
        }
        finished
    }
}
