//! Client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1 (RFC 5802), sans-IO.
//!
//! A load generator logs the same accounts in again and again, so the
//! salted password (PBKDF2, the expensive part) is cached per (password,
//! salt, iteration count), as RFC 5802 §5.1 allows a client to do. The
//! server's work is unchanged by this: it verifies with its stored keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// A SCRAM step went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("SCRAM: malformed server-first-message {0:?}")]
    MalformedFirst(String),
    #[error("SCRAM: malformed server-final-message {0:?}")]
    MalformedFinal(String),
    #[error("SCRAM: the server's nonce does not extend ours")]
    NonceMismatch,
    #[error("SCRAM: the server's signature does not verify")]
    BadServerSignature,
    #[error("SCRAM: the server reported {0:?}")]
    ServerError(String),
    #[error("SCRAM: challenge is not base64")]
    Base64,
}

/// (password, salt, iteration count).
type SaltKey = (String, Vec<u8>, u32);

/// Salted passwords already computed, shared by every connection.
#[derive(Debug, Clone, Default)]
pub struct SaltCache {
    inner: Arc<Mutex<HashMap<SaltKey, [u8; 20]>>>,
}

impl SaltCache {
    /// Hi(password, salt, i) from RFC 5802, computed once per key.
    pub fn salted_password(&self, password: &str, salt: &[u8], iterations: u32) -> [u8; 20] {
        let key = (password.to_string(), salt.to_vec(), iterations);
        if let Ok(cache) = self.inner.lock()
            && let Some(hit) = cache.get(&key)
        {
            return *hit;
        }
        let mut out = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(password.as_bytes(), salt, iterations, &mut out);
        if let Ok(mut cache) = self.inner.lock() {
            cache.insert(key, out);
        }
        out
    }
}

/// `\0user\0password`, base64-encoded for `<auth/>`.
pub fn plain(username: &str, password: &str) -> String {
    B64.encode(format!("\0{username}\0{password}"))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = HmacSha1::new_from_slice(key) else {
        return [0; 20];
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// RFC 5802 `saslname`.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// One SCRAM-SHA-1 exchange (no channel binding: `n,,`).
pub struct Scram {
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<[u8; 20]>,
}

impl Scram {
    pub fn new(username: &str, password: &str) -> Scram {
        let raw: [u8; 18] = rand::random();
        Scram::with_nonce(username, password, &B64.encode(raw))
    }

    pub fn with_nonce(username: &str, password: &str, nonce: &str) -> Scram {
        Scram {
            password: password.to_string(),
            nonce: nonce.to_string(),
            client_first_bare: format!("n={},r={nonce}", saslname(username)),
            server_signature: None,
        }
    }

    /// The base64 payload of `<auth mechanism='SCRAM-SHA-1'>`.
    pub fn client_first(&self) -> String {
        B64.encode(format!("n,,{}", self.client_first_bare))
    }

    /// Takes the base64 `<challenge/>` text, returns the base64 response.
    pub fn client_final(
        &mut self,
        challenge_b64: &[u8],
        cache: &SaltCache,
    ) -> Result<String, SaslError> {
        let server_first = B64.decode(challenge_b64).map_err(|_| SaslError::Base64)?;
        let server_first = String::from_utf8_lossy(&server_first).into_owned();
        let malformed = || SaslError::MalformedFirst(server_first.clone());
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(B64.decode(v).map_err(|_| malformed())?),
                Some(("i", v)) => iterations = Some(v.parse::<u32>().map_err(|_| malformed())?),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(malformed());
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        let salted = cache.salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 20] = Sha1::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(B64.encode(format!("{without_proof},p={}", B64.encode(proof))))
    }

    /// Checks the base64 additional data of `<success/>`.
    pub fn verify_success(&self, success_b64: &[u8]) -> Result<(), SaslError> {
        let text = B64.decode(success_b64).map_err(|_| SaslError::Base64)?;
        let text = String::from_utf8_lossy(&text).into_owned();
        if let Some(err) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(err.to_string()));
        }
        let sig = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| SaslError::MalformedFinal(text.clone()))?;
        match self.server_signature {
            Some(expected) if sig == expected => Ok(()),
            _ => Err(SaslError::BadServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 §5's example exchange.
    #[test]
    fn rfc5802_example() {
        let mut scram = Scram::with_nonce("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(
            B64.decode(scram.client_first()).expect("b64"),
            b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
        );
        let server_first =
            B64.encode("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
        let cache = SaltCache::default();
        let final_msg = scram
            .client_final(server_first.as_bytes(), &cache)
            .expect("final");
        assert_eq!(
            B64.decode(final_msg).expect("b64"),
            b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        let success = B64.encode("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
        scram.verify_success(success.as_bytes()).expect("verifies");
        assert_eq!(
            scram.verify_success(B64.encode("v=AAAA").as_bytes()),
            Err(SaslError::BadServerSignature)
        );
    }

    #[test]
    fn rejects_foreign_nonce() {
        let mut scram = Scram::with_nonce("user", "pencil", "abc");
        let first = B64.encode("r=xyz123,s=QSXCR+Q6sek8bf92,i=4096");
        assert_eq!(
            scram.client_final(first.as_bytes(), &SaltCache::default()),
            Err(SaslError::NonceMismatch)
        );
    }

    #[test]
    fn plain_payload() {
        assert_eq!(B64.decode(plain("a", "b")).expect("b64"), b"\0a\0b");
    }
}
