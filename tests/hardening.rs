//! Issue 21's attacks repeated against lilt started in-process on port 0,
//! with raw XML streams over real TCP: the stanza size limit before
//! authentication, the TLS handshake deadline, ...

mod common;

use std::time::{Duration, Instant};

use common::{Client, OPEN};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "roster"; "disco"; "ping" }
VirtualHost "localhost"
"#;

/// A message to oneself of about `size` bytes.
fn message_of(size: usize) -> String {
    format!(
        "<message to='alice@localhost/r' id='big' type='chat'><body>{}</body></message>",
        "x".repeat(size)
    )
}

#[tokio::test]
async fn stanzas_before_authentication_are_limited_to_10000_bytes() {
    let running = common::start(CONFIG, &[("alice", "a")]).await;
    let addr = common::addr(&running, "c2s");

    // Unauthenticated: 9,000 bytes pass (answered), 11,000 close the stream.
    let mut c = Client::connect(addr).await;
    c.send(OPEN).await;
    c.until("</stream:features>").await;
    let small = format!(
        "<iq type='get' id='s1' to='localhost'><ping xmlns='urn:xmpp:ping'/><x>{}</x></iq>",
        "y".repeat(9_000)
    );
    c.send(&small).await;
    let answer = c.until("</iq>").await;
    // (An unauthenticated stream may not send IQs: not-authorized, but the
    // stanza was read.)
    assert!(answer.contains("not-authorized"), "{answer}");

    let mut c = Client::connect(addr).await;
    c.send(OPEN).await;
    c.until("</stream:features>").await;
    let big = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        "A".repeat(11_000)
    );
    let t = Instant::now();
    c.send(&big).await;
    let answer = c.until("</stream:error>").await;
    assert!(answer.contains("policy-violation"), "{answer}");
    assert!(c.closed_within(Duration::from_secs(5)).await);
    assert!(t.elapsed() < Duration::from_secs(5));

    // Authenticated: c2s_stanza_size_limit (256 KiB) again.
    let mut c = Client::connect(addr).await;
    c.login("alice", "a", "r").await;
    c.send(&message_of(100_000)).await;
    let echoed = c.until("</message>").await;
    assert!(
        echoed.contains("id='big'"),
        "{}",
        &echoed[..200.min(echoed.len())]
    );
    running.shutdown().await;
}

/// A server with a self-signed certificate for localhost (direct TLS and
/// STARTTLS), `network_settings.ssl_handshake_timeout` and `c2s_timeout`
/// as given.
async fn tls_server(
    dir: &std::path::Path,
    handshake_timeout: u64,
    c2s_timeout: u64,
) -> lilt::startup::RunningServer {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let crt = dir.join("localhost.crt");
    let key = dir.join("localhost.key");
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let config = format!(
        r#"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ 0 }}
c2s_direct_tls_ports = {{ 0 }}
authentication = "internal_plain"
storage = "memory"
modules_enabled = {{ "roster"; "disco" }}
network_settings = {{ ssl_handshake_timeout = {handshake_timeout} }}
c2s_timeout = {c2s_timeout}
ssl = {{ certificate = "{}"; key = "{}" }}
VirtualHost "localhost"
"#,
        crt.display(),
        key.display()
    );
    common::start(&config, &[]).await
}

/// How long until the server closes a connection that is silent from now
/// on (`None`: still open after 15 s).
async fn silent_until_closed(c: &mut Client) -> Option<Duration> {
    let t = Instant::now();
    c.closed_within(Duration::from_secs(15))
        .await
        .then(|| t.elapsed())
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_dropped_after_ssl_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = tls_server(dir.path(), 2, 300).await;

    // Direct TLS: connected, nothing sent.
    let mut direct = Client::connect(common::addr(&running, "c2s_direct_tls")).await;
    let waited = silent_until_closed(&mut direct).await;
    assert!(
        waited.is_some_and(|w| w >= Duration::from_millis(1500) && w < Duration::from_secs(5)),
        "direct TLS without a handshake closed after {waited:?}"
    );

    // STARTTLS: <proceed/>, then nothing.
    let mut c = Client::connect(common::addr(&running, "c2s")).await;
    c.send(OPEN).await;
    let features = c.until("</stream:features>").await;
    assert!(features.contains("<starttls"), "{features}");
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    c.until("<proceed").await;
    let waited = silent_until_closed(&mut c).await;
    assert!(
        waited.is_some_and(|w| w >= Duration::from_millis(1500) && w < Duration::from_secs(5)),
        "STARTTLS without a handshake closed after {waited:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_unauthenticated_stream_timeout_runs_during_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    // A long handshake timeout, a short c2s_timeout: the latter wins.
    let running = tls_server(dir.path(), 60, 2).await;
    let mut c = Client::connect(common::addr(&running, "c2s")).await;
    c.send(OPEN).await;
    c.until("</stream:features>").await;
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    c.until("<proceed").await;
    let waited = silent_until_closed(&mut c).await;
    assert!(
        waited.is_some_and(|w| w < Duration::from_secs(4)),
        "closed after {waited:?}"
    );
    let mut direct = Client::connect(common::addr(&running, "c2s_direct_tls")).await;
    let waited = silent_until_closed(&mut direct).await;
    assert!(
        waited.is_some_and(|w| w >= Duration::from_millis(1500) && w < Duration::from_secs(4)),
        "closed after {waited:?}"
    );
    running.shutdown().await;
}

/// A WebSocket text frame as a client sends it: masked, or (an attack)
/// not.
fn ws_frame(payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![0x81];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x12, 0x34, 0x56, 0x78];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Upgrades a connection to the `xmpp` WebSocket at `/xmpp-websocket`.
async fn ws_connect(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            tcp.read(&mut byte).await.unwrap(),
            1,
            "closed during the upgrade"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// Everything the server sends until it closes the connection (at most
/// 5 s).
async fn ws_read_to_end(tcp: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(out),
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn an_unmasked_websocket_frame_closes_the_connection_with_1002() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
http_ports = { 0 }
http_interfaces = { "127.0.0.1" }
authentication = "internal_plain"
consider_websocket_secure = true
storage = "memory"
modules_enabled = { "roster"; "disco"; "websocket" }
VirtualHost "localhost"
"#;
    let running = common::start(config, &[]).await;
    let http = common::addr(&running, "http");
    let open = b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";

    // Masked, as a client must: the stream opens.
    let mut ok = ws_connect(http).await;
    ok.write_all(&ws_frame(open, true)).await.unwrap();
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), ok.read(&mut chunk))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).contains("<open"));

    // Unmasked: a close frame with 1002 (protocol error), then the end.
    let mut bad = ws_connect(http).await;
    bad.write_all(&ws_frame(open, false)).await.unwrap();
    let got = ws_read_to_end(&mut bad)
        .await
        .expect("the connection stayed open after an unmasked frame");
    assert!(
        got.len() >= 4 && got[0] == 0x88 && got[2..4] == 1002u16.to_be_bytes(),
        "expected a close frame with 1002, got {got:?}"
    );
    running.shutdown().await;
}
