//! # focus-component
//!
//! lilt's conference focus: what Jicofo does, speaking Jicofo's protocols,
//! so that a real Jicofo could take its place. It logs in as
//! `focus@auth.<domain>` (reached by clients through `client_proxy` at
//! `focus.<domain>`), answers the conference IQ, joins each room as owner
//! with the nick `focus`, picks a bridge from the brewery room, allocates
//! each participant's endpoint with Colibri2 and hands the participant its
//! Jingle session, in Jicofo's layout.
//!
//! Where to start reading: [`focus`] (the sans-IO [`Focus`]: stanzas and
//! time in, stanzas and a deadline out), then the concept files it
//! dispatches to: [`conference_iq`], [`occupants`], [`invite`], [`jingle`],
//! [`restart`] (re-invites as Jicofo's RestartJingle, restart rate limit),
//! [`mute`], [`jibri`] (recorder brokering); the wire shapes are in [`offer`] (session-initiate),
//! [`colibri`] (bridge requests), [`codecs`] (Jicofo's codec table),
//! [`sources`] (validation), [`bridges`] (the brewery and its options) and
//! [`selection`] (Jicofo's strategies), [`relays`] (a conference over
//! several bridges). [`run`] and [`cli`] are the thin tokio runtime and
//! `lilt focus`'s flags.

pub mod bridges;
pub mod cli;
pub mod codecs;
pub mod colibri;
pub mod conference_iq;
pub mod focus;
pub mod invite;
pub mod jibri;
pub mod jingle;
pub mod mute;
pub mod ns;
pub mod occupants;
pub mod offer;
pub mod participant;
pub mod relays;
pub mod restart;
pub mod room;
pub mod run;
pub mod selection;
pub mod sources;
pub mod stats;

pub use cli::{FocusArgs, FocusError, run};
pub use focus::{AuthOptions, Focus, FocusOptions};
pub use run::run_with_link;
