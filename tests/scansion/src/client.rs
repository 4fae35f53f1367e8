//! A minimal XMPP client over plain TCP: stream negotiation, SASL (PLAIN or
//! SCRAM-SHA-1), resource binding, then a queue of every stanza the server
//! sends, which the script consumes in order.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::sasl::{self, SaslError, Scram};
use crate::stream::{NS_STREAMS, StreamError, StreamEvent, XmlStream};
use crate::xml::{Element, NS_CLIENT};

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

/// How to reach and log in to the server.
#[derive(Debug, Clone)]
pub struct Login {
    /// Label in traces (the script's client name).
    pub label: String,
    /// `host:port` to connect to.
    pub addr: String,
    /// Stream `to`.
    pub domain: String,
    pub username: String,
    pub password: String,
    pub resource: Option<String>,
    /// Force a SASL mechanism instead of the best offered one.
    pub mechanism: Option<String>,
    /// Limit for each negotiation step.
    pub step_timeout: Duration,
    /// Print every stanza sent and received to stderr.
    pub verbose: bool,
}

/// Why a connection could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("SASL: {0}")]
    Sasl(#[from] SaslError),
    #[error("authentication as {user} failed: {condition}")]
    AuthFailed { user: String, condition: String },
    #[error("server requires STARTTLS; this runner speaks plain TCP only")]
    TlsRequired,
    #[error("resource binding failed: {0}")]
    Bind(String),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("server closed the stream during {during}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed {
        during: &'static str,
        reason: Option<String>,
    },
    #[error("unexpected <{got}> while waiting for {waiting}")]
    Unexpected { got: String, waiting: &'static str },
}

/// What the reader task hands to the script.
#[derive(Debug)]
enum Incoming {
    Stanza(Element, Instant),
    Closed(Option<String>),
}

/// Result of waiting for a stanza.
#[derive(Debug)]
pub enum Received {
    /// A stanza and when it was read off the socket.
    Stanza(Element, Instant),
    Timeout,
    Closed(Option<String>),
}

/// Negotiation-time reader: pulls events off the socket one by one.
struct Negotiation {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    xml: XmlStream,
    pending: VecDeque<StreamEvent>,
    login: Login,
}

fn describe_stream_error(el: &Element) -> String {
    let condition = el
        .elements()
        .find(|c| c.name != "text")
        .map_or("undefined-condition", |c| c.name.as_str())
        .to_string();
    match el.elements().find(|c| c.name == "text") {
        Some(t) => format!("stream error {condition}: {}", t.text()),
        None => format!("stream error {condition}"),
    }
}

impl Negotiation {
    async fn send(&mut self, xml: &str) -> Result<(), ClientError> {
        if self.login.verbose {
            eprintln!("  [{}] >>> {xml}", self.login.label);
        }
        self.write.write_all(xml.as_bytes()).await?;
        self.write.flush().await?;
        Ok(())
    }

    async fn open_stream(&mut self) -> Result<(), ClientError> {
        self.xml = XmlStream::new();
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}' to='{}' version='1.0' xml:lang='en'>",
            crate::xml::escape_attr(&self.login.domain)
        );
        self.send(&header).await?;
        match self.next("the stream header").await? {
            StreamEvent::Open(_) => Ok(()),
            StreamEvent::Element(el) => Err(ClientError::Unexpected {
                got: el.name,
                waiting: "the stream header",
            }),
            StreamEvent::Close => Err(ClientError::Closed {
                during: "the stream header",
                reason: None,
            }),
        }
    }

    async fn next(&mut self, waiting: &'static str) -> Result<StreamEvent, ClientError> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            let n = timeout(self.login.step_timeout, self.read.read(&mut buf))
                .await
                .map_err(|_| ClientError::Timeout(waiting))??;
            if n == 0 {
                return Err(ClientError::Closed {
                    during: waiting,
                    reason: None,
                });
            }
            self.pending.extend(self.xml.feed(&buf[..n])?);
        }
    }

    /// The next top-level element; a stream error or close is an error.
    async fn element(&mut self, waiting: &'static str) -> Result<Element, ClientError> {
        match self.next(waiting).await? {
            StreamEvent::Element(el) if el.ns == NS_STREAMS && el.name == "error" => {
                Err(ClientError::Closed {
                    during: waiting,
                    reason: Some(describe_stream_error(&el)),
                })
            }
            StreamEvent::Element(el) => {
                if self.login.verbose {
                    eprintln!("  [{}] <<< {}", self.login.label, el.to_xml(NS_CLIENT));
                }
                Ok(el)
            }
            StreamEvent::Open(_) => Err(ClientError::Unexpected {
                got: "stream:stream".into(),
                waiting,
            }),
            StreamEvent::Close => Err(ClientError::Closed {
                during: waiting,
                reason: None,
            }),
        }
    }

    async fn features(&mut self) -> Result<Element, ClientError> {
        let el = self.element("stream features").await?;
        if el.name != "features" || el.ns != NS_STREAMS {
            return Err(ClientError::Unexpected {
                got: el.name,
                waiting: "stream features",
            });
        }
        Ok(el)
    }

    async fn authenticate(&mut self, features: &Element) -> Result<(), ClientError> {
        if let Some(tls) = features.get_child("starttls", NS_TLS)
            && tls.get_child("required", NS_TLS).is_some()
        {
            return Err(ClientError::TlsRequired);
        }
        let offered: Vec<String> = features
            .get_child("mechanisms", NS_SASL)
            .map(|m| m.elements().map(|e| e.text().trim().to_string()).collect())
            .unwrap_or_default();
        let mechanism = sasl::choose(&offered, self.login.mechanism.as_deref())?;
        let mut scram = None;
        let initial = if mechanism == "PLAIN" {
            sasl::plain_initial(&self.login.username, &self.login.password)
        } else {
            let s = Scram::new(&self.login.username, &self.login.password);
            let first = s.initial();
            scram = Some(s);
            first
        };
        let auth = Element::new("auth", NS_SASL)
            .with_attr("mechanism", mechanism)
            .with_text(&B64.encode(initial));
        self.send(&auth.to_xml(NS_CLIENT)).await?;
        loop {
            let el = self.element("SASL").await?;
            let data = B64.decode(el.text().trim()).unwrap_or_default();
            match el.name.as_str() {
                "challenge" => {
                    let Some(s) = scram.as_mut() else {
                        return Err(ClientError::Unexpected {
                            got: el.name,
                            waiting: "SASL PLAIN result",
                        });
                    };
                    let reply = s.respond(&data)?;
                    let response = Element::new("response", NS_SASL).with_text(&B64.encode(reply));
                    self.send(&response.to_xml(NS_CLIENT)).await?;
                }
                "success" => {
                    if let Some(s) = &scram {
                        s.verify(&data)?;
                    }
                    return Ok(());
                }
                "failure" => {
                    let condition = el
                        .elements()
                        .map(|c| {
                            if c.name == "text" {
                                format!("({})", c.text())
                            } else {
                                c.name.clone()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Err(ClientError::AuthFailed {
                        user: self.login.username.clone(),
                        condition,
                    });
                }
                _ => {
                    return Err(ClientError::Unexpected {
                        got: el.name,
                        waiting: "SASL",
                    });
                }
            }
        }
    }

    async fn iq_result(
        &mut self,
        iq: Element,
        waiting: &'static str,
    ) -> Result<Element, ClientError> {
        let id = iq.attr("id").unwrap_or_default().to_string();
        self.send(&iq.to_xml(NS_CLIENT)).await?;
        let el = self.element(waiting).await?;
        if el.name != "iq" || el.attr("id") != Some(id.as_str()) {
            // The server sends nothing else before a resource is bound.
            return Err(ClientError::Unexpected {
                got: el.name,
                waiting,
            });
        }
        match el.attr("type") {
            Some("result") => Ok(el),
            _ => Err(ClientError::Bind(el.to_xml(NS_CLIENT))),
        }
    }

    async fn bind(&mut self, features: &Element) -> Result<String, ClientError> {
        if features.get_child("bind", NS_BIND).is_none() {
            return Err(ClientError::Bind(
                "server offers no resource binding".into(),
            ));
        }
        let mut bind = Element::new("bind", NS_BIND);
        if let Some(res) = &self.login.resource {
            bind = bind.with_child(Element::new("resource", NS_BIND).with_text(res));
        }
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", "scansion-bind")
            .with_child(bind);
        let result = self.iq_result(iq, "the bind result").await?;
        let jid = result
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(|j| j.text().trim().to_string())
            .filter(|j| !j.is_empty())
            .ok_or_else(|| ClientError::Bind(result.to_xml(NS_CLIENT)))?;
        if let Some(session) = features.get_child("session", NS_SESSION)
            && session.get_child("optional", NS_SESSION).is_none()
        {
            let iq = Element::new("iq", NS_CLIENT)
                .with_attr("type", "set")
                .with_attr("id", "scansion-session")
                .with_child(Element::new("session", NS_SESSION));
            self.iq_result(iq, "the session result").await?;
        }
        Ok(jid)
    }
}

/// A logged-in client.
pub struct Client {
    write: OwnedWriteHalf,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    reader: JoinHandle<()>,
    label: String,
    verbose: bool,
    /// The JID the server bound.
    pub full_jid: String,
}

impl Client {
    /// Connects, authenticates and binds a resource.
    pub async fn connect(login: Login) -> Result<Client, ClientError> {
        let tcp = timeout(login.step_timeout, TcpStream::connect(&login.addr))
            .await
            .map_err(|_| ClientError::Timeout("the TCP connection"))?
            .map_err(|source| ClientError::Connect {
                addr: login.addr.clone(),
                source,
            })?;
        tcp.set_nodelay(true)?;
        let (read, write) = tcp.into_split();
        let mut n = Negotiation {
            read,
            write,
            xml: XmlStream::new(),
            pending: VecDeque::new(),
            login,
        };
        n.open_stream().await?;
        let features = n.features().await?;
        n.authenticate(&features).await?;
        n.open_stream().await?;
        let features = n.features().await?;
        let full_jid = n.bind(&features).await?;

        let (tx, incoming) = mpsc::unbounded_channel();
        for ev in n.pending.drain(..) {
            if let StreamEvent::Element(el) = ev {
                let _ = tx.send(Incoming::Stanza(el, Instant::now()));
            }
        }
        let label = n.login.label.clone();
        let verbose = n.login.verbose;
        let reader = tokio::spawn(read_loop(n.read, n.xml, tx, label.clone(), verbose));
        Ok(Client {
            write: n.write,
            incoming,
            reader,
            label,
            verbose,
            full_jid,
        })
    }

    /// Sends one stanza.
    pub async fn send(&mut self, stanza: &Element) -> Result<(), ClientError> {
        let xml = stanza.to_xml(NS_CLIENT);
        if self.verbose {
            eprintln!("  [{}] >>> {xml}", self.label);
        }
        self.write.write_all(xml.as_bytes()).await?;
        self.write.flush().await?;
        Ok(())
    }

    /// The next stanza from the server, waiting until `deadline`.
    pub async fn receive(&mut self, deadline: Instant) -> Received {
        match tokio::time::timeout_at(deadline, self.incoming.recv()).await {
            Err(_) => Received::Timeout,
            Ok(Some(Incoming::Stanza(el, at))) => Received::Stanza(el, at),
            Ok(Some(Incoming::Closed(reason))) => Received::Closed(reason),
            Ok(None) => Received::Closed(None),
        }
    }

    /// Closes the stream and waits (at most `wait`) for the server to close
    /// its side, so that the server has finished the session (and sent
    /// unavailable presence to others) before the script goes on.
    pub async fn disconnect(mut self, wait: Duration) {
        if self.verbose {
            eprintln!("  [{}] >>> </stream:stream>", self.label);
        }
        if self.write.write_all(b"</stream:stream>").await.is_ok() {
            let _ = self.write.flush().await;
            let _ = timeout(wait, async {
                while let Some(ev) = self.incoming.recv().await {
                    if matches!(ev, Incoming::Closed(_)) {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = self.write.shutdown().await;
        self.reader.abort();
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    mut xml: XmlStream,
    tx: mpsc::UnboundedSender<Incoming>,
    label: String,
    verbose: bool,
) {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(Incoming::Closed(Some(
                    "connection closed by the server".into(),
                )));
                return;
            }
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Incoming::Closed(Some(format!("read error: {e}"))));
                return;
            }
        };
        let at = Instant::now();
        let events = match xml.feed(&buf[..n]) {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Incoming::Closed(Some(e.to_string())));
                return;
            }
        };
        for ev in events {
            match ev {
                StreamEvent::Element(el) if el.ns == NS_STREAMS && el.name == "error" => {
                    let _ = tx.send(Incoming::Closed(Some(describe_stream_error(&el))));
                    return;
                }
                StreamEvent::Element(el) => {
                    if verbose {
                        eprintln!("  [{label}] <<< {}", el.to_xml(NS_CLIENT));
                    }
                    if tx.send(Incoming::Stanza(el, at)).is_err() {
                        return;
                    }
                }
                StreamEvent::Close => {
                    let _ = tx.send(Incoming::Closed(Some("server closed the stream".into())));
                    return;
                }
                StreamEvent::Open(_) => {}
            }
        }
    }
}
