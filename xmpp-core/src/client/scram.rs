//! The client side of SCRAM-SHA-1 (RFC 5802) without channel binding
//! (`n,,`): client-first, the proof answering the server's salt and
//! iteration count, and the check of the server's signature, which proves
//! the server knew the password too.
//!
//! Sans-IO: messages in, messages out. The client nonce is given by the
//! caller (random in [`ScramClient::new`], fixed in tests).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Mac, SimpleHmac};
use sha1::{Digest, Sha1};

/// The highest iteration count accepted from a server: a hostile server
/// could otherwise make the client spin (Prosody uses 10000; Jicofo's Smack
/// accepts what it is given).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Why a SCRAM exchange cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("the password is not valid SASLprep text")]
    Password,
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend ours")]
    Nonce,
    #[error("the server asked for {0} iterations (the limit is {MAX_ITERATIONS})")]
    Iterations(u32),
    #[error("the server refused: {0}")]
    ServerError(String),
    #[error("the server's signature is wrong: it does not know the password")]
    ServerSignature,
    #[error("message out of order")]
    OutOfOrder,
}

#[derive(Debug)]
enum State {
    /// client-first sent.
    First,
    /// client-final sent; the expected server signature.
    Final { server_signature: [u8; 20] },
    /// The server proved itself.
    Done,
}

/// One SCRAM-SHA-1 exchange, client side.
pub struct ScramClient {
    password: String,
    nonce: String,
    /// `n=user,r=nonce`: part of the signed auth message.
    first_bare: String,
    state: State,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        write!(f, "ScramClient({:?})", self.state)
    }
}

impl ScramClient {
    /// An exchange for `username` with a fresh random nonce.
    pub fn new(username: &str, password: &str) -> Result<ScramClient, ScramError> {
        use rand::Rng;
        let bytes: [u8; 18] = rand::thread_rng().r#gen();
        ScramClient::with_nonce(username, password, &BASE64.encode(bytes))
    }

    /// An exchange with the given client nonce (printable, no commas).
    pub fn with_nonce(
        username: &str,
        password: &str,
        nonce: &str,
    ) -> Result<ScramClient, ScramError> {
        let password = stringprep::saslprep(password)
            .map_err(|_| ScramError::Password)?
            .into_owned();
        let first_bare = format!("n={},r={nonce}", escape_saslname(username));
        Ok(ScramClient {
            password,
            nonce: nonce.to_string(),
            first_bare,
            state: State::First,
        })
    }

    /// The client-first message (the payload of `<auth/>`).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// Answers the server-first message with the client-final one.
    pub fn handle_server_first(&mut self, message: &[u8]) -> Result<String, ScramError> {
        if !matches!(self.state, State::First) {
            return Err(ScramError::OutOfOrder);
        }
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(message, 'e') {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let nonce = attribute(message, 'r').ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = attribute(message, 's')
            .and_then(|s| BASE64.decode(s).ok())
            .ok_or(ScramError::Malformed("no salt"))?;
        let iterations: u32 = attribute(message, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or(ScramError::Malformed("no iteration count"))?;
        if iterations > MAX_ITERATIONS {
            return Err(ScramError::Iterations(iterations));
        }
        let salted =
            pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 20] = Sha1::digest(client_key).into();
        // "biws" is base64("n,,"): no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{message},{without_proof}", self.first_bare);
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        let server_key = hmac(&salted, b"Server Key");
        self.state = State::Final {
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks the server-final message (in `<success/>`, or a last
    /// challenge).
    pub fn handle_server_final(&mut self, message: &[u8]) -> Result<(), ScramError> {
        let State::Final { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder);
        };
        let message =
            std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(message, 'e') {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let verifier = attribute(message, 'v')
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramError::Malformed("no verifier"))?;
        if verifier.as_slice() != server_signature.as_slice() {
            return Err(ScramError::ServerSignature);
        }
        self.state = State::Done;
        Ok(())
    }

    /// Is the server-first message next?
    pub fn expects_server_first(&self) -> bool {
        matches!(self.state, State::First)
    }

    /// Has the server proved it knows the password?
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 20] {
    // SimpleHmac accepts keys of any length, so this cannot fail.
    let mut mac = match SimpleHmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 20],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The value of the attribute `name=` in a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// RFC 5802's `saslname`: `=` and `,` escaped.
fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5802 §5: user "user", password "pencil".
    const SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";

    fn rfc_client() -> ScramClient {
        ScramClient::with_nonce("user", "pencil", "fyko+d2lbbFgONRv9qkxdawL").unwrap()
    }

    #[test]
    fn rfc5802_test_vector() {
        let mut c = rfc_client();
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let last = c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            last,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert!(!c.is_done());
        c.handle_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=")
            .unwrap();
        assert!(c.is_done());
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut c = rfc_client();
        c.handle_server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(
            c.handle_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError::ServerSignature)
        );
        assert!(!c.is_done());
    }

    #[test]
    fn hostile_or_broken_server_messages_are_refused() {
        let mut c = rfc_client();
        assert_eq!(
            c.handle_server_first(b"r=someoneelse,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            c.handle_server_first(b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            c.handle_server_first(b"r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4000000000"),
            Err(ScramError::Iterations(4_000_000_000))
        );
        assert_eq!(
            c.handle_server_first(b"r=fyko+d2lbbFgONRv9qkxdawLx,s=!!,i=4096"),
            Err(ScramError::Malformed("no salt"))
        );
        assert_eq!(
            c.handle_server_first(b"e=unknown-user"),
            Err(ScramError::ServerError("unknown-user".into()))
        );
        assert_eq!(
            c.handle_server_final(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
            Err(ScramError::OutOfOrder)
        );
    }

    #[test]
    fn usernames_are_escaped() {
        let c = ScramClient::with_nonce("a=b,c", "p", "n").unwrap();
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=n");
    }
}
