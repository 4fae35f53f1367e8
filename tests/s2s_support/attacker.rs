//! A hostile server-to-server peer: plain TCP, XML written by hand. What
//! the attacked server answers is read with lilt's own stream parser and
//! boiled down to [`summary`] lines ("db:result type=invalid",
//! "stream-error not-authorized", "closed"), so that lilt's answers and
//! Prosody's can be compared line for line.
//!
//! [`Authoritative`] is the attacker's own server for its domain: it
//! answers every dialback key as valid, so the attacker can authenticate
//! legitimately for the domain it controls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xmpp_core::{Element, StreamEvent, StreamLimits, XmlStream};

pub const NS_DIALBACK: &str = "jabber:server:dialback";
const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// What is waited for at most before a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// The opening tag of a server stream `from` → `to`.
pub fn header(from: &str, to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='{NS_STREAMS}' xmlns:db='{NS_DIALBACK}' \
         from='{from}' to='{to}' version='1.0'>"
    )
}

/// One line saying what `e` is, the same for any server's spelling.
pub fn summary(e: &Element) -> String {
    if e.is("error", NS_STREAMS) {
        let cond = e
            .children()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_string())
            .unwrap_or_default();
        return format!("stream-error {cond}");
    }
    if e.ns() == NS_DIALBACK {
        return format!("db:{} type={}", e.name(), e.type_().unwrap_or("-"));
    }
    let cond = e
        .children()
        .find(|c| c.name() == "error")
        .and_then(|err| err.children().find(|c| c.ns() == NS_STANZA_ERRORS))
        .map(|c| format!(" {}", c.name()))
        .unwrap_or_default();
    format!("{} type={}{cond}", e.name(), e.type_().unwrap_or("-"))
}

/// A raw connection to a server's s2s port.
pub struct Attacker {
    tcp: TcpStream,
    xml: XmlStream,
    events: std::collections::VecDeque<StreamEvent>,
    closed: bool,
    /// The server's stream id (its header's `id`).
    pub stream_id: String,
}

impl Attacker {
    /// Connects to `addr` and opens a stream `from` → `to`; returns once
    /// the server's header and features came.
    pub async fn open(addr: &str, from: &str, to: &str) -> Attacker {
        let tcp = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        let mut a = Attacker {
            tcp,
            xml: XmlStream::new(StreamLimits::default()),
            events: Default::default(),
            closed: false,
            stream_id: String::new(),
        };
        a.send(&header(from, to)).await;
        match a.event().await {
            Some(StreamEvent::Open(h)) => a.stream_id = h.id.unwrap_or_default(),
            other => panic!("{addr}: no stream header but {other:?}"),
        }
        let features = a.element().await;
        assert!(
            features.as_ref().is_some_and(|f| f.name() == "features"),
            "{addr}: no features but {features:?}"
        );
        a
    }

    pub async fn send(&mut self, xml: &str) {
        // The server may have closed already: what it said is read later.
        let _ = self.tcp.write_all(xml.as_bytes()).await;
    }

    /// The next stream event; `None` once the connection ended.
    async fn event(&mut self) -> Option<StreamEvent> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if self.closed {
                return None;
            }
            let n = tokio::time::timeout(PATIENCE, self.tcp.read(&mut buf))
                .await
                .expect("the attacked server said nothing for 20 s")
                .unwrap_or(0);
            if n == 0 {
                self.closed = true;
                continue;
            }
            let mut out = Vec::new();
            let parsed = self.xml.feed(&buf[..n], &mut out);
            self.events.extend(out);
            parsed.unwrap_or_else(|e| panic!("the attacked server sent bad XML: {e}"));
        }
    }

    /// The next depth-1 element; `None` once the stream or connection ended.
    async fn element(&mut self) -> Option<Element> {
        match self.event().await? {
            StreamEvent::Stanza(e) => Some(e),
            StreamEvent::Close => {
                self.closed = true;
                None
            }
            StreamEvent::Open(h) => panic!("a second stream header: {h:?}"),
        }
    }

    /// Sends `xml`, then a probe every server answers while the stream is
    /// open (a `<db:verify>` for a stream id nobody made, from `from` to
    /// `to`); returns what came back before the probe's answer ("open") or
    /// the end of the stream ("closed"), as [`summary`] lines.
    pub async fn exchange(&mut self, xml: &str, from: &str, to: &str) -> Vec<String> {
        self.send(xml).await;
        self.send(&format!(
            "<db:verify from='{from}' to='{to}' id='probe'>probe</db:verify>"
        ))
        .await;
        let mut got = Vec::new();
        loop {
            match self.element().await {
                None => {
                    got.push("closed".to_string());
                    return got;
                }
                Some(e) if e.ns() == NS_DIALBACK && e.id() == Some("probe") => {
                    got.push("open".to_string());
                    return got;
                }
                Some(e) => got.push(summary(&e)),
            }
        }
    }
}

/// The attacker's own authoritative server for its domain, on `addr`:
/// every `<db:verify>` and `<db:result>` it gets is answered valid.
pub struct Authoritative {
    /// How many `<db:verify>` requests came.
    pub verifies: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Authoritative {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Authoritative {
    pub async fn start(addr: &str) -> Authoritative {
        let listener = TcpListener::bind(addr).await.unwrap();
        let verifies = Arc::new(AtomicUsize::new(0));
        let count = verifies.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp, count.clone()));
            }
        });
        Authoritative { verifies, task }
    }

    pub fn verifies(&self) -> usize {
        self.verifies.load(Ordering::SeqCst)
    }
}

async fn serve(mut tcp: TcpStream, verifies: Arc<AtomicUsize>) {
    let mut xml = XmlStream::new(StreamLimits::default());
    let mut buf = [0u8; 4096];
    loop {
        let n = match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut events = Vec::new();
        let parsed = xml.feed(&buf[..n], &mut events);
        let mut reply = String::new();
        for ev in events {
            match ev {
                StreamEvent::Open(h) => {
                    let (to, from) = (h.to.unwrap_or_default(), h.from.unwrap_or_default());
                    let open = header(&to, &from);
                    let open = open.trim_end_matches('>');
                    reply.push_str(&format!("{open} id='authoritative'>"));
                    reply.push_str(
                        "<stream:features><dialback xmlns='urn:xmpp:features:dialback'>\
                         <errors/></dialback></stream:features>",
                    );
                }
                StreamEvent::Stanza(e) if e.ns() == NS_DIALBACK && e.type_().is_none() => {
                    let (from, to) = (e.from().unwrap_or(""), e.to().unwrap_or(""));
                    let id = e.id().map(|i| format!(" id='{i}'")).unwrap_or_default();
                    if e.name() == "verify" {
                        verifies.fetch_add(1, Ordering::SeqCst);
                    }
                    reply.push_str(&format!(
                        "<db:{name} from='{to}' to='{from}'{id} type='valid'>{key}</db:{name}>",
                        name = e.name(),
                        key = e.text_content(),
                    ));
                }
                StreamEvent::Close => return,
                _ => {}
            }
        }
        if tcp.write_all(reply.as_bytes()).await.is_err() || parsed.is_err() {
            return;
        }
    }
}
