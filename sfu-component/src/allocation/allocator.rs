//! Videobridge's `BandwidthAllocator` for one receiver, as a pure
//! function: order the other endpoints' sources (on stage, then selected,
//! then by speech activity; sources without video last), cut at last-N
//! (the "effective constraints"), then hand out bandwidth in rounds, the
//! highest priority first, until no source can improve.

use serde_json::{Value, json};

use super::config::AllocationConfig;
use super::layers::SourceAllocation;
use super::settings::{AllocationSettings, Constraints};
use super::source::SourceDesc;
use crate::media::LayerId;

/// What one receiver gets of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceResult {
    pub owner: String,
    pub name: String,
    /// The layer to forward; `None`: not forwarded.
    pub target: Option<LayerId>,
    /// What it would get with unlimited bandwidth.
    pub ideal: Option<LayerId>,
    pub target_height: i64,
    pub target_frame_rate: f64,
    pub target_bps: i64,
    pub ideal_bps: i64,
    /// The receiver's effective constraints for the source (0 outside
    /// last-N).
    pub constraints: Constraints,
    pub on_stage: bool,
    /// Wanted and being sent, but no layer fitted the bandwidth.
    pub suspended: bool,
}

/// One receiver's allocation (Videobridge's `BandwidthAllocation`), in
/// priority order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Allocation {
    pub sources: Vec<SourceResult>,
    /// More was allocated than the bandwidth allows (an on-stage screen
    /// share).
    pub oversending: bool,
    pub target_bps: i64,
    pub ideal_bps: i64,
    /// Some wanted source got no layer for lack of bandwidth.
    pub has_suspended: bool,
    /// Some source got less than its ideal layer.
    pub limited: bool,
}

impl Allocation {
    /// The sources forwarded at some layer (`ForwardedSources`).
    pub fn forwarded(&self) -> impl Iterator<Item = &SourceResult> {
        self.sources.iter().filter(|s| s.target.is_some())
    }

    pub fn has_suspended_sources(&self) -> bool {
        self.has_suspended
    }

    /// Whether the receiver's effective constraints for any source of
    /// `owner` are non-zero (Videobridge's `hasNonZeroEffectiveConstraints`).
    pub fn wants_any_of(&self, owner: &str) -> bool {
        self.sources
            .iter()
            .any(|s| s.owner == owner && !s.constraints.is_disabled())
    }

    /// Videobridge's `BandwidthAllocation.debugState` with the per-source
    /// layers added.
    pub fn to_json(&self) -> Value {
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|s| {
                json!({
                    "endpoint": s.owner,
                    "source": s.name,
                    "target": s.target.map(layer_json),
                    "ideal": s.ideal.map(layer_json),
                    "target_height": s.target_height,
                    "target_frame_rate": s.target_frame_rate,
                    "target_bps": s.target_bps,
                    "ideal_bps": s.ideal_bps,
                    "on_stage": s.on_stage,
                    "suspended": s.suspended,
                    "effective_constraints": s.constraints.to_json(),
                })
            })
            .collect();
        json!({
            "idealBps": self.ideal_bps,
            "targetBps": self.target_bps,
            "oversending": self.oversending.to_string(),
            "has_suspended_sources": self.has_suspended_sources().to_string(),
            "allocations": sources,
        })
    }
}

fn layer_json(l: LayerId) -> Value {
    json!({"spatial": l.spatial, "temporal": l.temporal})
}

/// The sources `receiver` may get, in Videobridge's priority order:
/// on-stage then selected sources in the order the receiver listed them,
/// then the rest in speech-activity order (the order of `sources`), and
/// sources whose sender said it sends no video last.
pub fn prioritize<'a>(
    receiver: &str,
    sources: &'a [SourceDesc],
    settings: &AllocationSettings,
) -> Vec<&'a SourceDesc> {
    let others = sources.iter().filter(|s| s.owner != receiver);
    let (enabled, disabled): (Vec<&SourceDesc>, Vec<&SourceDesc>) =
        others.partition(|s| s.video_type.is_enabled());
    let (mut chosen, rest): (Vec<&SourceDesc>, Vec<&SourceDesc>) = enabled
        .into_iter()
        .partition(|s| settings.selection_rank(&s.owner, &s.name).is_some());
    chosen.sort_by_key(|s| settings.selection_rank(&s.owner, &s.name));
    chosen.extend(rest);
    chosen.extend(disabled);
    chosen
}

/// The receiver's constraints adjusted for last-N: once `last_n` sources
/// with non-zero constraints are counted, every later one gets nothing.
pub fn effective_constraints(
    ordered: &[&SourceDesc],
    settings: &AllocationSettings,
    config: &AllocationConfig,
) -> Vec<Constraints> {
    let last_n = config.effective_last_n(settings.last_n);
    let mut counted = 0usize;
    ordered
        .iter()
        .map(|s| {
            if !s.video_type.is_enabled() || last_n.is_some_and(|n| counted >= n) {
                return Constraints::NOTHING;
            }
            let c = settings.constraints_for(&s.owner, &s.name);
            if !c.is_disabled() {
                counted += 1;
            }
            c
        })
        .collect()
}

/// Allocates `available_bps` (`None`: unlimited) among the sources for
/// `receiver`, as Videobridge's `BandwidthAllocator.allocate`.
pub fn allocate(
    receiver: &str,
    sources: &[SourceDesc],
    settings: &AllocationSettings,
    config: &AllocationConfig,
    available_bps: Option<i64>,
) -> Allocation {
    let ordered = prioritize(receiver, sources, settings);
    let effective = effective_constraints(&ordered, settings, config);
    let mut allocations: Vec<SourceAllocation> = ordered
        .iter()
        .zip(&effective)
        .map(|(s, c)| SourceAllocation::new(s, *c, settings.is_on_stage(&s.owner, &s.name), config))
        .collect();
    let mut remaining = if settings.assumed_bandwidth_bps >= 0 {
        settings.assumed_bandwidth_bps
    } else {
        available_bps.unwrap_or(i64::MAX)
    };
    let mut oversending = false;
    let mut previous: Option<i64> = None;
    while previous != Some(remaining) {
        previous = Some(remaining);
        for (i, a) in allocations.iter_mut().enumerate() {
            if a.constraints.is_disabled() {
                continue;
            }
            // Only the first source may be oversent.
            remaining = remaining.saturating_sub(a.improve(remaining, i == 0, config));
            if remaining < 0 {
                oversending = true;
            }
            // On stage, thumbnails get nothing until the stage reaches its
            // preferred layer (no thumbnails enabled only to be dropped
            // when the stage takes more).
            if a.on_stage && !a.has_reached_preferred() {
                break;
            }
        }
    }
    let mut out = Allocation {
        oversending,
        ..Allocation::default()
    };
    for a in &allocations {
        let target = a.target_layer();
        out.target_bps += a.target_bitrate();
        out.ideal_bps += a.ideal_bitrate();
        out.sources.push(SourceResult {
            owner: a.owner.clone(),
            name: a.name.clone(),
            target: target.map(|l| l.id),
            ideal: a.ideal_layer().map(|l| l.id),
            target_height: target.map_or(0, |l| l.height),
            target_frame_rate: target.map_or(0.0, |l| l.frame_rate),
            target_bps: a.target_bitrate(),
            ideal_bps: a.ideal_bitrate(),
            constraints: a.constraints,
            on_stage: a.on_stage,
            suspended: a.is_suspended(),
        });
        out.has_suspended |= a.is_suspended();
        out.limited |= a.target != a.considered.layers.len().checked_sub(1);
    }
    out
}
