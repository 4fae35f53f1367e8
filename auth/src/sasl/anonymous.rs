//! `ANONYMOUS` (RFC 4505): any (or no) trace token; the localpart is the
//! one the backend chose (a fresh random one, see
//! [`Backend::anonymous_username`](crate::Backend::anonymous_username)).

use xmpp_core::auth::{SaslExchange, SaslFailure, SaslStep};

use super::engine::{Engine, Verdict};
use super::out_of_order;
pub struct AnonymousExchange {
    done: bool,
    username: String,
}

impl AnonymousExchange {
    pub fn new(username: String) -> AnonymousExchange {
        AnonymousExchange {
            done: false,
            username,
        }
    }
}

impl SaslExchange for AnonymousExchange {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        if self.done {
            return out_of_order();
        }
        self.done = true;
        // Prosody ignores the trace token; rsasl wants it to be UTF-8, so
        // one that is not is dropped rather than refused.
        let token = input.filter(|t| std::str::from_utf8(t).is_ok());
        let username = self.username.clone();
        let outcome = Engine::start("ANONYMOUS", Verdict::Decided(username), None, None).and_then(
            |mut engine| {
                engine.step(token).map_err(|e| {
                    tracing::error!("ANONYMOUS failed in rsasl: {e}");
                    SaslFailure::new("temporary-auth-failure")
                })
            },
        );
        match outcome.map(|out| out.outcome) {
            Ok(Some(Ok(username))) => SaslStep::Success {
                username,
                additional: None,
            },
            Ok(Some(Err(failure))) | Err(failure) => SaslStep::Failure(failure),
            Ok(None) => SaslStep::Failure(SaslFailure::new("temporary-auth-failure")),
        }
    }
}
