//! What allocation is told to react to, and what str0m's bandwidth
//! estimation is told to probe for:
//!
//! - `BandwidthEstimate`: str0m's TWCC-based estimate towards a receiver,
//!   reported when it moved by more than 5 % since the last report, else
//!   (a smaller change) at most once a second;
//! - `LayersChanged`: checked every half second per sender: a layer
//!   started or stopped, a height changed, or a bitrate moved by more than
//!   20 % (and 10 kbit/s) since the last report;
//! - the desired bitrate given to each receiver's BWE (`Bwe::set_bitrate`)
//!   is what the best layers of every source it is not suspended from
//!   would need, plus a quarter: the estimator probes for the capacity to
//!   climb back once a limit lifts (Videobridge probes for its "ideal"
//!   layers likewise); allocation keeps the forwarded rate within the
//!   estimate, since str0m's pacer sends at most 1.1 times it (Videobridge
//!   does not pace forwarded media: see `endpoint::configure_forwarded_stream`
//!   for why lilt still does);
//! - a receiver that sends no transport-wide feedback (str0m's stats show
//!   no RTT a second after it connected) would be paced at the initial
//!   estimate forever: its estimator is reset to an estimate so high that
//!   nothing is paced, and no estimate is reported for it (allocation then
//!   has none, as with Videobridge for a client without TWCC or REMB).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::stats::PeerStats;

use super::conference::Conference;
use super::endpoint::INITIAL_ESTIMATE_BPS;
use super::forward::Target;
use super::layers::SourceLayers;
use super::{MediaEvent, MediaOutput};

/// How often layers are compared and desired bitrates refreshed.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// A receiver without transport-wide feedback this long after it
/// connected is not paced.
const NO_FEEDBACK_AFTER: Duration = Duration::from_secs(1);
/// The estimate that paces nothing.
const UNPACED: Bitrate = Bitrate::gbps(10);
/// Probing never aims lower (audio, a thumbnail).
const MIN_DESIRED_BPS: u64 = 300_000;
/// A smaller change of the estimate is reported at most this often.
const ESTIMATE_INTERVAL: Duration = Duration::from_secs(1);

/// Per conference.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    next_check: Option<Instant>,
    /// Per owner: its sources' layers as last reported.
    reported: HashMap<String, Vec<SourceLayers>>,
    /// Per receiver: the estimate last reported and when.
    estimates: HashMap<String, (u64, Instant)>,
}

impl Conference {
    /// str0m's stats of `endpoint`'s session (every second).
    pub(super) fn on_peer_stats(
        &mut self,
        now: Instant,
        endpoint: &str,
        stats: &PeerStats,
        outputs: &mut std::collections::VecDeque<MediaOutput>,
    ) {
        let Some(e) = self.endpoints.get_mut(endpoint) else {
            return;
        };
        let Some(rtc) = e.rtc.as_mut() else {
            return;
        };
        let feedback = stats.rtt.is_some() || stats.egress_loss_fraction.is_some();
        if feedback {
            e.twcc_seen = true;
            if e.bwe_off {
                e.bwe_off = false;
                rtc.bwe().reset(Bitrate::bps(INITIAL_ESTIMATE_BPS));
            }
            return;
        }
        let silent = e
            .connected_at
            .is_some_and(|t| now.saturating_duration_since(t) >= NO_FEEDBACK_AFTER);
        if !e.twcc_seen && !e.bwe_off && silent && stats.peer_bytes_tx > 0 {
            tracing::debug!(endpoint, "no transport-wide feedback: not paced");
            e.bwe_off = true;
            e.bandwidth_estimate = None;
            rtc.bwe().reset(UNPACED);
            self.feedback.estimates.remove(endpoint);
            outputs.push_back(MediaOutput::Event(MediaEvent::BandwidthEstimateLost {
                conference: self.id.clone(),
                endpoint: endpoint.to_string(),
            }));
        }
    }

    /// str0m's estimate towards `endpoint`.
    pub(super) fn on_bandwidth_estimate(
        &mut self,
        now: Instant,
        endpoint: &str,
        bps: u64,
        outputs: &mut std::collections::VecDeque<MediaOutput>,
    ) {
        let Some(e) = self.endpoints.get_mut(endpoint) else {
            return;
        };
        if e.bwe_off {
            return;
        }
        e.bandwidth_estimate = Some(bps);
        self.report_estimate(now, endpoint, bps, false, outputs);
    }

    fn report_estimate(
        &mut self,
        now: Instant,
        endpoint: &str,
        bps: u64,
        periodic: bool,
        outputs: &mut std::collections::VecDeque<MediaOutput>,
    ) {
        let due = match self.feedback.estimates.get(endpoint) {
            None => true,
            Some((last, _)) if *last == bps => false,
            Some((last, at)) => {
                let change = (bps as f64 - *last as f64).abs() / (*last).max(1) as f64;
                change > 0.05
                    || (periodic && now.saturating_duration_since(*at) >= ESTIMATE_INTERVAL)
            }
        };
        if !due {
            return;
        }
        self.feedback
            .estimates
            .insert(endpoint.to_string(), (bps, now));
        outputs.push_back(MediaOutput::Event(MediaEvent::BandwidthEstimate {
            conference: self.id.clone(),
            endpoint: endpoint.to_string(),
            bps,
        }));
    }

    pub(super) fn next_feedback_check(&self) -> Option<Instant> {
        if self.video.is_empty() {
            return None;
        }
        self.feedback.next_check.or(self.now)
    }

    /// The periodic check (due at [`Conference::next_feedback_check`]).
    pub(super) fn check_feedback(
        &mut self,
        now: Instant,
        outputs: &mut std::collections::VecDeque<MediaOutput>,
    ) {
        if self.feedback.next_check.is_some_and(|t| t > now) {
            return;
        }
        self.feedback.next_check = Some(now + CHECK_INTERVAL);
        self.now = Some(self.now.map_or(now, |n| n.max(now)));
        let mut by_owner: HashMap<String, Vec<SourceLayers>> = HashMap::new();
        for s in self.source_layers() {
            by_owner.entry(s.owner.clone()).or_default().push(s);
        }
        let owners: Vec<String> = by_owner
            .keys()
            .chain(self.feedback.reported.keys())
            .cloned()
            .collect();
        let mut changed: Vec<String> = Vec::new();
        for owner in owners {
            if changed.contains(&owner) {
                continue;
            }
            let new = by_owner.get(&owner).map(Vec::as_slice).unwrap_or_default();
            let old = self
                .feedback
                .reported
                .get(&owner)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if layers_differ(old, new) {
                changed.push(owner);
            }
        }
        for owner in changed {
            match by_owner.remove(&owner) {
                Some(layers) => self.feedback.reported.insert(owner.clone(), layers),
                None => self.feedback.reported.remove(&owner),
            };
            if self.endpoints.contains_key(&owner) {
                outputs.push_back(MediaOutput::Event(MediaEvent::LayersChanged {
                    conference: self.id.clone(),
                    endpoint: owner,
                }));
            }
        }
        let receivers: Vec<(String, Option<u64>)> = self
            .endpoints
            .iter()
            .map(|(id, e)| (id.clone(), e.bandwidth_estimate))
            .collect();
        for (id, estimate) in receivers {
            self.update_desired_bitrate(&id);
            if let Some(bps) = estimate {
                self.report_estimate(now, &id, bps, true, outputs);
            }
        }
    }

    /// Tells `receiver`'s BWE what to probe for (see the module comment).
    pub(super) fn update_desired_bitrate(&mut self, receiver: &str) {
        let Some(now) = self.now else {
            return;
        };
        let Some(endpoint) = self.endpoints.get_mut(receiver) else {
            return;
        };
        let mut desired = 0u64;
        for (visible, f) in &endpoint.forwarded {
            let Some(source) = self.video.get(visible) else {
                continue;
            };
            if f.forwarder.target() == Target::Suspended {
                continue;
            }
            let layers = source.meter.layers(now);
            desired += layers.iter().map(|l| l.bitrate_bps).max().unwrap_or(0);
        }
        let desired = (desired + desired / 4).max(MIN_DESIRED_BPS);
        if let Some(rtc) = endpoint.rtc.as_mut()
            && !endpoint.bwe_off
        {
            rtc.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
        }
    }
}

fn layers_differ(old: &[SourceLayers], new: &[SourceLayers]) -> bool {
    if old.len() != new.len() {
        return true;
    }
    old.iter().zip(new).any(|(a, b)| {
        a.source_name != b.source_name
            || a.layers.len() != b.layers.len()
            || a.layers.iter().zip(&b.layers).any(|(x, y)| {
                let delta = x.bitrate_bps.abs_diff(y.bitrate_bps);
                x.layer != y.layer
                    || x.height != y.height
                    || (delta > 10_000 && delta as f64 > 0.2 * x.bitrate_bps as f64)
            })
    })
}
