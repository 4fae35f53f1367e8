//! Server dialback keys (XEP-0220, XEP-0185), as Prosody 0.12's
//! mod_dialback makes them, so a lilt and a Prosody sharing a
//! `dialback_secret` verify each other's keys:
//!
//! - the HMAC key is the lower-case hex SHA-256 of `dialback_secret` (a fresh
//!   random secret per process when the option is not set);
//! - a key is the lower-case hex HMAC-SHA-256 of
//!   `"<receiving> <originating> <stream id>"`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The namespace of dialback elements (`db:result`, `db:verify`).
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// The stream feature announcing dialback with error support.
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

/// Makes and checks dialback keys.
#[derive(Clone)]
pub struct Dialback {
    /// Hex SHA-256 of the configured secret (Prosody's `dialback_secret`).
    hmac_key: String,
}

impl std::fmt::Debug for Dialback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialback(..)")
    }
}

impl Dialback {
    /// Keys made with `secret`, or with a random one when `None`.
    pub fn new(secret: Option<&str>) -> Dialback {
        let random;
        let secret = match secret {
            Some(s) => s,
            None => {
                random = random_secret();
                &random
            }
        };
        Dialback {
            hmac_key: hex(&Sha256::digest(secret.as_bytes())),
        }
    }

    /// The key the originating server sends for stream `id`, which the
    /// receiving server `to` opened for `from`.
    pub fn key(&self, id: &str, to: &str, from: &str) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.hmac_key.as_bytes()) else {
            return String::new();
        };
        mac.update(to.as_bytes());
        mac.update(b" ");
        mac.update(from.as_bytes());
        mac.update(b" ");
        mac.update(id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Is `key` the one this server made for (`id`, `to`, `from`)?
    /// Compared in constant time.
    pub fn verify(&self, id: &str, to: &str, from: &str, key: &str) -> bool {
        let expected = self.key(id, to, from);
        expected.len() == key.len()
            && expected
                .bytes()
                .zip(key.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex(&b)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A `<db:result>` or `<db:verify>` as written on a stream: with the `db`
/// prefix the stream header declares, as Prosody writes them. ejabberd's
/// parser matches dialback elements by their prefixed name and ignores a
/// `<result xmlns='jabber:server:dialback'>`.
pub fn to_prefixed_xml(name: &str, attrs: &[(&str, &str)], key: &str) -> String {
    use crate::stanza::escape_into;
    let mut out = format!("<db:{name}");
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("='");
        escape_into(&mut out, v);
        out.push('\'');
    }
    out.push('>');
    escape_into(&mut out, key);
    out.push_str(&format!("</db:{name}>"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_only_for_their_stream_and_domains() {
        let d = Dialback::new(Some("s3cret"));
        let k = d.key("abc", "b.example", "a.example");
        assert_eq!(k.len(), 64);
        assert!(d.verify("abc", "b.example", "a.example", &k));
        assert!(!d.verify("abd", "b.example", "a.example", &k));
        assert!(!d.verify("abc", "a.example", "b.example", &k));
        assert!(!Dialback::new(Some("other")).verify("abc", "b.example", "a.example", &k));
        // Two processes sharing a secret agree; random secrets do not.
        assert_eq!(
            k,
            Dialback::new(Some("s3cret")).key("abc", "b.example", "a.example")
        );
        assert_ne!(
            Dialback::new(None).key("abc", "b", "a"),
            Dialback::new(None).key("abc", "b", "a")
        );
    }

    #[test]
    fn key_is_prosodys_construction() {
        // hmac_sha256(hex(sha256(secret)), to.." "..from.." "..id) in hex.
        let d = Dialback::new(Some("x"));
        let key = hex(&Sha256::digest(b"x"));
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(b"to.example from.example id1");
        assert_eq!(
            d.key("id1", "to.example", "from.example"),
            hex(&mac.finalize().into_bytes())
        );
    }
}
