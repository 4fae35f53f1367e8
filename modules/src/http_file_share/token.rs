//! The upload slot's bearer token: what the slot allows (slot id, file
//! name, size, type, expiry), HMAC-SHA256-signed with the service secret
//! (`http_file_share_secret`, else one made at load), checked by the PUT.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a slot lets its holder upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub slot: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    /// Unix seconds after which the token is refused.
    pub expires: i64,
}

fn mac(secret: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(data);
    Some(m.finalize().into_bytes().to_vec())
}

/// `payload.signature`, both base64url.
pub fn sign(secret: &[u8], grant: &Grant) -> String {
    let payload = format!(
        "{}\n{}\n{}\n{}\n{}",
        grant.slot, grant.size, grant.content_type, grant.expires, grant.filename
    );
    let sig = mac(secret, payload.as_bytes()).unwrap_or_default();
    format!("{}.{}", B64.encode(payload), B64.encode(sig))
}

/// The grant of a token signed with `secret`, if it is intact and not
/// expired at `now`.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Option<Grant> {
    let (payload, sig) = token.split_once('.')?;
    let payload = B64.decode(payload).ok()?;
    let sig = B64.decode(sig).ok()?;
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(&payload);
    m.verify_slice(&sig).ok()?;
    let text = String::from_utf8(payload).ok()?;
    let mut parts = text.splitn(5, '\n');
    let grant = Grant {
        slot: parts.next()?.to_string(),
        size: parts.next()?.parse().ok()?,
        content_type: parts.next()?.to_string(),
        expires: parts.next()?.parse().ok()?,
        filename: parts.next()?.to_string(),
    };
    (now <= grant.expires).then_some(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_tamper_and_expiry() {
        let g = Grant {
            slot: "abc".into(),
            filename: "a b.txt".into(),
            size: 5,
            content_type: "text/plain".into(),
            expires: 100,
        };
        let t = sign(b"secret", &g);
        assert_eq!(verify(b"secret", &t, 100), Some(g.clone()));
        assert_eq!(verify(b"secret", &t, 101), None);
        assert_eq!(verify(b"other", &t, 0), None);
        let (p, s) = t.split_once('.').unwrap();
        let mut forged = B64.decode(p).unwrap();
        forged[4] = b'9';
        let forged = format!("{}.{s}", B64.encode(forged));
        assert_eq!(verify(b"secret", &forged, 0), None);
        assert_eq!(verify(b"secret", "garbage", 0), None);
    }
}
