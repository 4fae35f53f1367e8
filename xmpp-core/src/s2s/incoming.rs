//! The sans-IO incoming s2s stream (we are the receiving server), as
//! Prosody 0.12's mod_s2s, mod_dialback and mod_s2s_auth_certs behave:
//!
//! - the header must be `jabber:server` (else `invalid-namespace`) and its
//!   `to` a host served here (else `host-unknown`); the reply offers
//!   STARTTLS (`<required/>` under `s2s_require_encryption`), then, once
//!   encrypted, SASL EXTERNAL when the peer's chain is trusted, and dialback;
//! - `<auth mechanism='EXTERNAL'>` succeeds when the certificate is valid
//!   for the claimed domain (authzid, else the stream's `from`), else
//!   `<failure><not-authorized/>` and the peer falls back to dialback;
//! - `<db:result>` (no type) asks the authoritative server: the stream
//!   returns [`Action::Verify`], and [`IncomingStream::verified`] answers
//!   with `type='valid'` or `'invalid'`. A domain that must be secure
//!   (`s2s_secure_auth`, `s2s_secure_domains`) without a valid certificate is
//!   closed with `not-authorized` ("Your server's certificate is not
//!   trusted"); an unencrypted stream where encryption is required with
//!   `policy-violation`;
//! - `<db:verify>` (no type) is answered from our own secret (we are the
//!   authoritative server): a key for a stream we never opened is `invalid`;
//! - stanzas must come from an authenticated domain (else `not-authorized`)
//!   to a host served here (else `host-unknown`), and are then
//!   [`Action::Deliver`]ed in `jabber:client`;
//! - with `s2s_bidi`, a peer that sends `<bidi/>` before authenticating
//!   gets our stanzas for its domain on this stream ([`IncomingStream::send`]).

use super::bidi;
use super::dialback::{Dialback, NS_DIALBACK, NS_DIALBACK_FEATURE, to_prefixed_xml};
use super::policy::{CertStatus, PeerCert, Policy, no_cert};
use super::{Action, from_server_ns, new_stream_id};
use crate::c2s::negotiation::stream_element_xml;
use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::jid::Jid;
use crate::stanza::{Element, NS_SASL, NS_SERVER, NS_STREAMS, NS_TLS};
use crate::stream::{STREAM_CLOSE, StreamEvent, StreamHeader, StreamLimits, XmlStream};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Open,
    Closed,
}

/// One incoming server-to-server connection's protocol state.
pub struct IncomingStream {
    policy: Policy,
    dialback: Dialback,
    xml: XmlStream,
    phase: Phase,
    stream_id: String,
    secure: bool,
    cert: PeerCert,
    /// The stream header's `to` (a local host), once open.
    to_host: Option<String>,
    /// The stream header's `from`, when given.
    from_host: Option<String>,
    /// Remote domains authenticated on this stream.
    authed: HashSet<String>,
    /// Dialback keys waiting for the authoritative server, by remote domain.
    pending: HashMap<String, (String, String)>,
    /// The limits once authenticated (`s2s_stanza_size_limit`); before,
    /// stanzas may take [`UNAUTHED_STANZA_SIZE_LIMIT`] bytes at most.
    authed_limits: StreamLimits,
    /// The peer asked for a bidirectional stream (XEP-0288).
    bidi: bool,
    /// Stanzas to send once our restarted stream header is out.
    bidi_queue: Vec<String>,
}

/// Prosody's `s2s_unauthed_stanza_size_limit` default: what an
/// unauthenticated peer may make us buffer per element.
pub const UNAUTHED_STANZA_SIZE_LIMIT: usize = 10_000;

impl IncomingStream {
    /// A new stream; `limits` apply once a domain is authenticated.
    pub fn new(policy: Policy, dialback: Dialback, limits: StreamLimits) -> IncomingStream {
        let unauthed = StreamLimits {
            max_stanza_size: limits.max_stanza_size.min(UNAUTHED_STANZA_SIZE_LIMIT),
            ..limits.clone()
        };
        IncomingStream {
            policy,
            dialback,
            authed_limits: limits,
            xml: XmlStream::new(unauthed),
            phase: Phase::Header,
            stream_id: new_stream_id(),
            secure: false,
            cert: no_cert(),
            to_host: None,
            from_host: None,
            authed: HashSet::new(),
            pending: HashMap::new(),
            bidi: false,
            bidi_queue: Vec::new(),
        }
    }

    /// The id of the stream we opened (dialback keys are bound to it).
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }
    /// The local host the peer addressed.
    pub fn to_host(&self) -> Option<&str> {
        self.to_host.as_deref()
    }
    /// The remote domain the peer named or authenticated as last.
    pub fn from_host(&self) -> Option<&str> {
        self.from_host.as_deref()
    }
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// Did the peer ask for a bidirectional stream (XEP-0288)?
    pub fn is_bidi(&self) -> bool {
        self.bidi
    }

    /// A stanza of ours for the peer's domain, over this bidirectional
    /// stream; held while the stream restarts after SASL.
    pub fn send(&mut self, stanza: &Element) -> Vec<Action> {
        let xml = super::to_server_xml(stanza);
        match self.phase {
            Phase::Closed => Vec::new(),
            Phase::Header => {
                self.bidi_queue.push(xml);
                Vec::new()
            }
            Phase::Open => vec![Action::Write(xml)],
        }
    }

    /// Is `domain` authenticated on this stream?
    pub fn is_authed(&self, domain: &str) -> bool {
        self.authed.contains(domain)
    }

    /// The connection was TLS from the start (XEP-0368 direct TLS), or
    /// STARTTLS completed: `cert` tells what the peer's certificate proves.
    pub fn tls_established(&mut self, cert: PeerCert) {
        self.secure = true;
        self.cert = cert;
        self.xml.reset();
        if self.phase == Phase::Open {
            self.phase = Phase::Header;
        }
    }

    /// Bytes from the peer.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Vec<Action> {
        super::feed(self, data)
    }

    /// The peer closed the connection.
    pub fn handle_eof(&mut self) {
        let _ = self.xml.eof();
        self.phase = Phase::Closed;
    }

    /// Closes from our side.
    pub fn close(&mut self, error: Option<StreamError>) -> Vec<Action> {
        let mut out = Vec::new();
        match error {
            Some(e) => self.fail(&mut out, e),
            None if self.phase != Phase::Closed => {
                if self.phase == Phase::Header {
                    out.push(Action::Write(self.header_xml()));
                }
                out.push(Action::Write(STREAM_CLOSE.to_string()));
                out.push(Action::Close);
                self.phase = Phase::Closed;
            }
            None => {}
        }
        out
    }

    /// The authoritative server answered the dialback request for
    /// `remote` (to our host `local`).
    pub fn verified(&mut self, local: &str, remote: &str, valid: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let Some((_, key)) = self.pending.remove(remote) else {
            return out;
        };
        if self.phase == Phase::Closed {
            return out;
        }
        let ty = if valid { "valid" } else { "invalid" };
        let result = to_prefixed_xml(
            "result",
            &[
                ("from", local),
                ("to", remote),
                ("id", &self.stream_id),
                ("type", ty),
            ],
            &key,
        );
        out.push(Action::Write(result));
        if valid {
            tracing::info!(remote, local, "incoming s2s authenticated by dialback");
            self.authed.insert(remote.to_string());
            self.xml.set_limits(self.authed_limits.clone());
            out.push(Action::Authenticated {
                remote: remote.to_string(),
            });
        } else {
            tracing::warn!(remote, "authoritative server denied the dialback key");
        }
        out
    }

    fn fail(&mut self, out: &mut Vec<Action>, error: StreamError) {
        if self.phase == Phase::Closed {
            return;
        }
        tracing::info!(from = ?self.from_host, "closing incoming s2s stream: {error}");
        if self.phase == Phase::Header {
            out.push(Action::Write(self.header_xml()));
        }
        out.push(Action::Write(error.to_xml()));
        out.push(Action::Write(STREAM_CLOSE.to_string()));
        out.push(Action::Close);
        self.phase = Phase::Closed;
    }

    fn header_xml(&self) -> String {
        crate::stream::stream_header(&StreamHeader {
            ns: NS_SERVER.to_string(),
            from: self.to_host.clone(),
            to: self.from_host.clone(),
            id: Some(self.stream_id.clone()),
            version: Some("1.0".into()),
            attrs: vec![("xmlns:db".into(), NS_DIALBACK.into())],
            ..StreamHeader::default()
        })
    }

    fn handle_event(&mut self, ev: StreamEvent, out: &mut Vec<Action>) {
        match ev {
            StreamEvent::Open(h) => self.handle_open(h, out),
            StreamEvent::Close => out.extend(self.close(None)),
            StreamEvent::Stanza(e) => self.handle_element(e, out),
        }
    }

    fn handle_open(&mut self, h: StreamHeader, out: &mut Vec<Action>) {
        if h.ns != NS_SERVER {
            return self.fail(out, StreamError::new(Cond::InvalidNamespace));
        }
        let to = h.to.as_deref().map(|t| t.to_ascii_lowercase());
        match (&to, &self.to_host) {
            (Some(t), Some(prev)) if t != prev => {
                return self.fail(
                    out,
                    StreamError::with_text(
                        Cond::ImproperAddressing,
                        "New stream 'to' attribute does not match original",
                    ),
                );
            }
            (Some(t), None) => {
                if !self.policy.is_local(t) {
                    let text = format!("This host does not serve {t}");
                    return self.fail(out, StreamError::with_text(Cond::HostUnknown, text));
                }
                self.to_host = Some(t.clone());
            }
            _ => {}
        }
        if let Some(from) = h.from.as_deref() {
            self.from_host = Some(from.to_ascii_lowercase());
            if !self.policy.remote_allowed(self.to_host.as_deref(), from) {
                return self.fail(out, restricted());
            }
        }
        self.stream_id = new_stream_id();
        self.phase = Phase::Open;
        out.push(Action::Write(self.header_xml()));
        if h.version.as_deref() == Some("1.0") {
            out.push(Action::Write(stream_element_xml(&self.features())));
        }
        for xml in self.bidi_queue.drain(..) {
            out.push(Action::Write(xml));
        }
    }

    fn features(&self) -> Element {
        let mut f = Element::new("features", NS_STREAMS);
        if !self.secure && self.policy.tls_available {
            let mut tls = Element::new("starttls", NS_TLS);
            if self.policy.require_encryption {
                tls.push_child(Element::new("required", NS_TLS));
            }
            f.push_child(tls);
        }
        let chain_trusted = self
            .from_host
            .as_deref()
            .map(|d| (self.cert)(d))
            .is_some_and(|s| matches!(s, CertStatus::Valid | CertStatus::NameMismatch));
        if self.secure && self.policy.sasl_external && chain_trusted && self.authed.is_empty() {
            f.push_child(
                Element::new("mechanisms", NS_SASL)
                    .child(Element::new("mechanism", NS_SASL).text("EXTERNAL")),
            );
        }
        if bidi::allowed(&self.policy, self.secure) && self.authed.is_empty() {
            f.push_child(bidi::feature());
        }
        if self.policy.dialback && (self.secure || !self.policy.require_encryption) {
            f.push_child(
                Element::new("dialback", NS_DIALBACK_FEATURE)
                    .child(Element::new("errors", NS_DIALBACK_FEATURE)),
            );
        }
        f
    }

    fn handle_element(&mut self, e: Element, out: &mut Vec<Action>) {
        if self.phase != Phase::Open {
            return;
        }
        match (e.ns(), e.name()) {
            (NS_STREAMS, "error") => {
                tracing::info!(from = ?self.from_host, "peer closed its stream with an error: {}", e.to_xml());
                out.extend(self.close(None));
            }
            (NS_TLS, "starttls") => {
                if self.secure || !self.policy.tls_available {
                    return self.fail(out, StreamError::new(Cond::PolicyViolation));
                }
                out.push(Action::Write(
                    Element::new("proceed", NS_TLS).to_xml_in(NS_SERVER),
                ));
                out.push(Action::StartTls);
            }
            (NS_SASL, "auth") => self.handle_sasl(&e, out),
            (bidi::NS_BIDI, "bidi")
                if bidi::allowed(&self.policy, self.secure) && self.authed.is_empty() =>
            {
                tracing::debug!(from = ?self.from_host, "bidirectional stream requested");
                self.bidi = true;
            }
            (NS_DIALBACK, "result") if e.type_().is_none() => self.handle_db_result(&e, out),
            (NS_DIALBACK, "verify") if e.type_().is_none() => self.handle_db_verify(&e, out),
            (NS_DIALBACK, _) => {
                tracing::warn!(from = ?self.from_host, "ignoring a dialback answer on an incoming stream");
            }
            (NS_SERVER, "message" | "presence" | "iq") => self.handle_stanza(e, out),
            _ => self.fail(out, StreamError::new(Cond::UnsupportedStanzaType)),
        }
    }

    fn handle_sasl(&mut self, e: &Element, out: &mut Vec<Action>) {
        let failure = |cond: &str| {
            Element::new("failure", NS_SASL)
                .child(Element::new(cond, NS_SASL))
                .to_xml_in(NS_SERVER)
        };
        if e.get_attr("mechanism") != Some("EXTERNAL") || !self.secure || !self.policy.sasl_external
        {
            out.push(Action::Write(failure("invalid-mechanism")));
            return;
        }
        let text = e.text_content();
        let authzid = match text.trim() {
            "" | "=" => None,
            b64 => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
            }
        };
        let Some(domain) = authzid.or_else(|| self.from_host.clone()) else {
            out.push(Action::Write(failure("not-authorized")));
            return;
        };
        let domain = domain.to_ascii_lowercase();
        if !self.policy.remote_allowed(self.to_host.as_deref(), &domain) {
            return self.fail(out, restricted());
        }
        if self.policy.is_local(&domain) || (self.cert)(&domain) != CertStatus::Valid {
            tracing::info!(%domain, "SASL EXTERNAL refused: certificate {}", (self.cert)(&domain).reason());
            out.push(Action::Write(failure("not-authorized")));
            return;
        }
        tracing::info!(%domain, "incoming s2s authenticated by SASL EXTERNAL");
        out.push(Action::Write(
            Element::new("success", NS_SASL).to_xml_in(NS_SERVER),
        ));
        self.authed.insert(domain.clone());
        self.from_host = Some(domain.clone());
        self.xml.reset();
        self.xml.set_limits(self.authed_limits.clone());
        self.phase = Phase::Header;
        out.push(Action::Authenticated { remote: domain });
    }

    fn handle_db_result(&mut self, e: &Element, out: &mut Vec<Action>) {
        let (Some(to), Some(from)) = (e.to(), e.from()) else {
            return self.fail(out, StreamError::new(Cond::ImproperAddressing));
        };
        let (Ok(to), Ok(from)) = (Jid::parse(to), Jid::parse(from)) else {
            return self.fail(out, StreamError::new(Cond::ImproperAddressing));
        };
        let (to, from) = (to.domain().to_string(), from.domain().to_string());
        if !self.policy.is_local(&to) {
            return self.fail(out, StreamError::new(Cond::HostUnknown));
        }
        if !self.policy.remote_allowed(Some(&to), &from) {
            return self.fail(out, restricted());
        }
        if self.policy.is_local(&from) {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::UndefinedCondition,
                    "Attempt to authenticate as a host we serve",
                ),
            );
        }
        if !self.secure && self.policy.must_encrypt(&from) {
            return self.fail(
                out,
                StreamError::with_text(
                    Cond::PolicyViolation,
                    "Encrypted server-to-server communication is required but was not used",
                ),
            );
        }
        let status = (self.cert)(&from);
        if self.policy.must_secure(&from) && status != CertStatus::Valid {
            let text = format!("Your server's certificate {}", status.reason());
            return self.fail(out, StreamError::with_text(Cond::NotAuthorized, text));
        }
        if !self.policy.dialback {
            return self.fail(out, StreamError::new(Cond::NotAuthorized));
        }
        let key = e.text_content();
        if self.from_host.is_none() {
            self.from_host = Some(from.clone());
        }
        if self.to_host.is_none() {
            self.to_host = Some(to.clone());
        }
        self.pending.insert(from.clone(), (to.clone(), key.clone()));
        out.push(Action::Verify {
            local: to,
            remote: from,
            id: self.stream_id.clone(),
            key,
        });
    }

    fn handle_db_verify(&mut self, e: &Element, out: &mut Vec<Action>) {
        let (Some(to), Some(from), Some(id)) = (e.to(), e.from(), e.id()) else {
            return self.fail(out, StreamError::new(Cond::ImproperAddressing));
        };
        if !self.policy.is_local(to) {
            return self.fail(out, StreamError::new(Cond::HostUnknown));
        }
        let key = e.text_content();
        // We are the originating server `to`; `from` is the receiving
        // server that got the key on the stream `id` it opened for us.
        let valid = self.dialback.verify(id, from, to, &key);
        if !valid {
            tracing::warn!(
                asker = from,
                "asked to verify a dialback key that is not ours: an imposter is claiming to be {to}?"
            );
        }
        let ty = if valid { "valid" } else { "invalid" };
        let reply = to_prefixed_xml(
            "verify",
            &[("from", to), ("to", from), ("id", id), ("type", ty)],
            &key,
        );
        out.push(Action::Write(reply));
    }

    fn handle_stanza(&mut self, mut e: Element, out: &mut Vec<Action>) {
        let from_domain = e
            .from()
            .and_then(|f| Jid::parse(f).ok())
            .map(|j| j.domain().to_string());
        let to_domain = e
            .to()
            .and_then(|t| Jid::parse(t).ok())
            .map(|j| j.domain().to_string());
        let (Some(from), Some(to)) = (from_domain, to_domain) else {
            return self.fail(out, StreamError::new(Cond::ImproperAddressing));
        };
        if !self.authed.contains(&from) {
            tracing::warn!(claimed = %from, authed = ?self.authed, "stanza from a domain not authenticated on this stream");
            return self.fail(out, StreamError::new(Cond::NotAuthorized));
        }
        if !self.policy.is_local(&to) {
            return self.fail(out, StreamError::new(Cond::HostUnknown));
        }
        from_server_ns(&mut e);
        out.push(Action::Deliver(e));
    }
}

/// mod_s2s_whitelist/mod_s2s_blacklist's refusal.
fn restricted() -> StreamError {
    StreamError::with_text(Cond::PolicyViolation, super::policy::RESTRICTED)
}

impl super::StreamSide for IncomingStream {
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

/// Must parsing stop after this element? After `<starttls/>` what follows
/// is TLS; after a SASL `<auth/>` that succeeds, a new stream.
fn is_restart(e: &Element) -> bool {
    e.is("starttls", NS_TLS) || e.is("auth", NS_SASL)
}
