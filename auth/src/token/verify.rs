//! Verifying a Jitsi token (sans-IO): the token string, the key, the
//! options and the time in, the claims or a [`TokenError`] out, in the order
//! and with the texts of Jitsi's `luajwtjitsi.verify` and
//! `token/util.lib.lua`.
//!
//! Algorithm confusion cannot happen: the algorithm is the configured one
//! (`signature_algorithm`), the token's header must name exactly it, and the
//! key must be of its family — an HMAC secret for `HS*`, an RSA public key
//! for `RS*` — so an HS256 token is never checked against a public key, and
//! `none` (or any other name) is refused before a signature is looked at.

use std::fmt;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value as Json};

use super::claims::Claims;

/// The algorithms Jitsi's `luajwtjitsi` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
}

impl SignatureAlgorithm {
    /// Parses a JOSE `alg` name (case-sensitive, as JOSE).
    pub fn parse(name: &str) -> Option<SignatureAlgorithm> {
        use SignatureAlgorithm::*;
        Some(match name {
            "HS256" => HS256,
            "HS384" => HS384,
            "HS512" => HS512,
            "RS256" => RS256,
            "RS384" => RS384,
            "RS512" => RS512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use SignatureAlgorithm::*;
        match self {
            HS256 => "HS256",
            HS384 => "HS384",
            HS512 => "HS512",
            RS256 => "RS256",
            RS384 => "RS384",
            RS512 => "RS512",
        }
    }

    /// An HMAC algorithm (else RSA PKCS#1 v1.5).
    pub fn is_hmac(self) -> bool {
        self.name().starts_with("HS")
    }

    fn jose(self) -> Algorithm {
        use SignatureAlgorithm::*;
        match self {
            HS256 => Algorithm::HS256,
            HS384 => Algorithm::HS384,
            HS512 => Algorithm::HS512,
            RS256 => Algorithm::RS256,
            RS384 => Algorithm::RS384,
            RS512 => Algorithm::RS512,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key to check signatures with, tagged with its family.
#[derive(Clone)]
pub enum VerificationKey {
    /// `app_secret`: for `HS*` only.
    Secret(Vec<u8>),
    /// An RSA public key (from a PEM or a JWK): for `RS*` only.
    Rsa(DecodingKey),
}

impl VerificationKey {
    /// An RSA public key from PEM (`PUBLIC KEY`, `RSA PUBLIC KEY` or a
    /// `CERTIFICATE`); `None` if it is not one.
    pub fn rsa_from_pem(pem: &[u8]) -> Option<VerificationKey> {
        DecodingKey::from_rsa_pem(pem)
            .ok()
            .map(VerificationKey::Rsa)
    }

    fn fits(&self, alg: SignatureAlgorithm) -> bool {
        matches!(
            (self, alg.is_hmac()),
            (VerificationKey::Secret(_), true) | (VerificationKey::Rsa(_), false)
        )
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerificationKey::Secret(_) => f.write_str("Secret(..)"),
            VerificationKey::Rsa(_) => f.write_str("Rsa(..)"),
        }
    }
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// `signature_algorithm` (default RS256 with a key server, else HS256).
    pub algorithm: SignatureAlgorithm,
    /// `asap_accepted_issuers` (default `{app_id}`); `*` accepts any.
    pub accepted_issuers: Vec<String>,
    /// `asap_accepted_audiences` (default `{"*"}`); `*` accepts any.
    pub accepted_audiences: Vec<String>,
    /// `asap_require_room_claim` (default true).
    pub require_room_claim: bool,
}

/// Why a token was refused; the text is Jitsi's (it becomes the SASL
/// failure's `<text/>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token required")]
    Required,
    #[error("Invalid token")]
    Malformed,
    #[error("bad token format")]
    BadFormat,
    #[error("Invalid header")]
    InvalidHeader,
    #[error("Invalid body")]
    InvalidBody,
    #[error("Invalid typ")]
    InvalidTyp,
    #[error("'alg' claim is missing")]
    AlgMissing,
    #[error("Invalid or incorrect alg")]
    WrongAlgorithm,
    #[error("'kid' claim is missing")]
    KidMissing,
    #[error("'kid' claim only support with RS family")]
    KidNeedsRsa,
    #[error("could not obtain public key")]
    NoPublicKey,
    #[error("signature verification key is missing")]
    NoKey,
    #[error("Invalid signature")]
    InvalidSignature,
    #[error("exp must be number")]
    ExpNotNumber,
    #[error("nbf must be number")]
    NbfNotNumber,
    #[error("Not acceptable by exp ({since} sec since expired{})", valid_for.map(|v| format!(", valid for:{v} sec")).unwrap_or_default())]
    Expired { since: i64, valid_for: Option<i64> },
    #[error("Not acceptable by nbf")]
    NotYetValid,
    #[error("'iss' claim is missing")]
    IssuerMissing,
    #[error("invalid 'iss' claim")]
    InvalidIssuer,
    #[error("'aud' claim is missing")]
    AudienceMissing,
    #[error("invalid 'aud' claim")]
    InvalidAudience,
    #[error("'room' claim is missing")]
    RoomMissing,
}

/// A token's parts, decoded but not verified.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub header: Map<String, Json>,
    pub body: Map<String, Json>,
    signing_input: String,
    signature: String,
}

impl Parsed {
    /// The header's `kid`, if a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Json::as_str)
    }
    /// The header's `alg`, if a string.
    pub fn alg(&self) -> Option<&str> {
        self.header.get("alg").and_then(Json::as_str)
    }
}

fn b64(segment: &str) -> Option<Vec<u8>> {
    // Jitsi's basexx.from_url64 ignores padding; so do we.
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()
}

fn json_object(bytes: &[u8]) -> Option<Map<String, Json>> {
    match serde_json::from_slice(bytes).ok()? {
        Json::Object(m) => Some(m),
        _ => None,
    }
}

/// Splits and decodes a token (`Invalid token`, `Invalid header`, `Invalid
/// body`, `Invalid signature` as `luajwtjitsi`).
pub fn parse(token: &str) -> Result<Parsed, TokenError> {
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() != 3 || segments.iter().any(|s| s.is_empty()) {
        return Err(TokenError::Malformed);
    }
    let header = b64(segments[0])
        .and_then(|b| json_object(&b))
        .ok_or(TokenError::InvalidHeader)?;
    let body = b64(segments[1])
        .and_then(|b| json_object(&b))
        .ok_or(TokenError::InvalidBody)?;
    if b64(segments[2]).is_none() {
        return Err(TokenError::InvalidSignature);
    }
    Ok(Parsed {
        header,
        body,
        signing_input: format!("{}.{}", segments[0], segments[1]),
        signature: segments[2].trim_end_matches('=').to_string(),
    })
}

/// The header of a token, for choosing a key (Jitsi's pre-check before a
/// key server is asked): `bad token format`, `'kid' claim is missing`,
/// `'alg' claim is missing`, `'kid' claim only support with RS family`.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let first = token.split('.').next().unwrap_or_default();
    if !token.contains('.') {
        return Err(TokenError::Malformed);
    }
    let header = b64(first)
        .and_then(|b| json_object(&b))
        .ok_or(TokenError::BadFormat)?;
    let kid = header
        .get("kid")
        .and_then(Json::as_str)
        .ok_or(TokenError::KidMissing)?;
    let alg = header
        .get("alg")
        .and_then(Json::as_str)
        .ok_or(TokenError::AlgMissing)?;
    if !alg.starts_with("RS") {
        return Err(TokenError::KidNeedsRsa);
    }
    Ok(kid.to_string())
}

fn signature_ok(parsed: &Parsed, key: &VerificationKey, alg: SignatureAlgorithm) -> bool {
    if !key.fits(alg) {
        return false;
    }
    let decoding = match key {
        VerificationKey::Secret(secret) => DecodingKey::from_secret(secret),
        VerificationKey::Rsa(k) => k.clone(),
    };
    jsonwebtoken::crypto::verify(
        &parsed.signature,
        parsed.signing_input.as_bytes(),
        &decoding,
        alg.jose(),
    )
    .unwrap_or(false)
}

/// `verify_claim`: `*` accepts anything; otherwise the claim must be a
/// string equal to one of the accepted values.
fn accepted(claim: &Json, list: &[String]) -> bool {
    list.iter()
        .any(|a| a == "*" || claim.as_str() == Some(a.as_str()))
}

/// Verifies `token` with `key` at `now` (seconds since the epoch). Checks,
/// in Jitsi's order: shape, `typ` = JWT, `alg` = the configured algorithm,
/// the signature, `exp`/`nbf` (no leeway: expired when `now >= exp`, not
/// yet valid when `now < nbf`), `iss`, `aud`, then the `room` claim.
pub fn verify(
    token: &str,
    key: &VerificationKey,
    options: &VerifyOptions,
    now: i64,
) -> Result<Claims, TokenError> {
    let parsed = parse(token)?;
    if parsed.header.get("typ").and_then(Json::as_str) != Some("JWT") {
        return Err(TokenError::InvalidTyp);
    }
    if parsed.alg() != Some(options.algorithm.name()) {
        return Err(TokenError::WrongAlgorithm);
    }
    if !signature_ok(&parsed, key, options.algorithm) {
        return Err(TokenError::InvalidSignature);
    }
    let body = &parsed.body;
    let number = |name: &str, err: TokenError| -> Result<Option<f64>, TokenError> {
        match body.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or(err),
        }
    };
    let exp = number("exp", TokenError::ExpNotNumber)?;
    let nbf = number("nbf", TokenError::NbfNotNumber)?;
    if let Some(exp) = exp
        && now as f64 >= exp
    {
        let iat = body.get("iat").and_then(Json::as_f64);
        return Err(TokenError::Expired {
            since: now - exp as i64,
            valid_for: iat.map(|iat| (exp - iat) as i64),
        });
    }
    if let Some(nbf) = nbf
        && (now as f64) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    let iss = body.get("iss").ok_or(TokenError::IssuerMissing)?;
    if !accepted(iss, &options.accepted_issuers) {
        return Err(TokenError::InvalidIssuer);
    }
    let aud = body.get("aud").ok_or(TokenError::AudienceMissing)?;
    if !accepted(aud, &options.accepted_audiences) {
        return Err(TokenError::InvalidAudience);
    }
    if options.require_room_claim && body.get("room").is_none_or(Json::is_null) {
        return Err(TokenError::RoomMissing);
    }
    Ok(Claims::new(parsed.body))
}
