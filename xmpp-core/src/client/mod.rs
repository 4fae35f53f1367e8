//! An XMPP client session for lilt's own components (the conference focus,
//! the media bridge, the recorder): the one way they speak to a server,
//! whether they run inside lilt or on another machine.
//!
//! A [`ClientLink`] is a bound, available-or-not client session: stanzas go
//! out through its [`LinkSender`] and arrive through [`ClientLink::recv`].
//! It is made either by [`connect`](fn@connect) (a c2s connection to any XMPP server,
//! lilt or Prosody: STARTTLS, SASL, resource binding, as Jicofo and
//! Videobridge log in) or by [`local`] (an in-process session on a running
//! lilt [`crate::Server`] for an account of one of its hosts, with no socket
//! and no password). The component code above it is the same for both.
//!
//! Parts: `negotiate.rs` (the sans-IO client negotiation: STARTTLS, SASL,
//! binding), `scram.rs` (SCRAM-SHA-1, client side), `tls.rs` (the TLS
//! client configuration), `connect.rs` (the socket and the link's task),
//! `local.rs` (the in-process session), `websocket.rs` (the components'
//! WebSocket connections to each other, with the same TLS).
//!
//! Queues: stanzas for the component wait in a bounded channel
//! ([`connect::INCOMING_QUEUE`] stanzas); while it is full, a connected
//! link stops reading its socket and a local one leaves them in its
//! session's queue. What the component sends is queued without a bound
//! ([`LinkSender::send`] never blocks): it is the component's own output.

pub mod connect;
mod local;
pub mod negotiate;
pub mod scram;
pub mod tls;
pub mod websocket;

pub use connect::connect;
pub use local::local;

use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::jid::Jid;
use crate::stanza::Element;

/// How a standalone component reaches its server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `HOST:PORT` of the server's c2s listener.
    pub address: String,
    /// The account to log in as (`jvb@auth.example.com`); a resource is
    /// bound as the server assigns it unless the JID carries one.
    pub jid: Jid,
    pub password: String,
    /// Accept any server certificate (Jicofo's and Videobridge's
    /// `disable-certificate-verification`).
    pub insecure_tls: bool,
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// Why a client session could not be made or went away.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("TLS with {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error("authentication as {jid} failed: {condition}")]
    Auth { jid: String, condition: String },
    #[error("the server closed the stream: {0}")]
    Stream(String),
    #[error("no local host {0} on this server")]
    UnknownHost(String),
    #[error("{0}")]
    Protocol(String),
}

/// Sends stanzas on a [`ClientLink`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkSender {
    pub(crate) tx: mpsc::UnboundedSender<Element>,
}

impl LinkSender {
    /// Queues a stanza (its `from` is the session's, as the server stamps
    /// it). Returns false once the link has gone. The queue has no bound
    /// (see the module's documentation).
    pub fn send(&self, stanza: Element) -> bool {
        self.tx.send(stanza).is_ok()
    }
}

/// A bound client session.
#[derive(Debug)]
pub struct ClientLink {
    /// The full JID the server bound.
    pub jid: Jid,
    pub(crate) sender: LinkSender,
    pub(crate) incoming: mpsc::Receiver<Element>,
}

impl ClientLink {
    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// The next stanza from the server; `None` once the session has ended.
    pub async fn recv(&mut self) -> Option<Element> {
        self.incoming.recv().await
    }
}
