//! Bandwidth allocation, as Videobridge's `BitrateController` /
//! `BandwidthAllocator` decide it: for every receiver, which layer of every
//! other endpoint's video source it gets (or none), within its
//! constraints, its last-N and its bandwidth estimate; and what that means
//! for the bridge-channel messages: `ForwardedSources` (current clients) /
//! `LastNEndpointsChangeEvent` (2021 clients) to each receiver, and
//! `SenderSourceConstraints` / `SenderVideoConstraints` to each sender with
//! the largest height any receiver's effective constraints allow for each
//! of its sources (0 when nobody watches it), so it stops encoding what
//! nobody needs.
//!
//! Everything here is pure: [`update`] takes the conference's signalling
//! state, the media core's layer measurements and the time, and returns
//! the messages and forwarding targets; the bridge passes them on.
//!
//! - `config.rs`: Videobridge's `videobridge.cc` settings and defaults;
//! - `settings.rs`: one receiver's wishes, from the messages of both
//!   client generations;
//! - `source.rs`: the conference's video sources and their layers;
//! - `layers.rs`: one source for one receiver (layers considered,
//!   preferred layer, improvement step);
//! - `allocator.rs`: priority order, last-N, the allocation rounds;
//! - `receiver.rs`: per-receiver state (estimate hysteresis, debug JSON).

pub mod allocator;
pub mod config;
pub mod layers;
pub mod receiver;
pub mod settings;
pub mod source;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Instant;

pub use allocator::{Allocation, SourceResult, allocate};
pub use config::AllocationConfig;
pub use receiver::ReceiverAllocation;
pub use settings::{AllocationSettings, Constraints};
pub use source::{SourceDesc, VideoType, conference_sources};

use crate::channel::outgoing;
use crate::conference::{Conference, Endpoint};
use crate::media::{ForwardingTarget, SourceLayers};

/// What an allocation pass decided.
#[derive(Debug, Default)]
pub struct Update {
    /// Bridge-channel messages: (endpoint, JSON text).
    pub messages: Vec<(String, String)>,
    /// New forwarding targets for the media core: (receiver, targets).
    pub forwarding: Vec<(String, Vec<ForwardingTarget>)>,
}

/// Reallocates every receiver of `conf` and records what each endpoint is
/// told; returns only what changed.
pub fn update(
    conf: &mut Conference,
    measured: &[SourceLayers],
    config: &AllocationConfig,
    now: Instant,
) -> Update {
    let sources = conference_sources(conf, measured);
    let mut out = Update::default();
    for ep in conf.endpoints.values_mut() {
        reallocate(ep, &sources, config, now, &mut out);
    }
    let wanted = sender_heights(conf, &sources);
    for ep in conf.endpoints.values_mut() {
        if ep.channel_open {
            forwarded_messages(ep, &mut out.messages);
            sender_messages(ep, &wanted, &mut out.messages);
        }
    }
    out
}

/// Reallocates one receiver only (a new bandwidth estimate: what the
/// senders are asked for does not depend on it).
pub fn update_receiver(
    conf: &mut Conference,
    receiver: &str,
    measured: &[SourceLayers],
    config: &AllocationConfig,
    now: Instant,
) -> Update {
    let sources = conference_sources(conf, measured);
    let mut out = Update::default();
    if let Some(ep) = conf.endpoints.get_mut(receiver) {
        reallocate(ep, &sources, config, now, &mut out);
        if ep.channel_open {
            forwarded_messages(ep, &mut out.messages);
        }
    }
    out
}

/// Allocates for one receiver; new forwarding targets go to `out`.
fn reallocate(
    ep: &mut Endpoint,
    sources: &[SourceDesc],
    config: &AllocationConfig,
    now: Instant,
    out: &mut Update,
) {
    let available = ep.allocation.available_bps(now, config);
    let allocation = allocate(&ep.id, sources, &ep.allocation.settings, config, available);
    let targets: Vec<ForwardingTarget> = allocation
        .sources
        .iter()
        .map(|s| ForwardingTarget {
            owner: s.owner.clone(),
            source_name: s.name.clone(),
            target: s.target,
        })
        .collect();
    if ep.allocation.sent_targets.as_ref() != Some(&targets) {
        ep.allocation.sent_targets = Some(targets.clone());
        out.forwarding.push((ep.id.clone(), targets));
    }
    ep.allocation.allocation = allocation;
    ep.allocation.last_update = Some(now);
}

/// For every source, the largest height the receivers' effective
/// constraints allow (0: nobody wants it; -1: someone set no limit;
/// `None`: there is no receiver at all).
fn sender_heights(
    conf: &Conference,
    sources: &[SourceDesc],
) -> BTreeMap<(String, String), Option<i64>> {
    let mut wanted: BTreeMap<(String, String), Option<i64>> = sources
        .iter()
        .map(|s| ((s.owner.clone(), s.name.clone()), None))
        .collect();
    for receiver in conf.endpoints.values() {
        for s in &receiver.allocation.allocation.sources {
            if let Some(h) = wanted.get_mut(&(s.owner.clone(), s.name.clone())) {
                let height = s.constraints.max_height;
                *h = Some(h.map_or(height, |h| combine(h, height)));
            }
        }
    }
    wanted
}

/// The larger of two heights, unlimited (-1) above all.
fn combine(a: i64, b: i64) -> i64 {
    if a < 0 || b < 0 { -1 } else { a.max(b) }
}

/// `ForwardedSources` and `LastNEndpointsChangeEvent` when what the
/// receiver actually gets changed.
fn forwarded_messages(ep: &mut Endpoint, out: &mut Vec<(String, String)>) {
    let forwarded: Vec<&SourceResult> = ep.allocation.allocation.forwarded().collect();
    let names: Vec<String> = forwarded.iter().map(|s| s.name.clone()).collect();
    let mut owners: Vec<String> = Vec::new();
    for s in &forwarded {
        if !owners.contains(&s.owner) {
            owners.push(s.owner.clone());
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    if ep.sent_forwarded.as_ref() == Some(&sorted) {
        return;
    }
    let entering: Vec<String> = owners
        .iter()
        .filter(|o| !ep.sent_last_n.contains(o))
        .cloned()
        .collect();
    out.push((ep.id.clone(), outgoing::forwarded_sources(&names)));
    out.push((
        ep.id.clone(),
        outgoing::last_n_endpoints(&owners, &entering),
    ));
    ep.sent_forwarded = Some(sorted);
    ep.sent_last_n = owners;
}

/// `SenderSourceConstraints` per source and the 2021 endpoint-level
/// `SenderVideoConstraints`, when they changed. A source nobody could
/// receive (the sender is alone) is not constrained, as with Videobridge,
/// which only tells a sender about its receivers: it keeps its own
/// defaults, until its last receiver leaves (then 0).
fn sender_messages(
    ep: &mut Endpoint,
    wanted: &BTreeMap<(String, String), Option<i64>>,
    out: &mut Vec<(String, String)>,
) {
    let mut endpoint_level: Option<i64> = None;
    for ((owner, name), h) in wanted {
        if *owner != ep.id {
            continue;
        }
        let h = match h {
            Some(h) => *h,
            None if ep.sent_sender_constraints.contains_key(name) => 0,
            None => continue,
        };
        endpoint_level = Some(endpoint_level.map_or(h, |e| combine(e, h)));
        if ep.sent_sender_constraints.get(name) != Some(&h) {
            out.push((ep.id.clone(), outgoing::sender_source_constraints(name, h)));
            ep.sent_sender_constraints.insert(name.clone(), h);
        }
    }
    if let Some(h) = endpoint_level {
        let key = String::from("\u{0}endpoint");
        if ep.sent_sender_constraints.get(&key) != Some(&h) {
            out.push((ep.id.clone(), outgoing::sender_video_constraints(h)));
            ep.sent_sender_constraints.insert(key, h);
        }
    }
}

/// Conferences up to this size relay every endpoint's stats to everyone
/// (Videobridge's `stats-filter-threshold`).
pub const STATS_FILTER_THRESHOLD: usize = 20;

/// How many recent speakers always have their stats relayed.
const RECENT_SPEAKERS: usize = 4;

/// Whether `receiver` gets `EndpointStats` from `sender`, as Videobridge's
/// `wantsStatsFrom`: always in small conferences, else when the sender is
/// a recent speaker, on stage or selected, or within the receiver's
/// effective constraints.
pub fn wants_stats_from(conf: &Conference, receiver: &Endpoint, sender: &str) -> bool {
    if conf.endpoints.len() <= STATS_FILTER_THRESHOLD {
        return true;
    }
    if conf
        .speakers
        .iter()
        .take(RECENT_SPEAKERS)
        .any(|s| s == sender)
    {
        return true;
    }
    let settings = &receiver.allocation.settings;
    let named = settings
        .on_stage
        .iter()
        .chain(&settings.selected)
        .any(|x| x == sender || x.starts_with(&format!("{sender}-")));
    named || receiver.allocation.allocation.wants_any_of(sender)
}
