//! The adapter between allocation and the media core: when anything that
//! allocation depends on changes (constraints, last-N, speakers, an
//! endpoint joining or leaving, a bandwidth estimate, measured layers, or
//! simply time), the conference is reallocated, the media core gets the
//! new forwarding targets and the endpoints the messages.

use std::time::Instant;

use super::Bridge;
use crate::allocation;
use crate::channel::AudioSubscription;
use crate::media::AudioSubscription as MediaAudioSubscription;

impl Bridge {
    /// Reallocates `conference` (at the time of the last input).
    pub(super) fn update_allocation(&mut self, conference: &str) {
        self.reallocate(conference, None);
    }

    /// Reallocates every receiver of `conference`, or only `receiver`.
    fn reallocate(&mut self, conference: &str, receiver: Option<&str>) {
        let Some(now) = self.last_now else {
            return;
        };
        let measured = self.media.source_layers(conference);
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        let config = &self.config.allocation;
        let update = match receiver {
            Some(r) => allocation::update_receiver(conf, r, &measured, config, now),
            None => {
                conf.last_allocation = Some(now);
                allocation::update(conf, &measured, config, now)
            }
        };
        for (receiver, targets) in update.forwarding {
            // Relayed endpoints receive on their own bridge.
            if conf
                .endpoints
                .get(&receiver)
                .is_some_and(|e| e.relay.is_some())
            {
                continue;
            }
            if let Err(e) = self
                .media
                .set_forwarding(conference, &receiver, targets, now)
            {
                tracing::debug!(%conference, %receiver, error = %e, "forwarding not set");
            }
        }
        for (endpoint, message) in update.messages {
            self.send_channel(conference, &endpoint, message);
        }
        self.update_relay_receivers(conference);
    }

    /// A new bandwidth estimate towards `endpoint` (`None`: there is none
    /// any more, it sends no transport-wide feedback): reallocate when it
    /// moved past the threshold and is trusted, or when it went (the last
    /// one no longer limits what the endpoint is sent).
    pub(super) fn on_bandwidth_estimate(
        &mut self,
        conference: &str,
        endpoint: &str,
        bps: Option<u64>,
    ) {
        let Some(now) = self.last_now else {
            return;
        };
        let config = &self.config.allocation;
        let Some(ep) = self
            .conferences
            .get_mut(conference)
            .and_then(|c| c.endpoints.get_mut(endpoint))
        else {
            return;
        };
        let bps = bps.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX));
        if ep.allocation.bandwidth_changed(bps, config)
            && (bps < 0 || ep.allocation.trusts_bwe(now, config))
        {
            self.reallocate(conference, Some(endpoint));
        }
    }

    /// The endpoint's transport is up: its media starts now (the estimate
    /// is trusted after Videobridge's initial period).
    pub(super) fn on_endpoint_connected(&mut self, conference: &str, endpoint: &str) {
        let now = self.last_now;
        if let Some(ep) = self
            .conferences
            .get_mut(conference)
            .and_then(|c| c.endpoints.get_mut(endpoint))
            && ep.allocation.media_since.is_none()
        {
            ep.allocation.media_since = now;
        }
        self.update_allocation(conference);
    }

    /// Reallocates conferences not reallocated for Videobridge's
    /// `max-time-between-calculations` (bit rates drift without events).
    pub(super) fn periodic_allocation(&mut self, now: Instant) {
        let period = self.config.allocation.max_time_between_calculations;
        let due: Vec<String> = self
            .conferences
            .values()
            .filter(|c| !c.endpoints.is_empty())
            .filter(|c| c.last_allocation.is_none_or(|t| now >= t + period))
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            self.update_allocation(&id);
        }
    }

    /// When the next periodic reallocation is due.
    pub(super) fn next_allocation(&self) -> Option<Instant> {
        let period = self.config.allocation.max_time_between_calculations;
        self.conferences
            .values()
            .filter(|c| !c.endpoints.is_empty())
            .filter_map(|c| c.last_allocation.map(|t| t + period))
            .min()
    }

    /// `ReceiverAudioSubscription` for the media core: Videobridge's
    /// `Custom` is "included and not excluded".
    pub(super) fn set_audio_subscription(
        &mut self,
        conference: &str,
        endpoint: &str,
        subscription: &AudioSubscription,
    ) {
        let media = match subscription {
            AudioSubscription::All => MediaAudioSubscription::All,
            AudioSubscription::None => MediaAudioSubscription::Include(Vec::new()),
            AudioSubscription::Custom { include, exclude } => MediaAudioSubscription::Include(
                include
                    .iter()
                    .filter(|n| !exclude.contains(n))
                    .cloned()
                    .collect(),
            ),
        };
        if let Err(e) = self
            .media
            .set_audio_subscription(conference, endpoint, media)
        {
            tracing::debug!(%conference, %endpoint, error = %e, "audio subscription not set");
        }
    }
}
