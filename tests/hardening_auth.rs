//! Issue 21's login items against lilt started in-process on port 0, with
//! raw XML streams over real TCP: a wrong password for a missing account
//! takes as long as for an existing one, and a failed login is one log
//! line.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::Client;

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
authentication = "internal_hashed"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "roster"; "disco" }
VirtualHost "localhost"
"#;

/// What the server logged at INFO and above (one subscriber per process).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One PLAIN login that fails; how long the server took to answer.
async fn failed_login(addr: std::net::SocketAddr, user: &str) -> Duration {
    let mut c = Client::connect(addr).await;
    c.send(common::OPEN).await;
    c.until("</stream:features>").await;
    let creds = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0wrong").as_bytes())
    };
    let t = Instant::now();
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    ))
    .await;
    let answer = c.until("</failure>").await;
    let took = t.elapsed();
    assert!(answer.contains("not-authorized"), "{answer}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn a_missing_account_fails_as_slowly_as_an_existing_one_and_is_logged_once() {
    let log = captured_log();
    let running = common::start(CONFIG, &[("alice", "secret")]).await;
    let addr = common::addr(&running, "c2s");
    let mut existing = Vec::new();
    let mut missing = Vec::new();
    for _ in 0..7 {
        existing.push(failed_login(addr, "alice").await);
        missing.push(failed_login(addr, "ghost").await);
    }
    let (existing, missing) = (median(existing), median(missing));
    eprintln!("wrong password: existing account {existing:?}, missing account {missing:?}");
    // Before: ~1.1 ms against ~0.1 ms (the missing account skipped the
    // key derivation). Now both derive.
    assert!(
        missing * 2 >= existing,
        "a missing account is answered in {missing:?}, an existing one in {existing:?}"
    );

    // Each failure is one line (of the 14 logins; the other test of this
    // file logs in as carol).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Failed authentication attempt"))
        .filter(|l| l.contains("alice@") || l.contains("ghost@"))
        .collect();
    assert_eq!(failures.len(), 14, "{text}");
    assert!(
        failures.iter().all(|l| !l.contains("wrong")),
        "the password was logged"
    );
    // And nothing else names the accounts.
    let naming = text
        .lines()
        .filter(|l| l.contains("alice") || l.contains("ghost"))
        .count();
    assert_eq!(naming, 14, "{text}");
    running.shutdown().await;
}

#[tokio::test]
async fn the_owner_logs_in_from_its_own_address_while_its_account_is_attacked() {
    let config = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 0 }
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
storage = "memory"
modules_enabled = { "roster"; "disco"; "limit_auth" }
limit_auth_period = 60
limit_auth_max = 100
limit_auth_account_max = 3
VirtualHost "localhost"
"#;
    let running = common::start(config, &[("carol", "secret")]).await;
    let addr = common::addr(&running, "c2s");
    let from = |n: u8| std::net::Ipv4Addr::new(127, 0, 0, n);

    // The owner logs in from its usual address.
    let mut owner = Client::connect_from(addr, from(1)).await;
    owner.login("carol", "secret", "home").await;
    drop(owner);

    // An attacker fails from other addresses, past the account's limit.
    for n in 10..16 {
        let mut attacker = Client::connect_from(addr, from(n)).await;
        let answer = attacker.auth_plain("carol", "guess").await;
        assert!(answer.contains("<failure"), "{answer}");
    }
    // The protection holds for anyone else, even with the password.
    let mut stranger = Client::connect_from(addr, from(20)).await;
    let answer = stranger.auth_plain("carol", "secret").await;
    assert!(answer.contains("temporary-auth-failure"), "{answer}");

    // The owner still gets in from its own address, during the attack.
    let mut owner = Client::connect_from(addr, from(1)).await;
    owner.login("carol", "secret", "phone").await;
    running.shutdown().await;
}
