//! What each endpoint is told about video: the sources forwarded to it
//! (`ForwardedSources` / 2021 `LastNEndpointsChangeEvent`) and, for a
//! sender, the largest height any receiver wants of each of its sources
//! (`SenderSourceConstraints` / 2021 `SenderVideoConstraints`).
//!
//! Until bandwidth allocation lands (the simulcast issue), every signalled
//! video source of the other endpoints is forwarded, limited only by each
//! receiver's lastN (selected and on-stage sources first, then speakers).

use std::collections::BTreeMap;

use crate::channel::outgoing;
use crate::conference::{Conference, Endpoint};

/// Height a receiver is assumed to want for a source it said nothing about
/// (Videobridge's thumbnail default).
pub const DEFAULT_MAX_HEIGHT: i64 = 180;
/// Height for a selected or on-stage source without explicit constraints.
pub const ON_STAGE_MAX_HEIGHT: i64 = 720;

/// A video source of the conference: (owner, source name).
fn video_sources(conf: &Conference) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for owner in conf.speaker_order() {
        if let Some(ep) = conf.endpoints.get(&owner) {
            for (i, s) in ep.video_sources().enumerate() {
                let name = if s.name.is_empty() {
                    format!("{owner}-v{i}")
                } else {
                    s.name.clone()
                };
                out.push((owner.clone(), name));
            }
        }
    }
    out
}

fn is_prioritised(receiver: &Endpoint, owner: &str, name: &str) -> bool {
    let named = |list: &[String]| list.iter().any(|x| x == owner || x == name);
    receiver
        .constraints
        .as_ref()
        .is_some_and(|c| named(&c.selected) || named(&c.on_stage))
        || named(&receiver.legacy_selected)
}

/// The sources (owner, name) forwarded to `receiver`, in priority order.
fn forwarded_to(conf: &Conference, receiver: &Endpoint) -> Vec<(String, String)> {
    let all: Vec<(String, String)> = video_sources(conf)
        .into_iter()
        .filter(|(owner, _)| *owner != receiver.id)
        .collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(owner, name)| is_prioritised(receiver, owner, name));
    first.extend(rest);
    let last_n = receiver.effective_last_n();
    if last_n >= 0 {
        first.truncate(usize::try_from(last_n).unwrap_or(usize::MAX));
    }
    first
}

/// The height `receiver` wants of source `name` owned by `owner`, if it
/// receives it at all (`-1`: unconstrained).
fn wanted_height(receiver: &Endpoint, owner: &str, name: &str) -> i64 {
    if let Some(c) = &receiver.constraints
        && let Some(v) = c.constraints.get(name).or_else(|| c.constraints.get(owner))
    {
        return v.max_height;
    }
    if let Some(h) = receiver.legacy_max_height {
        return h;
    }
    if is_prioritised(receiver, owner, name) {
        return ON_STAGE_MAX_HEIGHT;
    }
    receiver
        .constraints
        .as_ref()
        .and_then(|c| c.default_constraints)
        .map(|d| d.max_height)
        .unwrap_or(DEFAULT_MAX_HEIGHT)
}

/// Conferences up to this size relay every endpoint's stats to everyone
/// (Videobridge's `stats-filter-threshold`).
pub const STATS_FILTER_THRESHOLD: usize = 20;

/// Whether `receiver` gets `EndpointStats` from `sender`, as Videobridge's
/// `wantsStatsFrom`: always in small conferences, else when the sender is
/// a recent speaker, selected or on stage, or forwarded with a non-zero
/// height.
pub fn wants_stats_from(conf: &Conference, receiver: &Endpoint, sender: &str) -> bool {
    if conf.endpoints.len() <= STATS_FILTER_THRESHOLD {
        return true;
    }
    if conf.speakers.iter().take(4).any(|s| s == sender) {
        return true;
    }
    forwarded_to(conf, receiver).iter().any(|(owner, name)| {
        owner == sender
            && (is_prioritised(receiver, owner, name) || wanted_height(receiver, owner, name) != 0)
    })
}

fn combine(a: i64, b: i64) -> i64 {
    if a < 0 || b < 0 { -1 } else { a.max(b) }
}

/// Recomputes what every endpoint of `conf` with an open channel should be
/// told, records it as sent, and returns the (endpoint, message) pairs for
/// what changed.
pub fn update(conf: &mut Conference) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Receivers' forwarded sets.
    let mut forwarded: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for ep in conf.endpoints.values() {
        forwarded.insert(ep.id.clone(), forwarded_to(conf, ep));
    }
    // Senders' constraints: the max over receivers that get the source.
    let mut wanted: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (owner, name) in video_sources(conf) {
        let mut h = 0;
        for receiver in conf.endpoints.values() {
            let gets = forwarded
                .get(&receiver.id)
                .is_some_and(|f| f.iter().any(|(o, n)| *o == owner && *n == name));
            if gets {
                h = combine(h, wanted_height(receiver, &owner, &name));
            }
        }
        wanted.insert((owner, name), h);
    }
    for ep in conf.endpoints.values_mut() {
        if !ep.channel_open {
            continue;
        }
        let fwd = forwarded.remove(&ep.id).unwrap_or_default();
        let names: Vec<String> = fwd.iter().map(|(_, n)| n.clone()).collect();
        if ep.sent_forwarded.as_ref() != Some(&names) {
            let mut owners: Vec<String> = Vec::new();
            for (o, _) in &fwd {
                if !owners.contains(o) {
                    owners.push(o.clone());
                }
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
            ep.sent_forwarded = Some(names);
            ep.sent_last_n = owners;
        }
        let mine: Vec<(String, i64)> = wanted
            .iter()
            .filter(|((o, _), _)| *o == ep.id)
            .map(|((_, n), h)| (n.clone(), *h))
            .collect();
        let mut endpoint_level: Option<i64> = None;
        for (name, h) in &mine {
            endpoint_level = Some(endpoint_level.map_or(*h, |e| combine(e, *h)));
            if ep.sent_sender_constraints.get(name) != Some(h) {
                out.push((ep.id.clone(), outgoing::sender_source_constraints(name, *h)));
                ep.sent_sender_constraints.insert(name.clone(), *h);
            }
        }
        if let Some(h) = endpoint_level {
            // The 2021 clients get one endpoint-level constraint.
            let key = String::from("\u{0}endpoint");
            if ep.sent_sender_constraints.get(&key) != Some(&h) {
                out.push((ep.id.clone(), outgoing::sender_video_constraints(h)));
                ep.sent_sender_constraints.insert(key, h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ReceiverConstraints, VideoConstraints};
    use media_signalling::{MediaKind, Source};
    use std::time::Instant;

    fn video(name: &str, ssrc: u32) -> Source {
        Source {
            kind: MediaKind::Video,
            name: name.into(),
            ssrcs: vec![ssrc],
            groups: vec![],
            video_type: None,
            msid: None,
        }
    }

    fn conf() -> Conference {
        let mut c = Conference::new("c".into(), "m".into(), None, Instant::now());
        for (id, ssrc) in [("a", 1), ("b", 2), ("c", 3)] {
            let mut e = Endpoint::new(id.into(), "pwd".into());
            e.sources.push(video(&format!("{id}-v0"), ssrc));
            e.channel_open = true;
            c.endpoints.insert(id.into(), e);
        }
        c
    }

    fn messages_for<'a>(out: &'a [(String, String)], ep: &str) -> Vec<&'a str> {
        out.iter()
            .filter(|(e, _)| e == ep)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    #[test]
    fn forwards_others_and_constrains_senders() {
        let mut c = conf();
        let out = update(&mut c);
        let a = messages_for(&out, "a");
        assert!(
            a.iter()
                .any(|m| m.contains("\"forwardedSources\":[\"b-v0\",\"c-v0\"]"))
        );
        assert!(a.iter().any(|m| m.contains("LastNEndpointsChangeEvent")));
        assert!(
            a.iter()
                .any(|m| m.contains("\"maxHeight\":180") && m.contains("a-v0"))
        );
        assert!(a.iter().any(|m| m.contains("\"idealHeight\":180")));
        // Nothing changed: nothing sent again.
        assert!(update(&mut c).is_empty());
        // b asks for a's source (2021 shape, by endpoint id) at 720.
        let mut rc = ReceiverConstraints::default();
        rc.constraints.insert(
            "a".into(),
            VideoConstraints {
                max_height: 720,
                max_frame_rate: None,
            },
        );
        c.endpoints.get_mut("b").unwrap().constraints = Some(rc);
        let out = update(&mut c);
        assert_eq!(
            messages_for(&out, "a"),
            vec![
                outgoing::sender_source_constraints("a-v0", 720).as_str(),
                outgoing::sender_video_constraints(720).as_str()
            ]
        );
        // lastN 0 for everyone but a: a's video is wanted by nobody.
        for id in ["b", "c"] {
            c.endpoints.get_mut(id).unwrap().constraints = Some(ReceiverConstraints {
                last_n: Some(0),
                ..Default::default()
            });
        }
        let out = update(&mut c);
        assert!(
            messages_for(&out, "a")
                .iter()
                .any(|m| m.contains("\"maxHeight\":0"))
        );
        assert!(
            messages_for(&out, "b")
                .iter()
                .any(|m| m.contains("\"forwardedSources\":[]"))
        );
    }

    #[test]
    fn stats_filtered_in_large_conferences() {
        let mut c = conf();
        assert!(wants_stats_from(&c, &c.endpoints["a"], "b"));
        for i in 0..20 {
            let id = format!("x{i:02}");
            c.endpoints
                .insert(id.clone(), Endpoint::new(id, "pwd".into()));
        }
        // 23 endpoints; a forwards b's video at the default height.
        assert!(wants_stats_from(&c, &c.endpoints["a"], "b"));
        // x00 sends no video and has not spoken: a does not want its stats.
        assert!(!wants_stats_from(&c, &c.endpoints["a"], "x00"));
        c.speakers = vec!["x00".into()];
        assert!(wants_stats_from(&c, &c.endpoints["a"], "x00"));
    }
}
