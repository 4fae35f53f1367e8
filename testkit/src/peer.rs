//! An XMPP session on an in-process lilt (or any [`ClientLink`]) as the
//! tests drive it: send stanzas written as XML, wait for the first one
//! matching what the test expects (keeping the others for later).

use std::sync::Arc;
use std::time::Duration;

use xmpp_core::client::{ClientLink, LinkSender, local};
use xmpp_core::stream::parse_element;
use xmpp_core::{Element, Jid};

/// A stanza from test XML (without the stream's default language).
pub fn el(xml: &str) -> Element {
    let mut e = parse_element(xml).unwrap_or_else(|e| panic!("bad test XML {xml}: {e:?}"));
    e.set_attr("xml:lang", None);
    e
}

/// The `action` of a Jingle IQ.
pub fn jingle_action(e: &Element) -> Option<&str> {
    e.get_child("jingle", "urn:xmpp:jingle:1")?
        .get_attr("action")
}

/// One session and the stanzas it received that no expectation took yet.
pub struct Peer {
    pub link: ClientLink,
    pub tx: LinkSender,
    pub seen: Vec<Element>,
    /// How long [`Peer::expect`] waits.
    pub timeout: Duration,
    /// Whether IQ sets and gets that no expectation matches are answered
    /// with an empty result (as a browser acks the focus's source-add).
    pub ack_iqs: bool,
}

impl Peer {
    pub fn new(link: ClientLink) -> Peer {
        let tx = link.sender();
        Peer {
            link,
            tx,
            seen: Vec::new(),
            timeout: Duration::from_secs(15),
            ack_iqs: false,
        }
    }

    /// An in-process session of `server` as `jid` (no presence sent).
    pub fn local(server: &Arc<xmpp_core::Server>, jid: &str) -> Peer {
        Peer::new(local(server, &Jid::parse(jid).unwrap()).unwrap())
    }

    pub fn send(&self, xml: &str) {
        assert!(self.tx.send(el(xml)));
    }

    /// The first stanza (already seen or arriving within `timeout`)
    /// matching `pred`; panics with what was seen otherwise.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        self.expect_within(self.timeout, what, pred).await
    }

    pub async fn expect_within(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Element) -> bool,
    ) -> Element {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.link.recv()).await {
                Ok(Some(s)) if pred(&s) => return s,
                Ok(Some(s)) => {
                    if self.ack_iqs && is_request(&s) {
                        assert!(self.tx.send(s.reply()));
                    }
                    self.seen.push(s)
                }
                Ok(None) => panic!("link ended waiting for {what}"),
                Err(_) => panic!(
                    "timed out waiting for {what}; seen:\n{}",
                    self.seen
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// Takes what arrived meanwhile (without waiting), answering IQ
    /// requests when [`Peer::ack_iqs`] is set.
    pub async fn ack_pending(&mut self) {
        while let Ok(Some(s)) =
            tokio::time::timeout(Duration::from_millis(1), self.link.recv()).await
        {
            if self.ack_iqs && is_request(&s) {
                assert!(self.tx.send(s.reply()));
            } else {
                self.seen.push(s);
            }
        }
    }
}

fn is_request(s: &Element) -> bool {
    s.name() == "iq" && matches!(s.type_(), Some("set") | Some("get"))
}
