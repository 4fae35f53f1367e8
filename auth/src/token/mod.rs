//! JWT token authentication as Jitsi Meet's `token/util.lib.lua`: the
//! options (`app_id`, `app_secret`, `asap_key_server`, `cache_keys_url`,
//! `signature_algorithm`, `asap_accepted_issuers`,
//! `asap_accepted_audiences`, `asap_require_room_claim`,
//! `allow_empty_token`, `jwt_pubkey_cache_size`), the keys ([`keys`]), the
//! verification ([`verify`], sans-IO) and the claims it leaves on the
//! session ([`claims`]). The SASL side is
//! [`crate::providers::Token`]; the room check on the MUC is
//! `jitsi::token_verification`.

pub mod claims;
pub mod keys;
pub mod verify;

use xmpp_core::config::OptionError;
use xmpp_core::{Host, Table, Value};

pub use claims::{Claims, field, is_feature_allowed};
pub use keys::{AsapKeyServer, JwksCache, KeySources};
pub use verify::{SignatureAlgorithm, TokenError, VerificationKey, VerifyOptions};

/// Jitsi's default `jwt_pubkey_cache_size`.
pub const DEFAULT_PUBKEY_CACHE_SIZE: i64 = 128;

/// A host's token settings and keys.
pub struct TokenVerifier {
    pub app_id: String,
    pub allow_empty_token: bool,
    pub options: VerifyOptions,
    pub keys: KeySources,
}

fn string_option(host: &Host, name: &str) -> Result<Option<String>, OptionError> {
    match host.option(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => {
            Err(host.option_error(name, format!("must be a string, not a {}", v.type_name())))
        }
    }
}

fn list_option(host: &Host, name: &str, default: Vec<String>) -> Result<Vec<String>, OptionError> {
    match host.option(name) {
        None => Ok(default),
        Some(v) => v.as_string_list().ok_or_else(|| {
            host.option_error(
                name,
                format!("must be a list of strings, not a {}", v.type_name()),
            )
        }),
    }
}

impl TokenVerifier {
    /// Reads the host's options (with global fallback) as Jitsi's
    /// `Util.new` does. Jitsi logs and disables token authentication when
    /// `app_id` or every key source is missing; lilt refuses the
    /// configuration with an error naming the option.
    pub fn from_host(host: &Host) -> Result<TokenVerifier, OptionError> {
        let app_id = string_option(host, "app_id")?
            .ok_or_else(|| host.option_error("app_id", "'app_id' must not be empty".into()))?;
        let app_secret = string_option(host, "app_secret")?;
        // Jitsi's docker image writes `asap_key_server = true` next to
        // `cache_keys_url`: a boolean only means "keys come by kid".
        let asap_key_server = match host.option("asap_key_server") {
            Some(Value::Bool(_)) | None => None,
            Some(_) => string_option(host, "asap_key_server")?,
        };
        let cache_keys_url = string_option(host, "cache_keys_url")?;
        if app_secret.is_none() && asap_key_server.is_none() && cache_keys_url.is_none() {
            return Err(host.option_error(
                "app_secret",
                "'app_secret', 'asap_key_server' or 'cache_keys_url' must be specified".into(),
            ));
        }
        let algorithm = match string_option(host, "signature_algorithm")? {
            Some(name) => SignatureAlgorithm::parse(&name).ok_or_else(|| {
                host.option_error(
                    "signature_algorithm",
                    format!(
                        "{name:?} is not a supported algorithm (HS256, HS384, HS512, RS256, RS384, RS512)"
                    ),
                )
            })?,
            None if asap_key_server.is_some() || cache_keys_url.is_some() => {
                SignatureAlgorithm::RS256
            }
            None => SignatureAlgorithm::HS256,
        };
        let uses_kid = asap_key_server.is_some() || cache_keys_url.is_some();
        if uses_kid && algorithm.is_hmac() {
            return Err(host.option_error(
                "signature_algorithm",
                format!("{algorithm} needs a shared secret, but keys come from a key server here (only RS256, RS384 and RS512 are possible)"),
            ));
        }
        if !uses_kid && !algorithm.is_hmac() {
            return Err(host.option_error(
                "signature_algorithm",
                format!("{algorithm} needs public keys: set asap_key_server or cache_keys_url"),
            ));
        }
        let allow_empty_token = host.option_bool("allow_empty_token", false)?;
        if allow_empty_token {
            tracing::warn!(host = %host.name, "WARNING - empty tokens allowed");
        }
        let cache_size = host.option_i64("jwt_pubkey_cache_size", DEFAULT_PUBKEY_CACHE_SIZE)?;
        let options = VerifyOptions {
            algorithm,
            accepted_issuers: list_option(host, "asap_accepted_issuers", vec![app_id.clone()])?,
            accepted_audiences: list_option(host, "asap_accepted_audiences", vec!["*".into()])?,
            require_room_claim: host.option_bool("asap_require_room_claim", true)?,
        };
        Ok(TokenVerifier {
            app_id,
            allow_empty_token,
            options,
            keys: KeySources {
                secret: app_secret.map(String::into_bytes),
                asap: asap_key_server
                    .map(|base| AsapKeyServer::new(&base, cache_size.max(1) as usize)),
                jwks: cache_keys_url.map(|url| JwksCache::new(&url)),
            },
        })
    }

    /// Jitsi's `process_and_verify_token`: `Ok(None)` for an allowed empty
    /// token, the claims for a good one.
    pub fn process(&self, token: Option<&str>, now: i64) -> Result<Option<Claims>, TokenError> {
        let Some(token) = token else {
            return if self.allow_empty_token {
                Ok(None)
            } else {
                Err(TokenError::Required)
            };
        };
        let key = self.keys.key_for(token)?;
        verify::verify(token, &key, &self.options, now).map(Some)
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Does the session (its attributes) have `feature` in its token's
/// `context.features` (`true` or `"true"`)? Without a features claim,
/// moderators have every feature (Jitsi's `is_feature_allowed`). For
/// modules gating recording, livestreaming, transcription, polls...
pub fn session_has_feature(attributes: &Table, feature: &str, is_moderator: bool) -> bool {
    is_feature_allowed(
        attributes.get(field::CONTEXT_FEATURES),
        feature,
        is_moderator,
    )
}
