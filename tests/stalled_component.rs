//! Issue 21, attack 1 on a component connection (XEP-0114): a component
//! that stops reading while clients send to it costs a bounded amount (its
//! outbound queue refuses past its bound) and is dropped after
//! `network_settings.send_timeout`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Client, heap_in_use};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
component_ports = { 0 }
component_interfaces = { "127.0.0.1" }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "roster"; "disco" }
network_settings = { send_timeout = 3 }
VirtualHost "localhost"
Component "comp.localhost"
    component_secret = "s3cret"
"#;

const MESSAGES: usize = 400;
const BODY: usize = 100 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_stops_reading_is_dropped_and_costs_a_bounded_amount() {
    let running = common::start(CONFIG, &[("alice", "a")]).await;

    // The component connects, shakes hands, then never reads again.
    let mut comp = Client::connect_small_buffer(common::addr(&running, "component")).await;
    comp.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='comp.localhost'>").await;
    let mut header = comp.until("id='").await;
    while header
        .split("id='")
        .nth(1)
        .is_none_or(|rest| !rest.contains('\''))
    {
        header.push_str(&comp.until("'").await);
    }
    let id = header
        .split("id='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .unwrap()
        .to_string();
    let digest = xmpp_core::component::stream::handshake_digest(&id, "s3cret");
    comp.send(&format!("<handshake>{digest}</handshake>")).await;
    comp.until("<handshake").await;

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

    let baseline = heap_in_use();
    let mut peak = baseline;
    let body = "x".repeat(BODY);
    let started = Instant::now();
    for i in 0..MESSAGES {
        let m = format!(
            "<message to='service@comp.localhost' id='m{i}' type='chat'><body>{body}</body></message>"
        );
        alice_wr.write_all(m.as_bytes()).await.unwrap();
        if i % 20 == 0 {
            peak = peak.max(heap_in_use());
        }
    }
    let sent = started.elapsed();
    // The component's connection ends (send_timeout 3 s; slack for a
    // loaded debug build).
    let closed = comp.closed_within(Duration::from_secs(30)).await;
    peak = peak.max(heap_in_use());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bounced = bounces.load(Ordering::Relaxed);
    eprintln!(
        "sent {} MB in {sent:?}; component closed after {:?}; live heap peak +{} MB; {bounced} bounces",
        (MESSAGES * BODY) >> 20,
        started.elapsed(),
        peak.saturating_sub(baseline) >> 20
    );
    assert!(
        closed,
        "the component that stopped reading is still connected"
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
    running.shutdown().await;
}
