//! The bridge-wide settings of bandwidth allocation, with Videobridge's
//! names (`videobridge.cc.*` in its `reference.conf`) and defaults.

use std::time::Duration;

/// Videobridge's `videobridge.cc` section, as far as allocation uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationConfig {
    /// `default-max-height-px`: the height a receiver gets of a source it
    /// said nothing about once it sent constraints without defaults.
    pub default_max_height: i64,
    /// `initial-max-height-px`: the same before it sent any constraints.
    pub initial_max_height: i64,
    /// `onstage-preferred-height-px`: an on-stage source is allocated up to
    /// this height before any other source gets more than its lowest layer.
    pub onstage_preferred_height: i64,
    /// `onstage-preferred-framerate`: at and above the preferred height only
    /// layers with at least this frame rate are considered.
    pub onstage_preferred_framerate: f64,
    /// `onstage-ideal-height-px`: what the 2021 clients' selected endpoints
    /// (`SelectedEndpointsChangedEvent`) are constrained to.
    pub onstage_ideal_height: i64,
    /// `allow-oversend-onstage`: an on-stage screen share may exceed the
    /// estimate (by up to `max_oversend_bitrate_bps`).
    pub allow_oversend_onstage: bool,
    /// `max-oversend-bitrate`.
    pub max_oversend_bitrate_bps: i64,
    /// `trust-bwe`: allocate within the receiver's bandwidth estimate
    /// (`false`: as if bandwidth were unlimited).
    pub trust_bwe: bool,
    /// `bwe-change-threshold`: a new estimate within this fraction of the
    /// last one used does not cause a reallocation.
    pub bwe_change_threshold: f64,
    /// `initial-ignore-bwe-period`: the estimate is not trusted this long
    /// after a receiver's media starts (estimators ramp up slowly).
    pub initial_ignore_bwe_period: Duration,
    /// `max-time-between-calculations`: reallocate at least this often
    /// (layer bit rates drift without any event).
    pub max_time_between_calculations: Duration,
    /// `jvb-last-n`: a bridge-wide cap on every receiver's last-N (-1:
    /// none).
    pub jvb_last_n: i64,
    /// `initial-last-n`: a receiver's last-N before Colibri2 or the bridge
    /// channel set one (-1: unlimited).
    pub initial_last_n: i64,
    /// `assumed-bandwidth-limit`: when set, a receiver may replace the
    /// estimate with `assumedBandwidthBps` up to this value; unset (the
    /// default), the field is ignored.
    pub assumed_bandwidth_limit_bps: Option<i64>,
}

impl Default for AllocationConfig {
    fn default() -> AllocationConfig {
        AllocationConfig {
            default_max_height: 180,
            initial_max_height: 180,
            onstage_preferred_height: 360,
            onstage_preferred_framerate: 30.0,
            onstage_ideal_height: 1080,
            allow_oversend_onstage: true,
            max_oversend_bitrate_bps: 500_000,
            trust_bwe: true,
            bwe_change_threshold: 0.15,
            initial_ignore_bwe_period: Duration::from_secs(10),
            max_time_between_calculations: Duration::from_secs(5),
            jvb_last_n: -1,
            initial_last_n: -1,
            assumed_bandwidth_limit_bps: None,
        }
    }
}

impl AllocationConfig {
    /// A receiver's last-N after the bridge-wide cap, as Videobridge's
    /// `calculateLastN`: the smaller of the two non-negative values; `None`
    /// when neither limits.
    pub fn effective_last_n(&self, receiver_last_n: i64) -> Option<usize> {
        let n = match (receiver_last_n >= 0, self.jvb_last_n >= 0) {
            (true, true) => receiver_last_n.min(self.jvb_last_n),
            (true, false) => receiver_last_n,
            (false, true) => self.jvb_last_n,
            (false, false) => return None,
        };
        usize::try_from(n).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_n_cap() {
        let mut c = AllocationConfig::default();
        assert_eq!(c.effective_last_n(-1), None);
        assert_eq!(c.effective_last_n(3), Some(3));
        c.jvb_last_n = 2;
        assert_eq!(c.effective_last_n(-1), Some(2));
        assert_eq!(c.effective_last_n(3), Some(2));
        assert_eq!(c.effective_last_n(0), Some(0));
    }
}
