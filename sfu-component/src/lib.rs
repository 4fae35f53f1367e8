//! # sfu-component
//!
//! lilt's media bridge: a selective forwarding unit that speaks Jitsi
//! Videobridge's protocols (Colibri2 over XMPP, brewery presence with stats,
//! the colibri-ws bridge channel) and forwards media with str0m.
pub mod allocation;
pub mod brewery;
pub mod bridge;
pub mod channel;
pub mod cli;
pub mod colibri2;
pub mod conference;
pub mod host_addresses;
pub mod http;
pub mod media;
pub mod run;
pub mod stats;
