//! `<db:verify>` requests on an outgoing stream: when they may go out.

use super::*;

/// A `<db:verify>` asked for before the stream is open waits until SASL
/// EXTERNAL succeeded: sent right after `<auth/>`, it reached the peer's
/// parser before the restarted stream's header, which closed the stream
/// (`not-well-formed`, an undeclared `db:` prefix).
#[test]
fn verify_requests_wait_for_sasl_external_to_complete() {
    let (mut o, mut r) = tls_pair(&["a.example"]);
    let mut seen = Seen::default();
    assert!(o.verify("their-stream", "a-key").is_empty(), "queued");
    let first = o.open();
    assert!(!writes(&first).contains("db:verify"), "{}", writes(&first));
    pump(&mut o, &mut r, first, &mut seen);
    assert!(
        !seen.inc_wrote.contains("stream:error"),
        "{}",
        seen.inc_wrote
    );
    assert!(o.is_ready() && r.is_authed("a.example"));
    assert!(
        seen.out.iter().any(|a| matches!(
            a,
            Action::VerifyResult { id, valid: false, .. } if id == "their-stream"
        )),
        "{seen:?}"
    );
}
