//! The allocation of one source to one receiver (Videobridge's
//! `SingleSourceAllocation`): which of the source's layers are worth
//! considering under the receiver's constraints, which of them is
//! "preferred" (allocated eagerly for an on-stage source) and which one
//! may be oversent, and the step-by-step improvement of the chosen layer
//! as bandwidth allows.

use super::config::AllocationConfig;
use super::settings::Constraints;
use super::source::{Layer, SourceDesc, VideoType};
use crate::media::LayerId;

/// The layers considered for one source, ascending by preference.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsideredLayers {
    pub layers: Vec<Layer>,
    /// Allocated eagerly up to this index (on stage).
    pub preferred: Option<usize>,
    /// May be chosen beyond the estimate (on-stage screen share).
    pub oversend: Option<usize>,
}

impl ConsideredLayers {
    /// The last one: what the receiver would get with unlimited bandwidth.
    pub fn ideal(&self) -> Option<&Layer> {
        self.layers.last()
    }
}

/// Videobridge's `getPreferred`: a receiver that wants more than a
/// thumbnail gets the on-stage preferred height and frame rate; above
/// that height, frame rate is favoured over resolution.
fn preferred(constraints: &Constraints, config: &AllocationConfig) -> (i64, f64) {
    if constraints.max_height > 180 || !constraints.height_is_limited() {
        (
            config.onstage_preferred_height,
            config.onstage_preferred_framerate,
        )
    } else {
        (-1, -1.0)
    }
}

/// The layers of a camera source to consider: every layer below the
/// preferred height (all its frame rates), those up to the maximum height
/// with at least the preferred frame rate, and the lowest resolution
/// always; only layers being received, unless none is.
pub fn camera_layers(
    layers: &[Layer],
    constraints: &Constraints,
    config: &AllocationConfig,
) -> ConsideredLayers {
    let Some(min_height) = layers.iter().map(|l| l.height).min() else {
        return ConsideredLayers::default();
    };
    let max_fps = layers.iter().map(|l| l.frame_rate).fold(f64::MIN, f64::max);
    let none_active = layers.iter().all(|l| l.bitrate_bps <= 0);
    let (pref_height, pref_fps) = preferred(constraints, config);
    let pref_fps = if max_fps > 0.0 {
        max_fps.min(pref_fps)
    } else {
        pref_fps
    };
    let considered: Vec<Layer> = layers
        .iter()
        .filter(|l| {
            let below_preferred = l.height < pref_height;
            let within_max = !constraints.height_is_limited() || l.height <= constraints.max_height;
            let enough_fps = l.frame_rate < 0.0 || l.frame_rate >= pref_fps;
            below_preferred || (within_max && enough_fps) || l.height == min_height
        })
        .filter(|l| none_active || l.bitrate_bps > 0)
        .copied()
        .collect();
    let pref_height = pref_height.max(min_height);
    let preferred = considered.iter().rposition(|l| l.height <= pref_height);
    ConsideredLayers {
        layers: considered,
        preferred,
        oversend: None,
    }
}

/// The layers of a screen share to consider: resolution over frame rate;
/// the highest layer is preferred (it goes before every other source) and,
/// on stage, the lowest-bit-rate layer of the highest resolution may be
/// oversent.
pub fn screen_share_layers(
    layers: &[Layer],
    constraints: &Constraints,
    on_stage: bool,
    config: &AllocationConfig,
) -> ConsideredLayers {
    let active: Vec<Layer> = {
        let a: Vec<Layer> = layers
            .iter()
            .filter(|l| l.bitrate_bps > 0)
            .copied()
            .collect();
        if a.is_empty() { layers.to_vec() } else { a }
    };
    let mut considered: Vec<Layer> = if constraints.height_is_limited() {
        active
            .iter()
            .filter(|l| l.height <= constraints.max_height)
            .copied()
            .collect()
    } else {
        active.clone()
    };
    if considered.is_empty() {
        let Some(min_height) = active.iter().map(|l| l.height).min() else {
            return ConsideredLayers::default();
        };
        considered = active
            .iter()
            .filter(|l| l.height == min_height)
            .copied()
            .collect();
        // Several encodings of one resolution and unknown frame rate (VP9
        // style): a thumbnail only needs the first.
        if !on_stage && considered.first().is_some_and(|l| l.frame_rate < 0.0) {
            considered.truncate(1);
        }
    }
    let oversend = if on_stage && config.allow_oversend_onstage {
        let top = considered.iter().map(|l| l.height).max();
        considered
            .iter()
            .enumerate()
            .filter(|(_, l)| Some(l.height) == top)
            .min_by_key(|(_, l)| l.bitrate_bps)
            .map(|(i, _)| i)
    } else {
        None
    };
    ConsideredLayers {
        preferred: considered.len().checked_sub(1),
        oversend,
        layers: considered,
    }
}

/// One source's allocation while the allocator runs.
#[derive(Debug, Clone)]
pub struct SourceAllocation {
    pub owner: String,
    pub name: String,
    pub video_type: VideoType,
    /// The receiver's effective constraints for this source.
    pub constraints: Constraints,
    pub on_stage: bool,
    pub considered: ConsideredLayers,
    /// Index into `considered.layers`.
    pub target: Option<usize>,
}

impl SourceAllocation {
    pub fn new(
        source: &SourceDesc,
        constraints: Constraints,
        on_stage: bool,
        config: &AllocationConfig,
    ) -> SourceAllocation {
        let considered = if constraints.max_height == 0 || source.layers.is_empty() {
            ConsideredLayers::default()
        } else {
            match source.video_type {
                VideoType::Camera => camera_layers(&source.layers, &constraints, config),
                VideoType::Desktop | VideoType::DesktopHighFps => {
                    screen_share_layers(&source.layers, &constraints, on_stage, config)
                }
                VideoType::None => ConsideredLayers::default(),
            }
        };
        SourceAllocation {
            owner: source.owner.clone(),
            name: source.name.clone(),
            video_type: source.video_type,
            constraints,
            on_stage,
            considered,
            target: None,
        }
    }

    fn layer(&self, index: Option<usize>) -> Option<&Layer> {
        index.and_then(|i| self.considered.layers.get(i))
    }

    pub fn target_layer(&self) -> Option<&Layer> {
        self.layer(self.target)
    }

    pub fn target_bitrate(&self) -> i64 {
        self.target_layer().map_or(0, |l| l.bitrate_bps)
    }

    pub fn ideal_layer(&self) -> Option<&Layer> {
        self.considered.ideal()
    }

    pub fn ideal_bitrate(&self) -> i64 {
        self.ideal_layer().map_or(0, |l| l.bitrate_bps)
    }

    pub fn has_reached_preferred(&self) -> bool {
        match (self.target, self.considered.preferred) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(t), Some(p)) => t >= p,
        }
    }

    /// In the receiver's allocation but given no layer although it is
    /// being sent (logged and counted by Videobridge).
    pub fn is_suspended(&self) -> bool {
        self.target.is_none()
            && self
                .considered
                .layers
                .first()
                .is_some_and(|l| l.bitrate_bps > 0)
    }

    pub fn target_id(&self) -> Option<LayerId> {
        self.target_layer().map(|l| l.id)
    }

    /// One improvement step within `remaining_bps` more than the current
    /// target's bit rate: eagerly up to the preferred layer for an
    /// on-stage source not allocated yet, else one layer up; then on to
    /// any higher layer that costs no more; then, if allowed, oversending.
    /// Returns the bit rate it took (the new target's minus the old one's).
    pub fn improve(
        &mut self,
        remaining_bps: i64,
        allow_oversending: bool,
        config: &AllocationConfig,
    ) -> i64 {
        let initial = self.target_bitrate();
        let max_bps = remaining_bps.saturating_add(initial);
        let layers = &self.considered.layers;
        if layers.is_empty() {
            return 0;
        }
        match (self.target, self.considered.preferred) {
            (None, Some(preferred)) if self.on_stage => {
                for (i, l) in layers.iter().enumerate() {
                    if i > preferred || max_bps < l.bitrate_bps {
                        break;
                    }
                    self.target = Some(i);
                }
            }
            _ => {
                let next = self.target.map_or(0, |t| t + 1);
                if layers.get(next).is_some_and(|l| l.bitrate_bps < max_bps) {
                    self.target = Some(next);
                }
            }
        }
        if let Some(t) = self.target
            && let Some(current) = layers.get(t)
            && let Some(better) = (t + 1..layers.len()).rev().find(|&i| {
                layers
                    .get(i)
                    .is_some_and(|l| l.bitrate_bps <= current.bitrate_bps)
            })
        {
            // A better layer that costs no more (a higher resolution at a
            // lower frame rate measured cheaper): take it.
            self.target = Some(better);
        }
        if allow_oversending && let Some(oversend) = self.considered.oversend {
            let from = self.target.map_or(0, |t| t + 1);
            if from <= oversend {
                let limit = max_bps.saturating_add(config.max_oversend_bitrate_bps);
                if let Some(i) = (from..=oversend)
                    .find(|&i| layers.get(i).is_some_and(|l| l.bitrate_bps <= limit))
                {
                    self.target = Some(i);
                }
            }
            // A single-layer stream is oversent whatever it costs.
            if self.target.is_none() && layers.len() == 1 {
                self.target = Some(oversend);
            }
        }
        self.target_bitrate() - initial
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 180p 7.5/15/30 fps, 360p 7.5/15/30, 720p 7.5/15/30, cumulative
    /// bit rates as Chrome sends them roughly.
    pub(crate) fn simulcast() -> Vec<Layer> {
        let mut out = Vec::new();
        let rates = [
            [50_000, 100_000, 150_000],
            [150_000, 300_000, 500_000],
            [500_000, 1_000_000, 1_500_000],
        ];
        for (s, height) in [180, 360, 720].into_iter().enumerate() {
            for (t, fps) in [7.5, 15.0, 30.0].into_iter().enumerate() {
                out.push(Layer {
                    id: LayerId::new(s as u8, t as u8),
                    height,
                    frame_rate: fps,
                    bitrate_bps: rates[s][t],
                });
            }
        }
        out
    }

    fn heights_fps(c: &ConsideredLayers) -> Vec<(i64, f64)> {
        c.layers.iter().map(|l| (l.height, l.frame_rate)).collect()
    }

    #[test]
    fn camera_layers_favour_frame_rate_above_preferred() {
        let config = AllocationConfig::default();
        let c = camera_layers(&simulcast(), &Constraints::height(720), &config);
        assert_eq!(
            heights_fps(&c),
            vec![
                (180, 7.5),
                (180, 15.0),
                (180, 30.0),
                (360, 30.0),
                (720, 30.0)
            ]
        );
        assert_eq!(c.preferred, Some(3));
        // A thumbnail: every 180p layer, nothing higher, no preference.
        let c = camera_layers(&simulcast(), &Constraints::height(180), &config);
        assert_eq!(heights_fps(&c), vec![(180, 7.5), (180, 15.0), (180, 30.0)]);
        assert_eq!(c.preferred, Some(2));
        // 360p.
        let c = camera_layers(&simulcast(), &Constraints::height(360), &config);
        assert_eq!(c.ideal().map(|l| l.height), Some(360));
    }

    #[test]
    fn inactive_layers_are_skipped_unless_none_is_active() {
        let config = AllocationConfig::default();
        let mut layers = simulcast();
        for l in layers.iter_mut().filter(|l| l.height == 720) {
            l.bitrate_bps = 0;
        }
        let c = camera_layers(&layers, &Constraints::height(720), &config);
        assert_eq!(c.ideal().map(|l| l.height), Some(360));
        for l in layers.iter_mut() {
            l.bitrate_bps = 0;
        }
        let c = camera_layers(&layers, &Constraints::height(720), &config);
        assert_eq!(c.ideal().map(|l| l.height), Some(720));
    }

    #[test]
    fn improve_steps_and_on_stage_eagerness() {
        let config = AllocationConfig::default();
        let source = SourceDesc {
            owner: "a".into(),
            name: "a-v0".into(),
            video_type: VideoType::Camera,
            layers: simulcast(),
        };
        let mut tile = SourceAllocation::new(&source, Constraints::height(720), false, &config);
        assert_eq!(tile.improve(10_000_000, false, &config), 50_000);
        assert_eq!(tile.target_layer().map(|l| l.frame_rate), Some(7.5));
        let mut stage = SourceAllocation::new(&source, Constraints::height(720), true, &config);
        // Eagerly to 360p30 in one step.
        assert_eq!(stage.improve(10_000_000, false, &config), 500_000);
        assert_eq!(stage.target_layer().map(|l| l.height), Some(360));
        assert!(stage.has_reached_preferred());
        // Too little for even the lowest layer: suspended.
        let mut poor = SourceAllocation::new(&source, Constraints::height(720), true, &config);
        assert_eq!(poor.improve(10_000, false, &config), 0);
        assert!(poor.is_suspended());
    }

    #[test]
    fn screen_share_oversends_on_stage() {
        let config = AllocationConfig::default();
        let layer = Layer {
            id: LayerId::new(0, 0),
            height: 1080,
            frame_rate: 5.0,
            bitrate_bps: 2_000_000,
        };
        let source = SourceDesc {
            owner: "a".into(),
            name: "a-v1".into(),
            video_type: VideoType::Desktop,
            layers: vec![layer],
        };
        let mut a = SourceAllocation::new(&source, Constraints::height(1080), true, &config);
        a.improve(100_000, true, &config);
        assert_eq!(a.target, Some(0));
        // Not on stage: no oversending.
        let mut b = SourceAllocation::new(&source, Constraints::height(1080), false, &config);
        b.improve(100_000, true, &config);
        assert!(b.is_suspended());
    }
}
