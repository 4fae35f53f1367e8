//! SASL exchanges (sans-IO): `PLAIN`, `SCRAM-SHA-1`, `SCRAM-SHA-256`, their
//! `-PLUS` variants with `tls-exporter` channel binding, and `ANONYMOUS`,
//! run by rsasl with Prosody's `util.sasl` rules around it (username
//! preparation, failure conditions and texts).

mod anonymous;
mod engine;
mod plain;
mod scram;
pub mod scram_msg;

use std::sync::Arc;

use xmpp_core::Jid;
use xmpp_core::auth::{SaslContext, SaslExchange, SaslFailure, SaslStep};

use crate::backend::{Backend, Lookup};
use crate::hashing::{ScramHash, saslprep};

pub use engine::TLS_EXPORTER;

/// The mechanisms `backend` can run on a stream with this context (before
/// the host's policy narrows them); `-PLUS` only with tls-exporter data.
pub fn available_mechanisms(backend: &dyn Backend, ctx: &SaslContext) -> Vec<String> {
    backend.profile().mechanisms(ctx.tls_exporter.is_some())
}

/// Starts an exchange for `mechanism`, which must be one of
/// [`available_mechanisms`] (else `invalid-mechanism`).
pub fn start(
    backend: Arc<dyn Backend>,
    mechanism: &str,
    ctx: &SaslContext,
) -> Result<Box<dyn SaslExchange>, SaslFailure> {
    if !available_mechanisms(backend.as_ref(), ctx)
        .iter()
        .any(|m| m == mechanism)
    {
        return Err(SaslFailure::new("invalid-mechanism"));
    }
    if let Some(exchange) = backend.sasl_exchange(mechanism, ctx) {
        return Ok(exchange);
    }
    if mechanism == "PLAIN" {
        return Ok(Box::new(plain::PlainExchange::new(backend)));
    }
    if mechanism == "ANONYMOUS" {
        let username = backend.anonymous_username(ctx);
        return Ok(Box::new(anonymous::AnonymousExchange::new(username)));
    }
    match ScramHash::from_mechanism(mechanism) {
        Some((hash, plus)) => Ok(Box::new(scram::ScramExchange::new(
            backend,
            hash,
            plus,
            ctx.tls_exporter.clone(),
        ))),
        None => Err(SaslFailure::new("invalid-mechanism")),
    }
}

/// Prepares a SASL username as Prosody does: SASLprep, then nodeprep;
/// `None` if either fails or nothing is left.
pub fn prepare_username(raw: &str) -> Option<String> {
    let prepped = saslprep(raw)?;
    let node = xmpp_core::jid::nodeprep(&prepped).ok()?;
    (!node.is_empty()).then_some(node)
}

/// An authorization identity other than the authenticated user's own bare
/// JID is refused with `invalid-authzid` (RFC 6120 §6.4.6): lilt does not
/// let one account act as another.
pub fn check_authzid(authzid: &str, username: &str, host: &str) -> Result<(), SaslFailure> {
    if authzid.is_empty() {
        return Ok(());
    }
    match Jid::parse(authzid) {
        Ok(j) if j.is_bare() && j.node() == Some(username) && j.domain() == host => Ok(()),
        _ => Err(SaslFailure::new("invalid-authzid")),
    }
}

/// Prosody's PLAIN rules once rsasl has split and SASLprepped the message:
/// nodeprep the authcid, check the authzid, then the password, through the
/// profile's `plain` (compare with the stored password) or `plain_test`.
pub(crate) fn verify_plain(
    backend: &dyn Backend,
    authcid: &str,
    authzid: &str,
    password: &str,
) -> Result<String, SaslFailure> {
    let invalid = || SaslFailure::with_text("malformed-request", "Invalid username or password.");
    let username = prepare_username(authcid).ok_or_else(invalid)?;
    if password.is_empty() {
        return Err(invalid());
    }
    check_authzid(authzid, &username, backend.host())?;
    let profile = backend.profile();
    // A backend with both callbacks (jitsi-shared-secret) checks PLAIN with
    // `plain_test`, which may accept more than the one stored password.
    let lookup =
        if profile.plain && !profile.plain_test {
            backend.get_password(&username).map(|l| match l {
                Lookup::Found(stored) => Lookup::Found(saslprep(&stored).is_some_and(|s| {
                    crate::hashing::secure_equals(s.as_bytes(), password.as_bytes())
                })),
                Lookup::NoUser => Lookup::NoUser,
                Lookup::Disabled => Lookup::Disabled,
            })
        } else {
            backend.test_password(&username, password)
        };
    match lookup {
        Ok(Lookup::Found(true)) => Ok(username),
        Ok(Lookup::Disabled) => Err(SaslFailure::new("account-disabled")),
        Ok(Lookup::Found(false) | Lookup::NoUser) => Err(not_authorized_plain()),
        Err(e) => {
            tracing::warn!(host = backend.host(), user = %username, "PLAIN authentication could not be checked: {e}");
            Err(SaslFailure::new("temporary-auth-failure"))
        }
    }
}

fn not_authorized_plain() -> SaslFailure {
    SaslFailure::with_text(
        "not-authorized",
        "Unable to authorize you with the authentication credentials you've sent.",
    )
}

/// Prosody's answer to a `<response/>` when no exchange is running.
pub(crate) fn out_of_order() -> SaslStep {
    SaslStep::Failure(SaslFailure::with_text(
        "not-authorized",
        "Out of order SASL element",
    ))
}
