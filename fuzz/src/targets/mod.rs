//! One file per parser under fuzz.

pub mod av1_dd;
pub mod bosh;
pub mod bridge_channel;
pub mod config;
pub mod datfile;
pub mod jid;
pub mod jwt;
pub mod media;
pub mod sasl;
pub mod signalling;
pub mod websocket;
pub mod xml_stream;
