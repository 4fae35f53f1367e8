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

use std::collections::HashMap;
use std::time::Instant;

use media_signalling::{MediaKind, Source};
use str0m::media::KeyframeRequestKind;

use super::conference::Conference;
use super::forward::Target;
use super::stats::Counters;
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

/// A source's name: as signalled, else `<owner>-v<index>` (video) or
/// `<owner>-a<index>` (audio), `index` counting the owner's sources of that
/// kind.
pub(crate) fn source_name(owner: &str, source: &Source, index: usize) -> String {
    if !source.name.is_empty() {
        return source.name.clone();
    }
    let kind = match source.kind {
        MediaKind::Audio => 'a',
        MediaKind::Video => 'v',
    };
    format!("{owner}-{kind}{index}")
}

impl Conference {
    /// The active layers of every video source, sorted by owner and name.
    pub fn source_layers(&self) -> Vec<SourceLayers> {
        let Some(now) = self.now else {
            return Vec::new();
        };
        let mut out: Vec<SourceLayers> = self
            .video
            .values()
            .map(|v| SourceLayers {
                owner: v.owner.clone(),
                source_name: v.name.clone(),
                layers: v.meter.layers(now),
            })
            .collect();
        out.sort_by(|a, b| (&a.owner, &a.source_name).cmp(&(&b.owner, &b.source_name)));
        out
    }

    /// A receiver's forwarding targets; asks at once for the key frames the
    /// switches need. Returns the endpoints to poll.
    pub fn set_forwarding(
        &mut self,
        receiver: &str,
        targets: Vec<ForwardingTarget>,
        now: Instant,
        counters: &mut Counters,
    ) -> Vec<String> {
        let map: HashMap<(String, String), LayerId> = targets
            .into_iter()
            .filter_map(|t| t.target.map(|l| ((t.owner, t.source_name), l)))
            .collect();
        let Some(endpoint) = self.endpoints.get_mut(receiver) else {
            return Vec::new();
        };
        endpoint.forwarding = Some(map);
        let mut switches: Vec<u32> = Vec::new();
        let mut streams: Vec<(u32, Target)> = Vec::new();
        for (visible, f) in &endpoint.forwarded {
            if f.kind != MediaKind::Video {
                continue;
            }
            let name = self
                .ssrcs
                .get(visible)
                .map(|i| i.source_name.as_str())
                .unwrap_or_default();
            streams.push((*visible, endpoint.target_for(&f.sender, name)));
        }
        for (visible, target) in streams {
            let Some(f) = endpoint.forwarded.get_mut(&visible) else {
                continue;
            };
            f.forwarder.set_target(target);
            let Some(source) = self.video.get(&visible) else {
                continue;
            };
            let wanted = f.forwarder.wanted(source.meter.active_mask(now));
            if let Some((spatial, _)) = wanted
                && f.forwarder.current() != Some(spatial)
                && let Some(ssrc) = source.layers.get(spatial)
            {
                switches.push(*ssrc);
            }
        }
        let mut touched = Vec::new();
        for ssrc in switches {
            let kind = KeyframeRequestKind::Pli;
            for t in self.request_layer_keyframe(now, ssrc, kind, counters) {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
        }
        self.update_desired_bitrate(receiver);
        if !touched.iter().any(|t| t == receiver) {
            touched.push(receiver.to_string());
        }
        touched
    }
}
