//! # media-signalling
//!
//! The media vocabulary that Jingle (client ↔ focus) and Colibri2 (focus ↔
//! bridge) share, as Jitsi writes it: payload types, RTP header extensions,
//! ICE-UDP transports with DTLS fingerprints, and sources with their SSRC
//! groups. lilt's focus, bridge and recorder all read and write these
//! elements; none of them depends on another, only on this crate.
//!
//! Where to start reading: [`types`] (plain data), then [`xml`] (each type to
//! and from its element, keeping Jitsi's namespaces and attribute names) and
//! [`json`] (sources in the compact JSON form of `<json-message>`).

pub mod json;
pub mod types;
pub mod xml;

pub use types::*;
