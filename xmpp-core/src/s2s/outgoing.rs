//! The sans-IO outgoing s2s stream (we are the originating server), as
//! Prosody 0.12's mod_s2s, mod_dialback and mod_s2s_auth_certs behave:
//!
//! - [`OutgoingStream::open`] writes our header (`from` our host, `to` the
//!   remote domain, `xmlns:db`);
//! - features with `<starttls/>` on a plain stream: STARTTLS
//!   ([`Action::StartTls`], then [`OutgoingStream::tls_established`]);
//!   none where encryption is required (`s2s_require_encryption`, the
//!   default): closed with `policy-violation`;
//! - once encrypted, a remote domain that must be secure (`s2s_secure_auth`,
//!   `s2s_secure_domains`) with a certificate that is not valid for it is
//!   left without a word ([`Action::Failed`]);
//! - SASL EXTERNAL when offered and we have a certificate, dialback
//!   (`<db:result>` with our key) otherwise or after a SASL failure;
//! - `<db:result type='valid'>` or SASL success then the restarted stream's
//!   features: [`Action::Authenticated`]; stanzas may now be sent;
//! - `<db:verify>` requests for our incoming streams go out once our
//!   `<db:result>` is out or the stream is authenticated, never during SASL
//!   ([`OutgoingStream::verify`]); their answers come back as
//!   [`Action::VerifyResult`];
//! - with `s2s_bidi`, a `<bidi/>` feature is answered with a request before
//!   authenticating; stanzas from the remote domain to our host are then
//!   accepted on this stream and [`Action::Deliver`]ed (XEP-0288).

use super::bidi;
use super::dialback::{Dialback, NS_DIALBACK, NS_DIALBACK_FEATURE, to_prefixed_xml};
use super::policy::{CertStatus, PeerCert, Policy, no_cert};
use super::{Action, to_server_xml};
use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::stanza::{Element, NS_SASL, NS_SERVER, NS_STREAMS, NS_TLS};
use crate::stream::{STREAM_CLOSE, StreamEvent, StreamHeader, StreamLimits, XmlStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not opened yet.
    Idle,
    /// Header sent, waiting for the peer's header and features.
    Features,
    /// `<starttls/>` sent.
    StartTls,
    /// `<auth mechanism='EXTERNAL'/>` sent.
    Sasl,
    /// `<db:result>` sent.
    Dialback,
    Ready,
    Closed,
}

/// One outgoing server-to-server connection's protocol state.
pub struct OutgoingStream {
    policy: Policy,
    dialback: Dialback,
    xml: XmlStream,
    phase: Phase,
    local: String,
    remote: String,
    secure: bool,
    cert: PeerCert,
    /// We present a certificate (SASL EXTERNAL is possible).
    have_cert: bool,
    sasl_done: bool,
    sasl_failed: bool,
    /// The peer's stream id.
    stream_id: Option<String>,
    /// Did the peer open a stream (for the bounce condition)?
    had_stream: bool,
    /// `db:verify` requests waiting for the stream to open.
    verify_queue: Vec<String>,
    /// Was the stream ever authenticated (it stays so after closing)?
    was_ready: bool,
    /// We asked for a bidirectional stream (XEP-0288).
    bidi: bool,
}

impl OutgoingStream {
    pub fn new(
        policy: Policy,
        dialback: Dialback,
        limits: StreamLimits,
        local: &str,
        remote: &str,
        have_cert: bool,
    ) -> OutgoingStream {
        OutgoingStream {
            policy,
            dialback,
            xml: XmlStream::new(limits),
            phase: Phase::Idle,
            local: local.to_string(),
            remote: remote.to_string(),
            secure: false,
            cert: no_cert(),
            have_cert,
            sasl_done: false,
            sasl_failed: false,
            stream_id: None,
            had_stream: false,
            verify_queue: Vec::new(),
            was_ready: false,
            bidi: false,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    /// Was the stream authenticated at some point (even if closed now)?
    pub fn was_ready(&self) -> bool {
        self.was_ready
    }
    /// Did the peer ever open a stream? Prosody bounces with
    /// `remote-server-timeout` then, else `remote-server-not-found`.
    pub fn had_stream(&self) -> bool {
        self.had_stream
    }
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// Did we ask for a bidirectional stream (XEP-0288)?
    pub fn is_bidi(&self) -> bool {
        self.bidi
    }

    /// Opens the stream (after connecting, and after direct TLS).
    pub fn open(&mut self) -> Vec<Action> {
        self.phase = Phase::Features;
        vec![Action::Write(self.header_xml())]
    }

    fn header_xml(&self) -> String {
        crate::stream::stream_header(&StreamHeader {
            ns: NS_SERVER.to_string(),
            from: Some(self.local.clone()),
            to: Some(self.remote.clone()),
            version: Some("1.0".into()),
            attrs: vec![("xmlns:db".into(), NS_DIALBACK.into())],
            ..StreamHeader::default()
        })
    }

    /// TLS is up (STARTTLS done, or direct TLS before [`Self::open`]).
    pub fn tls_established(&mut self, cert: PeerCert) -> Vec<Action> {
        self.secure = true;
        self.cert = cert;
        self.xml.reset();
        if self.phase == Phase::StartTls {
            self.open()
        } else {
            Vec::new()
        }
    }

    /// A stanza to send; only call when [`Self::is_ready`].
    pub fn send(&mut self, stanza: &Element) -> Vec<Action> {
        if self.phase != Phase::Ready {
            return Vec::new();
        }
        vec![Action::Write(to_server_xml(stanza))]
    }

    /// Asks the peer (the authoritative server for `remote`) whether `key`
    /// is its key for our incoming stream `id`.
    pub fn verify(&mut self, id: &str, key: &str) -> Vec<Action> {
        let xml = to_prefixed_xml(
            "verify",
            &[("from", &self.local), ("to", &self.remote), ("id", id)],
            key,
        );
        // Not while SASL is under way: after `<auth/>` nothing may be sent
        // before the stream restarts (the peer's parser stops at `<auth/>`
        // and reads a new stream header after `<success/>`); Prosody too
        // holds `db:verify` until dialback began or the stream is ready.
        match self.phase {
            Phase::Dialback | Phase::Ready => vec![Action::Write(xml)],
            Phase::Closed => Vec::new(),
            _ => {
                self.verify_queue.push(xml);
                Vec::new()
            }
        }
    }

    /// Bytes from the peer.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Vec<Action> {
        super::feed(self, data)
    }

    pub fn handle_eof(&mut self) -> Vec<Action> {
        let _ = self.xml.eof();
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        self.phase = Phase::Closed;
        vec![Action::Failed("connection closed".into())]
    }

    /// Closes from our side.
    pub fn close(&mut self, error: Option<StreamError>) -> Vec<Action> {
        let mut out = Vec::new();
        match error {
            Some(e) => self.fail(&mut out, e),
            None if self.phase != Phase::Closed => {
                out.push(Action::Write(STREAM_CLOSE.to_string()));
                out.push(Action::Close);
                self.phase = Phase::Closed;
            }
            None => {}
        }
        out
    }

    fn fail(&mut self, out: &mut Vec<Action>, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::info!(remote = %self.remote, "closing outgoing s2s stream: {error}");
        out.push(Action::Write(error.to_xml()));
        out.push(Action::Write(STREAM_CLOSE.to_string()));
        out.push(Action::Failed(error.to_string()));
        out.push(Action::Close);
        self.phase = Phase::Closed;
    }

    /// Ends without a stream error (Prosody's `session:close(false)`).
    fn give_up(&mut self, out: &mut Vec<Action>, reason: String) {
        tracing::warn!(remote = %self.remote, "{reason}");
        out.push(Action::Write(STREAM_CLOSE.to_string()));
        out.push(Action::Failed(reason));
        out.push(Action::Close);
        self.phase = Phase::Closed;
    }

    fn handle_event(&mut self, ev: StreamEvent, out: &mut Vec<Action>) {
        match ev {
            StreamEvent::Open(h) => {
                if h.ns != NS_SERVER {
                    return self.fail(out, StreamError::new(Cond::InvalidNamespace));
                }
                self.had_stream = true;
                self.stream_id = h.id.clone();
                if h.version.as_deref() != Some("1.0") {
                    // A pre-1.0 peer sends no features: dialback at once.
                    self.after_features(None, out);
                }
            }
            StreamEvent::Close => {
                out.extend(self.close(None));
                out.push(Action::Failed("stream closed by the remote server".into()));
            }
            StreamEvent::Stanza(e) => self.handle_element(e, out),
        }
    }

    fn handle_element(&mut self, e: Element, out: &mut Vec<Action>) {
        match (e.ns(), e.name()) {
            (NS_STREAMS, "error") => {
                let condition = e
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_string())
                    .unwrap_or_else(|| "undefined-condition".into());
                out.push(Action::Write(STREAM_CLOSE.to_string()));
                out.push(Action::Failed(format!(
                    "remote server closed the stream: {condition}"
                )));
                out.push(Action::Close);
                self.phase = Phase::Closed;
            }
            (NS_STREAMS, "features") if self.phase == Phase::Features => {
                self.after_features(Some(&e), out)
            }
            (NS_TLS, "proceed") if self.phase == Phase::StartTls => out.push(Action::StartTls),
            (NS_TLS, "failure") => self.give_up(out, "STARTTLS failed".into()),
            (NS_SASL, "success") if self.phase == Phase::Sasl => {
                self.sasl_done = true;
                self.xml.reset();
                self.phase = Phase::Features;
                out.push(Action::Write(self.header_xml()));
            }
            (NS_SASL, "failure") if self.phase == Phase::Sasl => {
                tracing::debug!(remote = %self.remote, "SASL EXTERNAL failed, falling back to dialback");
                self.sasl_failed = true;
                self.start_dialback(out);
            }
            (NS_DIALBACK, "result") => {
                if e.from() != Some(self.remote.as_str()) || e.to() != Some(self.local.as_str()) {
                    return self.fail(out, StreamError::new(Cond::InvalidFrom));
                }
                if self.phase != Phase::Dialback {
                    return;
                }
                if e.type_() == Some("valid") {
                    self.ready(out);
                } else {
                    self.fail(
                        out,
                        StreamError::with_text(
                            Cond::NotAuthorized,
                            "dialback authentication failed",
                        ),
                    );
                }
            }
            (NS_SERVER, "message" | "presence" | "iq") if self.bidi => {
                self.handle_bidi_stanza(e, out)
            }
            (NS_DIALBACK, "verify") => {
                let (Some(from), Some(id)) = (e.from(), e.id()) else {
                    return;
                };
                if from != self.remote {
                    return;
                }
                out.push(Action::VerifyResult {
                    local: self.local.clone(),
                    remote: from.to_string(),
                    id: id.to_string(),
                    valid: e.type_() == Some("valid"),
                });
            }
            _ => {
                tracing::debug!(remote = %self.remote, "unexpected <{} xmlns='{}'> on an outgoing stream", e.name(), e.ns());
                self.fail(out, StreamError::new(Cond::UnsupportedStanzaType));
            }
        }
    }

    fn after_features(&mut self, features: Option<&Element>, out: &mut Vec<Action>) {
        if self.sasl_done {
            return self.ready(out);
        }
        let offers =
            |name: &str, ns: &str| features.is_some_and(|f| f.get_child(name, ns).is_some());
        if !self.secure && offers("starttls", NS_TLS) && self.policy.tls_available {
            self.phase = Phase::StartTls;
            out.push(Action::Write(
                Element::new("starttls", NS_TLS).to_xml_in(NS_SERVER),
            ));
            return;
        }
        if !self.secure && self.policy.must_encrypt(&self.remote) {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::PolicyViolation,
                    "Encrypted server-to-server communication is required but was not offered",
                ),
            );
        }
        let status = (self.cert)(&self.remote);
        if self.policy.must_secure(&self.remote) && status != CertStatus::Valid {
            return self.give_up(
                out,
                format!("Remote server's certificate {}", status.reason()),
            );
        }
        if !self.bidi
            && offers("bidi", bidi::NS_BIDI_FEATURE)
            && bidi::allowed(&self.policy, self.secure)
        {
            tracing::debug!(remote = %self.remote, "requesting a bidirectional stream");
            self.bidi = true;
            out.push(Action::Write(bidi::request_xml()));
        }
        let external = features
            .and_then(|f| f.get_child("mechanisms", NS_SASL))
            .is_some_and(|m| m.children().any(|c| c.text_content() == "EXTERNAL"));
        if external
            && self.secure
            && self.have_cert
            && self.policy.sasl_external
            && !self.sasl_failed
        {
            use base64::Engine;
            let authzid = base64::engine::general_purpose::STANDARD.encode(self.local.as_bytes());
            self.phase = Phase::Sasl;
            out.push(Action::Write(
                Element::new("auth", NS_SASL)
                    .attr("mechanism", "EXTERNAL")
                    .text(authzid)
                    .to_xml_in(NS_SERVER),
            ));
            return;
        }
        let _ = offers("dialback", NS_DIALBACK_FEATURE);
        self.start_dialback(out);
    }

    /// A stanza from the remote server over our bidirectional stream: only
    /// once authenticated, from the remote domain, to our host.
    fn handle_bidi_stanza(&mut self, mut e: Element, out: &mut Vec<Action>) {
        let domain = |a: Option<&str>| {
            a.and_then(|j| crate::jid::Jid::parse(j).ok())
                .map(|j| j.domain().to_string())
        };
        if self.phase != Phase::Ready {
            return self.fail(out, StreamError::new(Cond::NotAuthorized));
        }
        if domain(e.from()).as_deref() != Some(self.remote.as_str()) {
            return self.fail(out, StreamError::new(Cond::InvalidFrom));
        }
        if domain(e.to()).as_deref() != Some(self.local.as_str()) {
            return self.fail(out, StreamError::new(Cond::HostUnknown));
        }
        super::from_server_ns(&mut e);
        out.push(Action::Deliver(e));
    }

    fn start_dialback(&mut self, out: &mut Vec<Action>) {
        if !self.policy.dialback {
            return self.give_up(
                out,
                "no authentication method left (dialback is disabled)".into(),
            );
        }
        let id = self.stream_id.clone().unwrap_or_default();
        let key = self.dialback.key(&id, &self.remote, &self.local);
        self.phase = Phase::Dialback;
        out.push(Action::Write(to_prefixed_xml(
            "result",
            &[("from", &self.local), ("to", &self.remote)],
            &key,
        )));
        self.flush_verifies(out);
    }

    fn flush_verifies(&mut self, out: &mut Vec<Action>) {
        for v in self.verify_queue.drain(..) {
            out.push(Action::Write(v));
        }
    }

    fn ready(&mut self, out: &mut Vec<Action>) {
        tracing::info!(local = %self.local, remote = %self.remote, "outgoing s2s stream authenticated");
        self.phase = Phase::Ready;
        self.was_ready = true;
        self.flush_verifies(out);
        out.push(Action::Authenticated {
            remote: self.remote.clone(),
        });
    }
}

impl super::StreamSide for OutgoingStream {
    fn xml(&mut self) -> &mut XmlStream {
        &mut self.xml
    }
    fn closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    fn restarts(e: &Element) -> bool {
        is_restart(e)
    }
    fn event(&mut self, ev: StreamEvent, out: &mut Vec<Action>) {
        self.handle_event(ev, out)
    }
    fn failed(&mut self, out: &mut Vec<Action>, error: StreamError) {
        self.fail(out, error)
    }
}

/// Must parsing stop after this element? After `<proceed/>` what follows
/// is TLS; after SASL `<success/>`, a new stream.
fn is_restart(e: &Element) -> bool {
    e.is("proceed", NS_TLS) || e.is("success", NS_SASL)
}
