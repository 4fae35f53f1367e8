//! The allocation state the bridge keeps per receiving endpoint
//! (Videobridge's `BitrateController`): its settings, the bandwidth
//! estimate acted on (with Videobridge's hysteresis), when its media
//! started (the estimate is not trusted at first), the last allocation and
//! what the media core was last told.

use std::time::Instant;

use serde_json::{Value, json};

use super::allocator::Allocation;
use super::config::AllocationConfig;
use super::settings::AllocationSettings;
use crate::media::ForwardingTarget;

#[derive(Debug, Clone)]
pub struct ReceiverAllocation {
    pub settings: AllocationSettings,
    /// The estimate the allocation uses (bps; -1: none yet). Changes
    /// smaller than the threshold are not taken.
    pub bwe_bps: i64,
    /// The latest estimate reported, taken or not.
    pub latest_bwe_bps: i64,
    /// When media towards this receiver started (its transport connected).
    pub media_since: Option<Instant>,
    pub allocation: Allocation,
    /// The targets last given to the media core (`None`: never, so it
    /// still forwards everything).
    pub sent_targets: Option<Vec<ForwardingTarget>>,
    pub last_update: Option<Instant>,
}

impl ReceiverAllocation {
    pub fn new(config: &AllocationConfig) -> ReceiverAllocation {
        ReceiverAllocation {
            settings: AllocationSettings::new(config),
            bwe_bps: -1,
            latest_bwe_bps: -1,
            media_since: None,
            allocation: Allocation::default(),
            sent_targets: None,
            last_update: None,
        }
    }

    /// A new estimate; true when it differs enough from the one in use to
    /// reallocate (Videobridge's `bweChangeIsLargerThanThreshold`).
    pub fn bandwidth_changed(&mut self, bps: i64, config: &AllocationConfig) -> bool {
        self.latest_bwe_bps = bps;
        let previous = self.bwe_bps;
        let significant = previous < 0
            || bps < 0
            || (bps - previous).unsigned_abs() as f64
                > previous as f64 * config.bwe_change_threshold;
        if significant {
            self.bwe_bps = bps;
        }
        significant
    }

    /// Whether allocation stays within the estimate: configured to, past
    /// the initial period after media started, and an estimate exists.
    pub fn trusts_bwe(&self, now: Instant, config: &AllocationConfig) -> bool {
        config.trust_bwe
            && self.bwe_bps >= 0
            && self.media_since.is_some_and(|t| {
                now.saturating_duration_since(t) >= config.initial_ignore_bwe_period
            })
    }

    /// The bandwidth to allocate (`None`: unlimited).
    pub fn available_bps(&self, now: Instant, config: &AllocationConfig) -> Option<i64> {
        self.trusts_bwe(now, config).then_some(self.bwe_bps)
    }

    /// Videobridge's `bitrateController` debug state (its
    /// `bitrate_allocator` part, with the allocation per source).
    pub fn to_json(&self, now: Instant, config: &AllocationConfig) -> Value {
        json!({
            "bitrate_allocator": {
                "trustBwe": self.trusts_bwe(now, config),
                "bweBps": self.bwe_bps,
                "latestBweBps": self.latest_bwe_bps,
                "allocation": self.allocation.to_json(),
                "allocationSettings": self.settings.to_json(),
            },
            "forwardedSources": self.allocation.forwarded().map(|s| s.name.clone()).collect::<Vec<_>>(),
            "oversending": self.allocation.oversending,
            "trust_bwe": self.trusts_bwe(now, config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bandwidth_hysteresis_and_initial_distrust() {
        let config = AllocationConfig::default();
        let start = Instant::now();
        let mut r = ReceiverAllocation::new(&config);
        assert!(r.bandwidth_changed(1_000_000, &config));
        // Within 15 %: ignored.
        assert!(!r.bandwidth_changed(1_100_000, &config));
        assert_eq!(r.bwe_bps, 1_000_000);
        assert!(!r.bandwidth_changed(900_000, &config));
        assert!(r.bandwidth_changed(800_000, &config));
        assert_eq!(r.bwe_bps, 800_000);
        // Not trusted before media, nor in its first 10 s.
        assert_eq!(r.available_bps(start, &config), None);
        r.media_since = Some(start);
        assert_eq!(
            r.available_bps(start + Duration::from_secs(9), &config),
            None
        );
        assert_eq!(
            r.available_bps(start + Duration::from_secs(10), &config),
            Some(800_000)
        );
    }
}
