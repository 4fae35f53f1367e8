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
