//! The glue to rsasl: one rsasl server session per exchange, with a
//! callback that hands it stored SCRAM keys and checks PLAIN credentials,
//! and a channel-binding source for `tls-exporter` only.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use rsasl::callback::{Context, Request, SessionCallback, SessionData};
use rsasl::mechanisms::anonymous::ANONYMOUS;
use rsasl::mechanisms::plain::PLAIN;
use rsasl::mechanisms::scram::properties::ScramStoredPassword;
use rsasl::mechanisms::scram::{SCRAM_SHA1, SCRAM_SHA1_PLUS, SCRAM_SHA256, SCRAM_SHA256_PLUS};
use rsasl::prelude::{
    ChannelBindingCallback, Mechanism, Mechname, Registry, SASLConfig, SASLServer, Session,
    SessionError, Validation,
};
use rsasl::property::{AuthId, AuthzId, Password};
use rsasl::validate::{Validate, ValidationError};
use xmpp_core::auth::SaslFailure;

use super::verify_plain;
use crate::backend::Backend;
use crate::hashing::ScramCredentials;

/// The only channel-binding type lilt offers (RFC 9266).
pub const TLS_EXPORTER: &str = "tls-exporter";

/// Every mechanism rsasl serves for us, when the stream can bind to its
/// channel (the non-PLUS SCRAM servers then refuse a client's `y` flag, as
/// a downgrade) ...
static WITH_PLUS: &[Mechanism] = &[
    PLAIN,
    ANONYMOUS,
    SCRAM_SHA1,
    SCRAM_SHA1_PLUS,
    SCRAM_SHA256,
    SCRAM_SHA256_PLUS,
];
/// ... and when it cannot.
static WITHOUT_PLUS: &[Mechanism] = &[PLAIN, ANONYMOUS, SCRAM_SHA1, SCRAM_SHA256];

/// What rsasl's validation step yields: the authenticated (nodeprepped)
/// username, or why not.
pub struct Outcome;
impl Validation for Outcome {
    type Value = Result<String, SaslFailure>;
}

/// How the exchange's identity is decided once rsasl has parsed it.
pub enum Verdict {
    /// PLAIN: check the credentials against the backend.
    CheckPlain(Arc<dyn Backend>),
    /// SCRAM and ANONYMOUS: decided before rsasl runs (rsasl only calls
    /// validation when the SCRAM proof was right).
    Decided(String),
}

struct Callback {
    verdict: Verdict,
    scram: Option<ScramCredentials>,
}

impl SessionCallback for Callback {
    fn callback(
        &self,
        _session: &SessionData,
        _context: &Context,
        request: &mut Request,
    ) -> Result<(), SessionError> {
        if let Some(c) = &self.scram {
            let stored =
                ScramStoredPassword::new(c.iteration_count, &c.salt, &c.stored_key, &c.server_key);
            request.satisfy::<ScramStoredPassword>(&stored)?;
        }
        Ok(())
    }

    fn validate(
        &self,
        _session: &SessionData,
        context: &Context,
        validate: &mut Validate<'_>,
    ) -> Result<(), ValidationError> {
        let outcome = match &self.verdict {
            Verdict::Decided(username) => Ok(username.clone()),
            Verdict::CheckPlain(backend) => {
                let authcid = context.get_ref::<AuthId>().unwrap_or_default();
                let authzid = context.get_ref::<AuthzId>().unwrap_or_default();
                match context.get_ref::<Password>().map(std::str::from_utf8) {
                    Some(Ok(password)) => {
                        verify_plain(backend.as_ref(), authcid, authzid, password)
                    }
                    _ => Err(SaslFailure::with_text(
                        "malformed-request",
                        "Invalid username or password.",
                    )),
                }
            }
        };
        validate.finalize::<Outcome>(outcome);
        Ok(())
    }
}

/// Channel-binding data of the stream, offered under `tls-exporter` only.
pub struct ChannelData(Option<Vec<u8>>);

impl ChannelBindingCallback for ChannelData {
    fn get_cb_data(&self, cbname: &str) -> Option<&[u8]> {
        self.0.as_deref().filter(|_| cbname == TLS_EXPORTER)
    }
}

/// What one rsasl step produced.
pub struct StepOutput {
    pub data: Vec<u8>,
    pub outcome: Option<Result<String, SaslFailure>>,
}

/// One rsasl server session.
pub struct Engine {
    session: Session<Outcome, ChannelData>,
}

impl Engine {
    /// Starts rsasl's server side of `mechanism`.
    pub fn start(
        mechanism: &str,
        verdict: Verdict,
        scram: Option<ScramCredentials>,
        tls_exporter: Option<Vec<u8>>,
    ) -> Result<Engine, SaslFailure> {
        let internal = |what: &str| {
            tracing::error!("rsasl could not start {mechanism}: {what}");
            SaslFailure::new("temporary-auth-failure")
        };
        let mechanisms = if tls_exporter.is_some() {
            WITH_PLUS
        } else {
            WITHOUT_PLUS
        };
        let config = SASLConfig::builder()
            .with_registry(Registry::with_mechanisms(mechanisms))
            .with_callback(Callback { verdict, scram })
            .map_err(|e| internal(&e.to_string()))?;
        let name = Mechname::parse(mechanism.as_bytes()).map_err(|e| internal(&e.to_string()))?;
        let session =
            SASLServer::<Outcome, ChannelData>::with_cb(config, ChannelData(tls_exporter))
                .start_suggested(name)
                .map_err(|e| internal(&e.to_string()))?;
        Ok(Engine { session })
    }

    /// Feeds one message. A panic inside rsasl (it must not happen: input is
    /// checked before it gets here) is contained and reported as an error.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<StepOutput, String> {
        let mut data = Vec::new();
        let session = &mut self.session;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| session.step(input, &mut data)));
        match result {
            Ok(Ok(_state)) => Ok(StepOutput {
                data,
                outcome: self.session.validation(),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("rsasl panicked".to_string()),
        }
    }
}
