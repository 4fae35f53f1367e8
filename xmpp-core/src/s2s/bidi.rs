//! Bidirectional server-to-server streams (XEP-0288), as Prosody 0.12's
//! mod_s2s_bidi (enabled by `modules_enabled = { "s2s_bidi" }`):
//!
//! - the receiving server offers `<bidi xmlns='urn:xmpp:features:bidi'/>`
//!   among the features of an unauthenticated stream (once encrypted when
//!   `s2s_require_encryption`);
//! - the initiating server answers the offer with `<bidi xmlns='urn:xmpp:bidi'/>`
//!   before it authenticates;
//! - once authenticated, the receiving server sends its stanzas for the
//!   initiating domain over that same stream (the manager prefers it to
//!   opening a route of its own), and the initiating server accepts
//!   stanzas from the remote domain on its outgoing stream.
//!
//! One TCP connection then carries both directions.

use super::policy::Policy;
use crate::stanza::{Element, NS_SERVER};

/// The stream feature.
pub const NS_BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
/// The request element.
pub const NS_BIDI: &str = "urn:xmpp:bidi";

/// May bidi be offered or requested on a stream in this state?
pub fn allowed(policy: &Policy, secure: bool) -> bool {
    policy.bidi && (secure || !policy.require_encryption)
}

/// The feature the receiving server offers.
pub fn feature() -> Element {
    Element::new("bidi", NS_BIDI_FEATURE)
}

/// The initiating server's request.
pub fn request_xml() -> String {
    Element::new("bidi", NS_BIDI).to_xml_in(NS_SERVER)
}
