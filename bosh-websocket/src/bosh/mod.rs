//! BOSH (XEP-0124, XEP-0206) at `/http-bind`, as Prosody's mod_bosh.
//!
//! Each session is a task that owns the session's [`C2sStream`] (the same
//! sans-IO negotiation TCP streams use, fed parsed elements) and its
//! [`state::BoshState`]. HTTP requests reach it as commands and wait for
//! their answer; a request whose connection drops is reported so it is no
//! longer counted as held.

pub mod body;
pub mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::http::Method;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use xmpp_core::c2s::frame::Frame;
use xmpp_core::c2s::negotiation::{Action, C2sSettings, C2sStream, SmOutbound, stream_element_xml};
use xmpp_core::session::OutboundRx;
use xmpp_core::stanza::{Element, NS_CLIENT, NS_STREAMS};
use xmpp_core::stream::{StreamEvent, StreamHeader, StreamLimits};
use xmpp_core::transport::{TransportInfo, TransportKind};
use xmpp_core::{Outbound, Server, StreamError, StreamErrorCondition};

use crate::config::BoshOptions;
use crate::fragment::parse_element;
use crate::routes::{HttpRequest, HttpResponse};
use body::{BodyAttrs, NS_BOSH};
use state::{Admitted, BoshState, Output, RequestId, Settings};

/// The BOSH endpoint of a server.
pub struct BoshService {
    server: Weak<Server>,
    options: BoshOptions,
    unauthed_timeout: Duration,
    sessions: Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>,
    next_request: std::sync::atomic::AtomicU64,
    shutdown: watch::Receiver<bool>,
}

/// What an HTTP request asks of a session task.
enum Command {
    Request {
        id: RequestId,
        rid: u64,
        attrs: Box<BodyAttrs>,
        stanzas: Vec<Element>,
        reply: oneshot::Sender<String>,
    },
    Gone(RequestId),
    /// A request for this session was not well-formed XML: its rid counts,
    /// nothing else happens (Prosody's parser had read the body's tag).
    Skip(u64),
    /// A request for this session broke the XMPP subset of XML (comments,
    /// DTDs, processing instructions) or the stanza size limit: the session
    /// ends with `bad-format`, as Prosody ends it.
    Abort,
}

const XML: &str = "text/xml; charset=utf-8";

fn xml_response(body: String) -> HttpResponse {
    HttpResponse::ok(XML, body)
}

impl BoshService {
    pub fn new(
        server: &Arc<Server>,
        options: BoshOptions,
        unauthed_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> BoshService {
        BoshService {
            server: Arc::downgrade(server),
            options,
            unauthed_timeout,
            sessions: Mutex::new(HashMap::new()),
            next_request: std::sync::atomic::AtomicU64::new(1),
            shutdown,
        }
    }

    /// The options in force (those it was made with if the server is gone).
    fn options(&self) -> BoshOptions {
        self.server
            .upgrade()
            .and_then(|s| crate::config::in_force(&s))
            .map_or_else(|| self.options.clone(), |c| c.bosh.clone())
    }

    /// Open sessions.
    pub fn session_count(&self) -> usize {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// `GET`, `POST` and (through the router) `OPTIONS` on the endpoint.
    pub async fn handle(self: Arc<Self>, req: HttpRequest) -> HttpResponse {
        if req.method != Method::POST {
            return crate::server::message_page(
                "Prosody BOSH endpoint",
                "It works! Now point your BOSH client to this URL to connect to Prosody.",
            );
        }
        let options = self.options();
        let limits = StreamLimits {
            max_stanza_size: options.stanza_size_limit,
            ..StreamLimits::default()
        };
        let body = match parse_element(&req.body, &limits) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(peer = %req.ip, "Error parsing BOSH payload; {e}");
                // As Prosody: the session the body's tag named learns of it.
                if let Some(attrs) = body::sniff_attrs(&req.body)
                    && let Some(sid) = &attrs.sid
                {
                    let found = self
                        .sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(sid)
                        .cloned();
                    let command = match (e.condition, attrs.rid) {
                        (StreamErrorCondition::NotWellFormed, Some(rid)) => {
                            Some(Command::Skip(rid))
                        }
                        (StreamErrorCondition::NotWellFormed, None) => None,
                        _ => Some(Command::Abort),
                    };
                    if let (Some(tx), Some(command)) = (found, command) {
                        let _ = tx.send(command);
                    }
                }
                return xml_response(body::terminate("bad-request"));
            }
        };
        let Some(attrs) = BodyAttrs::from_element(&body) else {
            return xml_response(body::terminate("bad-request"));
        };
        let stanzas = body::stanzas(body, attrs.lang.as_deref());
        let Some(rid) = attrs.rid else {
            return xml_response(body::terminate("bad-request"));
        };
        let tx = match &attrs.sid {
            Some(sid) => {
                let found = self
                    .sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(sid)
                    .cloned();
                match found {
                    Some(tx) => tx,
                    None => {
                        tracing::info!("Client tried to use sid '{sid}' which we don't know about");
                        return xml_response(body::unknown_sid());
                    }
                }
            }
            None => match self.create_session(&req, &attrs, rid) {
                Ok(tx) => tx,
                Err(condition) => return xml_response(body::terminate(condition)),
            },
        };
        let id = self
            .next_request
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = Command::Request {
            id,
            rid,
            attrs: Box::new(attrs),
            stanzas,
            reply: reply_tx,
        };
        if tx.send(command).is_err() {
            return xml_response(body::unknown_sid());
        }
        // If the client goes away while this waits, the guard tells the
        // session that the request is no longer held.
        let guard = GoneGuard {
            tx,
            id,
            armed: true,
        };
        let answer = reply_rx.await;
        guard.disarm();
        match answer {
            Ok(body) => xml_response(body),
            Err(_) => xml_response(body::unknown_sid()),
        }
    }

    /// Validates a session request as Prosody does and starts its task.
    fn create_session(
        self: &Arc<Self>,
        req: &HttpRequest,
        attrs: &BodyAttrs,
        rid: u64,
    ) -> Result<mpsc::UnboundedSender<Command>, &'static str> {
        let server = self.server.upgrade().ok_or("internal-server-error")?;
        let to = attrs.to.as_deref().ok_or("improper-addressing")?;
        let host_name = xmpp_core::jid::nameprep(to).map_err(|_| "improper-addressing")?;
        let host = server.host(&host_name).ok_or("improper-addressing")?;
        if host.is_component() {
            return Err("improper-addressing");
        }
        let wait: u64 = attrs
            .wait
            .as_deref()
            .and_then(|w| w.trim().parse().ok())
            .ok_or("bad-request")?;
        // A new session gets the options in force now (a reload applies
        // them to sessions made after it).
        let (options, unauthed_timeout) = crate::config::in_force(&server).map_or_else(
            || (self.options.clone(), self.unauthed_timeout),
            |c| (c.bosh.clone(), c.unauthed_timeout),
        );
        let wait = Duration::from_secs(wait).min(options.max_wait);
        let sid = new_sid();
        let settings = Settings {
            wait,
            inactivity: options.max_inactivity,
            polling: options.max_polling,
            max_pause: options.max_pause,
        };
        let now = Instant::now().into_std();
        let state = BoshState::new(sid.clone(), host.name.clone(), rid, settings, now);
        let secure = options.consider_secure || req.secure;
        let transport = Arc::new(TransportInfo {
            kind: TransportKind::Bosh,
            method: req.method.to_string(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers: crate::server::header_pairs(&req.headers),
            ip: Some(req.ip),
            secure,
        });
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let settings = C2sSettings {
            tls_available: false,
            direct_tls: secure,
            unauthed_timeout,
            // The stream's own parser is not used: bodies are parsed here.
            limits: StreamLimits {
                max_stanza_size: 1024,
                max_depth: 1,
            },
            max_unauthed_stanza_size: None,
        };
        let peer = SocketAddr::new(req.ip, req.peer.port());
        let mut c2s = C2sStream::new(server.clone(), out_tx, Some(peer), settings, now);
        c2s.set_transport(transport);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.clone(), cmd_tx.clone());
        tracing::info!(peer = %req.ip, "New BOSH session, assigned it sid '{sid}'");
        let task = SessionTask {
            service: self.clone(),
            host: host.name.clone(),
            state,
            c2s,
            outbound: out_rx.into(),
            commands: cmd_rx,
            replies: HashMap::new(),
            pending_error: None,
            max_pending: options.stanza_size_limit.saturating_mul(10),
            shutdown: self.shutdown.clone(),
        };
        tokio::spawn(task.run());
        Ok(cmd_tx)
    }
}

struct GoneGuard {
    tx: mpsc::UnboundedSender<Command>,
    id: RequestId,
    armed: bool,
}

impl GoneGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for GoneGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.tx.send(Command::Gone(self.id));
        }
    }
}

/// A random session id, UUID-shaped as Prosody's.
fn new_sid() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One session's task.
struct SessionTask {
    service: Arc<BoshService>,
    host: String,
    state: BoshState,
    c2s: C2sStream,
    outbound: OutboundRx,
    commands: mpsc::UnboundedReceiver<Command>,
    replies: HashMap<RequestId, oneshot::Sender<String>>,
    /// A `<stream:error/>` the stream sent, for the terminating body.
    pending_error: Option<String>,
    max_pending: usize,
    shutdown: watch::Receiver<bool>,
}

impl SessionTask {
    async fn run(mut self) {
        let mut expired = None;
        loop {
            let deadline = [self.state.poll_timeout(), self.c2s.deadline()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Request { id, rid, attrs, stanzas, reply }) => {
                        self.replies.insert(id, reply);
                        self.request(id, rid, *attrs, stanzas);
                    }
                    Some(Command::Gone(id)) => {
                        self.replies.remove(&id);
                        self.state.request_gone(Instant::now().into_std(), id);
                    }
                    Some(Command::Skip(rid)) => self.state.skip(rid),
                    Some(Command::Abort) => {
                        let error = StreamError::with_text(StreamErrorCondition::BadFormat, "Error processing stream");
                        let actions = self.c2s.close(Some(error));
                        self.apply(actions);
                    }
                    None => break,
                },
                out = self.outbound.recv() => {
                    if let Some(out) = out {
                        self.outbound(out);
                    }
                }
                _ = sleep_until(deadline) => {
                    let now = Instant::now().into_std();
                    self.state.handle_timeout(now);
                    let actions = self.c2s.handle_timeout(now);
                    self.apply(actions);
                }
                _ = self.shutdown.changed() => {
                    // A resumable session just goes (its counter kept, XEP-0198).
                    let actions = match self.c2s.smacks_server_stopping() {
                        Some(actions) => actions,
                        None => self.c2s.close(Some(StreamError::with_text(StreamErrorCondition::SystemShutdown, "Server is shutting down"))),
                    };
                    self.apply(actions);
                }
            }
            // A resumed session (XEP-0198): its outbound queue is ours now.
            if let Some(resumed) = self.c2s.take_resumed_outbound() {
                self.outbound = resumed;
            }
            if self.state.pending_bytes() > self.max_pending {
                tracing::warn!(host = %self.host, sid = %self.state.sid(), "BOSH client is not collecting its data; closing the session");
                let actions = self.c2s.close(Some(StreamError::with_text(
                    StreamErrorCondition::ResourceConstraint,
                    "Too much data waiting for the client",
                )));
                self.apply(actions);
            }
            while let Some(output) = self.state.poll_output() {
                match output {
                    Output::Respond { id, body } => {
                        if let Some(reply) = self.replies.remove(&id) {
                            let _ = reply.send(body);
                        }
                    }
                    Output::Expired { reason } => expired = Some(reason),
                }
            }
            if self.state.is_closed() {
                break;
            }
        }
        if let Some(reason) = &expired {
            tracing::debug!(sid = %self.state.sid(), "{reason}");
        }
        self.service
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.state.sid());
        // A client's terminate closes the stream cleanly (a resumable
        // session ends); a client gone silent leaves it to hibernate
        // (XEP-0198), as Prosody's destroy_session on inactivity does.
        if expired.is_none() && !self.c2s.is_closed() {
            let _ = self.c2s.close(None);
        }
        let rx = std::mem::replace(&mut self.outbound, mpsc::unbounded_channel().1.into());
        self.c2s.not_delivered(self.state.take_undelivered());
        self.c2s.connection_ended(rx);
        tracing::info!(sid = %self.state.sid(), "BOSH client disconnected");
    }

    fn request(&mut self, id: RequestId, rid: u64, attrs: BodyAttrs, stanzas: Vec<Element>) {
        let now = Instant::now().into_std();
        let admitted = self
            .state
            .receive(now, id, rid, attrs.terminate, attrs.pause, stanzas);
        let Admitted::Process(batches) = admitted else {
            return;
        };
        for batch in batches {
            if self.c2s.awaiting_stream_open() && !self.c2s.is_closed() {
                let header = StreamHeader {
                    ns: NS_CLIENT.to_string(),
                    to: Some(self.host.clone()),
                    from: attrs.from.clone(),
                    version: Some("1.0".to_string()),
                    lang: attrs.lang.clone(),
                    id: None,
                    attrs: Vec::new(),
                };
                let actions = self.c2s.handle_stream_event(StreamEvent::Open(header));
                self.apply(actions);
            }
            for stanza in batch {
                if self.state.is_closed() {
                    break;
                }
                let actions = self.c2s.handle_stream_event(StreamEvent::Stanza(stanza));
                self.apply(actions);
            }
        }
        self.state.finish(now);
    }

    /// What the stream says goes into the BOSH buffer; its end ends the
    /// session.
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Frame(Frame::Element(e)) if e.is("error", NS_STREAMS) => {
                    self.pending_error = Some(stream_element_xml(&e));
                }
                Action::Frame(Frame::Element(e)) => self.push_element(&e),
                Action::Frame(Frame::Open(_)) | Action::Frame(Frame::Close) | Action::StartTls => {}
                Action::Write(_) => {}
                Action::Close => {
                    let error = self.pending_error.take();
                    self.state.close(error.as_deref());
                }
            }
        }
    }

    /// An item for the client: stream management counts and keeps it
    /// (XEP-0198) and may ask for an ack after it.
    fn outbound(&mut self, out: Outbound) {
        let after = match self.c2s.smacks_outbound(&out) {
            SmOutbound::Write(after) => after,
            SmOutbound::Instead(actions) => return self.apply(actions),
        };
        match out {
            Outbound::Stanza(e) => self.push_element(&e),
            Outbound::Raw(parts) => {
                let xml: String = parts.iter().map(|p| String::from_utf8_lossy(p)).collect();
                self.state.push(xml);
            }
            Outbound::Close(error) => {
                let actions = self.c2s.close(error);
                self.apply(actions);
            }
        }
        self.apply(after);
    }

    fn push_element(&mut self, e: &Element) {
        let xml = if e.ns() == NS_STREAMS {
            stream_element_xml(e)
        } else {
            e.to_xml_in(NS_BOSH)
        };
        self.state.push(xml);
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
