//! `authentication = "token"`: Jitsi Meet's `mod_auth_token`. Clients log
//! in with `ANONYMOUS` over BOSH or WebSocket and bring a JWT in the URL
//! (`?token=...`) or in an `Authorization: Bearer ...` header; the token is
//! verified ([`crate::token`]) before the anonymous login succeeds, and its
//! claims stay on the session under Jitsi's field names
//! (`jitsi_meet_room`, `jitsi_meet_context_user`, ...) for the MUC's
//! `token_verification` and other modules. The username is a random UUID,
//! as `mod_auth_token`'s `generate_uuid()`, unless the URL's `previd` names
//! a live session of the host, whose username is kept (as Jitsi's does for
//! stream-management resumption; see [`crate::resumption`]).
//!
//! A refused token fails SASL as Jitsi's does: `<not-allowed/>` with
//! Jitsi's reason as text (`token required`, `Invalid signature`,
//! `Not acceptable by exp (...)`, `invalid 'iss' claim`, ...).

use std::sync::Arc;

use xmpp_core::auth::{SaslContext, SaslExchange, SaslFailure, SaslStep};
use xmpp_core::{Host, Table, Value};

use crate::backend::{Backend, Profile};
use crate::error::AuthError;
use crate::hashing::generate_uuid;
use crate::resumption::{self, ResumableUsernames};
use crate::token::{TokenVerifier, field, unix_now};

/// The token provider of one host.
pub struct Token {
    host: String,
    verifier: Arc<TokenVerifier>,
    resumable: Arc<ResumableUsernames>,
}

impl Token {
    /// Reads the host's token options; a missing or bad one is an error
    /// naming it.
    pub fn load(host: &Host) -> Result<Token, AuthError> {
        let verifier = Arc::new(TokenVerifier::from_host(host)?);
        resumption::track_sessions(host);
        Ok(Token {
            host: host.name.clone(),
            verifier,
            resumable: host.extension::<ResumableUsernames>(),
        })
    }

    pub fn verifier(&self) -> &Arc<TokenVerifier> {
        &self.verifier
    }
}

/// The token a stream brings: the URL's `token` parameter, else an
/// `Authorization: Bearer` header. Plain TCP streams have none.
pub fn token_of(ctx: &SaslContext) -> Option<String> {
    let transport = ctx.transport.as_ref()?;
    if let Some(token) = transport.query_param("token") {
        return Some(token);
    }
    let header = transport.header("authorization")?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// What `mod_auth_token` copies from the URL to the session when a BOSH or
/// WebSocket session starts (when the URL has a query).
fn query_fields(ctx: &SaslContext) -> Table {
    let mut t = Table::new();
    let Some(transport) = ctx.transport.as_ref().filter(|tr| tr.query.is_some()) else {
        return t;
    };
    if let Some(previd) = transport.query_param("previd") {
        t.insert(field::PREVID, Value::str(previd));
    }
    let prefix = transport.query_param("prefix").unwrap_or_default();
    if let Some(room) = transport.query_param("room") {
        t.insert(field::WEB_QUERY_ROOM, Value::str(room.clone()));
        t.insert(field::BOSH_QUERY_ROOM, Value::str(room));
    }
    t.insert(field::WEB_QUERY_PREFIX, Value::str(prefix.clone()));
    t.insert(field::BOSH_QUERY_PREFIX, Value::str(prefix));
    t
}

/// The `ANONYMOUS` exchange that verifies the stream's token first.
pub struct TokenExchange {
    verifier: Arc<TokenVerifier>,
    /// The username of the session `previd` names, if any.
    resumed: Option<String>,
    token: Option<String>,
    attributes: Table,
    session_id: String,
    done: bool,
}

impl SaslExchange for TokenExchange {
    fn step(&mut self, _trace: Option<&[u8]>) -> SaslStep {
        if self.done {
            return crate::sasl::out_of_order();
        }
        self.done = true;
        match self.verifier.process(self.token.as_deref(), unix_now()) {
            Ok(claims) => {
                if let Some(token) = &self.token {
                    self.attributes
                        .insert(field::AUTH_TOKEN, Value::str(token.clone()));
                }
                if let Some(claims) = claims {
                    let fields = claims.session_fields();
                    self.attributes.map.extend(fields.map);
                }
                SaslStep::Success {
                    username: self.resumed.take().unwrap_or_else(generate_uuid),
                    additional: None,
                }
            }
            Err(reason) => {
                tracing::warn!(session = %self.session_id, "Error verifying token err:not-allowed, reason:{reason}");
                self.attributes = Table::new();
                SaslStep::Failure(SaslFailure::with_text("not-allowed", reason.to_string()))
            }
        }
    }

    fn session_attributes(&mut self) -> Table {
        std::mem::take(&mut self.attributes)
    }
}

impl Backend for Token {
    fn name(&self) -> &'static str {
        "token"
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn profile(&self) -> Profile {
        Profile {
            anonymous: true,
            ..Profile::default()
        }
    }
    fn sasl_exchange(&self, mechanism: &str, ctx: &SaslContext) -> Option<Box<dyn SaslExchange>> {
        (mechanism == "ANONYMOUS").then(|| {
            Box::new(TokenExchange {
                verifier: self.verifier.clone(),
                resumed: ctx
                    .transport
                    .as_ref()
                    .and_then(|t| t.query_param("previd"))
                    .filter(|id| !id.is_empty())
                    .and_then(|id| self.resumable.lookup(&id)),
                token: token_of(ctx),
                attributes: query_fields(ctx),
                session_id: ctx.session_id.clone(),
                done: false,
            }) as Box<dyn SaslExchange>
        })
    }
}
