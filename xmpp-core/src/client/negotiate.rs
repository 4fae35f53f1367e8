//! Client stream negotiation (RFC 6120 §5-§7), sans-IO: the server's bytes
//! in, bytes to write and "start TLS now" out, until a resource is bound.
//!
//! The order is Jicofo's and Videobridge's (Smack's): STARTTLS when the
//! server offers it, SASL, then resource binding (and RFC 3921 session
//! establishment if a server still requires it). SASL prefers SCRAM-SHA-1;
//! PLAIN, which shows the password to whoever reads the stream, is used
//! only over TLS, or when the server offers nothing else and no TLS could
//! be negotiated (the server did not offer STARTTLS, or this negotiation
//! was made without TLS).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::ClientError;
use super::scram::ScramClient;
use crate::jid::Jid;
use crate::stanza::{Element, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAMS, NS_TLS};
use crate::stream::{StreamEvent, StreamLimits, XmlStream};

/// The biggest stanza accepted from the server (Colibri and Jingle
/// stanzas of large conferences are bigger than chat).
pub const MAX_STANZA_SIZE: usize = 1024 * 1024;

const BIND_ID: &str = "lilt-bind";
const SESSION_ID: &str = "lilt-session";

/// What the connection must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Write(String),
    /// Write what came before, run the TLS handshake (server name: the
    /// JID's domain), then call [`Negotiation::tls_established`].
    StartTls,
    /// The resource is bound: negotiation is over; the session's stream
    /// and what arrived after the bind result are in
    /// [`Negotiation::into_stream`].
    Bound(Jid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Features,
    Proceed,
    /// Waiting for the handshake to finish.
    Tls,
    Sasl,
    Bind,
    Session,
    Bound,
}

enum Mechanism {
    Scram(ScramClient),
    Plain,
}

/// One negotiation, from the first stream header to a bound resource.
pub struct Negotiation {
    jid: Jid,
    password: String,
    tls_enabled: bool,
    xml: XmlStream,
    phase: Phase,
    secure: bool,
    authenticated: bool,
    starttls_offered: bool,
    mechanism: Option<Mechanism>,
    session_required: bool,
    bound: Option<Jid>,
    /// What the stream brought after the bind result.
    after: Vec<StreamEvent>,
}

impl std::fmt::Debug for Negotiation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Negotiation({} {:?})", self.jid, self.phase)
    }
}

impl Negotiation {
    /// A negotiation logging in as `jid` (a resource in it is asked for
    /// when binding). `tls_enabled`: STARTTLS is used when offered.
    pub fn new(jid: Jid, password: &str, tls_enabled: bool) -> Negotiation {
        Negotiation {
            jid,
            password: password.to_string(),
            tls_enabled,
            xml: XmlStream::new(StreamLimits {
                max_stanza_size: MAX_STANZA_SIZE,
                ..StreamLimits::default()
            }),
            phase: Phase::Header,
            secure: false,
            authenticated: false,
            starttls_offered: false,
            mechanism: None,
            session_required: false,
            bound: None,
            after: Vec::new(),
        }
    }

    /// The first bytes to send: the stream header.
    pub fn start(&mut self) -> Vec<Output> {
        vec![Output::Write(self.header())]
    }

    /// Is the stream encrypted?
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The TLS handshake after [`Output::StartTls`] succeeded: the stream
    /// restarts.
    pub fn tls_established(&mut self) -> Vec<Output> {
        self.secure = true;
        self.restart()
    }

    /// The parser, for the rest of the session, and what the server sent
    /// after the bind result (stanzas, or the stream's end).
    pub fn into_stream(self) -> (XmlStream, Vec<StreamEvent>) {
        (self.xml, self.after)
    }

    fn header(&self) -> String {
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}' to='{}' version='1.0' xml:lang='en'>",
            crate::stanza::escape(self.jid.domain())
        )
    }

    fn restart(&mut self) -> Vec<Output> {
        self.xml.reset();
        self.phase = Phase::Header;
        vec![Output::Write(self.header())]
    }

    /// Bytes from the server.
    pub fn handle_bytes(&mut self, data: &[u8]) -> Result<Vec<Output>, ClientError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let mut events = Vec::new();
            // Stop after what restarts the stream, so the rest is read by
            // the new parser (or, after <proceed/>, belongs to TLS).
            let parsed = self.xml.feed_until(&data[pos..], &mut events, |e| {
                e.is("proceed", NS_TLS) || e.is("success", NS_SASL)
            });
            for ev in events {
                if self.phase == Phase::Bound {
                    self.after.push(ev);
                } else {
                    self.handle_event(ev, &mut out)?;
                }
            }
            match parsed {
                Ok(0) => break,
                Ok(n) => pos += n,
                Err(e) => return Err(ClientError::Protocol(format!("the server's stream: {e}"))),
            }
            if self.phase == Phase::Tls && pos < data.len() {
                return Err(ClientError::Protocol(
                    "the server sent data between <proceed/> and the TLS handshake".into(),
                ));
            }
        }
        Ok(out)
    }

    fn handle_event(&mut self, ev: StreamEvent, out: &mut Vec<Output>) -> Result<(), ClientError> {
        match ev {
            StreamEvent::Open(h) => {
                if h.ns != NS_CLIENT {
                    return Err(ClientError::Protocol(format!(
                        "the server's stream is {:?}, not jabber:client",
                        h.ns
                    )));
                }
                if h.version.as_deref() != Some("1.0") {
                    return Err(ClientError::Protocol(
                        "the server does not speak XMPP 1.0".into(),
                    ));
                }
                self.phase = Phase::Features;
                Ok(())
            }
            StreamEvent::Close => Err(ClientError::Stream("closed during negotiation".to_string())),
            StreamEvent::Stanza(e) if e.is("error", NS_STREAMS) => {
                Err(ClientError::Stream(stream_error_text(&e)))
            }
            StreamEvent::Stanza(e) => match self.phase {
                Phase::Features if e.is("features", NS_STREAMS) => self.handle_features(&e, out),
                Phase::Proceed => self.handle_proceed(&e, out),
                Phase::Sasl if e.ns() == NS_SASL => self.handle_sasl(&e, out),
                Phase::Bind | Phase::Session if e.name() == "iq" => self.handle_iq(&e, out),
                // Anything else before binding is not for us (a server's
                // early presence, say): ignored.
                _ => Ok(()),
            },
        }
    }

    fn handle_features(&mut self, f: &Element, out: &mut Vec<Output>) -> Result<(), ClientError> {
        if self.authenticated {
            if f.get_child("bind", NS_BIND).is_none() {
                return Err(ClientError::Protocol(
                    "the server offers no resource binding".into(),
                ));
            }
            self.session_required = f
                .get_child("session", NS_SESSION)
                .is_some_and(|s| s.get_child("optional", NS_SESSION).is_none());
            let mut bind = Element::new("bind", NS_BIND);
            if let Some(r) = self.jid.resource() {
                bind.push_child(Element::new("resource", NS_BIND).text(r));
            }
            let iq = Element::new("iq", NS_CLIENT)
                .attr("type", "set")
                .attr("id", BIND_ID)
                .child(bind);
            out.push(Output::Write(iq.to_xml()));
            self.phase = Phase::Bind;
            return Ok(());
        }
        let starttls = f.get_child("starttls", NS_TLS);
        if !self.secure {
            self.starttls_offered = starttls.is_some();
        }
        if !self.secure && starttls.is_some() && self.tls_enabled {
            out.push(Output::Write(Element::new("starttls", NS_TLS).to_xml()));
            self.phase = Phase::Proceed;
            return Ok(());
        }
        if !self.secure && starttls.is_some_and(|s| s.get_child("required", NS_TLS).is_some()) {
            return Err(ClientError::Protocol(
                "the server requires TLS, which this connection does not do".into(),
            ));
        }
        let offered: Vec<String> = f
            .get_child("mechanisms", NS_SASL)
            .map(|m| {
                m.children()
                    .filter(|c| c.is("mechanism", NS_SASL))
                    .map(|c| c.text_content().trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let username = self.jid.node().unwrap_or_default().to_string();
        let no_tls_possible = !self.starttls_offered || !self.tls_enabled;
        let (name, mechanism, initial) = if offered.iter().any(|m| m == "SCRAM-SHA-1") {
            let scram = ScramClient::new(&username, &self.password)
                .map_err(|e| self.auth_error(e.to_string()))?;
            let first = scram.client_first();
            ("SCRAM-SHA-1", Mechanism::Scram(scram), first.into_bytes())
        } else if offered.iter().any(|m| m == "PLAIN") && (self.secure || no_tls_possible) {
            let mut initial = vec![0u8];
            initial.extend_from_slice(username.as_bytes());
            initial.push(0);
            initial.extend_from_slice(self.password.as_bytes());
            ("PLAIN", Mechanism::Plain, initial)
        } else {
            return Err(self.auth_error(format!(
                "no usable mechanism among those offered ({})",
                offered.join(", ")
            )));
        };
        let auth = Element::new("auth", NS_SASL)
            .attr("mechanism", name)
            .text(BASE64.encode(initial));
        out.push(Output::Write(auth.to_xml()));
        self.mechanism = Some(mechanism);
        self.phase = Phase::Sasl;
        Ok(())
    }

    fn handle_proceed(&mut self, e: &Element, out: &mut Vec<Output>) -> Result<(), ClientError> {
        if e.is("proceed", NS_TLS) {
            out.push(Output::StartTls);
            self.phase = Phase::Tls;
            return Ok(());
        }
        Err(ClientError::Protocol(format!(
            "the server answered STARTTLS with <{}/>",
            e.name()
        )))
    }

    fn handle_sasl(&mut self, e: &Element, out: &mut Vec<Output>) -> Result<(), ClientError> {
        let payload = sasl_payload(e).map_err(|()| self.auth_error("malformed base64".into()))?;
        match e.name() {
            "challenge" => {
                let Some(Mechanism::Scram(scram)) = self.mechanism.as_mut() else {
                    return Err(self.auth_error("unexpected challenge".into()));
                };
                let jid = self.jid.to_bare().to_string();
                let refused = |e: super::scram::ScramError| ClientError::Auth {
                    jid: jid.clone(),
                    condition: e.to_string(),
                };
                let reply = if scram.expects_server_first() {
                    BASE64.encode(scram.handle_server_first(&payload).map_err(refused)?)
                } else {
                    // After client-final, a challenge is the server-final
                    // message (servers that do not put it in <success/>).
                    scram.handle_server_final(&payload).map_err(refused)?;
                    String::new()
                };
                let response = Element::new("response", NS_SASL).text(reply);
                out.push(Output::Write(response.to_xml()));
                Ok(())
            }
            "success" => {
                if let Some(Mechanism::Scram(scram)) = self.mechanism.as_mut()
                    && !scram.is_done()
                {
                    scram
                        .handle_server_final(&payload)
                        .map_err(|e| ClientError::Auth {
                            jid: self.jid.to_bare().to_string(),
                            condition: e.to_string(),
                        })?;
                }
                self.mechanism = None;
                self.authenticated = true;
                out.extend(self.restart());
                Ok(())
            }
            "failure" => {
                let condition = e
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_string())
                    .unwrap_or_else(|| "not-authorized".to_string());
                let text = e.get_child_text("text", NS_SASL);
                Err(self.auth_error(match text {
                    Some(t) if !t.is_empty() => format!("{condition} ({t})"),
                    _ => condition,
                }))
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected SASL element <{other}/>"
            ))),
        }
    }

    fn handle_iq(&mut self, iq: &Element, out: &mut Vec<Output>) -> Result<(), ClientError> {
        let expected = if self.phase == Phase::Bind {
            BIND_ID
        } else {
            SESSION_ID
        };
        if iq.id() != Some(expected) {
            return Ok(());
        }
        if iq.type_() != Some("result") {
            let condition = iq
                .get_child("error", NS_CLIENT)
                .and_then(|e| e.children().find(|c| c.name() != "text"))
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| "undefined-condition".to_string());
            let what = if self.phase == Phase::Bind {
                "resource binding"
            } else {
                "session establishment"
            };
            return Err(ClientError::Protocol(format!(
                "the server refused {what}: {condition}"
            )));
        }
        if self.phase == Phase::Bind {
            let jid = iq
                .get_child("bind", NS_BIND)
                .and_then(|b| b.get_child_text("jid", NS_BIND))
                .and_then(|j| Jid::parse(j.trim()).ok())
                .filter(|j| j.is_full())
                .ok_or_else(|| ClientError::Protocol("the bind result holds no full JID".into()))?;
            self.bound = Some(jid);
            if self.session_required {
                let session = Element::new("iq", NS_CLIENT)
                    .attr("type", "set")
                    .attr("id", SESSION_ID)
                    .child(Element::new("session", NS_SESSION));
                out.push(Output::Write(session.to_xml()));
                self.phase = Phase::Session;
                return Ok(());
            }
        }
        let Some(jid) = self.bound.clone() else {
            return Err(ClientError::Protocol("no bound JID".into()));
        };
        self.phase = Phase::Bound;
        out.push(Output::Bound(jid));
        Ok(())
    }

    fn auth_error(&self, condition: String) -> ClientError {
        ClientError::Auth {
            jid: self.jid.to_bare().to_string(),
            condition,
        }
    }
}

/// A `<stream:error/>`'s condition and text, for [`ClientError::Stream`].
pub fn stream_error_text(e: &Element) -> String {
    let condition = e
        .children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| "undefined-condition".to_string());
    match e.children().find(|c| c.name() == "text") {
        Some(t) => format!("{condition} ({})", t.text_content()),
        None => condition,
    }
}

/// A SASL element's payload: nothing, `=` (empty) or base64.
fn sasl_payload(e: &Element) -> Result<Vec<u8>, ()> {
    let text: String = e
        .text_content()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    match text.as_str() {
        "" | "=" => Ok(Vec::new()),
        t => BASE64.decode(t).map_err(|_| ()),
    }
}

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;
