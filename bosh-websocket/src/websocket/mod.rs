//! XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`, as Prosody's
//! mod_websocket: the `xmpp` subprotocol is required (501 otherwise), each
//! text frame holds one element, `<open/>` and `<close/>` in
//! `urn:ietf:params:xml:ns:xmpp-framing` open and close the stream, pings
//! are answered and sent after `read_timeout` of silence.
//!
//! The connection's [`C2sStream`] is the one TCP uses, fed the parsed
//! elements; what it sends comes back as frames.

pub mod frames;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use xmpp_core::c2s::frame::Frame;
use xmpp_core::c2s::negotiation::{
    Action, C2sSettings, C2sStream, ReadTimeout, SmOutbound, stream_element_xml,
};
use xmpp_core::session::OutboundRx;
use xmpp_core::stanza::{Element, NS_CLIENT, NS_STREAMS, escape};
use xmpp_core::stream::{StreamEvent, StreamHeader, StreamLimits};
use xmpp_core::transport::{TransportInfo, TransportKind};
use xmpp_core::{Outbound, Server, StreamError, StreamErrorCondition};

use crate::config::WebSocketOptions;
use crate::fragment::parse_element;
use crate::routes::{HttpRequest, HttpResponse};
use frames::{FrameReader, OP_PING, OP_PONG, OP_TEXT};

/// `urn:ietf:params:xml:ns:xmpp-framing`
pub const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// The WebSocket endpoint of a server.
pub struct WebSocketService {
    server: Weak<Server>,
    options: WebSocketOptions,
    unauthed_timeout: Duration,
    read_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl WebSocketService {
    pub fn new(
        server: &Arc<Server>,
        options: WebSocketOptions,
        unauthed_timeout: Duration,
        read_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> WebSocketService {
        WebSocketService {
            server: Arc::downgrade(server),
            options,
            unauthed_timeout,
            read_timeout,
            shutdown,
        }
    }

    /// `GET` on the endpoint: the upgrade, or a page for browsers.
    pub async fn handle(self: Arc<Self>, mut req: HttpRequest) -> HttpResponse {
        let key = req.header("sec-websocket-key").map(str::to_string);
        let Some(key) = key.filter(|_| req.method == Method::GET) else {
            return crate::server::message_page(
                "Prosody WebSocket endpoint",
                "It works! Now point your WebSocket client to this URL to connect to Prosody.",
            );
        };
        let protocols = req.header("sec-websocket-protocol").unwrap_or("");
        if !frames::contains_token(protocols, "xmpp") {
            tracing::debug!("Client didn't want to talk XMPP, list of protocols was {protocols:?}");
            return crate::server::error_page(StatusCode::NOT_IMPLEMENTED, "Not Implemented");
        }
        let (Some(upgrade), Some(server)) = (
            req.extensions.remove::<hyper::upgrade::OnUpgrade>(),
            self.server.upgrade(),
        ) else {
            return crate::server::error_page(StatusCode::BAD_REQUEST, "Not a WebSocket upgrade");
        };
        // A new session gets the options in force now (a reload applies
        // them to sessions made after it).
        let (options, unauthed_timeout) = crate::config::in_force(&server).map_or_else(
            || (self.options.clone(), self.unauthed_timeout),
            |c| (c.websocket.clone(), c.unauthed_timeout),
        );
        let secure = options.consider_secure || req.secure;
        let transport = Arc::new(TransportInfo {
            kind: TransportKind::WebSocket,
            method: req.method.to_string(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: crate::server::header_pairs(&req.headers),
            ip: Some(req.ip),
            secure,
        });
        let peer = SocketAddr::new(req.ip, req.peer.port());
        let service = self.clone();
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let io = TokioIo::new(upgraded);
                    service
                        .serve(server, io, transport, peer, options, unauthed_timeout)
                        .await;
                }
                Err(e) => tracing::debug!(%peer, "WebSocket upgrade failed: {e}"),
            }
        });
        HttpResponse::new(StatusCode::SWITCHING_PROTOCOLS)
            .with_header("upgrade", "websocket")
            .with_header("connection", "Upgrade")
            .with_header("sec-websocket-accept", &frames::accept_key(&key))
            .with_header("sec-websocket-protocol", "xmpp")
    }

    async fn serve<S>(
        &self,
        server: Arc<Server>,
        io: S,
        transport: Arc<TransportInfo>,
        peer: SocketAddr,
        options: WebSocketOptions,
        unauthed_timeout: Duration,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        // The lean queue: it holds nothing while the session is idle.
        let (tx, rx) = xmpp_core::session::outbound_queue();
        let settings = C2sSettings {
            tls_available: false,
            direct_tls: transport.secure,
            unauthed_timeout,
            // The stream's own parser is not used: frames are parsed here.
            limits: StreamLimits {
                max_stanza_size: 1024,
                max_depth: 1,
            },
            max_unauthed_stanza_size: None,
        };
        // mod_limits: WebSocket sessions are c2s sessions, throttled alike.
        let throttle = server
            .extension::<xmpp_core::limits::ConnectionLimits>()
            .throttle("c2s", Instant::now().into_std());
        let mut c2s = C2sStream::new(server, tx, Some(peer), settings, Instant::now().into_std());
        c2s.set_transport(transport);
        c2s.set_throttle(throttle);
        let mut conn = Connection {
            io,
            c2s,
            rx,
            reader: FrameReader::new(
                options.stanza_size_limit,
                options.frame_buffer_limit,
                options.frame_fragment_limit,
            ),
            limits: StreamLimits {
                max_stanza_size: options.stanza_size_limit,
                ..StreamLimits::default()
            },
            done: false,
            close_timeout: options.close_timeout,
            closing: None,
            client_closed: false,
            error_sent: false,
            close_sent: false,
        };
        conn.run(self.read_timeout, self.shutdown.clone()).await;
        // Hibernate (XEP-0198), or end the session.
        let rx = std::mem::replace(&mut conn.rx, xmpp_core::session::outbound_queue().1);
        conn.c2s.connection_ended(rx);
        tracing::debug!(%peer, "WebSocket client disconnected");
    }
}

struct Connection<S> {
    io: S,
    c2s: C2sStream,
    rx: OutboundRx,
    reader: FrameReader,
    limits: StreamLimits,
    /// The connection is to be dropped.
    done: bool,
    /// `c2s_close_timeout`.
    close_timeout: Duration,
    /// We closed an authenticated stream cleanly: wait this long for the
    /// client's `<close/>` before closing the connection, as Prosody does.
    closing: Option<Instant>,
    client_closed: bool,
    error_sent: bool,
    /// Our `<close/>` went out (else a close drops the connection at once:
    /// a session resumed elsewhere, a dead connection, shutdown).
    close_sent: bool,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    async fn run(&mut self, read_timeout: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut buf = Vec::new();
        let mut last_read = Instant::now();
        while !self.done {
            let deadline = self.c2s.deadline().map(Instant::from_std);
            // Small while idle; as large as the frame being read needs.
            buf.resize(self.reader.wanted().clamp(512, 16 * 1024), 0);
            // Over its rate (mod_limits), the connection is not read until then.
            let read_at = self
                .c2s
                .read_delay(Instant::now().into_std())
                .map(|d| Instant::now() + d);
            let actions = tokio::select! {
                _ = sleep_until(read_at) => Vec::new(),
                read = self.io.read(&mut buf), if read_at.is_none() => match read {
                    Ok(0) | Err(_) => {
                        self.c2s.handle_eof();
                        return;
                    }
                    Ok(n) => {
                        last_read = Instant::now();
                        self.c2s.bill_bytes(n);
                        self.incoming(n, &buf).await
                    }
                },
                out = self.rx.recv() => match out {
                    Some(out) => self.outbound(out).await,
                    None => Vec::new(),
                },
                _ = sleep_until(deadline) => self.c2s.handle_timeout(Instant::now().into_std()),
                _ = sleep_until(self.closing) => {
                    tracing::debug!("Failed to receive a stream close response, closing connection anyway...");
                    self.closing = None;
                    self.client_closed = true;
                    vec![Action::Close]
                }
                _ = tokio::time::sleep_until(last_read + read_timeout) => {
                    last_read = Instant::now();
                    // Stream management forces an <r/> instead of the ping,
                    // and gives up on a connection that left the last unanswered.
                    match self.c2s.handle_read_timeout() {
                        ReadTimeout::Keepalive => {
                            self.write(&frames::build(OP_PING, b"")).await;
                            Vec::new()
                        }
                        ReadTimeout::Request(actions) => actions,
                        ReadTimeout::Dead => vec![Action::Close],
                    }
                }
                // A resumable session's connection just goes at shutdown
                // (its counter kept, XEP-0198); others are closed.
                _ = shutdown.changed() => match self.c2s.smacks_server_stopping() {
                    Some(actions) => actions,
                    None => self.c2s.close(Some(StreamError::with_text(
                        StreamErrorCondition::SystemShutdown,
                        "Server is shutting down",
                    ))),
                },
            };
            buf = Vec::new();
            self.apply(actions).await;
            // A resumed session (XEP-0198): its outbound queue is ours now.
            if let Some(resumed) = self.c2s.take_resumed_outbound() {
                self.rx = resumed;
            }
        }
    }

    /// An item for the client: stream management counts and keeps it
    /// (XEP-0198) and may ask for an ack after it.
    async fn outbound(&mut self, out: Outbound) -> Vec<Action> {
        let after = match self.c2s.smacks_outbound(&out) {
            SmOutbound::Write(after) => after,
            SmOutbound::Instead(actions) => return actions,
        };
        let mut actions = match out {
            // Nothing more after our <close/> (Prosody's send becomes a no-op).
            Outbound::Stanza(_) | Outbound::Raw(_) if self.c2s.is_closed() => Vec::new(),
            Outbound::Stanza(e) => vec![Action::Frame(Frame::Element(e))],
            Outbound::Raw(parts) => {
                self.write(&frames::build(OP_TEXT, &parts.concat())).await;
                Vec::new()
            }
            Outbound::Close(error) => self.c2s.close(error),
        };
        actions.extend(after);
        actions
    }

    /// Bytes read: frames out of them, each handled as Prosody does.
    async fn incoming(&mut self, n: usize, buf: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.reader.push(&buf[..n]).is_err() {
            tracing::warn!("websocket frame buffer full - terminating session");
            return self.c2s.close(Some(StreamError::with_text(
                StreamErrorCondition::ResourceConstraint,
                "frame buffer exceeded",
            )));
        }
        loop {
            let frame = match self.reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(v) if v.is_too_large() => {
                    // Close the session, not just the connection, so a
                    // resuming client does not send the stanza again.
                    actions.extend(self.c2s.close(Some(StreamError::with_text(
                        StreamErrorCondition::PolicyViolation,
                        "stanza too large",
                    ))));
                    break;
                }
                Err(v) => {
                    self.write(&frames::build_close(v.code, v.reason)).await;
                    self.done = true;
                    self.c2s.handle_eof();
                    break;
                }
            };
            match frame.opcode {
                OP_PING => self.write(&frames::build(OP_PONG, &frame.payload)).await,
                OP_TEXT => actions.extend(self.text(&frame.payload)),
                // Pongs (keepalives) and lone continuation frames.
                _ => {}
            }
            if self.done || self.c2s.is_closed() {
                break;
            }
        }
        actions
    }

    /// One text frame: `<open/>`, `<close/>` or an element of the stream.
    fn text(&mut self, payload: &[u8]) -> Vec<Action> {
        let element = match parse_element(payload, &self.limits) {
            Ok(e) => e,
            Err(e) => return self.c2s.close(Some(e)),
        };
        let event = if element.is("open", NS_FRAMING) {
            StreamEvent::Open(open_header(&element))
        } else if element.is("close", NS_FRAMING) {
            self.client_closed = true;
            if self.closing.take().is_some() {
                // The answer to our <close/>.
                return vec![Action::Close];
            }
            StreamEvent::Close
        } else {
            StreamEvent::Stanza(element)
        };
        self.c2s.handle_stream_event(event)
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            if self.done {
                return;
            }
            match action {
                Action::Frame(frame) => {
                    if matches!(&frame, Frame::Element(e) if e.is("error", NS_STREAMS)) {
                        self.error_sent = true;
                    }
                    if matches!(&frame, Frame::Close) {
                        self.close_sent = true;
                    }
                    let text = frame_xml(&frame);
                    self.write(&frames::build(OP_TEXT, text.as_bytes())).await;
                }
                Action::Close
                    if self.close_sent
                        && !self.client_closed
                        && !self.error_sent
                        && self.c2s.is_authenticated()
                        && self.closing.is_none() =>
                {
                    self.closing = Some(Instant::now() + self.close_timeout);
                }
                Action::Close => {
                    self.write(&frames::build_close(1000, "Stream closed"))
                        .await;
                    let _ = self.io.shutdown().await;
                    self.done = true;
                }
                Action::Write(_) | Action::StartTls => {}
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        let result = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        if result.await.is_err() {
            // Write timeout (the client does not read) or a dead socket.
            self.done = true;
            self.c2s.handle_eof();
        }
    }
}

/// The stream header an `<open/>` stands for.
fn open_header(open: &Element) -> StreamHeader {
    let get = |name: &str| open.get_attr(name).map(str::to_string);
    StreamHeader {
        ns: NS_CLIENT.to_string(),
        to: get("to"),
        from: get("from"),
        version: get("version"),
        lang: get("xml:lang"),
        id: get("id"),
        attrs: Vec::new(),
    }
}

/// A frame's XML, standing alone as RFC 7395 wants: namespaces declared on
/// every element, `<open/>`/`<close/>` for the stream's ends.
pub fn frame_xml(frame: &Frame) -> String {
    match frame {
        Frame::Open(h) => {
            let mut s = format!("<open xmlns='{NS_FRAMING}'");
            for (name, value) in [
                ("from", h.from.as_deref()),
                ("to", h.to.as_deref()),
                ("id", h.id.as_deref()),
                ("version", h.version.as_deref()),
                ("xml:lang", h.lang.as_deref()),
            ] {
                if let Some(v) = value {
                    s.push_str(&format!(" {name}='{}'", escape(v)));
                }
            }
            s.push_str("/>");
            s
        }
        Frame::Element(e) if e.ns() == NS_STREAMS => {
            let mut e = e.clone();
            e.set_attr("xmlns:stream", Some(NS_STREAMS.to_string()));
            stream_element_xml(&e)
        }
        Frame::Element(e) => e.to_xml_in(""),
        Frame::Close => format!("<close xmlns='{NS_FRAMING}'/>"),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fragment::parse_element;

    #[test]
    fn frames_stand_alone() {
        let limits = StreamLimits::default();
        let open = frame_xml(&Frame::Open(StreamHeader {
            from: Some("localhost".into()),
            id: Some("c2s1".into()),
            version: Some("1.0".into()),
            lang: Some("en".into()),
            ..StreamHeader::default()
        }));
        assert_eq!(
            open,
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='localhost' id='c2s1' version='1.0' xml:lang='en'/>"
        );
        let features = Element::new("features", NS_STREAMS)
            .child(Element::new("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
        let xml = frame_xml(&Frame::Element(features));
        let parsed = parse_element(xml.as_bytes(), &limits).unwrap();
        assert!(parsed.is("features", NS_STREAMS), "{xml}");
        let msg =
            Element::new("message", NS_CLIENT).child(Element::new("body", NS_CLIENT).text("hi"));
        let xml = frame_xml(&Frame::Element(msg));
        assert_eq!(
            xml,
            "<message xmlns='jabber:client'><body>hi</body></message>"
        );
        let error = StreamError::new(StreamErrorCondition::PolicyViolation).to_element();
        let parsed = parse_element(frame_xml(&Frame::Element(error)).as_bytes(), &limits).unwrap();
        assert!(parsed.is("error", NS_STREAMS));
        assert_eq!(
            frame_xml(&Frame::Close),
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"
        );
    }

    #[test]
    fn open_frames_become_headers() {
        let open = parse_element(b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0' xml:lang='de'/>", &StreamLimits::default()).unwrap();
        let h = open_header(&open);
        assert_eq!(
            (
                h.ns.as_str(),
                h.to.as_deref(),
                h.version.as_deref(),
                h.lang.as_deref()
            ),
            (NS_CLIENT, Some("localhost"), Some("1.0"), Some("de"))
        );
    }
}
