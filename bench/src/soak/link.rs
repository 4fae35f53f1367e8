//! One client link over any of lilt's three transports, as the soak's
//! sessions use it: open (and restart) the stream, send a stanza, take the
//! next top-level element, close gracefully keeping what still arrives.
//!
//! - TCP: the XMPP stream itself.
//! - WebSocket (RFC 7395): `GET /xmpp-websocket` with the `xmpp`
//!   subprotocol, one element per masked text frame, `<open/>`/`<close/>`.
//! - BOSH (XEP-0124/0206): `POST /http-bind`, a background task keeping
//!   one request held by the server and sending queued stanzas in a
//!   second one, rids in order ([`super::bosh`]).
//!
//! Every element received goes through one [`Splitter`] (for WebSocket
//! and BOSH primed with a stream header, so a frame's or a body's children
//! split as stream children do).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::bosh::Bosh;
use crate::xml::{self, Event, Splitter};

/// Which transport a session uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Bosh,
    WebSocket,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Bosh => "bosh",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Where the server listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub c2s: SocketAddr,
    pub http: SocketAddr,
    pub domain: String,
}

/// The link failed or the server closed it.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(String),
    #[error("closed by the server")]
    Closed,
    #[error("timed out")]
    Timeout,
}

const PRIMER: &[u8] =
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const NS_FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

enum Wire {
    Tcp(TcpStream),
    WebSocket { stream: TcpStream, frames: Vec<u8> },
    Bosh(Bosh),
}

pub struct Link {
    wire: Wire,
    split: Splitter,
    domain: String,
    closed: bool,
}

fn tcp_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        xml::escape(domain)
    )
}

fn ws_open(domain: &str) -> String {
    format!(
        "<open xmlns='{NS_FRAMING}' to='{}' version='1.0'/>",
        xml::escape(domain)
    )
}

/// A masked client frame (RFC 6455 §5.2).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask: [u8; 4] = rand::random();
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Takes one complete server frame off `buf`: (fin, opcode, payload).
fn ws_take_frame(buf: &mut Vec<u8>) -> Result<Option<(u8, Vec<u8>)>, LinkError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0f;
    if buf[1] & 0x80 != 0 {
        return Err(LinkError::Protocol("masked frame from the server".into()));
    }
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return Ok(None),
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return Ok(None);
    }
    let payload = buf[header..header + len].to_vec();
    buf.drain(..header + len);
    Ok(Some((opcode, payload)))
}

impl Link {
    /// Connects and opens the stream (the features come as the first
    /// element).
    pub async fn open(transport: Transport, at: &Endpoints) -> Result<Link, LinkError> {
        let wire = match transport {
            Transport::Tcp => {
                let mut stream = TcpStream::connect(at.c2s).await?;
                let _ = stream.set_nodelay(true);
                stream.write_all(tcp_header(&at.domain).as_bytes()).await?;
                Wire::Tcp(stream)
            }
            Transport::WebSocket => {
                let mut stream = TcpStream::connect(at.http).await?;
                let _ = stream.set_nodelay(true);
                let key = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    rand::random::<[u8; 16]>(),
                );
                let request = format!(
                    "GET /xmpp-websocket HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
                    at.http
                );
                stream.write_all(request.as_bytes()).await?;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await? == 0 || head.len() > 8192 {
                        return Err(LinkError::Closed);
                    }
                    head.push(byte[0]);
                }
                if !head.starts_with(b"HTTP/1.1 101") {
                    return Err(LinkError::Protocol(format!(
                        "websocket upgrade refused: {}",
                        String::from_utf8_lossy(&head).lines().next().unwrap_or("")
                    )));
                }
                stream
                    .write_all(&ws_frame(1, ws_open(&at.domain).as_bytes()))
                    .await?;
                Wire::WebSocket {
                    stream,
                    frames: Vec::new(),
                }
            }
            Transport::Bosh => Wire::Bosh(Bosh::create(at.http, &at.domain).await?),
        };
        let mut split = Splitter::new();
        if !matches!(wire, Wire::Tcp(_)) {
            split.feed(PRIMER);
        }
        Ok(Link {
            wire,
            split,
            domain: at.domain.clone(),
            closed: false,
        })
    }

    /// Restarts the stream after SASL success.
    pub async fn restart(&mut self) -> Result<(), LinkError> {
        match &mut self.wire {
            Wire::Tcp(stream) => {
                self.split.reset();
                stream
                    .write_all(tcp_header(&self.domain).as_bytes())
                    .await?;
            }
            Wire::WebSocket { stream, .. } => {
                stream
                    .write_all(&ws_frame(1, ws_open(&self.domain).as_bytes()))
                    .await?;
            }
            Wire::Bosh(bosh) => bosh.restart(&self.domain)?,
        }
        Ok(())
    }

    /// Sends one stanza (or any top-level element).
    pub async fn send(&mut self, data: &str) -> Result<(), LinkError> {
        match &mut self.wire {
            Wire::Tcp(stream) => stream.write_all(data.as_bytes()).await?,
            Wire::WebSocket { stream, .. } => {
                stream.write_all(&ws_frame(1, data.as_bytes())).await?
            }
            Wire::Bosh(bosh) => bosh.send(data.to_string())?,
        }
        Ok(())
    }

    /// The next top-level element (stream headers and `<open/>` skipped);
    /// `Err(Closed)` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Vec<u8>, LinkError> {
        loop {
            if self.closed {
                return Err(LinkError::Closed);
            }
            match self
                .split
                .next_event()
                .map_err(|e| LinkError::Protocol(e.to_string()))?
            {
                Some(Event::Open) => continue,
                Some(Event::Close) => {
                    self.closed = true;
                    return Err(LinkError::Closed);
                }
                Some(Event::Element(range)) => {
                    let el = self.split.bytes()[range].to_vec();
                    match xml::name(&el) {
                        b"open" => continue,
                        b"close" => {
                            self.closed = true;
                            return Err(LinkError::Closed);
                        }
                        _ => return Ok(el),
                    }
                }
                None => {}
            }
            self.fill().await?;
        }
    }

    /// Reads more from the wire into the splitter.
    async fn fill(&mut self) -> Result<(), LinkError> {
        match &mut self.wire {
            Wire::Tcp(stream) => {
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    self.closed = true;
                    return Err(LinkError::Closed);
                }
                self.split.feed(&buf[..n]);
            }
            Wire::WebSocket { stream, frames } => loop {
                if let Some((opcode, payload)) = ws_take_frame(frames)? {
                    match opcode {
                        1 | 0 => {
                            self.split.feed(&payload);
                            return Ok(());
                        }
                        8 => {
                            self.closed = true;
                            return Err(LinkError::Closed);
                        }
                        9 => stream.write_all(&ws_frame(10, &payload)).await?,
                        _ => {}
                    }
                    continue;
                }
                let mut buf = [0u8; 8192];
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    self.closed = true;
                    return Err(LinkError::Closed);
                }
                frames.extend_from_slice(&buf[..n]);
            },
            Wire::Bosh(bosh) => match bosh.receive().await {
                Some(content) => self.split.feed(&content),
                None => {
                    self.closed = true;
                    return Err(LinkError::Closed);
                }
            },
        }
        Ok(())
    }

    /// Ends the stream as a client does, and returns every element that
    /// still arrived before the server's end (within `limit`).
    pub async fn close(mut self, limit: Duration) -> Vec<Vec<u8>> {
        let sent = match &mut self.wire {
            Wire::Tcp(stream) => stream.write_all(b"</stream:stream>").await.is_ok(),
            Wire::WebSocket { stream, .. } => stream
                .write_all(&ws_frame(
                    1,
                    format!("<close xmlns='{NS_FRAMING}'/>").as_bytes(),
                ))
                .await
                .is_ok(),
            Wire::Bosh(bosh) => bosh.terminate().is_ok(),
        };
        let mut rest = Vec::new();
        if sent {
            let _ = timeout(limit, async {
                while let Ok(el) = self.next().await {
                    rest.push(el);
                }
            })
            .await;
        }
        if let Wire::Tcp(stream) | Wire::WebSocket { stream, .. } = &mut self.wire {
            let _ = stream.shutdown().await;
        }
        rest
    }
}
