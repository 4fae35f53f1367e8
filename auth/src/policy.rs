//! Which mechanisms a c2s stream may use, as Prosody's `mod_saslauth` decides
//! from `c2s_require_encryption`, `allow_unencrypted_plain_auth`,
//! `insecure_sasl_mechanisms` and `disable_sasl_mechanisms`.

use std::collections::BTreeSet;

use xmpp_core::Host;
use xmpp_core::auth::{SaslContext, SaslFailure};

use crate::error::AuthError;

/// The SASL options of a host, read once when the provider is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslPolicy {
    /// `c2s_require_encryption` (else `require_encryption`, default true):
    /// nothing is offered, and every `<auth/>` is refused, on a plain stream.
    pub require_encryption: bool,
    /// `insecure_sasl_mechanisms`: offered on encrypted streams only.
    /// Default `{"PLAIN", "LOGIN"}`, or none with `allow_unencrypted_plain_auth`.
    pub insecure_mechanisms: BTreeSet<String>,
    /// `disable_sasl_mechanisms`, default `{"DIGEST-MD5"}`.
    pub disabled_mechanisms: BTreeSet<String>,
}

impl Default for SaslPolicy {
    fn default() -> SaslPolicy {
        SaslPolicy {
            require_encryption: true,
            insecure_mechanisms: ["PLAIN", "LOGIN"].into_iter().map(String::from).collect(),
            disabled_mechanisms: ["DIGEST-MD5"].into_iter().map(String::from).collect(),
        }
    }
}

impl SaslPolicy {
    /// Reads the options with Prosody's names, defaults and precedence.
    pub fn from_host(host: &Host) -> Result<SaslPolicy, AuthError> {
        let require_any = host.option_bool("require_encryption", true)?;
        let require_encryption = host.option_bool("c2s_require_encryption", require_any)?;
        let allow_unencrypted_plain = host.option_bool("allow_unencrypted_plain_auth", false)?;
        let set = |name: &str| -> Option<BTreeSet<String>> {
            host.option(name)
                .map(|_| host.option_list(name).into_iter().collect())
        };
        let insecure_mechanisms = set("insecure_sasl_mechanisms").unwrap_or_else(|| {
            if allow_unencrypted_plain {
                BTreeSet::new()
            } else {
                SaslPolicy::default().insecure_mechanisms
            }
        });
        let disabled_mechanisms = set("disable_sasl_mechanisms")
            .unwrap_or_else(|| SaslPolicy::default().disabled_mechanisms);
        Ok(SaslPolicy {
            require_encryption,
            insecure_mechanisms,
            disabled_mechanisms,
        })
    }

    /// Narrows what a provider can do to what this stream may be offered,
    /// keeping the provider's order.
    pub fn usable(&self, available: Vec<String>, ctx: &SaslContext, provider: &str) -> Vec<String> {
        if self.require_encryption && !ctx.secure {
            tracing::debug!(host = %ctx.host, "Not offering authentication on insecure connection");
            return Vec::new();
        }
        let usable: Vec<String> = available
            .iter()
            .filter(|m| !self.disabled_mechanisms.contains(*m))
            .filter(|m| ctx.secure || !self.insecure_mechanisms.contains(*m))
            .cloned()
            .collect();
        if usable.is_empty() {
            if available.is_empty() {
                tracing::warn!(host = %ctx.host, "No available SASL mechanisms, verify that the configured authentication module '{provider}' is loaded and configured correctly");
            } else {
                tracing::warn!(host = %ctx.host, "All SASL mechanisms provided by authentication module '{provider}' are forbidden on insecure connections or disabled ({})", available.join(", "));
            }
        }
        usable
    }

    /// The refusal `mod_saslauth` sends for `<auth mechanism=.../>` before the
    /// provider is asked, if any.
    pub fn refuse(&self, mechanism: &str, ctx: &SaslContext) -> Option<SaslFailure> {
        if !ctx.secure && (self.require_encryption || self.insecure_mechanisms.contains(mechanism))
        {
            Some(SaslFailure::new("encryption-required"))
        } else if self.disabled_mechanisms.contains(mechanism) {
            Some(SaslFailure::new("invalid-mechanism"))
        } else {
            None
        }
    }
}
