//! `SCRAM-SHA-1`, `SCRAM-SHA-256` and their `-PLUS` variants (RFC 5802,
//! RFC 7677, RFC 9266 for `tls-exporter`). rsasl computes the proofs; this
//! file applies Prosody's checks around it, in Prosody's order and with its
//! failure conditions.

use std::sync::Arc;

use base64::Engine as _;
use xmpp_core::auth::{SaslExchange, SaslFailure, SaslStep};

use super::engine::{Engine, TLS_EXPORTER, Verdict};
use super::scram_msg::{CbFlag, ClientFinal, ClientFirst, server_first_nonce, unescape_saslname};
use super::{check_authzid, out_of_order, prepare_username};
use crate::backend::{Backend, Lookup};
use crate::hashing::{ScramCredentials, ScramHash, generate_uuid, saslprep};

/// Iterations Prosody's `util.sasl.scram` uses when it derives keys from a
/// plaintext password on the fly.
const PLAIN_PROFILE_ITERATIONS: u32 = 10000;

/// How many server nonces to draw at most looking for one without quotes.
const MAX_NONCE_TRIES: u32 = 64;

enum Phase {
    WaitingClientFirst,
    WaitingClientFinal {
        engine: Box<Engine>,
        /// gs2 header plus channel-binding data: what `c=` must decode to.
        expected_cb: Vec<u8>,
        nonce: String,
    },
    Done,
}

pub struct ScramExchange {
    backend: Arc<dyn Backend>,
    hash: ScramHash,
    plus: bool,
    tls_exporter: Option<Vec<u8>>,
    phase: Phase,
}

fn malformed(text: &str) -> SaslFailure {
    SaslFailure::with_text("malformed-request", text)
}

impl ScramExchange {
    pub fn new(
        backend: Arc<dyn Backend>,
        hash: ScramHash,
        plus: bool,
        tls_exporter: Option<Vec<u8>>,
    ) -> ScramExchange {
        ScramExchange {
            backend,
            hash,
            plus,
            tls_exporter,
            phase: Phase::WaitingClientFirst,
        }
    }

    fn mechanism(&self) -> &'static str {
        self.hash.mechanism(self.plus)
    }

    /// The stored (or, for plaintext backends, freshly derived) keys.
    fn credentials(&self, username: &str) -> Result<ScramCredentials, SaslFailure> {
        let plain = self.backend.profile().plain;
        let lookup = if plain {
            self.backend.get_password(username).map(|l| match l {
                Lookup::Found(password) => match saslprep(&password) {
                    Some(p) => Lookup::Found(ScramCredentials::derive(
                        self.hash,
                        &p,
                        generate_uuid().as_bytes(),
                        PLAIN_PROFILE_ITERATIONS,
                    )),
                    None => Lookup::Disabled,
                },
                Lookup::NoUser => Lookup::NoUser,
                Lookup::Disabled => Lookup::Disabled,
            })
        } else {
            self.backend.scram_credentials(self.hash, username)
        };
        match lookup {
            Ok(Lookup::Found(c)) => Ok(c),
            // A missing account goes on as an existing one would, with the
            // same work (deriving, for a plaintext store), and fails at
            // the proof as a wrong password does (RFC 5802 §5.1).
            // (A random password: no proof matches it.)
            Ok(Lookup::NoUser) if plain => Ok(ScramCredentials::derive(
                self.hash,
                &generate_uuid(),
                generate_uuid().as_bytes(),
                PLAIN_PROFILE_ITERATIONS,
            )),
            Ok(Lookup::NoUser) => Ok(crate::hashing::unknown_account_credentials(
                self.hash,
                username,
                self.backend.scram_iteration_count(),
            )),
            Ok(Lookup::Disabled) => Err(SaslFailure::new("account-disabled")),
            Err(e) => {
                tracing::warn!(
                    host = self.backend.host(),
                    user = username,
                    "{} credentials unavailable: {e}",
                    self.mechanism()
                );
                Err(SaslFailure::new("temporary-auth-failure"))
            }
        }
    }

    /// Returns the next phase and the server-first message.
    fn client_first(&self, message: &[u8]) -> Result<(Phase, Vec<u8>), SaslFailure> {
        let first = ClientFirst::parse(message).map_err(|e| malformed(e.0))?;
        let channel_data = match &first.cb_flag {
            // The client could bind but believes we cannot: we offered -PLUS,
            // so someone removed it on the way (RFC 5802 §6).
            CbFlag::ClientOnly if self.tls_exporter.is_some() => {
                return Err(SaslFailure::new("malformed-request"));
            }
            CbFlag::ClientOnly if self.plus => return Err(SaslFailure::new("malformed-request")),
            CbFlag::No | CbFlag::ClientOnly => None,
            CbFlag::Used(_) if !self.plus => {
                return Err(malformed("Channel binding requires a -PLUS mechanism."));
            }
            CbFlag::Used(name) => match (name.as_str(), &self.tls_exporter) {
                (TLS_EXPORTER, Some(data)) => Some(data.clone()),
                _ => return Err(malformed("Proposed channel binding type isn't supported.")),
            },
        };
        let username = unescape_saslname(first.username)
            .and_then(|u| prepare_username(&u))
            .ok_or_else(|| malformed("Invalid username."))?;
        if let Some(authzid) = first.authzid {
            let authzid =
                unescape_saslname(authzid).ok_or_else(|| SaslFailure::new("invalid-authzid"))?;
            check_authzid(&authzid, &username, self.backend.host())?;
        }
        let credentials = self.credentials(&username)?;
        if credentials.stored_key.len() != self.hash.output_len()
            || credentials.server_key.len() != self.hash.output_len()
        {
            tracing::warn!(host = self.backend.host(), user = %username, "stored {} keys have the wrong length", self.hash.name());
            return Err(SaslFailure::new("temporary-auth-failure"));
        }

        let mut expected_cb = first.gs2_header.as_bytes().to_vec();
        expected_cb.extend_from_slice(channel_data.as_deref().unwrap_or_default());
        // rsasl draws its server nonce from every printable character; some
        // clients (@xmpp/client) mis-split a nonce holding a quote or a
        // backslash, so a new exchange is started until the nonce has none
        // (as Prosody's UUID nonces never do). Each try costs microseconds.
        let mut tries = 0;
        let (engine, out, nonce) = loop {
            tries += 1;
            let mut engine = Engine::start(
                self.mechanism(),
                Verdict::Decided(username.clone()),
                Some(credentials.clone()),
                self.tls_exporter.clone(),
            )?;
            let out = engine.step(Some(message)).map_err(|e| {
                tracing::debug!(
                    host = self.backend.host(),
                    "{} client-first refused: {e}",
                    self.mechanism()
                );
                SaslFailure::new("malformed-request")
            })?;
            let nonce = server_first_nonce(&out.data)
                .ok_or_else(|| SaslFailure::new("temporary-auth-failure"))?
                .to_string();
            let server_part = nonce.get(first.nonce.len()..).unwrap_or_default();
            if tries >= MAX_NONCE_TRIES || !server_part.contains(['"', '\\', '\'']) {
                break (engine, out, nonce);
            }
        };
        Ok((
            Phase::WaitingClientFinal {
                engine: Box::new(engine),
                expected_cb,
                nonce,
            },
            out.data,
        ))
    }

    fn client_final(
        &self,
        engine: &mut Engine,
        expected_cb: &[u8],
        nonce: &str,
        message: &[u8],
    ) -> SaslStep {
        let last = match ClientFinal::parse(message) {
            Ok(m) => m,
            Err(e) => return SaslStep::Failure(malformed(e.0)),
        };
        let cb = base64::engine::general_purpose::STANDARD
            .decode(last.channel_binding)
            .unwrap_or_default();
        if cb != expected_cb {
            return SaslStep::Failure(malformed("Invalid channel binding value."));
        }
        if last.nonce != nonce {
            return SaslStep::Failure(malformed("Wrong nonce in client-final-message."));
        }
        let out = match engine.step(Some(message)) {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(
                    host = self.backend.host(),
                    "{} client-final refused: {e}",
                    self.mechanism()
                );
                return SaslStep::Failure(SaslFailure::new("malformed-request"));
            }
        };
        match (out.outcome, out.data.starts_with(b"v=")) {
            (Some(Ok(username)), true) => SaslStep::Success {
                username,
                additional: Some(out.data),
            },
            (Some(Err(failure)), _) => SaslStep::Failure(failure),
            _ if out.data.starts_with(b"e=invalid-proof")
                || out.data.starts_with(b"e=unknown-user") =>
            {
                SaslStep::Failure(SaslFailure::with_text(
                    "not-authorized",
                    "The response provided by the client doesn't match the one we calculated.",
                ))
            }
            _ => SaslStep::Failure(malformed(&String::from_utf8_lossy(
                out.data.strip_prefix(b"e=").unwrap_or(&out.data),
            ))),
        }
    }
}

impl SaslExchange for ScramExchange {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let message = match input {
            Some(m) if !m.is_empty() => m,
            _ if matches!(phase, Phase::Done) => return out_of_order(),
            _ => return SaslStep::Failure(SaslFailure::new("malformed-request")),
        };
        match phase {
            Phase::WaitingClientFirst => match self.client_first(message) {
                Ok((next, server_first)) => {
                    self.phase = next;
                    SaslStep::Challenge(server_first)
                }
                Err(failure) => SaslStep::Failure(failure),
            },
            Phase::WaitingClientFinal {
                mut engine,
                expected_cb,
                nonce,
            } => self.client_final(&mut engine, &expected_cb, &nonce, message),
            Phase::Done => out_of_order(),
        }
    }
}
