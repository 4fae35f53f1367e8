//! # recorder-component
//!
//! lilt's recorder: what Jibri does, without a browser. It speaks Jibri's
//! protocol to the focus (Jicofo or lilt's focus) from the JibriBrewery
//! room, joins each recorded conference as a hidden participant from the
//! recorder domain, and writes each recording as one WebM — the dominant
//! speaker's video copied, everyone's audio mixed into one Opus track — in
//! Jibri's directory layout. Many recordings run at once in one process.
//!
//! Where to start reading: [`recorder`] (the sans-IO [`Recorder`]: Jibri's
//! IQs and presences, stanzas and time in, stanzas, events and a deadline
//! out), with its settings and events in [`events`], its wire shapes in
//! [`jibri_iq`], [`brewery`], [`conference`] and [`replies`]; then
//! [`recording`] (the media of one recording: RTP in,
//! WebM out), built on [`rtp`], [`sources`] (SSRC to endpoint from the
//! focus's Jingle), [`depacketizer`] (video frames from RTP, with
//! [`vp8`], [`vp9`] and [`av1`] for each payload format), [`timeline`]
//! (one clock), [`speaker`] (video switching at keyframes), [`mixer`]
//! (Opus decode, mix, encode) and [`webm`]/[`ebml`] (the file);
//! [`participant_files`] optionally adds one file per participant. [`files`]
//! is the directory layout, metadata.json, the finalize script and the
//! disk-space check, [`recordings`] acts on the recorder's events with
//! them; [`media_link`] answers the focus's Jingle offer as a
//! receive-only browser (str0m, sans-IO) and [`media_runtime`] gives it
//! its UDP socket and [`bridge_channel`] (colibri-ws); [`run`] is the thin tokio runtime
//! and [`cli`] `lilt recorder`'s flags.

pub mod av1;
pub mod bits;
pub mod brewery;
pub mod bridge_channel;
pub mod cli;
pub mod conference;
pub mod depacketizer;
pub mod ebml;
pub mod events;
pub mod files;
pub mod jibri_iq;
pub mod media_link;
pub mod media_runtime;
pub mod mixer;
pub mod ns;
pub mod participant_files;
pub mod recorder;
pub mod recording;
pub mod recordings;
pub mod replies;
pub mod rtp;
pub mod run;
pub mod sources;
pub mod speaker;
pub mod timeline;
pub mod vp8;
pub mod vp9;
pub mod webm;

pub use cli::RecorderArgs;
pub use recorder::{Output, Recorder, RecorderEvent, RecorderOptions, StopReason};
pub use recording::{Media, Recording};
pub use run::run_with_links;
