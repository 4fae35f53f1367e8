//! `PLAIN` (RFC 4616): one message, `authzid NUL authcid NUL password`.

use std::sync::Arc;

use xmpp_core::auth::{SaslExchange, SaslFailure, SaslStep};

use super::engine::{Engine, Verdict};
use super::out_of_order;
use crate::backend::Backend;

pub struct PlainExchange {
    backend: Arc<dyn Backend>,
    done: bool,
    /// The user logged in, for [`SaslExchange::session_attributes`].
    succeeded: Option<String>,
}

impl PlainExchange {
    pub fn new(backend: Arc<dyn Backend>) -> PlainExchange {
        PlainExchange {
            backend,
            done: false,
            succeeded: None,
        }
    }

    fn run(&mut self, message: &[u8]) -> SaslStep {
        let invalid = || {
            SaslStep::Failure(SaslFailure::with_text(
                "malformed-request",
                "Invalid username or password.",
            ))
        };
        // Prosody matches `^([^\0]*)\0([^\0]+)\0([^\0]+)` and ignores what
        // follows; rsasl wants exactly three fields, so it gets those.
        let mut fields = message.split(|b| *b == 0);
        let (Some(authzid), Some(authcid), Some(password)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return SaslStep::Failure(SaslFailure::new("malformed-request"));
        };
        if authcid.is_empty() || password.is_empty() {
            return SaslStep::Failure(SaslFailure::new("malformed-request"));
        }
        if std::str::from_utf8(password).is_err()
            || std::str::from_utf8(authcid).is_err()
            || std::str::from_utf8(authzid).is_err()
        {
            return invalid();
        }
        let message = [authzid, authcid, password].join(&0u8);

        let mut engine = match Engine::start(
            "PLAIN",
            Verdict::CheckPlain(self.backend.clone()),
            None,
            None,
        ) {
            Ok(e) => e,
            Err(f) => return SaslStep::Failure(f),
        };
        match engine.step(Some(&message)) {
            Ok(out) => match out.outcome {
                Some(Ok(username)) => {
                    self.succeeded = Some(username.clone());
                    SaslStep::Success {
                        username,
                        additional: None,
                    }
                }
                Some(Err(failure)) => SaslStep::Failure(failure),
                None => invalid(),
            },
            Err(e) => {
                tracing::debug!(host = self.backend.host(), "PLAIN refused: {e}");
                invalid()
            }
        }
    }
}

impl SaslExchange for PlainExchange {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        if self.done {
            return out_of_order();
        }
        self.done = true;
        match input {
            Some(message) if !message.is_empty() => self.run(message),
            _ => SaslStep::Failure(SaslFailure::new("malformed-request")),
        }
    }

    fn session_attributes(&mut self) -> xmpp_core::Table {
        match self.succeeded.take() {
            Some(username) => self.backend.login_attributes(&username),
            None => xmpp_core::Table::new(),
        }
    }
}
