//! Helpers of the hardening tests: lilt started in-process on port 0 with
//! a given config and accounts, and raw XML streams over real TCP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use xmpp_core::Clock;

pub const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Starts lilt from `config` with `users` (name, password) on `localhost`.
pub async fn start(config: &str, users: &[(&str, &str)]) -> lilt::startup::RunningServer {
    let config = lua_compat::config::load_str(config, Path::new("hardening.cfg.lua")).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    for (user, password) in users {
        provider.create_user(user, Some(password)).unwrap();
    }
    lilt::startup::start(server).await.unwrap()
}

/// The first listener of a kind (`c2s`, `c2s_direct_tls`, ...).
pub fn addr(running: &lilt::startup::RunningServer, kind: &str) -> SocketAddr {
    running
        .listening
        .iter()
        .find(|l| l.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} listener"))
        .addr
}

/// A raw client stream.
pub struct Client {
    pub tcp: TcpStream,
    pub buf: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: String::new(),
        }
    }

    /// A connection whose receive buffer is small (a client that stops
    /// reading fills it quickly).
    pub async fn connect_small_buffer(addr: SocketAddr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        Client {
            tcp: socket.connect(addr).await.unwrap(),
            buf: String::new(),
        }
    }

    /// A connection from another loopback address (`127.0.0.N`), as a
    /// client on another machine would look.
    pub async fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(std::net::IpAddr::V4(source), 0))
            .unwrap();
        Client {
            tcp: socket.connect(addr).await.unwrap(),
            buf: String::new(),
        }
    }

    pub async fn send(&mut self, s: &str) {
        self.tcp.write_all(s.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` has arrived; returns everything read so far.
    pub async fn until(&mut self, needle: &str) -> String {
        match self.try_until(needle, Duration::from_secs(10)).await {
            Ok(s) => s,
            Err(e) => panic!("waiting for {needle:?}: {e}; got {:?}", self.buf),
        }
    }

    /// Reads until `needle` has arrived, the connection closes or `wait`
    /// passes.
    pub async fn try_until(&mut self, needle: &str, wait: Duration) -> Result<String, String> {
        let mut chunk = vec![0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + wait;
        while !self.buf.contains(needle) {
            let n = match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => return Err("timed out".into()),
                Ok(Err(e)) => return Err(format!("read error {e}")),
                Ok(Ok(0)) => return Err("connection closed".into()),
                Ok(Ok(n)) => n,
            };
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads until the server closes the connection (or `wait` passes:
    /// `false`).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut chunk = vec![0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    }

    /// Opens the stream and authenticates with PLAIN; the SASL answer
    /// (`<success` or `<failure`...) is returned.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> String {
        self.send(OPEN).await;
        self.until("</stream:features>").await;
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{password}").as_bytes());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        let mut chunk = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.buf.contains("</failure>") && !self.buf.contains("<success") {
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no SASL answer; got {:?}", self.buf))
                .unwrap();
            assert!(n > 0, "closed before the SASL answer; got {:?}", self.buf);
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        std::mem::take(&mut self.buf)
    }

    /// Logs in (PLAIN) and binds `resource`.
    pub async fn login(&mut self, user: &str, password: &str, resource: &str) {
        let answer = self.auth_plain(user, password).await;
        assert!(answer.contains("<success"), "{answer}");
        self.send(OPEN).await;
        self.until("</stream:features>").await;
        self.send(&format!("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let bound = self.until("</iq>").await;
        assert!(
            bound.contains(&format!("{user}@localhost/{resource}")),
            "{bound}"
        );
    }
}

/// This process's resident memory, in bytes.
pub fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .unwrap()
        * 1024
}

/// Bytes the allocator has handed out and not had back (glibc's
/// `mallinfo2`: every arena's used chunks and the mmapped ones): live heap,
/// unlike RSS not inflated by what the allocator keeps for reuse.
pub fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    info.uordblks + info.hblkhd
}

/// A masked WebSocket text frame, as a client sends it.
pub fn ws_text(payload: &str) -> Vec<u8> {
    let payload = payload.as_bytes();
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

impl Client {
    /// A WebSocket (`/xmpp-websocket`, subprotocol `xmpp`) with a small
    /// receive buffer; what the server sends is read as text (frame
    /// headers and all), which is enough to wait for needles.
    pub async fn websocket_small_buffer(addr: SocketAddr) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut c = Client {
            tcp: socket.connect(addr).await.unwrap(),
            buf: String::new(),
        };
        c.send(
            "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
        )
        .await;
        let head = c.until("\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        c
    }

    /// Sends one XML element as a WebSocket text frame.
    pub async fn ws_send(&mut self, xml: &str) {
        self.tcp.write_all(&ws_text(xml)).await.unwrap();
    }

    /// Logs in over WebSocket (RFC 7395) with PLAIN and binds `resource`.
    pub async fn ws_login(&mut self, user: &str, password: &str, resource: &str) {
        let open =
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
        self.ws_send(open).await;
        self.until("</stream:features>").await;
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{password}").as_bytes());
        self.ws_send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        self.until("<success").await;
        self.ws_send(open).await;
        self.until("</stream:features>").await;
        self.ws_send(&format!("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let bound = self.until("</iq>").await;
        assert!(
            bound.contains(&format!("{user}@localhost/{resource}")),
            "{bound}"
        );
    }
}
