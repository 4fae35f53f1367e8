//! The interface between the media core and bandwidth allocation: what the
//! core measures of every sender's layers ([`MediaCore::source_layers`]),
//! what allocation decides per receiver ([`MediaCore::set_forwarding`],
//! [`MediaCore::set_audio_subscription`]), and the events on which it
//! should decide again ([`super::MediaEvent::BandwidthEstimate`],
//! [`super::MediaEvent::LayersChanged`]).
//!
//! Sources are named as the focus signalled them (`Source::name`); a source
//! signalled without a name (2021 clients) is called `<owner>-v<i>`, `i`
//! being its index among the owner's video sources, as `allocation.rs`
//! names it.
//!
//! Until `set_forwarding` is called for a receiver, that receiver gets
//! every video source at its highest active layer with every temporal
//! layer (the behaviour before allocation existed).

use std::time::Instant;

use super::{MediaCore, MediaError};

/// One layer of a video source.
///
/// `spatial` is the index in the source's `SIM` group, lowest resolution
/// first (0 for a source without simulcast). `temporal` is the highest
/// temporal id forwarded (VP8 TID; frames of higher ids are dropped); a
/// stream without temporal layering only has temporal 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId {
    pub spatial: u8,
    pub temporal: u8,
}

impl LayerId {
    pub fn new(spatial: u8, temporal: u8) -> LayerId {
        LayerId { spatial, temporal }
    }
}

/// What the core measured of one incoming layer (over about the last
/// second).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub layer: LayerId,
    /// Frame height from the last VP8 key frame of the spatial layer; 0 if
    /// not known (no key frame seen yet, or a codec the core does not
    /// parse).
    pub height: u32,
    /// Frames per second of this temporal layer and all lower ones of the
    /// same spatial layer.
    pub frame_rate: f64,
    /// Bits per second, cumulative as in Videobridge: `{s, t}` counts every
    /// temporal id `<= t` of spatial layer `s`.
    pub bitrate_bps: u64,
}

/// The active layers of one video source, lowest first (by spatial, then
/// temporal). Only layers that carried packets within about the last
/// second are listed; a source with none listed is not sending.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLayers {
    /// The endpoint that sends the source.
    pub owner: String,
    pub source_name: String,
    pub layers: Vec<LayerInfo>,
}

/// What one receiver gets of one video source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingTarget {
    pub owner: String,
    pub source_name: String,
    /// The layer to forward, `None` to suspend the source for this
    /// receiver. A spatial layer that is not active falls back to the
    /// highest active one below it (else the lowest active one).
    pub target: Option<LayerId>,
}

/// Which audio sources a receiver gets (ReceiverAudioSubscription); audio
/// sources are named as video ones (`<owner>-a<i>` when unnamed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSubscription {
    #[default]
    All,
    /// Only these sources.
    Include(Vec<String>),
    /// Every source but these.
    Exclude(Vec<String>),
}

impl AudioSubscription {
    /// Whether a source of this name is forwarded.
    pub fn includes(&self, source_name: &str) -> bool {
        match self {
            AudioSubscription::All => true,
            AudioSubscription::Include(names) => names.iter().any(|n| n == source_name),
            AudioSubscription::Exclude(names) => !names.iter().any(|n| n == source_name),
        }
    }
}

impl MediaCore {
    /// The active layers of every video source of the conference (empty
    /// for an unknown conference).
    pub fn source_layers(&self, conference: &str) -> Vec<SourceLayers> {
        self.conferences
            .get(conference)
            .map(|c| c.source_layers())
            .unwrap_or_default()
    }

    /// Sets what `receiver` gets of the video sources: each source listed
    /// with `Some(layer)` is forwarded at that layer (switching up at a key
    /// frame of the target, which is requested; switching down at the next
    /// key frame of the lower layer, also requested), every other video
    /// source is suspended for this receiver. Replaces the previous call's
    /// targets. `now` rate-limits the keyframe requests it causes.
    pub fn set_forwarding(
        &mut self,
        conference: &str,
        receiver: &str,
        targets: Vec<ForwardingTarget>,
        now: Instant,
    ) -> Result<(), MediaError> {
        let conf = super::conference_of(&mut self.conferences, conference, receiver)?;
        let touched = conf.set_forwarding(receiver, targets, now, &mut self.counters);
        for id in touched {
            conf.drive(now, &id, &mut self.outputs, &mut self.counters);
        }
        Ok(())
    }

    /// Which audio sources `receiver` gets (all until called).
    pub fn set_audio_subscription(
        &mut self,
        conference: &str,
        receiver: &str,
        subscription: AudioSubscription,
    ) -> Result<(), MediaError> {
        let conf = super::conference_of(&mut self.conferences, conference, receiver)?;
        if let Some(e) = conf.endpoints.get_mut(receiver) {
            e.audio_subscription = subscription;
        }
        Ok(())
    }

    /// The last bandwidth estimate for the link towards `endpoint`, in bits
    /// per second (`None` before str0m has one).
    pub fn bandwidth_estimate(&self, conference: &str, endpoint: &str) -> Option<u64> {
        self.conferences
            .get(conference)?
            .endpoints
            .get(endpoint)?
            .bandwidth_estimate
    }
}
