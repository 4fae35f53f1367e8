//! The primitives Prosody's account records are made of: SCRAM key
//! derivation (RFC 5802 §3), lowercase hex, UUID salts, SASLprep, and the
//! random localparts `ANONYMOUS` hands out.

use std::borrow::Cow;

use base64::Engine;
use hmac::digest::Digest;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};
use rand::RngCore;

/// The hash of a SCRAM family, as Prosody's `password_hash` option names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// Prosody's name: `SHA-1`, `SHA-256`.
    pub fn name(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SHA-1",
            ScramHash::Sha256 => "SHA-256",
        }
    }
    /// From a `password_hash` value (Prosody compares the exact string).
    pub fn from_name(name: &str) -> Option<ScramHash> {
        match name {
            "SHA-1" => Some(ScramHash::Sha1),
            "SHA-256" => Some(ScramHash::Sha256),
            _ => None,
        }
    }
    /// The SASL mechanism name, with or without channel binding.
    pub fn mechanism(self, plus: bool) -> &'static str {
        match (self, plus) {
            (ScramHash::Sha1, false) => "SCRAM-SHA-1",
            (ScramHash::Sha1, true) => "SCRAM-SHA-1-PLUS",
            (ScramHash::Sha256, false) => "SCRAM-SHA-256",
            (ScramHash::Sha256, true) => "SCRAM-SHA-256-PLUS",
        }
    }
    /// The mechanism's hash and whether it is a `-PLUS` one.
    pub fn from_mechanism(mechanism: &str) -> Option<(ScramHash, bool)> {
        [ScramHash::Sha256, ScramHash::Sha1]
            .into_iter()
            .flat_map(|h| [(h, false), (h, true)])
            .find(|(h, plus)| h.mechanism(*plus) == mechanism)
    }
    /// Digest length in bytes (also the key lengths).
    pub fn output_len(self) -> usize {
        match self {
            ScramHash::Sha1 => 20,
            ScramHash::Sha256 => 32,
        }
    }
}

/// What a SCRAM server stores for an account (RFC 5802 §3), as Prosody's
/// `internal_hashed` records hold it (there hex-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    /// The salt bytes; Prosody's salts are UUID strings used as bytes.
    pub salt: Vec<u8>,
    pub iteration_count: u32,
}

impl ScramCredentials {
    /// Derives the stored and server keys of an already SASLprepped password.
    pub fn derive(
        hash: ScramHash,
        password: &str,
        salt: &[u8],
        iteration_count: u32,
    ) -> ScramCredentials {
        // Hi() of RFC 5802 is PBKDF2 with HMAC as the PRF and dkLen = hLen.
        let rounds = iteration_count.max(1);
        let (stored_key, server_key) = match hash {
            ScramHash::Sha1 => {
                let salted =
                    pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 20>(password.as_bytes(), salt, rounds);
                client_and_server_keys::<sha1::Sha1>(&salted)
            }
            ScramHash::Sha256 => {
                let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(
                    password.as_bytes(),
                    salt,
                    rounds,
                );
                client_and_server_keys::<sha2::Sha256>(&salted)
            }
        };
        ScramCredentials {
            stored_key,
            server_key,
            salt: salt.to_vec(),
            iteration_count,
        }
    }
}

/// For an account that does not exist: SCRAM goes on with these, so the
/// exchange takes the same steps and ends as a wrong password does, and a
/// missing account cannot be told from an existing one (RFC 5802 §5.1:
/// the same salt each time for a username, the usual iteration count).
/// The keys are random: no proof matches them.
pub fn unknown_account_credentials(
    hash: ScramHash,
    username: &str,
    iteration_count: u32,
) -> ScramCredentials {
    let random = || {
        let mut key = vec![0u8; hash.output_len()];
        rand::thread_rng().fill_bytes(&mut key);
        key
    };
    ScramCredentials {
        stored_key: random(),
        server_key: random(),
        salt: stable_fake_salt(username),
        iteration_count,
    }
}

/// A salt for a username that has no account: UUID-shaped as Prosody's
/// salts, the same for the same name for the life of the process.
pub fn stable_fake_salt(username: &str) -> Vec<u8> {
    static SECRET: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        let mut s = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut s);
        s
    });
    let h = hmac::<sha2::Sha256>(secret, username.as_bytes());
    let hex = to_hex(h.get(..16).unwrap_or(&h));
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or_default();
    format!(
        "{}-{}-4{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(13, 16),
        part(16, 20),
        part(20, 32)
    )
    .into_bytes()
}

fn hmac<D: Digest + BlockSizeUser>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // SimpleHmac accepts keys of any length.
    match <SimpleHmac<D> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// StoredKey = H(HMAC(SaltedPassword, "Client Key")), ServerKey =
/// HMAC(SaltedPassword, "Server Key").
fn client_and_server_keys<D: Digest + BlockSizeUser>(salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let client_key = hmac::<D>(salted, b"Client Key");
    let stored_key = D::digest(&client_key).to_vec();
    (stored_key, hmac::<D>(salted, b"Server Key"))
}

/// Lowercase hex, as Prosody's `util.hex.encode`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Hex of either case; `None` for an odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let value = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    digits
        .chunks(2)
        .map(|pair| Some(value(pair[0])? << 4 | value(pair[1])?))
        .collect()
}

/// A random version-4 UUID string (Prosody's `util.uuid.generate`, used
/// for salts).
pub fn generate_uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = to_hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A localpart for an `ANONYMOUS` login: Prosody 0.12's
/// `util.id.medium():lower()`, 18 random bytes in unpadded base64url (24
/// characters from `[a-z0-9_-]`, all valid in a JID node).
pub fn anonymous_username() -> String {
    let mut b = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(b)
        .to_lowercase()
}

/// SASLprep (RFC 4013) with unassigned code points refused, as Prosody's
/// `util.encodings.stringprep.saslprep`.
pub fn saslprep(s: &str) -> Option<Cow<'_, str>> {
    stringprep::saslprep(s).ok()
}

/// Constant-time comparison (Prosody's `util.hashes.equals`).
pub fn secure_equals(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(to_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex("00AB7f"), Some(vec![0x00, 0xab, 0x7f]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn uuid_shape() {
        let u = generate_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn anonymous_names_are_nodes() {
        for _ in 0..50 {
            let n = anonymous_username();
            assert_eq!(n.len(), 24);
            assert_eq!(xmpp_core::jid::nodeprep(&n).unwrap(), n);
        }
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(
            ScramHash::from_mechanism("SCRAM-SHA-1-PLUS"),
            Some((ScramHash::Sha1, true))
        );
        assert_eq!(
            ScramHash::from_mechanism("SCRAM-SHA-256"),
            Some((ScramHash::Sha256, false))
        );
        assert_eq!(ScramHash::from_mechanism("SCRAM-SHA-512"), None);
    }
}
