//! Jitsi tokens (`auth::token`): a raw token verified with a shared
//! secret as `token_verification` does; or, for an input of two parts
//! (header JSON, claims JSON), a token built from them and signed with the
//! secret, so the claim checks behind the signature are reached too. The
//! raw input is also read as a JWKS document.

use auth::token::{
    KeySources, SignatureAlgorithm, TokenVerifier, VerifyOptions, keys::parse_key_set,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Mac, SimpleHmac};

const SECRET: &[u8] = b"fuzz-secret";
/// A fixed "now" (the tokens in the corpus expire after it).
const NOW: i64 = 1_700_000_000;

fn verifier() -> TokenVerifier {
    TokenVerifier {
        app_id: "jitsi".into(),
        allow_empty_token: false,
        options: VerifyOptions {
            algorithm: SignatureAlgorithm::HS256,
            accepted_issuers: vec!["jitsi".into()],
            accepted_audiences: vec!["*".into()],
            require_room_claim: true,
        },
        keys: KeySources {
            secret: Some(SECRET.to_vec()),
            asap: None,
            jwks: None,
        },
    }
}

fn signed(header: &[u8], claims: &[u8]) -> String {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let Ok(mut mac) = SimpleHmac::<sha2::Sha256>::new_from_slice(SECRET) else {
        return token;
    };
    mac.update(token.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    token.push('.');
    token.push_str(&signature);
    token
}

pub fn run(data: &[u8]) {
    let verifier = verifier();
    let parts = crate::parts::split(data);
    let token = match parts.as_slice() {
        [header, claims] => signed(header, claims),
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    if let Ok(Some(claims)) = verifier.process(Some(&token), NOW) {
        let _ = (claims.room(), claims.sub(), claims.iss());
        let _ = claims.context("user");
        let _ = claims.session_fields();
    }
    let _ = parse_key_set(&String::from_utf8_lossy(data));
}

#[cfg(test)]
mod tests {
    /// A token built from two parts passes the signature check, so the
    /// target reaches the claims.
    #[test]
    fn a_signed_token_verifies() {
        let token = super::signed(
            br#"{"alg":"HS256","typ":"JWT"}"#,
            br#"{"iss":"jitsi","aud":"jitsi","room":"*","exp":1900000000}"#,
        );
        let claims = super::verifier().process(Some(&token), super::NOW);
        assert!(matches!(claims, Ok(Some(_))), "{claims:?}");
    }
}
