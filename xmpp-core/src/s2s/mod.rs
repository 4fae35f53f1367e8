//! Server-to-server connections (federation), as Prosody 0.12's mod_s2s,
//! mod_dialback and mod_s2s_auth_certs do it (RFC 6120, XEP-0220,
//! XEP-0178, XEP-0368).
//!
//! Where to start reading:
//!
//! - [`incoming::IncomingStream`] and [`outgoing::OutgoingStream`] are the
//!   sans-IO stream state machines: bytes in, [`Action`]s out (bytes to
//!   write, "start TLS now", stanzas to deliver, dialback requests and
//!   answers, "authenticated", "failed");
//! - [`dialback::Dialback`] makes and checks keys with Prosody's
//!   construction over `dialback_secret`;
//! - [`policy::Policy`] holds `s2s_require_encryption`, `s2s_secure_auth`,
//!   `s2s_secure_domains`, `s2s_insecure_domains`; [`certs`] verifies peer
//!   certificates against `ssl = { cafile = ... }` (else the system's roots);
//! - [`resolve`] finds where a domain's server listens: `_xmpps-server._tcp`
//!   (direct TLS) and `_xmpp-server._tcp` SRV records, else the domain's
//!   A/AAAA records on port 5269, through the system resolver configuration
//!   (`/etc/resolv.conf`);
//! - [`manager::S2sManager`] owns the outgoing routes: stanzas for a remote
//!   domain are queued while its connection is set up (at most `s2s_timeout`,
//!   90 s) and bounced with Prosody's errors when it fails
//!   (`remote-server-not-found` when the remote never opened a stream,
//!   `remote-server-timeout` when it did); [`start`] opens the `s2s_ports`
//!   listeners (5269 on `s2s_interfaces`) and hooks the router.
//!
//! - [`connect`]: the staggered parallel connects over a domain's
//!   addresses (happy eyeballs);
//! - [`bidi`]: XEP-0288 bidirectional streams (`s2s_bidi`), one connection
//!   for both directions;
//! - [`filter`]: `s2s_whitelist` / `s2s_blacklist` per host; `reload`
//!   closes the streams a config reload no longer allows.
//!
//! Incoming stanzas enter the router from a [`Session`] of kind
//! [`SessionKind::S2sIn`] whose host is the local host addressed; what the
//! router sends back to it (errors) is routed out to the remote domain.
//!
//! [`Session`]: crate::session::Session
//! [`SessionKind::S2sIn`]: crate::session::SessionKind::S2sIn

pub mod bidi;
pub mod certs;
mod conn;
pub mod connect;
pub mod dialback;
pub mod filter;
pub mod incoming;
pub mod manager;
pub mod outgoing;
pub mod policy;
mod reload;
pub mod resolve;
mod runtime;
#[cfg(test)]
mod tests;

pub use manager::{S2sManager, start};

use crate::error::StreamError;
use crate::stanza::{Element, NS_CLIENT, NS_SERVER};
use crate::stream::{StreamEvent, XmlStream};

/// One end of an s2s stream, as [`feed`] drives it.
pub(crate) trait StreamSide {
    fn xml(&mut self) -> &mut XmlStream;
    fn closed(&self) -> bool;
    /// Must parsing stop after this element (what follows is TLS or a
    /// new stream)?
    fn restarts(e: &Element) -> bool;
    fn event(&mut self, ev: StreamEvent, out: &mut Vec<Action>);
    fn failed(&mut self, out: &mut Vec<Action>, error: StreamError);
}

/// Bytes from the peer, for either end: parsed up to each element that
/// restarts the stream (the bytes after it belong to the new stream),
/// every event handled in order, nothing more once the stream is closed
/// or TLS is to start (a peer that pipelines plain bytes after
/// `<starttls/>` is not served).
pub(crate) fn feed<S: StreamSide>(side: &mut S, data: &[u8]) -> Vec<Action> {
    let mut out = Vec::new();
    if side.closed() {
        return out;
    }
    let mut events = Vec::new();
    let mut rest = data;
    loop {
        let consumed = match side.xml().feed_until(rest, &mut events, S::restarts) {
            Ok(n) => n,
            Err(e) => {
                for ev in events.drain(..) {
                    side.event(ev, &mut out);
                }
                side.failed(&mut out, e);
                return out;
            }
        };
        let restart = events
            .last()
            .is_some_and(|e| matches!(e, StreamEvent::Stanza(el) if S::restarts(el)));
        for ev in events.drain(..) {
            if side.closed() {
                return out;
            }
            side.event(ev, &mut out);
        }
        rest = rest.get(consumed..).unwrap_or_default();
        if out.iter().any(|a| matches!(a, Action::StartTls)) {
            return out;
        }
        if !restart || rest.is_empty() || side.closed() {
            return out;
        }
    }
}

/// Prosody's default port for server-to-server connections.
pub const DEFAULT_PORT: u16 = 5269;

/// What a stream asks its connection to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Write(String),
    /// Write what came before, then run the TLS handshake on the
    /// connection and call `tls_established`.
    StartTls,
    /// An authenticated stanza (now in `jabber:client`) for the router.
    Deliver(Element),
    /// Incoming dialback: ask the authoritative server of `remote` whether
    /// `key` is its key for our stream `id` (sent as `<db:verify>` over an
    /// outgoing stream from `local` to `remote`).
    Verify {
        local: String,
        remote: String,
        id: String,
        key: String,
    },
    /// The answer to a `<db:verify>` we sent, for the incoming stream `id`.
    VerifyResult {
        local: String,
        remote: String,
        id: String,
        valid: bool,
    },
    /// The stream is now authenticated for `remote`.
    Authenticated { remote: String },
    /// An outgoing stream failed (queued stanzas must bounce).
    Failed(String),
    /// Write what came before, then close the connection.
    Close,
}

/// A fresh stream id.
pub(crate) fn new_stream_id() -> String {
    use rand::Rng;
    let b: [u8; 12] = rand::thread_rng().r#gen();
    dialback::hex(&b)
}

/// Stanzas arrive in `jabber:server`; inside lilt they are `jabber:client`.
pub(crate) fn from_server_ns(e: &mut Element) {
    if e.ns() == NS_SERVER {
        e.set_ns(NS_CLIENT);
    }
    for c in e.children_mut() {
        if c.ns() == NS_SERVER {
            from_server_ns(c);
        }
    }
}

/// A stanza as written on an s2s stream: `jabber:client` elements take the
/// stream's default namespace, `jabber:server`.
pub(crate) fn to_server_xml(e: &Element) -> String {
    fn convert(e: &mut Element) {
        if e.ns() == NS_CLIENT {
            e.set_ns(NS_SERVER);
        }
        for c in e.children_mut() {
            if c.ns() == NS_CLIENT {
                convert(c);
            }
        }
    }
    let mut e = e.clone();
    convert(&mut e);
    e.to_xml_in(NS_SERVER)
}
