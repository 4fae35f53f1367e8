//! # auth
//!
//! SASL and the `authentication` providers, compatible with Prosody's
//! accounts and options.
//!
//! - [`provider_for_host`] reads a host's `authentication` option
//!   (`internal_hashed` by default, `internal_plain`, `anonymous`,
//!   `insecure`, `null`) and its SASL options, and returns a provider that
//!   is both the core's [`AuthProvider`](xmpp_core::auth::AuthProvider) and
//!   an [`AccountProvider`] for account management.
//! - [`sasl`] holds the sans-IO exchanges: `PLAIN`, `SCRAM-SHA-1`,
//!   `SCRAM-SHA-256`, their `-PLUS` variants bound to `tls-exporter`, and
//!   `ANONYMOUS`, run by rsasl with Prosody's rules around it.
//! - Account records are read and written exactly as Prosody's
//!   `mod_auth_internal_hashed` / `mod_auth_internal_plain` do (see
//!   [`accounts`]), so a data directory moves between Prosody and lilt.
//! - `jitsi-anonymous` ([`providers::JitsiAnonymous`]) is `ANONYMOUS` that
//!   gives a reconnecting client (`?previd=` in its BOSH/WebSocket URL) the
//!   username of its previous session ([`resumption`]).
//! - `ldap` and `ldap2` ([`providers::ldap`]: Prosody's `ldap_*` options or
//!   mod_lib_ldap's `ldap` table) check passwords against an LDAP directory
//!   (ldap3 over rustls: ldaps and StartTLS), offer PLAIN only (bind mode),
//!   and leave the directory's display name on the session
//!   (`ldap_display_name`); `cyrus` ([`providers::cyrus`]) asks saslauthd.
//! - `token` ([`providers::Token`], Jitsi's mod_auth_token) is `ANONYMOUS`
//!   after verifying a JWT from the BOSH/WebSocket URL (`?token=`) or an
//!   `Authorization: Bearer` header ([`token`]: HS256 with `app_secret`,
//!   RS256 with keys from `asap_key_server` or `cache_keys_url`); the
//!   verified claims stay on the session under Jitsi's field names, and
//!   [`token::session_has_feature`] reads its `context.features`.
//! - Every provider's exchanges go through a [`guard::LoginGuard`]: failed
//!   logins are throttled per IP and per account ([`throttle`]:
//!   `limit_auth_period`, `limit_auth_max`, `limit_auth_account_max`) and
//!   logged once each, without the client's data.
//!
//! Where to start reading: [`provider`], then [`sasl`], then
//! [`providers::InternalHashed`].

pub mod accounts;
pub mod backend;
pub mod error;
pub mod guard;
pub mod hashing;
pub mod policy;
pub mod provider;
pub mod providers;
pub mod resumption;
pub mod sasl;
pub mod throttle;
pub mod token;
pub mod trusted;

use std::sync::Arc;

use xmpp_core::Host;

pub use backend::{Backend, Lookup, Profile};
pub use error::AuthError;
pub use hashing::{ScramCredentials, ScramHash};
pub use policy::SaslPolicy;
pub use provider::{AccountProvider, Provider};

/// The provider a host's options select, with its SASL policy. Errors name
/// the option (and where it was set): an unknown provider, one not
/// implemented yet (`ldap`, `token`, ...), a refused `insecure`, or a bad
/// option value; an unavailable `accounts` store is a storage error.
pub fn provider_for_host(host: &Arc<Host>) -> Result<Arc<dyn AccountProvider>, AuthError> {
    let backend = providers::load_backend(host)?;
    let policy = SaslPolicy::from_host(host)?;
    let throttle = throttle::ThrottleSettings::from_host(host)?;
    tracing::debug!(host = %host.name, "Host '{}' now set to use user provider '{}'", host.name, backend.name());
    Ok(Arc::new(
        Provider::new(backend, policy, host).with_throttle(throttle),
    ))
}

/// The provider called `name` for a host, with the host's SASL policy
/// (used to stand in for a provider lilt does not have yet).
pub fn provider_named(host: &Arc<Host>, name: &str) -> Result<Arc<dyn AccountProvider>, AuthError> {
    let backend = providers::backend_named(host, name.to_string())?;
    let policy = SaslPolicy::from_host(host)?;
    Ok(Arc::new(Provider::new(backend, policy, host)))
}
