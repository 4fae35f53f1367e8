//! The component side of XEP-0114: a [`Component`] running in another
//! process connects to a server's component port (lilt's, Prosody's, any
//! XMPP server's) and is served the same way as when it is attached
//! in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::in_process::{Component, ComponentSender};
use super::stream::{component_xml, handshake_digest, into_client_ns};
use crate::stanza::{Element, NS_COMPONENT, NS_STREAMS};
use crate::stream::{StreamEvent, StreamLimits, XmlStream};

/// Why a component could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("component {domain}: cannot reach {addr}: {source}")]
    Io {
        domain: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("component {domain}: the server refused it with {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Refused {
        domain: String,
        condition: String,
        text: Option<String>,
    },
    #[error("component {domain}: {reason}")]
    Protocol { domain: String, reason: String },
}

/// A component connected over XEP-0114. Dropping it closes the stream.
pub struct ConnectedComponent {
    sender: ComponentSender,
    close: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ConnectedComponent {
    pub fn sender(&self) -> &ComponentSender {
        &self.sender
    }
    /// Closes the stream (`</stream:stream>`) and waits for the connection
    /// to end.
    pub async fn close(mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        let _ = self.task.await;
    }
    /// Has the connection ended (closed by the server, or failed)?
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Connects `component` as `domain` to the component port at `addr`,
/// authenticating with `secret`; returns once the server accepted the
/// handshake. Stanzas are then handled on a task of their own.
pub async fn connect(
    addr: SocketAddr,
    domain: &str,
    secret: &str,
    component: Arc<dyn Component>,
) -> Result<ConnectedComponent, ConnectError> {
    let io = |source| ConnectError::Io {
        domain: domain.to_string(),
        addr,
        source,
    };
    let protocol = |reason: &str| ConnectError::Protocol {
        domain: domain.to_string(),
        reason: reason.to_string(),
    };
    let mut tcp = TcpStream::connect(addr).await.map_err(io)?;
    let _ = tcp.set_nodelay(true);
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{NS_STREAMS}' to='{}'>",
        crate::stanza::escape(domain)
    );
    tcp.write_all(header.as_bytes()).await.map_err(io)?;
    let mut xml = XmlStream::new(StreamLimits {
        max_stanza_size: super::stream::DEFAULT_STANZA_SIZE_LIMIT,
        ..StreamLimits::default()
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = std::collections::VecDeque::new();
    let mut handshake_sent = false;
    loop {
        while let Some(ev) = pending.pop_front() {
            match ev {
                StreamEvent::Open(h) if !handshake_sent => {
                    let id = h
                        .id
                        .filter(|i| !i.is_empty())
                        .ok_or_else(|| protocol("the server's stream header has no id to hash"))?;
                    let digest = handshake_digest(&id, secret);
                    let hs = format!("<handshake>{digest}</handshake>");
                    tcp.write_all(hs.as_bytes()).await.map_err(io)?;
                    handshake_sent = true;
                }
                StreamEvent::Stanza(e) if e.is("handshake", NS_COMPONENT) => {
                    return Ok(spawn(tcp, xml, pending, domain, component));
                }
                StreamEvent::Stanza(e) if e.is("error", NS_STREAMS) => {
                    return Err(refused(domain, &e));
                }
                StreamEvent::Close => {
                    return Err(protocol(
                        "the server closed the stream during the handshake",
                    ));
                }
                _ => {}
            }
        }
        let n = tcp.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(protocol(
                "the server closed the connection during the handshake",
            ));
        }
        let mut events = Vec::new();
        let result = xml.feed(&buf[..n], &mut events);
        pending.extend(events);
        if let Err(e) = result
            && pending.is_empty()
        {
            return Err(protocol(&format!("the server's stream is broken: {e}")));
        }
    }
}

fn refused(domain: &str, error: &Element) -> ConnectError {
    let condition = error
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "undefined-condition".to_string());
    let text = error
        .children()
        .find(|c| c.name() == "text")
        .map(|t| t.text_content());
    ConnectError::Refused {
        domain: domain.to_string(),
        condition,
        text,
    }
}

fn spawn(
    tcp: TcpStream,
    xml: XmlStream,
    pending: std::collections::VecDeque<StreamEvent>,
    domain: &str,
    component: Arc<dyn Component>,
) -> ConnectedComponent {
    let (tx, rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = oneshot::channel();
    let sender = ComponentSender::remote(domain, tx);
    component.connected(&sender);
    let task = tokio::spawn(run(
        tcp,
        xml,
        pending,
        sender.clone(),
        component,
        rx,
        close_rx,
    ));
    ConnectedComponent {
        sender,
        close: Some(close_tx),
        task,
    }
}

/// Moves stanzas between the stream and the component until either side
/// closes.
async fn run(
    mut tcp: TcpStream,
    mut xml: XmlStream,
    mut pending: std::collections::VecDeque<StreamEvent>,
    sender: ComponentSender,
    component: Arc<dyn Component>,
    mut rx: mpsc::UnboundedReceiver<Element>,
    mut close_rx: oneshot::Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut closing = false;
    'conn: loop {
        while let Some(ev) = pending.pop_front() {
            match ev {
                StreamEvent::Stanza(mut e) if e.is_stanza() => {
                    into_client_ns(&mut e);
                    component.handle(e, &sender);
                }
                StreamEvent::Stanza(e) if e.is("error", NS_STREAMS) => {
                    tracing::warn!(
                        "component {}: {}",
                        sender.domain(),
                        refused(sender.domain(), &e)
                    );
                }
                StreamEvent::Close => {
                    if !closing {
                        let _ = tcp.write_all(b"</stream:stream>").await;
                    }
                    break 'conn;
                }
                _ => {}
            }
        }
        tokio::select! {
            Some(stanza) = rx.recv() => {
                if tcp.write_all(component_xml(&stanza).as_bytes()).await.is_err() {
                    break;
                }
            }
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut events = Vec::new();
                    let result = xml.feed(&buf[..n], &mut events);
                    pending.extend(events);
                    if let Err(e) = result {
                        tracing::warn!("component {}: the server's stream is broken: {e}", sender.domain());
                        pending.push_back(StreamEvent::Close);
                    }
                }
            },
            _ = &mut close_rx, if !closing => {
                closing = true;
                if tcp.write_all(b"</stream:stream>").await.is_err() {
                    break;
                }
            }
        }
    }
    rx.close();
    let _ = tcp.shutdown().await;
    component.disconnected();
}
