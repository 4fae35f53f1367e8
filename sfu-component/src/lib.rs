//! # sfu-component
//!
//! lilt's media bridge: a selective forwarding unit that speaks Jitsi
//! Videobridge's protocols (Colibri2 over XMPP, brewery presence with stats,
//! the colibri-ws bridge channel) and forwards media with str0m, so that a
//! real Jicofo, or lilt's own focus, uses it exactly as it uses Videobridge.
//!
//! ## Where to start reading
//!
//! - [`bridge::Bridge`]: the sans-IO bridge. Stanzas, bridge-channel
//!   messages, UDP datagrams and time go in; stanzas, channel messages,
//!   datagrams and the next deadline come out. It owns the
//!   [`media::MediaCore`] (ICE/DTLS/SRTP per endpoint on str0m, forwarding
//!   by SSRC, dominant speaker) and the signalling state
//!   ([`conference::Conference`]).
//! - [`colibri2`]: `conference-modify` → typed request, `conference-modified`
//!   and Videobridge's error answers; [`channel`]: the bridge-channel JSON
//!   messages of both client generations; [`allocation`]: Videobridge's
//!   bandwidth allocation per receiver (layers within constraints and the
//!   bandwidth estimate, last-N) and the messages it implies (forwarded
//!   sources, sender constraints);
//!   [`brewery`] and [`stats`]: the brewery presence with Videobridge's stat
//!   names, the health-check IQ.
//! - [`relay`]: bridge-to-bridge relays (one conference over several
//!   bridges): the Colibri2 `<relay>` shapes accepted, then
//!   `bridge/relay.rs`, `bridge/relay_channel.rs` (colibri-relay-ws) and
//!   `media/relay.rs` (the relay's str0m `Rtc`).
//! - [`run`]: the thin tokio runtime (one task owning the bridge, the UDP
//!   socket, the XMPP link and the timer); [`http`]: colibri-ws,
//!   `/colibri/stats`, `/about/health`, `/metrics`; [`cli`]: `lilt bridge`.
//!
//! ## Running it
//!
//! In-process, lilt gives [`run::run_with_link`] an in-process client
//! session (`xmpp_core::client::local`) and mounts
//! [`run::RunningBridge::router`] on its HTTP server (or sets
//! [`run::BridgeOptions::http`]). Standalone, [`cli::run`] logs in with
//! `xmpp_core::client::connect` as any XMPP client of any server.
//!
//! ## No data channel
//!
//! The bridge channel is served over WebSocket only (colibri-ws). Jicofo
//! offers no `data` content when SCTP is disabled (`enable-sctp=false`), and
//! both lib-jitsi-meet generations then use the `<web-socket url>` of the
//! transport; a Colibri2 endpoint asking for `<sctp>` is answered
//! `feature-not-implemented`, as Videobridge does when SCTP is not
//! configured.
pub mod allocation;
pub mod brewery;
pub mod bridge;
pub mod channel;
pub mod cli;
pub mod colibri2;
pub mod conference;
pub mod host_addresses;
pub mod http;
pub mod identity;
pub mod media;
pub mod relay;
pub mod run;
pub mod stats;
