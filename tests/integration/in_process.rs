//! lilt started in-process on port 0 with a Prosody config, driven over a
//! real TCP connection: negotiation, a bound session, ping, an unknown IQ,
//! and a clean shutdown. (The thorough client tests use slixmpp, in
//! tests/python.)

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xmpp_core::Clock;

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "ping"; "roster"; "disco"; "version" }
muc_room_locking = false
VirtualHost "localhost"
Component "conference.localhost" "muc"
"#;

struct Client {
    tcp: TcpStream,
    buf: String,
}

impl Client {
    async fn send(&mut self, s: &str) {
        self.tcp.write_all(s.as_bytes()).await.unwrap();
    }
    /// Reads until `needle` has arrived; returns everything read so far.
    async fn until(&mut self, needle: &str) -> String {
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.buf.contains(needle) {
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {:?}", self.buf))
                .unwrap();
            assert!(
                n > 0,
                "connection closed waiting for {needle:?}; got {:?}",
                self.buf
            );
            self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        std::mem::take(&mut self.buf)
    }
}

const OPEN: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

async fn start_server() -> lilt::startup::RunningServer {
    let config = lua_compat::config::load_str(CONFIG, Path::new("in-process.cfg.lua")).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    provider.create_user("alice", Some("secret")).unwrap();
    lilt::startup::start(server).await.unwrap()
}

/// Logs in as alice/r over plain TCP.
async fn login(addr: std::net::SocketAddr) -> Client {
    let mut c = Client {
        tcp: TcpStream::connect(addr).await.unwrap(),
        buf: String::new(),
    };
    c.send(OPEN).await;
    let features = c.until("</stream:features>").await;
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    let creds = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0secret");
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    c.until("<success").await;
    c.send(OPEN).await;
    c.until("</stream:features>").await;
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>").await;
    let bound = c.until("</iq>").await;
    assert!(bound.contains("alice@localhost/r"), "{bound}");
    c
}

#[tokio::test]
async fn login_ping_unknown_iq_and_shutdown() {
    let running = start_server().await;
    let mut c = login(running.listening[0].addr).await;

    c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let pong = c.until("id='p1'").await;
    assert!(
        pong.contains("id='p1'") && pong.contains("type='result'"),
        "{pong}"
    );

    c.send("<iq type='get' id='u1' to='localhost'><nope xmlns='urn:example:nope'/></iq>")
        .await;
    let err = c.until("</error></iq>").await;
    assert!(
        err.contains("type='error'") && err.contains("service-unavailable"),
        "{err}"
    );

    running.shutdown().await;
    let bye = c.until("</stream:stream>").await;
    assert!(bye.contains("system-shutdown"), "{bye}");
}
