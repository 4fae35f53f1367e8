//! The load client: one plain-TCP XMPP connection, its login (SCRAM-SHA-1 or
//! PLAIN, resource binding, optional session, initial presence) and the
//! small set of reads and writes the scenarios need. No TLS and no trees:
//! the scenarios look at a few bytes of each stanza.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::sasl::{self, SaltCache, SaslError, Scram};
use crate::xml::{self, Event, SplitError, Splitter};

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// Which SASL mechanism to log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha1,
    Plain,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub domain: String,
    pub mechanism: Mechanism,
    pub cache: SaltCache,
    /// Limit for each negotiation step.
    pub step_timeout: Duration,
}

/// A connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{user}: I/O during {step}: {source}")]
    Io {
        user: String,
        step: &'static str,
        source: std::io::Error,
    },
    #[error("{user}: {source}")]
    Xml { user: String, source: SplitError },
    #[error("{user}: {source}")]
    Sasl { user: String, source: SaslError },
    #[error("{user}: the server does not offer {mechanism} (offered: {offered})")]
    NoMechanism {
        user: String,
        mechanism: &'static str,
        offered: String,
    },
    #[error("{user}: authentication failed: {condition}")]
    AuthFailed { user: String, condition: String },
    #[error("{user}: {step} failed: {stanza}")]
    Refused {
        user: String,
        step: &'static str,
        stanza: String,
    },
    #[error("{user}: timed out waiting for {step}")]
    Timeout { user: String, step: &'static str },
    #[error("{user}: the server closed the stream during {step}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Closed {
        user: String,
        step: &'static str,
        detail: Option<String>,
    },
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    split: Splitter,
    user: String,
    /// The full JID after binding.
    pub jid: String,
    step_timeout: Duration,
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0'>",
        xml::escape(domain)
    )
}

impl Conn {
    /// Opens the TCP connection (no XML yet).
    pub async fn connect(target: &Target, user: &str) -> Result<Conn, ClientError> {
        let stream =
            TcpStream::connect(target.addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: target.addr,
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            split: Splitter::new(),
            user: user.to_string(),
            jid: String::new(),
            step_timeout: target.step_timeout,
        })
    }

    /// Connects and logs in: SASL, bind, session when required, and with
    /// `presence` the initial presence (confirmed by a ping round trip, so
    /// the server has processed it when this returns).
    pub async fn login(
        target: &Target,
        username: &str,
        password: &str,
        presence: bool,
    ) -> Result<Conn, ClientError> {
        let mut conn = Conn::connect(target, username).await?;
        let features = conn.open_stream(&target.domain).await?;
        conn.authenticate(target, &features, username, password)
            .await?;
        let features = conn.open_stream(&target.domain).await?;
        conn.bind().await?;
        // RFC 3921 sessions: only when offered and not marked optional.
        if xml::has_child(&features, "session") && !xml::has_child(&features, "optional") {
            conn.iq_roundtrip(
                &format!("<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>"),
                "sess",
                "session",
            )
            .await?;
        }
        if presence {
            conn.send(b"<presence/>", "initial presence").await?;
            conn.ping(&target.domain, "ready").await?;
        }
        Ok(conn)
    }

    /// In-band registration (XEP-0077) of an account; an existing account
    /// (`conflict`) counts as done.
    pub async fn register(
        target: &Target,
        username: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        let mut conn = Conn::connect(target, username).await?;
        conn.open_stream(&target.domain).await?;
        let iq = format!(
            "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{}</username><password>{}</password></query></iq>",
            xml::escape(username),
            xml::escape(password)
        );
        conn.send(iq.as_bytes(), "registration").await?;
        let reply = conn.wait_iq("reg", "registration").await?;
        let ok = xml::attr(&reply, "type") == Some(b"result") || xml::has_child(&reply, "conflict");
        conn.close().await;
        if ok {
            Ok(())
        } else {
            Err(ClientError::Refused {
                user: username.to_string(),
                step: "registration",
                stanza: String::from_utf8_lossy(&reply).into_owned(),
            })
        }
    }

    /// Sends a stream header, returns the `<stream:features/>` element.
    async fn open_stream(&mut self, domain: &str) -> Result<Vec<u8>, ClientError> {
        self.split.reset();
        self.send(stream_header(domain).as_bytes(), "stream header")
            .await?;
        if let WaitEvent::Element(el) = self.wait_event("stream header").await? {
            return Err(self.unexpected("stream header", &el));
        }
        let features = self.wait_element("stream features").await?;
        if xml::name(&features) != b"features" {
            return Err(self.unexpected("stream features", &features));
        }
        Ok(features)
    }

    async fn authenticate(
        &mut self,
        target: &Target,
        features: &[u8],
        username: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        let mechanism = target.mechanism.name();
        let offered = xml::children_text(features, "mechanism");
        if !offered.contains(&mechanism.as_bytes()) {
            return Err(ClientError::NoMechanism {
                user: self.user.clone(),
                mechanism,
                offered: offered
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        let sasl_err = |user: &str, source| ClientError::Sasl {
            user: user.to_string(),
            source,
        };
        match target.mechanism {
            Mechanism::Plain => {
                let auth = format!(
                    "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{}</auth>",
                    sasl::plain(username, password)
                );
                self.send(auth.as_bytes(), "SASL").await?;
                self.sasl_outcome().await?;
            }
            Mechanism::ScramSha1 => {
                let mut scram = Scram::new(username, password);
                let auth = format!(
                    "<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>{}</auth>",
                    scram.client_first()
                );
                self.send(auth.as_bytes(), "SASL").await?;
                let challenge = self.wait_element("SASL challenge").await?;
                if xml::name(&challenge) != b"challenge" {
                    return Err(self.auth_failed(&challenge));
                }
                let text = inner_text(&challenge).unwrap_or_default();
                let response = scram
                    .client_final(text, &target.cache)
                    .map_err(|e| sasl_err(&self.user, e))?;
                let reply = format!("<response xmlns='{NS_SASL}'>{response}</response>");
                self.send(reply.as_bytes(), "SASL").await?;
                let success = self.sasl_outcome().await?;
                scram
                    .verify_success(inner_text(&success).unwrap_or_default())
                    .map_err(|e| sasl_err(&self.user, e))?;
            }
        }
        Ok(())
    }

    /// Waits for `<success/>` (returned) or reports the failure.
    async fn sasl_outcome(&mut self) -> Result<Vec<u8>, ClientError> {
        let el = self.wait_element("SASL outcome").await?;
        if xml::name(&el) == b"success" {
            Ok(el)
        } else {
            Err(self.auth_failed(&el))
        }
    }

    fn auth_failed(&self, el: &[u8]) -> ClientError {
        ClientError::AuthFailed {
            user: self.user.clone(),
            condition: String::from_utf8_lossy(el).into_owned(),
        }
    }

    fn unexpected(&self, step: &'static str, el: &[u8]) -> ClientError {
        ClientError::Refused {
            user: self.user.clone(),
            step,
            stanza: String::from_utf8_lossy(el).into_owned(),
        }
    }

    async fn bind(&mut self) -> Result<(), ClientError> {
        let iq = format!("<iq type='set' id='bind'><bind xmlns='{NS_BIND}'/></iq>");
        let reply = self.iq_roundtrip(&iq, "bind", "resource binding").await?;
        self.jid = xml::child_text(&reply, "jid")
            .map(xml::unescape)
            .unwrap_or_default();
        Ok(())
    }

    /// A ping to `to`; any reply (result or error) proves that everything
    /// sent before it was processed.
    pub async fn ping(&mut self, to: &str, id: &str) -> Result<(), ClientError> {
        let iq = format!(
            "<iq type='get' to='{}' id='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            xml::escape(to),
            xml::escape(id)
        );
        self.send(iq.as_bytes(), "ping").await?;
        self.wait_iq(id, "ping").await.map(|_| ())
    }

    async fn iq_roundtrip(
        &mut self,
        iq: &str,
        id: &str,
        step: &'static str,
    ) -> Result<Vec<u8>, ClientError> {
        self.send(iq.as_bytes(), step).await?;
        let reply = self.wait_iq(id, step).await?;
        if xml::attr(&reply, "type") != Some(b"result") {
            return Err(self.unexpected(step, &reply));
        }
        Ok(reply)
    }

    /// Waits for the iq reply with this id, skipping other stanzas.
    pub async fn wait_iq(&mut self, id: &str, step: &'static str) -> Result<Vec<u8>, ClientError> {
        loop {
            let el = self.wait_element(step).await?;
            if xml::name(&el) == b"iq" && xml::attr(&el, "id") == Some(id.as_bytes()) {
                return Ok(el);
            }
        }
    }

    /// Waits for the next top-level element (with the step's timeout).
    pub async fn wait_element(&mut self, step: &'static str) -> Result<Vec<u8>, ClientError> {
        match self.wait_event(step).await? {
            WaitEvent::Element(el) => Ok(el),
            WaitEvent::Open => Err(ClientError::Closed {
                user: self.user.clone(),
                step,
                detail: Some("unexpected stream restart".into()),
            }),
        }
    }

    async fn wait_event(&mut self, step: &'static str) -> Result<WaitEvent, ClientError> {
        loop {
            match self.next_event(step)? {
                Some(Event::Open) => return Ok(WaitEvent::Open),
                Some(Event::Element(r)) => {
                    let el = self.split.bytes()[r].to_vec();
                    if xml::name(&el) == b"error" && el.starts_with(b"<stream:error") {
                        return Err(ClientError::Closed {
                            user: self.user.clone(),
                            step,
                            detail: Some(String::from_utf8_lossy(&el).into_owned()),
                        });
                    }
                    return Ok(WaitEvent::Element(el));
                }
                Some(Event::Close) => {
                    return Err(ClientError::Closed {
                        user: self.user.clone(),
                        step,
                        detail: None,
                    });
                }
                None => {}
            }
            let limit = self.step_timeout;
            match timeout(limit, self.read_some(step)).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        user: self.user.clone(),
                        step,
                    });
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    return Err(ClientError::Closed {
                        user: self.user.clone(),
                        step,
                        detail: None,
                    });
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// The next complete event already read, if any.
    pub fn next_event(&mut self, _step: &'static str) -> Result<Option<Event>, ClientError> {
        self.split.next_event().map_err(|source| ClientError::Xml {
            user: self.user.clone(),
            source,
        })
    }

    /// The bytes an [`Event::Element`] range indexes.
    pub fn element(&self, range: Range<usize>) -> &[u8] {
        &self.split.bytes()[range]
    }

    /// Reads once from the socket into the splitter; false at end of file.
    pub async fn read_some(&mut self, step: &'static str) -> Result<bool, ClientError> {
        let mut buf = [0u8; 16 * 1024];
        let n = self
            .stream
            .read(&mut buf)
            .await
            .map_err(|source| ClientError::Io {
                user: self.user.clone(),
                step,
                source,
            })?;
        self.split.feed(&buf[..n]);
        Ok(n > 0)
    }

    /// Writes bytes to the socket.
    pub async fn send(&mut self, data: &[u8], step: &'static str) -> Result<(), ClientError> {
        self.stream
            .write_all(data)
            .await
            .map_err(|source| ClientError::Io {
                user: self.user.clone(),
                step,
                source,
            })
    }

    /// Closes the stream, and the TCP connection before the server does
    /// (so the TIME_WAIT state stays on the client side, where Linux reuses
    /// it on loopback, instead of delaying a later connection on the same
    /// port by a SYN retransmission); then waits briefly for the server.
    pub async fn close(mut self) {
        let _ = self.stream.write_all(b"</stream:stream>").await;
        let _ = self.stream.shutdown().await;
        let _ = timeout(Duration::from_secs(2), async {
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

enum WaitEvent {
    Open,
    Element(Vec<u8>),
}

/// The character data directly inside an element (`<success>TEXT</success>`).
fn inner_text(el: &[u8]) -> Option<&[u8]> {
    let start = el.iter().position(|&b| b == b'>')? + 1;
    if el.get(start.wrapping_sub(2)) == Some(&b'/') {
        return Some(b"");
    }
    let len = el[start..].iter().position(|&b| b == b'<')?;
    Some(&el[start..start + len])
}
