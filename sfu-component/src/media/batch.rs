//! Forwarding in batches: a datagram's own endpoint (its sender) is polled
//! at once, but the endpoints its packets were written to are polled only
//! when outputs are asked for ([`MediaCore::poll_output`]) or the next
//! timeout is handled; [`MediaCore::next_timeout`] says they are due at
//! once. A runtime that hands in every datagram its socket has queued
//! before it asks for outputs thus polls each receiver once per batch, not
//! once per forwarded packet; one that asks after every datagram gets what
//! it got before.
//!
//! Why: str0m's `Rtc::poll_output` ends every poll with the next deadline,
//! computed over all of the `Rtc`'s streams (RTCP reports, NACKs, BWE,
//! ICE, pacer). A receiver of 13 senders has 26 `StreamTx`s; polled after
//! each packet written to it, that pass was about a sixth of the bridge's
//! CPU in `bench --media` (bench/results/2026-12-06-1318Z-media.md). A
//! video frame's packets come in a burst, so on a busy bridge most
//! forwarded packets now share a poll with others.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use super::conference::Conference;
use super::stats::Counters;
use super::{MediaCore, MediaOutput};

/// Endpoints written to and not yet polled, by (conference, endpoint), in
/// the order they were first written to.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    pending: Vec<(String, String)>,
    queued: HashSet<(String, String)>,
    /// The latest time given with a deferral (they are polled with it).
    at: Option<Instant>,
}

impl Deferred {
    pub(super) fn add(&mut self, now: Instant, conference: &str, endpoints: Vec<String>) {
        if endpoints.is_empty() {
            return;
        }
        self.at = Some(self.at.map_or(now, |t| t.max(now)));
        for endpoint in endpoints {
            let key = (conference.to_string(), endpoint);
            if self.queued.insert(key.clone()) {
                self.pending.push(key);
            }
        }
    }

    /// When the deferred polls are due (at once), if any are waiting.
    pub(super) fn due(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            None
        } else {
            self.at
        }
    }
}

impl Conference {
    /// Polls endpoint `id` (a datagram from it was just handled) and
    /// handles its events; the endpoints those wrote to are returned, not
    /// polled (`Conference::drive` polls them at once).
    pub(super) fn drive_sender(
        &mut self,
        now: Instant,
        id: &str,
        outputs: &mut VecDeque<MediaOutput>,
        counters: &mut Counters,
    ) -> Vec<String> {
        self.now = Some(self.now.map_or(now, |n| n.max(now)));
        let mut written: Vec<String> = Vec::new();
        let events = self.poll_endpoint(now, id, outputs, counters);
        for event in events {
            for target in self.handle_event(now, id, event, outputs, counters) {
                if !written.contains(&target) {
                    written.push(target);
                }
            }
        }
        written
    }
}

impl MediaCore {
    /// Polls every endpoint written to since the last time (and whatever
    /// they write to in turn), at `now` or the latest time deferred with.
    pub(super) fn poll_deferred(&mut self, now: Option<Instant>) {
        let Some(at) = self.deferred.at.take() else {
            return;
        };
        let now = now.map_or(at, |n| n.max(at));
        let pending = std::mem::take(&mut self.deferred.pending);
        self.deferred.queued.clear();
        for (conference, endpoint) in pending {
            if let Some(conf) = self.conferences.get_mut(&conference) {
                conf.drive(now, &endpoint, &mut self.outputs, &mut self.counters);
            }
        }
    }
}
