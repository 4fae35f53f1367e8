//! XEP-0198 stream management, as Prosody's mod_smacks (0.12): acks,
//! resumption and hibernation for client streams on hosts that load
//! `smacks` (`modules_enabled = { "smacks" }`).
//!
//! - [`queue`]: the unacknowledged-stanza queue and its `h` counters
//!   (mod 2^32, `smacks_max_queue_size`).
//! - [`state`]: one stream's state and the elements that answer
//!   `<enable/>`, `<r/>`, `<a/>`, `<resume/>` (sans IO).
//! - `stream.rs` (inside [`crate::c2s::negotiation`]): the [`C2sStream`]
//!   side — features after authentication, the `urn:xmpp:sm:2`/`:3`
//!   elements, counting, the hooks the connection tasks call
//!   ([`C2sStream::smacks_outbound`], `try_hibernate`,
//!   [`C2sStream::take_resumed_outbound`]).
//! - [`registry`]: resumable sessions by resumption id, hibernation (a
//!   session whose connection dropped stays bound and available, its
//!   outbound queue filling, for `smacks_hibernation_time`), the takeover
//!   of a session by the connection that resumes it, and what happens to
//!   unacknowledged stanzas when a session ends for good (offline storage
//!   or `recipient-unavailable` bounces, as Prosody's `delivery/failure`).
//!
//! - `liveness.rs` (also inside `c2s::negotiation`): the
//!   `smacks_max_ack_delay` timer, the forced `<r/>` on a read timeout (a
//!   connection silent after it is dropped, so its session hibernates) and
//!   a resumable stream at server shutdown.
//!
//! Events on the host, as Prosody's: `smacks-hibernation-start` and
//! `smacks-hibernation-end` (origin: the session), `smacks-ack-delayed`
//! (origin; `unacked`: how many wait), `delivery/failure` (origin and
//! stanza; a handler returning true claims the stanza).
//!
//! Offered on TCP, WebSocket and BOSH (a BOSH session silent for
//! `bosh_max_inactivity` hibernates instead of ending). A takeover closes
//! the old connection without a word; what the client sends while it is
//! under way is handled as the resumed session's. A bind of the resource
//! of a hibernating session ends that session at once. At shutdown
//! ([`server_stopping`] and each resumable stream) the `h` counters are
//! kept in `smacks_h` and unacknowledged stanzas stored offline or bounced.
//!
//! [`C2sStream`]: crate::c2s::negotiation::C2sStream
//! [`C2sStream::smacks_outbound`]: crate::c2s::negotiation::C2sStream::smacks_outbound
//! [`C2sStream::take_resumed_outbound`]: crate::c2s::negotiation::C2sStream::take_resumed_outbound

pub mod queue;
pub mod registry;
pub mod state;

use crate::host::Host;
use crate::server::Server;

pub use registry::{server_stopping, username_of_resumable};
pub use state::{SmacksSettings, SmacksState};

pub const NS_SM2: &str = "urn:xmpp:sm:2";
pub const NS_SM3: &str = "urn:xmpp:sm:3";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// The store of `h` values of expired sessions (Prosody's `smacks_h`).
pub const STORE_SMACKS_H: &str = "smacks_h";

/// Is stream management offered on this host (`smacks` loaded)?
pub fn offered_on(host: &Host) -> bool {
    host.has_module("smacks")
}

/// Stream management's namespace for an element's, if it is one.
pub fn sm_xmlns(ns: &str) -> Option<&'static str> {
    match ns {
        NS_SM3 => Some(NS_SM3),
        NS_SM2 => Some(NS_SM2),
        _ => None,
    }
}

/// A fresh resumption id, as Prosody's `util.id.short` (random, URL-safe).
pub fn new_token() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// How many sessions are hibernating now (for statistics and tests).
pub fn hibernating_count(server: &Server) -> usize {
    registry::Registry::of(server).hibernating_count()
}
