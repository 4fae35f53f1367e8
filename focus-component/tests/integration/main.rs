//! focus-component's integration tests, one binary (one link, one process): each file
//! below is a module; `cargo test -p focus-component --test integration FILE::` runs one.

mod common;

mod bridges;
mod conference_iq;
mod garbage;
mod ice_restart;
mod jibri;
mod leave_and_mute;
mod offer_golden;
mod relay_call;
mod relays;
mod restart;
mod selection;
mod sources;
mod stats;
mod with_lilt;
mod with_prosody;
