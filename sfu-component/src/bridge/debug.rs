//! Videobridge's debug state of conferences and endpoints (`/debug/...`),
//! with each receiver's bitrate-controller state, and the allocation
//! counters of `/colibri/stats`.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::Bridge;
use crate::allocation::AllocationConfig;
use crate::conference::{Conference, Endpoint};

/// Allocation counters over every receiver of the bridge.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AllocationTotals {
    pub suspended: u64,
    pub oversending: u64,
    pub bandwidth_limited: u64,
    pub target_bps: u64,
    pub ideal_bps: u64,
}

impl Bridge {
    pub(super) fn allocation_totals(&self) -> AllocationTotals {
        let mut t = AllocationTotals::default();
        for ep in self.conferences.values().flat_map(|c| c.endpoints.values()) {
            let a = &ep.allocation.allocation;
            t.suspended += u64::from(a.has_suspended_sources());
            t.oversending += u64::from(a.oversending);
            t.bandwidth_limited += u64::from(a.limited);
            t.target_bps += u64::try_from(a.target_bps).unwrap_or(0);
            t.ideal_bps += u64::try_from(a.ideal_bps).unwrap_or(0);
        }
        t
    }

    /// Every conference's full debug state, by conference id.
    pub fn debug_states(&self) -> BTreeMap<String, Value> {
        let now = self.last_now;
        self.conferences
            .values()
            .map(|c| {
                (
                    c.id.clone(),
                    conference_debug(c, &self.config.allocation, now),
                )
            })
            .collect()
    }
}

fn conference_debug(c: &Conference, config: &AllocationConfig, now: Option<Instant>) -> Value {
    let endpoints: Map<String, Value> = c
        .endpoints
        .values()
        .map(|e| (e.id.clone(), endpoint_debug(c, e, config, now)))
        .collect();
    json!({
        "id": c.id,
        "name": c.name,
        "meetingId": c.meeting_id,
        "expired": false,
        "speechActivity": {
            "dominantEndpoint": c.speakers.first(),
            "endpointsBySpeechActivity": c.speaker_order(),
            "silence": c.silence,
        },
        "endpoints": endpoints,
    })
}

fn endpoint_debug(
    c: &Conference,
    e: &Endpoint,
    config: &AllocationConfig,
    now: Option<Instant>,
) -> Value {
    // What each receiver's effective constraints ask of this endpoint's
    // sources (Videobridge's receiverVideoConstraints), and the maximum.
    let mut by_source: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in c.endpoints.values().filter(|r| r.id != e.id) {
        for s in r
            .allocation
            .allocation
            .sources
            .iter()
            .filter(|s| s.owner == e.id)
        {
            by_source
                .entry(s.name.clone())
                .or_default()
                .insert(r.id.clone(), s.constraints.to_json());
        }
    }
    let receiver_constraints: Map<String, Value> = by_source
        .into_iter()
        .map(|(name, map)| {
            let max = map
                .values()
                .filter_map(|v| v.get("maxHeight").and_then(Value::as_i64))
                .fold(0, |a, b| if a < 0 || b < 0 { -1 } else { a.max(b) });
            (name, json!({"maxHeight": max, "constraints": map}))
        })
        .collect();
    let max_constraints: Map<String, Value> = e
        .sent_sender_constraints
        .iter()
        .filter(|(k, _)| !k.starts_with('\u{0}'))
        .map(|(k, h)| (k.clone(), json!({"maxHeight": h, "maxFrameRate": -1.0})))
        .collect();
    let bitrate_controller = match now {
        Some(now) => e.allocation.to_json(now, config),
        None => Value::Null,
    };
    json!({
        "receiverVideoConstraints": receiver_constraints,
        "maxReceiverVideoConstraints": max_constraints,
        "expired": false,
        "statsId": e.stats_id,
        "bitrateController": bitrate_controller,
        "acceptAudio": !e.force_mute.0,
        "acceptVideo": !e.force_mute.1,
        "visitor": e.visitor,
        "messageTransport": {"connected": e.channel_open},
    })
}
