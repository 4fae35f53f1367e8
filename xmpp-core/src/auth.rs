//! The authentication interface the core needs: what SASL mechanisms a
//! stream may use, running a SASL exchange, and account questions the router
//! asks (does this user exist?). The `auth` crate implements it for each
//! `authentication` provider; the core never sees passwords.

use std::net::IpAddr;
use std::sync::Arc;

use crate::storage::StorageResult;
use crate::transport::TransportInfo;
use crate::value::Table;

/// What the stream knows when SASL starts.
#[derive(Debug, Clone, Default)]
pub struct SaslContext {
    /// The host the client connected to.
    pub host: String,
    /// The stream is encrypted (or a transport considered secure).
    pub secure: bool,
    /// tls-exporter channel-binding data (RFC 9266), when on TLS 1.3.
    pub tls_exporter: Option<Vec<u8>>,
    /// The client's address (for throttling and logs): the TCP peer's, or
    /// the one the BOSH/WebSocket request came from.
    pub ip: Option<IpAddr>,
    /// The HTTP request a BOSH or WebSocket stream was opened with (token
    /// authentication reads `?token=` and `Authorization` from it;
    /// jitsi-anonymous reads `previd`).
    pub transport: Option<Arc<TransportInfo>>,
    /// The session's id, for log lines.
    pub session_id: String,
}

/// A SASL `<failure/>` condition (RFC 6120 §6.5) with optional text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SASL failure {condition}{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct SaslFailure {
    /// e.g. `not-authorized`, `invalid-mechanism`, `malformed-request`,
    /// `encryption-required`, `temporary-auth-failure`, `aborted`.
    pub condition: &'static str,
    pub text: Option<String>,
}

impl SaslFailure {
    pub fn new(condition: &'static str) -> SaslFailure {
        SaslFailure {
            condition,
            text: None,
        }
    }
    pub fn with_text(condition: &'static str, text: impl Into<String>) -> SaslFailure {
        SaslFailure {
            condition,
            text: Some(text.into()),
        }
    }
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send `<challenge/>` with this data.
    Challenge(Vec<u8>),
    /// Authenticated as `username` (a nodeprepped localpart); `additional`
    /// goes into `<success/>` (SCRAM's server-final message).
    Success {
        username: String,
        additional: Option<Vec<u8>>,
    },
    Failure(SaslFailure),
}

/// One running SASL exchange.
pub trait SaslExchange: Send {
    /// Feeds the client's data (`None` for an empty `<auth/>`/`<response/>`).
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep;

    /// The identity the client claimed so far (SCRAM's and PLAIN's authcid),
    /// for log lines and per-account throttling; never a password.
    fn authcid(&self) -> Option<String> {
        None
    }

    /// Facts to keep on the session after [`SaslStep::Success`], as Prosody
    /// modules set `session.*` fields (e.g. a token's verified claims:
    /// `jitsi_meet_room`, `jitsi_meet_context_user`, or a directory display
    /// name). Merged into [`crate::session::SessionState::attributes`].
    fn session_attributes(&mut self) -> Table {
        Table::new()
    }
}

/// An `authentication` provider as the core uses it.
pub trait AuthProvider: Send + Sync {
    /// The provider name (`internal_hashed`, `anonymous`, ...).
    fn name(&self) -> &str;
    /// Mechanisms to offer on a stream in this state, in preference order.
    fn sasl_mechanisms(&self, ctx: &SaslContext) -> Vec<String>;
    /// Starts an exchange; fails with `invalid-mechanism` for one not offered.
    fn sasl_start(
        &self,
        mechanism: &str,
        ctx: &SaslContext,
    ) -> Result<Box<dyn SaslExchange>, SaslFailure>;
    /// Does this account exist?
    fn user_exists(&self, username: &str) -> StorageResult<bool>;
}
