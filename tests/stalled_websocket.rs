//! Issue 21, attack 1 over WebSocket: a client that stops reading its
//! WebSocket while another sends to it costs a bounded amount (its
//! outbound queue refuses past its bound, and those stanzas bounce) and
//! is dropped after `network_settings.send_timeout`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Client, heap_in_use};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
http_ports = { 0 }
http_interfaces = { "127.0.0.1" }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
consider_websocket_secure = true
storage = "memory"
modules_enabled = { "roster"; "disco"; "websocket" }
modules_disabled = { "offline" }
network_settings = { send_timeout = 3 }
VirtualHost "localhost"
"#;

const MESSAGES: usize = 400;
const BODY: usize = 100 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_dropped_and_costs_a_bounded_amount() {
    let running = common::start(CONFIG, &[("alice", "a"), ("bob", "b")]).await;
    let bob_jid = xmpp_core::Jid::parse("bob@localhost/ws").unwrap();

    let mut bob = Client::websocket_small_buffer(common::addr(&running, "http")).await;
    bob.ws_login("bob", "b", "ws").await;
    bob.ws_send("<presence xmlns='jabber:client'/>").await;

    let mut alice = Client::connect(common::addr(&running, "c2s")).await;
    alice.login("alice", "a", "r").await;
    let (mut alice_rd, mut alice_wr) = alice.tcp.into_split();
    let bounces = Arc::new(AtomicUsize::new(0));
    let counter = bounces.clone();
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut tail = String::new();
        while let Ok(n) = alice_rd.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            tail.push_str(&String::from_utf8_lossy(&chunk[..n]));
            counter.fetch_add(tail.matches("type='error'").count(), Ordering::Relaxed);
            let keep = tail.len().saturating_sub(16);
            let cut = (keep..=tail.len())
                .find(|i| tail.is_char_boundary(*i))
                .unwrap_or(tail.len());
            tail.drain(..cut);
        }
    });
    let server = running.server.clone();
    let watcher = tokio::spawn(async move {
        while server.sessions.get_full(&bob_jid).is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Instant::now()
    });

    let baseline = heap_in_use();
    let mut peak = baseline;
    let body = "x".repeat(BODY);
    let started = Instant::now();
    for i in 0..MESSAGES {
        let m = format!(
            "<message to='bob@localhost/ws' id='m{i}' type='chat'><body>{body}</body></message>"
        );
        alice_wr.write_all(m.as_bytes()).await.unwrap();
        if i % 20 == 0 {
            peak = peak.max(heap_in_use());
        }
    }
    let sent_at = Instant::now();
    let gone_at = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .expect("the stalled WebSocket was never dropped")
        .unwrap();
    peak = peak.max(heap_in_use());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bounced = bounces.load(Ordering::Relaxed);
    eprintln!(
        "sent {} MB in {:?}; bob gone {:?} after the start; live heap peak +{} MB; {bounced} bounces",
        (MESSAGES * BODY) >> 20,
        sent_at - started,
        gone_at - started,
        peak.saturating_sub(baseline) >> 20
    );
    assert!(
        peak.saturating_sub(baseline) < 24 << 20,
        "the live heap grew by {} MB",
        (peak - baseline) >> 20
    );
    assert!(
        bounced >= MESSAGES / 2,
        "only {bounced} of {MESSAGES} bounced"
    );
    assert!(bob.closed_within(Duration::from_secs(10)).await);
    running.shutdown().await;
}
