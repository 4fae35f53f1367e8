//! Where the key that checks a token comes from, as Jitsi's
//! `token/util.lib.lua` chooses it: a shared secret (`app_secret`), a public
//! key fetched by `kid` from an ASAP key server
//! (`<asap_key_server>/<hex sha256(kid)>.pem`, cached, retried) or a JWKS
//! document (`cache_keys_url`, refreshed as its `Cache-Control` says).
//!
//! Fetching is blocking HTTP (ureq) done inside the SASL step. On tokio's
//! multi-thread runtime (the server's) it runs under
//! `tokio::task::block_in_place`, so the other connections of that worker
//! move to other threads meanwhile; elsewhere (tests, a current-thread
//! runtime) it simply blocks. A key is fetched once and then served from
//! memory, so only the first login with a new `kid` waits.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use super::verify::{TokenError, VerificationKey, key_id};

/// Attempts after the first one (Jitsi's `nr_retries`).
pub const RETRIES: u32 = 3;
/// How long one HTTP attempt may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// A JWKS document without `Cache-Control: max-age` is refreshed after
/// this long (Jitsi: six hours).
pub const JWKS_DEFAULT_REFRESH: Duration = Duration::from_secs(6 * 60 * 60);
/// Keys that left the JWKS document stay usable this long (Jitsi: 90
/// minutes, as tokens live an hour).
pub const JWKS_RETIRE_AFTER: Duration = Duration::from_secs(90 * 60);
/// A `kid` missing from the JWKS document triggers a new fetch at most this
/// often (Jitsi retries a failed fetch after 30 seconds).
pub const JWKS_MISS_REFETCH: Duration = Duration::from_secs(30);

/// A failed HTTP fetch.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("GET {url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: {reason}")]
    Transport { url: String, reason: String },
}

/// A fetched document and how long it may be cached (`max-age`).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: String,
    pub max_age: Option<Duration>,
}

fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?.split(',').find_map(|d| {
        let (name, value) = d.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// GET `url`, retrying transport failures and 5xx answers `retries` times
/// with a short backoff; a 4xx is final.
pub fn http_get_with_retry(url: &str, retries: u32) -> Result<Fetched, FetchError> {
    let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
    let mut attempt = 0;
    loop {
        let outcome = agent.get(url).call();
        let error = match outcome {
            Ok(response) => {
                let max_age = max_age(response.header("cache-control"));
                return response
                    .into_string()
                    .map(|body| Fetched { body, max_age })
                    .map_err(|e| FetchError::Transport {
                        url: url.to_string(),
                        reason: e.to_string(),
                    });
            }
            Err(ureq::Error::Status(status, _)) if status < 500 => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                });
            }
            Err(ureq::Error::Status(status, _)) => FetchError::Status {
                url: url.to_string(),
                status,
            },
            Err(e) => FetchError::Transport {
                url: url.to_string(),
                reason: e.to_string(),
            },
        };
        if attempt >= retries {
            return Err(error);
        }
        tracing::debug!("{error}; retrying");
        attempt += 1;
        std::thread::sleep(Duration::from_millis(100 << attempt.min(4)));
    }
}

/// Runs blocking work without stalling a tokio worker thread.
pub fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// An ASAP key server with a bounded cache of the keys fetched.
pub struct AsapKeyServer {
    base: String,
    capacity: usize,
    cache: Mutex<(HashMap<String, VerificationKey>, VecDeque<String>)>,
}

impl AsapKeyServer {
    /// `base` is `asap_key_server`; `capacity` is `jwt_pubkey_cache_size`.
    pub fn new(base: &str, capacity: usize) -> AsapKeyServer {
        AsapKeyServer {
            base: base.trim_end_matches('/').to_string(),
            capacity: capacity.max(1),
            cache: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Where the key `kid` is published.
    pub fn url_for(&self, kid: &str) -> String {
        let digest = Sha256::digest(kid.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}/{hex}.pem", self.base)
    }

    fn cached(&self, kid: &str) -> Option<VerificationKey> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.0.get(kid).cloned()
    }

    fn remember(&self, kid: &str, key: VerificationKey) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0.insert(kid.to_string(), key).is_none() {
            cache.1.push_back(kid.to_string());
        }
        while cache.1.len() > self.capacity {
            if let Some(old) = cache.1.pop_front() {
                cache.0.remove(&old);
            }
        }
    }

    /// The public key for `kid`, from the cache or the server.
    pub fn public_key(&self, kid: &str) -> Option<VerificationKey> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        let url = self.url_for(kid);
        let fetched = match blocking(|| http_get_with_retry(&url, RETRIES)) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("could not fetch the public key {kid:?}: {e}");
                return None;
            }
        };
        let Some(key) = VerificationKey::rsa_from_pem(fetched.body.as_bytes()) else {
            tracing::warn!("{url} is not an RSA public key in PEM");
            return None;
        };
        self.remember(kid, key.clone());
        Some(key)
    }
}

struct JwksState {
    keys: HashMap<String, (VerificationKey, Option<Instant>)>,
    refresh_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// A JWKS document (or Firebase's `{kid: certificate}` map) kept in memory
/// and fetched again when stale.
pub struct JwksCache {
    url: String,
    state: Mutex<JwksState>,
}

/// The RSA keys of a JWKS document (`{"keys": [...]}`) or of a direct
/// `{kid: "-----BEGIN CERTIFICATE-----..."}` map; keys that are not RSA or
/// do not parse are skipped.
pub fn parse_key_set(body: &str) -> HashMap<String, VerificationKey> {
    let mut out = HashMap::new();
    let Ok(Json::Object(doc)) = serde_json::from_str::<Json>(body) else {
        return out;
    };
    for (name, value) in &doc {
        match value {
            Json::Array(keys) if name == "keys" => {
                for key in keys {
                    let Some(kid) = key.get("kid").and_then(Json::as_str) else {
                        continue;
                    };
                    let parsed = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone())
                        .ok()
                        .filter(|jwk| {
                            matches!(
                                jwk.algorithm,
                                jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
                            )
                        })
                        .and_then(|jwk| jsonwebtoken::DecodingKey::from_jwk(&jwk).ok());
                    if let Some(k) = parsed {
                        out.insert(kid.to_string(), VerificationKey::Rsa(k));
                    }
                }
            }
            Json::String(pem) if pem.starts_with("-----BEGIN CERTIFICATE-----") => {
                if let Some(k) = VerificationKey::rsa_from_pem(pem.as_bytes()) {
                    out.insert(name.clone(), k);
                }
            }
            _ => {}
        }
    }
    out
}

impl JwksCache {
    pub fn new(url: &str) -> JwksCache {
        JwksCache {
            url: url.to_string(),
            state: Mutex::new(JwksState {
                keys: HashMap::new(),
                refresh_at: None,
                last_attempt: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JwksState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(&self) {
        let now = Instant::now();
        self.lock().last_attempt = Some(now);
        match blocking(|| http_get_with_retry(&self.url, RETRIES)) {
            Ok(fetched) => {
                let fresh = parse_key_set(&fetched.body);
                let mut state = self.lock();
                for (kid, (_, retire)) in state.keys.iter_mut() {
                    if !fresh.contains_key(kid) && retire.is_none() {
                        *retire = Some(now + JWKS_RETIRE_AFTER);
                    }
                }
                state
                    .keys
                    .retain(|_, (_, retire)| retire.is_none_or(|r| r > now));
                for (kid, key) in fresh {
                    state.keys.insert(kid, (key, None));
                }
                // As Jitsi: a minute before the document expires.
                let every = fetched.max_age.map_or(JWKS_DEFAULT_REFRESH, |a| {
                    if a > Duration::from_secs(60) {
                        a - Duration::from_secs(60)
                    } else {
                        a
                    }
                });
                state.refresh_at = Some(now + every);
            }
            Err(e) => {
                tracing::warn!("Failed to retrieve cached public keys: {e}");
                self.lock().refresh_at = Some(now + JWKS_MISS_REFETCH);
            }
        }
    }

    /// The key `kid`, fetching the document when it is stale, or when the
    /// `kid` is unknown and the last fetch is over 30 seconds old.
    pub fn public_key(&self, kid: &str) -> Option<VerificationKey> {
        let now = Instant::now();
        let (stale, hit, may_refetch) = {
            let state = self.lock();
            let hit = state
                .keys
                .get(kid)
                .filter(|(_, retire)| retire.is_none_or(|r| r > now))
                .map(|(k, _)| k.clone());
            let stale = state.refresh_at.is_none_or(|at| now >= at);
            let may = state
                .last_attempt
                .is_none_or(|t| now.duration_since(t) >= JWKS_MISS_REFETCH);
            (stale, hit, may)
        };
        if may_refetch && (stale || hit.is_none()) {
            self.refresh();
            let state = self.lock();
            return state.keys.get(kid).map(|(k, _)| k.clone()).or(hit);
        }
        hit
    }
}

/// All the key sources a host has.
pub struct KeySources {
    pub secret: Option<Vec<u8>>,
    pub asap: Option<AsapKeyServer>,
    pub jwks: Option<JwksCache>,
}

impl KeySources {
    /// Jitsi's choice of key for a token: by `kid` when a key server or a
    /// JWKS URL is configured (RSA only), else the shared secret.
    pub fn key_for(&self, token: &str) -> Result<VerificationKey, TokenError> {
        if self.asap.is_some() || self.jwks.is_some() {
            let kid = key_id(token)?;
            let key = self
                .jwks
                .as_ref()
                .and_then(|j| j.public_key(&kid))
                .or_else(|| self.asap.as_ref().and_then(|a| a.public_key(&kid)));
            return key.ok_or(TokenError::NoPublicKey);
        }
        match &self.secret {
            Some(secret) => Ok(VerificationKey::Secret(secret.clone())),
            None => Err(TokenError::NoKey),
        }
    }
}
