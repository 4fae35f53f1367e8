//! Client side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1 (RFC 5802), sans-IO:
//! each step takes the server's challenge bytes and returns the response.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

type HmacSha1 = Hmac<Sha1>;

/// The mechanisms this client can use, by preference.
pub const SUPPORTED: [&str; 2] = ["SCRAM-SHA-1", "PLAIN"];

/// A failed SASL step on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("server offers none of our mechanisms (offered: {0})")]
    NoMechanism(String),
    #[error("SCRAM: malformed server message {0:?}")]
    Malformed(String),
    #[error("SCRAM: server nonce does not extend ours")]
    NonceMismatch,
    #[error("SCRAM: server signature does not verify")]
    BadServerSignature,
    #[error("SCRAM: unexpected step")]
    UnexpectedStep,
}

/// Picks the mechanism: `wanted` if given and offered, else the first of
/// [`SUPPORTED`] the server offers.
pub fn choose(offered: &[String], wanted: Option<&str>) -> Result<&'static str, SaslError> {
    let candidates: Vec<&'static str> = match wanted {
        Some(w) => SUPPORTED
            .iter()
            .copied()
            .filter(|m| m.eq_ignore_ascii_case(w))
            .collect(),
        None => SUPPORTED.to_vec(),
    };
    candidates
        .into_iter()
        .find(|m| offered.iter().any(|o| o == m))
        .ok_or_else(|| SaslError::NoMechanism(offered.join(" ")))
}

/// `\0user\0password`.
pub fn plain_initial(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// SCRAM-SHA-1 client state.
pub struct Scram {
    username: String,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

/// RFC 5802 `saslname`: `=` and `,` escaped.
fn saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error case cannot happen.
    let mut mac = match HmacSha1::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl Scram {
    /// A new exchange with a random client nonce.
    pub fn new(username: &str, password: &str) -> Scram {
        let nonce_bytes: [u8; 18] = rand::random();
        Scram::with_nonce(username, password, &B64.encode(nonce_bytes))
    }

    /// A new exchange with a given nonce (tests use RFC 5802's).
    pub fn with_nonce(username: &str, password: &str, nonce: &str) -> Scram {
        let client_first_bare = format!("n={},r={}", saslname(username), nonce);
        Scram {
            username: username.to_string(),
            password: password.to_string(),
            client_nonce: nonce.to_string(),
            client_first_bare,
            expected_server_signature: None,
        }
    }

    /// `n,,n=user,r=nonce`.
    pub fn initial(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers the server-first message with the client-final message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        if self.expected_server_signature.is_some() {
            return Err(SaslError::UnexpectedStep);
        }
        let text = String::from_utf8_lossy(server_first).into_owned();
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in text.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v.to_string()),
                Some(("s=", v)) => salt = B64.decode(v).ok(),
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(SaslError::Malformed(text));
        };
        if iterations == 0 {
            return Err(SaslError::Malformed(text));
        }
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        let mut salted = [0u8; 20];
        pbkdf2::pbkdf2_hmac::<Sha1>(self.password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha1::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{},{}", self.client_first_bare, text, without_proof);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (from `<success/>`).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let Some(expected) = &self.expected_server_signature else {
            return Err(SaslError::UnexpectedStep);
        };
        let text = String::from_utf8_lossy(server_final);
        let got = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v.trim()).ok())
            .ok_or_else(|| SaslError::Malformed(text.to_string()))?;
        if &got != expected {
            return Err(SaslError::BadServerSignature);
        }
        Ok(())
    }

    /// The user this exchange authenticates.
    pub fn username(&self) -> &str {
        &self.username
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5802, section 5.
    #[test]
    fn scram_sha1_matches_the_rfc_example() {
        let mut scram = Scram::with_nonce("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(scram.initial(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let final_msg = scram
            .respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(final_msg).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        scram.verify(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert_eq!(
            scram.verify(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(SaslError::BadServerSignature)
        );
    }

    #[test]
    fn scram_rejects_a_nonce_that_is_not_ours() {
        let mut scram = Scram::with_nonce("user", "pencil", "abc");
        assert_eq!(
            scram.respond(b"r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(SaslError::NonceMismatch)
        );
        let mut scram = Scram::with_nonce("user", "pencil", "abc");
        assert!(matches!(
            scram.respond(b"r=abcdef,i=4096"),
            Err(SaslError::Malformed(_))
        ));
    }

    #[test]
    fn usernames_are_escaped() {
        let scram = Scram::with_nonce("a=b,c", "p", "n");
        assert_eq!(scram.initial(), b"n,,n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn mechanism_choice_prefers_scram_and_honours_a_request() {
        let offered = vec!["PLAIN".to_string(), "SCRAM-SHA-1".to_string()];
        assert_eq!(choose(&offered, None), Ok("SCRAM-SHA-1"));
        assert_eq!(choose(&offered, Some("plain")), Ok("PLAIN"));
        let only_plain = vec!["PLAIN".to_string()];
        assert_eq!(choose(&only_plain, None), Ok("PLAIN"));
        assert!(choose(&only_plain, Some("SCRAM-SHA-1")).is_err());
        assert_eq!(plain_initial("u", "p"), b"\0u\0p");
    }
}
