//! Bridge-to-bridge relays (Videobridge's "Octo" over ICE/DTLS): one
//! conference spread over several bridges. Each bridge holds a [`Relay`]
//! per other bridge of the conference; local endpoints' media goes out on
//! each relay with the senders' original SSRCs, and media arriving on a
//! relay is forwarded to local endpoints as if its senders (the *relayed
//! endpoints*) were here.
//!
//! Start reading at `request.rs` (the Colibri2 `<relay>` element and its
//! answer), then `bridge/relay.rs` (how the bridge applies it),
//! `media/relay.rs` (the relay's str0m `Rtc` in the media core: every layer
//! of local senders goes out unchanged, the peer bridge chooses layers for
//! its own receivers), `bridge/relay_channel.rs` (the relay bridge channel:
//! EndpointMessage, SourceVideoTypeMessage, AddReceiver/RemoveReceiver) and
//! `ws_client.rs` (its runtime client side; the server side is the
//! `/colibri-relay-ws/` route of `http.rs`).
//!
//! Relayed endpoints are endpoints of the signalling conference with
//! `relay` set: senders for allocation and dominant speaker (their audio
//! levels count), never receivers here, not counted in the stats. What the
//! peer's receivers want of a local source (`AddReceiver`) is given to the
//! first relayed endpoint of that relay as its receiver constraints, so the
//! local sender is asked for it (`SenderSourceConstraints`).
//!
//! Not done: relays over SCTP, a unique port per relay, relaying between
//! relays (a mesh of three or more bridges works, as every bridge has a
//! relay to every other; a chain does not), dropping layers no peer
//! receiver needs before the relay (every layer of every local sender
//! crosses each relay), translating SSRCs of relayed endpoints that clash
//! with local ones (refused, `bad-request`).
//!
//! # The Colibri2 stanzas this bridge accepts (what Jicofo sends)
//!
//! All inside `<iq type='set'><conference-modify xmlns='jitsi:colibri2'
//! meeting-id='…'>` for a conference that exists on this bridge (the focus
//! creates it with a local endpoint first; a relay in a request that
//! creates the conference is fine too). `id` of `<relay>` is the *other*
//! bridge's `relay_id` (its brewery stat).
//!
//! **Create** (one per peer bridge; `initiator` is true on exactly one
//! side):
//!
//! ```xml
//! <relay id='<peer relay_id>' create='true' mesh-id='0'>
//!   <media type='audio'> payload-types, rtp-hdrexts (as for endpoints) </media>
//!   <media type='video'> … </media>
//!   <endpoints>
//!     <endpoint id='<peer endpoint>' create='true' stats-id='…'>
//!       <capability name='source-names'/>
//!       <sources> <media-source type='audio|video' id='<source name>'>
//!         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='…' name='…'/>
//!         <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='SIM|FID'>…</ssrc-group>
//!       </media-source> </sources>
//!     </endpoint>
//!   </endpoints>
//!   <transport use-unique-port='<initiator>' ice-controlling='<initiator>'/>
//! </relay>
//! ```
//!
//! `<endpoints>` may be empty or absent; `<endpoint>` directly under
//! `<relay>` is read too. `<sctp>` inside `<transport>` is refused
//! (`feature-not-implemented`, "SCTP is not supported for relays.", as
//! Videobridge). `use-unique-port` is accepted and ignored: relays share
//! the bridge's one UDP port (demultiplexed by ICE ufrag, then address).
//!
//! **Answer** to a create:
//!
//! ```xml
//! <conference-modified xmlns='jitsi:colibri2' meeting-id='…'>
//!   <relay id='<peer relay_id>'>
//!     <transport>
//!       <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='…' pwd='…' rtcp-mux='true'>
//!         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>…</fingerprint>
//!         <candidate … type='host'/>
//!         <web-socket xmlns='http://jitsi.org/protocol/colibri'
//!             url='<ws base>/colibri-relay-ws/<bridge-id>/<conference-id>/<peer relay_id>?pwd=…'/>
//!       </transport>
//!     </transport>
//!   </relay>
//! </conference-modified>
//! ```
//!
//! (the `web-socket` URL base is the colibri-ws base with `colibri-ws`
//! replaced by `colibri-relay-ws`.)
//!
//! **Peer transport** (the focus copies each side's answered transport to
//! the other, forcing the DTLS role):
//!
//! ```xml
//! <relay id='<peer relay_id>'>
//!   <transport>
//!     <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag pwd>
//!       <fingerprint hash='sha-256' setup='active|passive'>…</fingerprint>
//!       <candidate …/>
//!       [<web-socket url='…'/>  only to the side that connects]
//!     </transport>
//!   </transport>
//! </relay>
//! ```
//!
//! `setup='active'` makes this bridge the DTLS client of the relay (the
//! `initiator` side), `passive` the server; `actpass` or no setup: server.
//! ICE role: `ice-controlling` of the create. The side given a
//! `<web-socket>` connects the relay bridge channel to it.
//!
//! **Relayed endpoints** later (answered with `<relay id/>` only):
//!
//! ```xml
//! <relay id='<peer relay_id>'><endpoints>
//!   <endpoint id='…' create='true' stats-id='…'><sources>…</sources></endpoint>   <!-- new -->
//!   <endpoint id='…'><sources>…</sources></endpoint>                              <!-- new sources -->
//!   <endpoint id='…' expire='true'/>                                               <!-- gone -->
//! </endpoints></relay>
//! ```
//!
//! **Expire**: `<relay id='…' expire='true'/>`, answered `<relay id='…'
//! expire='true'/>` (unknown relays too).
//!
//! Errors, as Videobridge: create of an existing relay → `conflict`
//! "Relay with ID … already exists"; create without `<transport>` →
//! `bad-request` "Attempt to create relay … with no <transport>"; update
//! of an unknown relay → `bad-request` "Unknown relay …"; a relayed SSRC
//! already used in the conference → `bad-request`.

pub mod request;
pub mod ws_client;

pub use request::{RelayAnswer, RelayRequest, relay_answer_element};
