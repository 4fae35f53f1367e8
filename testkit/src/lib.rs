//! # testkit
//!
//! Dev-only (`publish = false`): what the media components' integration
//! tests and the bench share to stand up a Jitsi Meet deployment on lilt
//! and talk to it, so each test says only what it checks. Used as a
//! dev-dependency by `focus-component` and `recorder-component`, and by
//! `bench`; never by a shipped crate.
//!
//! Where to start reading: [`jitsi`] (lilt started in-process with a
//! Jitsi-style config: [`jitsi::JitsiConfig`], [`jitsi::start`]), [`peer`]
//! (an XMPP session on it that waits for the stanzas a test expects),
//! [`media`] (the pieces of a str0m participant that answers the focus's
//! Jingle offer as a browser does: ICE controlled, DTLS active);
//! [`colibri`] stands in for a bridge where a test checks signalling only.

pub mod colibri;
pub mod jitsi;
pub mod media;
pub mod peer;

pub use jitsi::{JitsiConfig, Lilt};
pub use peer::{Peer, el, jingle_action};
