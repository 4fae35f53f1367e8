//! The bridge channel: the JSON messages an endpoint and the bridge exchange
//! over colibri-ws (`colibriClass` names as Videobridge's `message` package),
//! for both client generations lilt serves — current lib-jitsi-meet
//! (source names: `ReceiverVideoConstraints` keyed by source,
//! `SourceVideoTypeMessage`, `ForwardedSources`, `SenderSourceConstraints`)
//! and the 2021 one (2.6726: constraints keyed by endpoint id,
//! `ReceiverVideoConstraint`, `SelectedEndpointsChangedEvent`,
//! `VideoTypeMessage`, `LastNEndpointsChangeEvent`,
//! `SenderVideoConstraints`).
//!
//! [`incoming`] parses what an endpoint sends; [`outgoing`] writes what the
//! bridge sends. Both are plain functions over strings, no state.

pub mod incoming;
pub mod outgoing;

pub use incoming::{
    AudioSubscription, ChannelError, ClientMessage, ReceiverConstraints, VideoConstraints,
    parse_client_message,
};

/// The largest message the bridge reads from an endpoint (bytes). Larger
/// ones are dropped unread; Videobridge's Jetty limit is of the same order.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
