//! Token verification (sans-IO): every refusal Jitsi's `luajwtjitsi` and
//! `token/util.lib.lua` make, with their texts, algorithm confusion both
//! ways, `none`, and the clock boundaries of `exp` and `nbf`. Tokens are
//! signed with jsonwebtoken (HS256 with a secret, RS256 with a test RSA key
//! in `tests/data`).

use auth::token::verify::{self, key_id, parse};
use auth::token::{
    AsapKeyServer, SignatureAlgorithm, TokenError, VerificationKey, VerifyOptions, field,
    is_feature_allowed, keys::parse_key_set,
};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value as Json, json};
use xmpp_core::Value;

const SECRET: &[u8] = b"example_app_secret_0123456789abcdef";
const NOW: i64 = 1_800_000_000;
const PRIVATE: &[u8] = include_bytes!("data/token_rsa_private.pem");
const PUBLIC: &[u8] = include_bytes!("data/token_rsa_public.pem");

fn options(alg: SignatureAlgorithm) -> VerifyOptions {
    VerifyOptions {
        algorithm: alg,
        accepted_issuers: vec!["example_app_id".into(), "other_issuer".into()],
        accepted_audiences: vec!["example_app_id".into()],
        require_room_claim: true,
    }
}

fn claims() -> Json {
    json!({
        "iss": "example_app_id",
        "aud": "example_app_id",
        "sub": "meet.example.com",
        "room": "allowed",
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW + 3600,
        "context": {
            "user": {"id": "u1", "name": "Alice", "moderator": "true"},
            "group": "g1",
            "tenant": "Acme",
            "features": {"recording": true, "livestreaming": "false"}
        }
    })
}

fn hs(body: &Json) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        body,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn rs(body: &Json, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(String::from);
    encode(&header, body, &EncodingKey::from_rsa_pem(PRIVATE).unwrap()).unwrap()
}

fn secret() -> VerificationKey {
    VerificationKey::Secret(SECRET.to_vec())
}

fn public() -> VerificationKey {
    VerificationKey::rsa_from_pem(PUBLIC).unwrap()
}

fn hs_check(body: &Json) -> Result<auth::token::Claims, TokenError> {
    verify::verify(
        &hs(body),
        &secret(),
        &options(SignatureAlgorithm::HS256),
        NOW,
    )
}

fn with(mut body: Json, name: &str, value: Json) -> Json {
    body[name] = value;
    body
}

fn without(mut body: Json, name: &str) -> Json {
    body.as_object_mut().unwrap().remove(name);
    body
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// A token with a hand-made header and signature.
fn forged(header: &str, body: &Json, signature: &str) -> String {
    format!("{}.{}.{}", b64(header), b64(&body.to_string()), signature)
}

#[test]
fn a_good_hs256_token_gives_its_claims_as_jitsi_session_fields() {
    let claims = hs_check(&claims()).unwrap();
    assert_eq!(claims.room(), Some("allowed"));
    let fields = claims.session_fields();
    assert_eq!(fields.get(field::ROOM), Some(&Value::str("allowed")));
    assert_eq!(
        fields.get(field::DOMAIN),
        Some(&Value::str("meet.example.com"))
    );
    assert_eq!(
        fields.get(field::AUTH_ISSUER),
        Some(&Value::str("example_app_id"))
    );
    assert_eq!(fields.get(field::STR_TENANT), Some(&Value::str("Acme")));
    assert_eq!(fields.get(field::CONTEXT_GROUP), Some(&Value::str("g1")));
    let user = fields.get(field::CONTEXT_USER).unwrap().as_table().unwrap();
    assert_eq!(user.get("name"), Some(&Value::str("Alice")));
    let features = fields.get(field::CONTEXT_FEATURES);
    assert!(is_feature_allowed(features, "recording", false));
    assert!(!is_feature_allowed(features, "livestreaming", true));
    assert!(!is_feature_allowed(features, "polls", true));
    // No features claim: moderators have them all.
    assert!(is_feature_allowed(None, "recording", true));
    assert!(!is_feature_allowed(None, "recording", false));
}

#[test]
fn user_id_without_context_becomes_the_context_user() {
    let body = with(without(claims(), "context"), "user_id", json!("abc"));
    let fields = hs_check(&body).unwrap().session_fields();
    let user = fields.get(field::CONTEXT_USER).unwrap().as_table().unwrap();
    assert_eq!(user.get("id"), Some(&Value::str("abc")));
    assert!(fields.get(field::CONTEXT_FEATURES).is_none());
}

#[test]
fn expiry_is_enforced_without_leeway() {
    let expired = with(claims(), "exp", json!(NOW));
    let err = hs_check(&expired).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Not acceptable by exp (0 sec since expired, valid for:60 sec)"
    );
    let long_gone = without(with(claims(), "exp", json!(NOW - 100)), "iat");
    assert_eq!(
        hs_check(&long_gone).unwrap_err().to_string(),
        "Not acceptable by exp (100 sec since expired)"
    );
    // One second left is still valid.
    assert!(hs_check(&with(claims(), "exp", json!(NOW + 1))).is_ok());
    // No exp at all: accepted, as Jitsi.
    assert!(hs_check(&without(claims(), "exp")).is_ok());
    assert_eq!(
        hs_check(&with(claims(), "exp", json!("soon"))).unwrap_err(),
        TokenError::ExpNotNumber
    );
}

#[test]
fn not_before_is_enforced_at_the_second() {
    let early = with(claims(), "nbf", json!(NOW + 1));
    assert_eq!(hs_check(&early).unwrap_err(), TokenError::NotYetValid);
    assert_eq!(TokenError::NotYetValid.to_string(), "Not acceptable by nbf");
    assert!(hs_check(&with(claims(), "nbf", json!(NOW))).is_ok());
    // A clock skew the other way: a token from a clock 5 s ahead is
    // refused for those 5 s (Jitsi has no leeway either).
    let ahead = with(claims(), "nbf", json!(NOW + 5));
    assert!(
        verify::verify(
            &hs(&ahead),
            &secret(),
            &options(SignatureAlgorithm::HS256),
            NOW + 4
        )
        .is_err()
    );
    assert!(
        verify::verify(
            &hs(&ahead),
            &secret(),
            &options(SignatureAlgorithm::HS256),
            NOW + 5
        )
        .is_ok()
    );
    assert_eq!(
        hs_check(&with(claims(), "nbf", json!(true))).unwrap_err(),
        TokenError::NbfNotNumber
    );
}

#[test]
fn issuer_is_checked_against_the_accepted_list() {
    let wrong = with(claims(), "iss", json!("intruder"));
    assert_eq!(hs_check(&wrong).unwrap_err(), TokenError::InvalidIssuer);
    assert_eq!(TokenError::InvalidIssuer.to_string(), "invalid 'iss' claim");
    assert!(hs_check(&with(claims(), "iss", json!("other_issuer"))).is_ok());
    assert_eq!(
        hs_check(&without(claims(), "iss")).unwrap_err(),
        TokenError::IssuerMissing
    );
    let mut any = options(SignatureAlgorithm::HS256);
    any.accepted_issuers = vec!["*".into()];
    assert!(verify::verify(&hs(&wrong), &secret(), &any, NOW).is_ok());
}

#[test]
fn audience_is_checked_against_the_accepted_list() {
    let wrong = with(claims(), "aud", json!("elsewhere"));
    assert_eq!(hs_check(&wrong).unwrap_err(), TokenError::InvalidAudience);
    assert_eq!(
        TokenError::InvalidAudience.to_string(),
        "invalid 'aud' claim"
    );
    assert_eq!(
        hs_check(&without(claims(), "aud")).unwrap_err(),
        TokenError::AudienceMissing
    );
    // A list-valued aud only passes '*' (Lua compares a table with strings).
    let listed = with(claims(), "aud", json!(["example_app_id"]));
    assert_eq!(hs_check(&listed).unwrap_err(), TokenError::InvalidAudience);
    let mut any = options(SignatureAlgorithm::HS256);
    any.accepted_audiences = vec!["x".into(), "*".into()];
    assert!(verify::verify(&hs(&wrong), &secret(), &any, NOW).is_ok());
    // '*' still needs an aud claim.
    assert_eq!(
        verify::verify(&hs(&without(claims(), "aud")), &secret(), &any, NOW).unwrap_err(),
        TokenError::AudienceMissing
    );
}

#[test]
fn room_claim_is_required_unless_configured_otherwise() {
    let roomless = without(claims(), "room");
    assert_eq!(hs_check(&roomless).unwrap_err(), TokenError::RoomMissing);
    let mut lax = options(SignatureAlgorithm::HS256);
    lax.require_room_claim = false;
    assert!(verify::verify(&hs(&roomless), &secret(), &lax, NOW).is_ok());
}

#[test]
fn a_wrong_signature_is_refused() {
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    let opts = options(SignatureAlgorithm::HS256);
    assert_eq!(
        verify::verify(&other, &secret(), &opts, NOW).unwrap_err(),
        TokenError::InvalidSignature
    );
    // A body changed after signing.
    let good = hs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered_body = b64(&with(claims(), "room", json!("*")).to_string());
    let tampered = format!("{}.{}.{}", parts[0], tampered_body, parts[2]);
    assert_eq!(
        verify::verify(&tampered, &secret(), &opts, NOW).unwrap_err(),
        TokenError::InvalidSignature
    );
    // RS256 with another key's signature.
    let rs_opts = options(SignatureAlgorithm::RS256);
    let rs_token = rs(&claims(), Some("k"));
    let rs_parts: Vec<&str> = rs_token.split('.').collect();
    let swapped = format!("{}.{}.{}", rs_parts[0], tampered_body, rs_parts[2]);
    assert_eq!(
        verify::verify(&swapped, &public(), &rs_opts, NOW).unwrap_err(),
        TokenError::InvalidSignature
    );
}

#[test]
fn rs256_tokens_verify_with_the_public_key() {
    let token = rs(&claims(), Some("key-1"));
    let claims =
        verify::verify(&token, &public(), &options(SignatureAlgorithm::RS256), NOW).unwrap();
    assert_eq!(claims.sub(), Some("meet.example.com"));
    assert_eq!(key_id(&token).unwrap(), "key-1");
}

#[test]
fn an_hs256_token_is_never_checked_against_a_public_key() {
    // The classic confusion: HMAC keyed with the server's public key PEM.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(PUBLIC),
    )
    .unwrap();
    let err = verify::verify(
        &confused,
        &public(),
        &options(SignatureAlgorithm::RS256),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err, TokenError::WrongAlgorithm);
    assert_eq!(err.to_string(), "Invalid or incorrect alg");
    // Even if the algorithm were misconfigured as HS256, an RSA key is not
    // an HMAC secret.
    assert_eq!(
        verify::verify(
            &confused,
            &public(),
            &options(SignatureAlgorithm::HS256),
            NOW
        )
        .unwrap_err(),
        TokenError::InvalidSignature
    );
    // And by kid: an HS token with a kid is refused before any key fetch.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k".into());
    let with_kid = encode(&header, &claims(), &EncodingKey::from_secret(PUBLIC)).unwrap();
    assert_eq!(key_id(&with_kid).unwrap_err(), TokenError::KidNeedsRsa);
}

#[test]
fn an_rs256_token_is_never_checked_against_the_secret() {
    let token = rs(&claims(), None);
    assert_eq!(
        verify::verify(&token, &secret(), &options(SignatureAlgorithm::HS256), NOW).unwrap_err(),
        TokenError::WrongAlgorithm
    );
    assert_eq!(
        verify::verify(&token, &secret(), &options(SignatureAlgorithm::RS256), NOW).unwrap_err(),
        TokenError::InvalidSignature
    );
}

#[test]
fn alg_none_is_refused() {
    let opts = options(SignatureAlgorithm::HS256);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims().to_string())
    );
    assert_eq!(
        verify::verify(&unsigned, &secret(), &opts, NOW).unwrap_err(),
        TokenError::Malformed
    );
    let none_sig = forged(r#"{"alg":"none","typ":"JWT"}"#, &claims(), "AAAA");
    assert_eq!(
        verify::verify(&none_sig, &secret(), &opts, NOW).unwrap_err(),
        TokenError::WrongAlgorithm
    );
    let empty_alg = forged(r#"{"alg":"","typ":"JWT"}"#, &claims(), "AAAA");
    assert_eq!(
        verify::verify(&empty_alg, &secret(), &opts, NOW).unwrap_err(),
        TokenError::WrongAlgorithm
    );
    assert_eq!(SignatureAlgorithm::parse("none"), None);
}

#[test]
fn malformed_tokens_get_jitsis_texts() {
    let opts = options(SignatureAlgorithm::HS256);
    let check = |t: &str| {
        verify::verify(t, &secret(), &opts, NOW)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(check("not-a-token"), "Invalid token");
    assert_eq!(check("a.b"), "Invalid token");
    assert_eq!(check("a.b.c.d"), "Invalid token");
    assert_eq!(check("!!!.e30.AAAA"), "Invalid header");
    assert_eq!(check(&format!("{}.!!!.AAAA", b64("{}"))), "Invalid body");
    assert_eq!(
        check(&forged(r#"{"alg":"HS256"}"#, &claims(), "AAAA")),
        "Invalid typ"
    );
    assert!(parse(&hs(&claims())).is_ok());
    assert_eq!(key_id("nodot").unwrap_err(), TokenError::Malformed);
    assert_eq!(
        key_id(&format!("{}.x.y", b64("{oops"))).unwrap_err(),
        TokenError::BadFormat
    );
    assert_eq!(
        key_id(&rs(&claims(), None)).unwrap_err(),
        TokenError::KidMissing
    );
    assert_eq!(TokenError::Required.to_string(), "token required");
}

#[test]
fn asap_key_urls_are_the_sha256_of_the_kid() {
    let server = AsapKeyServer::new("http://127.0.0.1:9/keys/", 2);
    assert_eq!(
        server.url_for("jitsi/key"),
        format!("http://127.0.0.1:9/keys/{}.pem", sha256_hex("jitsi/key"))
    );
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn key_sets_yield_their_rsa_keys() {
    // A JWKS document made from the test key's modulus and exponent.
    let der = rsa_public_der();
    let (n, e) = rsa_n_e(&der);
    let doc = json!({"keys": [
        {"kty": "RSA", "kid": "good", "use": "sig", "alg": "RS256",
         "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n),
         "e": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(e)},
        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "broken"}
    ]});
    let keys = parse_key_set(&doc.to_string());
    assert_eq!(keys.len(), 1);
    let key = keys.get("good").unwrap();
    let token = rs(&claims(), Some("good"));
    assert!(verify::verify(&token, key, &options(SignatureAlgorithm::RS256), NOW).is_ok());
    assert!(parse_key_set("not json").is_empty());
}

/// The SubjectPublicKeyInfo DER of the test public key.
fn rsa_public_der() -> Vec<u8> {
    let pem = std::str::from_utf8(PUBLIC).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// Reads (n, e) out of an SPKI DER (just enough ASN.1 for this test).
fn rsa_n_e(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = d[0];
        let (len, hdr) = if d[1] & 0x80 == 0 {
            (d[1] as usize, 2)
        } else {
            let n = (d[1] & 0x7f) as usize;
            let mut len = 0usize;
            for b in &d[2..2 + n] {
                len = len << 8 | *b as usize;
            }
            (len, 2 + n)
        };
        (tag, &d[hdr..hdr + len], &d[hdr + len..])
    }
    let (_, spki, _) = tlv(der);
    let (_, _alg, rest) = tlv(spki);
    let (_, bits, _) = tlv(rest);
    let (_, rsa, _) = tlv(&bits[1..]);
    let (_, n, rest) = tlv(rsa);
    let (_, e, _) = tlv(rest);
    let strip = |v: &[u8]| {
        v.iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (strip(n), strip(e))
}

use crate::common;

/// The provider for a host with these options (the error text if refused).
fn provider_error(options: &[(&str, Value)]) -> Option<String> {
    let (_server, host, _driver) = common::host_with(options);
    auth::provider_for_host(&host).err().map(|e| e.to_string())
}

#[test]
fn token_options_are_read_as_jitsi_and_bad_ones_named() {
    let token = ("authentication", Value::str("token"));
    let app_id = ("app_id", Value::str("example_app_id"));
    let secret = ("app_secret", Value::str("s3cret"));
    assert_eq!(
        provider_error(&[token.clone(), app_id.clone(), secret.clone()]),
        None
    );
    let err = provider_error(&[token.clone(), secret.clone()]).unwrap();
    assert!(err.contains("'app_id'"), "{err}");
    let err = provider_error(&[token.clone(), app_id.clone()]).unwrap();
    assert!(
        err.contains("'app_secret'") && err.contains("cache_keys_url"),
        "{err}"
    );
    for (alg, word) in [("none", "not a supported"), ("RS256", "needs public keys")] {
        let err = provider_error(&[
            token.clone(),
            app_id.clone(),
            secret.clone(),
            ("signature_algorithm", Value::str(alg)),
        ])
        .unwrap();
        assert!(
            err.contains("signature_algorithm") && err.contains(word),
            "{err}"
        );
    }
    let err = provider_error(&[
        token.clone(),
        app_id.clone(),
        ("asap_key_server", Value::str("http://127.0.0.1:9")),
        ("signature_algorithm", Value::str("HS256")),
    ])
    .unwrap();
    assert!(err.contains("needs a shared secret"), "{err}");
    let err = provider_error(&[
        token.clone(),
        app_id.clone(),
        secret.clone(),
        ("allow_empty_token", Value::str("yes")),
    ])
    .unwrap();
    assert!(err.contains("allow_empty_token"), "{err}");
    // `asap_key_server = true` next to cache_keys_url (Jitsi's docker image).
    assert_eq!(
        provider_error(&[
            token,
            app_id,
            ("asap_key_server", Value::Bool(true)),
            ("cache_keys_url", Value::str("http://127.0.0.1:9/certs")),
        ]),
        None
    );
}

#[test]
fn empty_tokens_only_with_allow_empty_token() {
    let opts = |allow: bool| {
        let (_server, host, _driver) = common::host_with(&[
            ("app_id", Value::str("example_app_id")),
            (
                "app_secret",
                Value::str(std::str::from_utf8(SECRET).unwrap()),
            ),
            ("allow_empty_token", Value::Bool(allow)),
        ]);
        auth::token::TokenVerifier::from_host(&host).unwrap()
    };
    assert_eq!(
        opts(false).process(None, NOW).unwrap_err(),
        TokenError::Required
    );
    assert!(opts(true).process(None, NOW).unwrap().is_none());
    // A token is still verified when one is given.
    let bad = hs(&with(claims(), "iss", json!("x")));
    assert_eq!(
        opts(true).process(Some(&bad), NOW).unwrap_err(),
        TokenError::InvalidIssuer
    );
    let good = opts(false).process(Some(&hs(&claims())), NOW).unwrap();
    assert_eq!(good.unwrap().room(), Some("allowed"));
}
