//! The `authentication` providers and choosing one for a host, as Prosody's
//! `usermanager` does (`authentication`, default `internal_hashed`; the 0.7
//! `anonymous_login` option still means `anonymous`).

mod anonymous;
pub mod cyrus;
mod insecure;
mod internal_hashed;
mod internal_plain;
mod jitsi_anonymous;
mod jitsi_shared_secret;
pub mod ldap;
mod null;
mod token;

use std::sync::Arc;

use xmpp_core::{Host, Value};

pub use anonymous::Anonymous;
pub use insecure::Insecure;
pub use internal_hashed::{DEFAULT_ITERATION_COUNT, InternalHashed};
pub use internal_plain::InternalPlain;
pub use jitsi_anonymous::JitsiAnonymous;
pub use jitsi_shared_secret::JitsiSharedSecret;
pub use null::Null;
pub use token::{Token, TokenExchange, token_of};

use crate::backend::Backend;
use crate::error::AuthError;

/// Prosody's default provider.
pub const DEFAULT_PROVIDER: &str = "internal_hashed";

/// Providers that Prosody, its community modules or Jitsi Meet ship, which
/// lilt will implement in later issues.
const PLANNED: &[&str] = &["sql"];

/// The provider name configured for `host`.
pub fn configured_provider(host: &Host) -> Result<String, AuthError> {
    if host
        .option("anonymous_login")
        .is_some_and(|v| v != &Value::Bool(false))
    {
        tracing::error!(host = %host.name, "Deprecated config option 'anonymous_login'. Use authentication = 'anonymous' instead.");
        return Ok("anonymous".to_string());
    }
    match host.option("authentication") {
        None => Ok(DEFAULT_PROVIDER.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(host
            .option_error(
                "authentication",
                format!(
                    "must be the name of an authentication provider, not a {}",
                    v.type_name()
                ),
            )
            .into()),
    }
}

/// Loads the backend of the configured provider.
pub fn load_backend(host: &Host) -> Result<Arc<dyn Backend>, AuthError> {
    backend_named(host, configured_provider(host)?)
}

/// The backend called `name` on `host`, whatever the host's option says.
pub fn backend_named(host: &Host, name: String) -> Result<Arc<dyn Backend>, AuthError> {
    let defined_at = || {
        host.config()
            .source_of(Some(&host.name), "authentication")
            .cloned()
    };
    Ok(match name.as_str() {
        "internal_hashed" => Arc::new(InternalHashed::load(host)?),
        "internal_plain" => Arc::new(InternalPlain::load(host)?),
        "anonymous" => Arc::new(Anonymous::new(&host.name)),
        "jitsi-anonymous" => Arc::new(JitsiAnonymous::load(host)),
        "insecure" => Arc::new(Insecure::load(host)?),
        "null" => Arc::new(Null::new(&host.name)),
        "token" => Arc::new(Token::load(host)?),
        "jitsi-shared-secret" => Arc::new(JitsiSharedSecret::load(host)?),
        "ldap" | "ldap2" => Arc::new(ldap::load(host, &name)?),
        "cyrus" => Arc::new(cyrus::Cyrus::load(host)?),
        planned if PLANNED.contains(&planned) => {
            return Err(AuthError::ProviderNotYetImplemented {
                host: host.name.clone(),
                provider: name,
                defined_at: defined_at(),
            });
        }
        _ => {
            return Err(AuthError::UnknownProvider {
                host: host.name.clone(),
                provider: name,
                defined_at: defined_at(),
            });
        }
    })
}
