//! What one server-side exchange costs (not a timed test: it prints, and
//! only runs on request):
//! `cargo test --release -p auth --test integration cost:: -- --ignored --nocapture`

use crate::common;

use std::time::{Duration, Instant};

use auth::provider_for_host;
use common::*;
use xmpp_core::Value;
use xmpp_core::auth::{SaslContext, SaslStep};

const ROUNDS: u32 = 200;

/// Server time only: the client's work happens outside the clock.
fn scram_server_time(
    p: &dyn auth::AccountProvider,
    mech: &str,
    hash: Hash,
    ctx: &SaslContext,
) -> Duration {
    let mut client = ScramClient::new(hash, "juliet", "pencil");
    let mut total = Duration::ZERO;
    for _ in 0..ROUNDS {
        let mut ex = p.sasl_start(mech, ctx).unwrap();
        let first = client.first();
        let t = Instant::now();
        let sf = challenge(ex.step(Some(&first)));
        total += t.elapsed();
        // The client's Hi() runs outside the measured time.
        let last = client.last(&sf);
        let t = Instant::now();
        let step = ex.step(Some(&last));
        total += t.elapsed();
        assert!(matches!(step, SaslStep::Success { .. }), "{mech}: {step:?}");
    }
    total / ROUNDS
}

fn plain_server_time(
    p: &dyn auth::AccountProvider,
    ctx: &SaslContext,
    mech: &str,
    message: &[u8],
) -> Duration {
    let t = Instant::now();
    for _ in 0..ROUNDS {
        let mut ex = p.sasl_start(mech, ctx).unwrap();
        assert!(matches!(ex.step(Some(message)), SaslStep::Success { .. }));
    }
    t.elapsed() / ROUNDS
}

#[test]
#[ignore]
fn exchange_costs() {
    let ctx = tls_ctx();
    let (_s, host, _d) = host_with(&[]);
    let hashed = provider_for_host(&host).unwrap();
    hashed.create_user("juliet", Some("pencil")).unwrap();
    let (_s, host, _d) = host_with(&[("password_hash", Value::str("SHA-256"))]);
    let hashed256 = provider_for_host(&host).unwrap();
    hashed256.create_user("juliet", Some("pencil")).unwrap();
    let (_s, host, _d) = host_with(&[("authentication", Value::str("internal_plain"))]);
    let plain = provider_for_host(&host).unwrap();
    plain.create_user("juliet", Some("pencil")).unwrap();
    let (_s, host, _d) = host_with(&[("authentication", Value::str("anonymous"))]);
    let anon = provider_for_host(&host).unwrap();

    println!("server time per exchange, mean of {ROUNDS}:");
    println!(
        "  internal_hashed SCRAM-SHA-1     {:?}",
        scram_server_time(&*hashed, "SCRAM-SHA-1", Hash::Sha1, &ctx)
    );
    println!(
        "  internal_hashed SCRAM-SHA-256   {:?}",
        scram_server_time(&*hashed256, "SCRAM-SHA-256", Hash::Sha256, &ctx)
    );
    println!(
        "  internal_hashed PLAIN           {:?}",
        plain_server_time(&*hashed, &ctx, "PLAIN", b"\0juliet\0pencil")
    );
    println!(
        "  internal_plain  SCRAM-SHA-1     {:?}",
        scram_server_time(&*plain, "SCRAM-SHA-1", Hash::Sha1, &ctx)
    );
    println!(
        "  internal_plain  PLAIN           {:?}",
        plain_server_time(&*plain, &ctx, "PLAIN", b"\0juliet\0pencil")
    );
    println!(
        "  anonymous       ANONYMOUS       {:?}",
        plain_server_time(&*anon, &ctx, "ANONYMOUS", b"")
    );
}
