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
    assert!(echoed.contains("id='big'"), "{}", &echoed[..200.min(echoed.len())]);
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
