//! SASL on a client stream (Prosody's mod_saslauth): `<auth>`, `<response>`,
//! `<abort>`, run through the host's auth provider; success restarts the
//! stream, failure answers with the condition. A child of `negotiation`, so it
//! works on [`C2sStream`]'s fields directly.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::super::frame::Frame;
use super::{C2sStream, Phase};
use crate::auth::{SaslContext, SaslFailure, SaslStep};
use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::session::Session;
use crate::stanza::{Element, NS_SASL, Node};
use crate::stream::StreamLimits;

use super::Action;

impl C2sStream {
    pub(super) fn sasl_context(&self, host: &Host) -> SaslContext {
        SaslContext {
            host: host.name.clone(),
            secure: self.secure,
            tls_exporter: self.tls_exporter.clone(),
            ip: self
                .transport
                .as_ref()
                .and_then(|t| t.ip)
                .or(self.peer.map(|p| p.ip())),
            transport: self.transport.clone(),
            session_id: self.log_id().to_string(),
        }
    }

    pub(super) fn handle_sasl(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        e: Element,
        out: &mut Vec<Action>,
    ) {
        if self.authenticated {
            return self.fail(
                out,
                StreamError::with_text(Cond::PolicyViolation, "Already authenticated"),
            );
        }
        let data = match decode_sasl_payload(&e) {
            Ok(d) => d,
            Err(()) => return self.sasl_failure(out, SaslFailure::new("incorrect-encoding")),
        };
        let step = match e.name() {
            "auth" => {
                if !self.secure && self.require_encryption(host) {
                    return self.sasl_failure(
                        out,
                        SaslFailure::with_text("encryption-required", "Encryption is required"),
                    );
                }
                let mech = e.get_attr("mechanism").unwrap_or("").to_string();
                let Some(provider) = host.auth_provider() else {
                    return self.sasl_failure(out, SaslFailure::new("temporary-auth-failure"));
                };
                match provider.sasl_start(&mech, &self.sasl_context(host)) {
                    Ok(mut exchange) => {
                        let step = exchange.step(data.as_deref());
                        self.sasl = Some((mech, exchange));
                        step
                    }
                    Err(f) => SaslStep::Failure(f),
                }
            }
            "response" => match self.sasl.as_mut() {
                Some((_, exchange)) => exchange.step(data.as_deref()),
                None => SaslStep::Failure(SaslFailure::with_text(
                    "malformed-request",
                    "No authentication in progress",
                )),
            },
            "abort" => SaslStep::Failure(SaslFailure::new("aborted")),
            _ => SaslStep::Failure(SaslFailure::new("malformed-request")),
        };
        match step {
            SaslStep::Challenge(c) => {
                let challenge = Element::new("challenge", NS_SASL).text(encode_sasl(&c));
                self.emit(out, Frame::Element(challenge));
            }
            SaslStep::Success {
                username,
                additional,
            } => self.sasl_success(host, session, username, additional, out),
            SaslStep::Failure(f) => self.sasl_failure(out, f),
        }
    }

    fn sasl_success(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        username: String,
        additional: Option<Vec<u8>>,
        out: &mut Vec<Action>,
    ) {
        let (mech, attributes) = match self.sasl.take() {
            Some((m, mut exchange)) => (Some(m), exchange.session_attributes()),
            None => (None, Default::default()),
        };
        tracing::info!(session = %session.id, host = %host.name, "authenticated as {username} with {}", mech.as_deref().unwrap_or("?"));
        {
            let mut st = session.state();
            st.username = Some(username.clone());
            st.auth_mechanism = mech;
            st.attributes.seq.extend(attributes.seq);
            st.attributes.map.extend(attributes.map);
        }
        self.authenticated = true;
        let mut success = Element::new("success", NS_SASL);
        // Written with an end tag even when empty, as it always was.
        success.nodes_mut().push(Node::Text(
            additional.map(|a| encode_sasl(&a)).unwrap_or_default(),
        ));
        self.emit(out, Frame::Element(success));
        let limits = Arc::new(crate::limits::SessionLimits::new());
        let mut ev = Event::new(&self.server, "authentication-success")
            .with_origin(session)
            .with_field("username", username)
            .with_object(crate::limits::SESSION_LIMITS, limits.clone());
        self.server
            .fire_on_host(host, "authentication-success", &mut ev);
        // The unauthenticated limit (c2s_unauthed_stanza_size_limit) is
        // raised to the session's: mod_limits' or c2s_stanza_size_limit.
        let raised = StreamLimits {
            max_stanza_size: limits
                .stanza_size_limit()
                .unwrap_or(self.settings.limits.max_stanza_size),
            ..self.xml.limits().clone()
        };
        self.xml.set_limits(raised);
        self.rate_unlimited |= limits.is_unlimited();
        self.xml.reset();
        self.phase = Phase::Header;
    }

    fn sasl_failure(&mut self, out: &mut Vec<Action>, f: SaslFailure) {
        self.sasl = None;
        // The auth provider logs failed logins (with the user) at INFO.
        tracing::debug!(session = %self.log_id(), peer = ?self.peer, "authentication failed: {f}");
        // Prosody's mod_saslauth event (not for a client's own abort).
        if f.condition != "aborted"
            && let (Some(host), Some(session)) = (self.host.clone(), self.session.clone())
        {
            let mut ev = Event::new(&self.server, "authentication-failure")
                .with_origin(&session)
                .with_field("condition", f.condition);
            if let Some(text) = &f.text {
                ev = ev.with_field("text", text.clone());
            }
            self.server
                .fire_on_host(&host, "authentication-failure", &mut ev);
        }
        let mut failure =
            Element::new("failure", NS_SASL).child(Element::new(f.condition, NS_SASL));
        if let Some(t) = f.text.as_deref() {
            failure.push_child(Element::new("text", NS_SASL).text(t));
        }
        self.emit(out, Frame::Element(failure));
    }
}

/// `<auth>`/`<response>` payload: absent (no text), empty (`=`), or base64.
fn decode_sasl_payload(e: &Element) -> Result<Option<Vec<u8>>, ()> {
    let text: String = e
        .text_content()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    match text.as_str() {
        "" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        t => BASE64.decode(t).map(Some).map_err(|_| ()),
    }
}

fn encode_sasl(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_string()
    } else {
        BASE64.encode(data)
    }
}
