//! The allocator and its messages on whole conferences: simulcast senders
//! with 180p/360p/720p layers (three temporal layers each), receivers with
//! different constraints, bandwidth and last-N.

use std::time::{Duration, Instant};

use media_signalling::{MediaKind, Source, SsrcGroup};
use serde_json::Value;

use super::*;
use crate::channel::{ClientMessage, ReceiverConstraints, parse_client_message};
use crate::media::{LayerId, LayerInfo};

const RATES: [[u64; 3]; 3] = [
    [50_000, 100_000, 150_000],
    [150_000, 300_000, 500_000],
    [500_000, 1_000_000, 1_500_000],
];

fn simulcast_source(owner: &str, base: u32) -> Source {
    Source {
        kind: MediaKind::Video,
        name: format!("{owner}-v0"),
        ssrcs: vec![base, base + 1, base + 2],
        groups: vec![SsrcGroup {
            semantics: "SIM".into(),
            ssrcs: vec![base, base + 1, base + 2],
        }],
        video_type: None,
        msid: None,
    }
}

fn measured(owner: &str) -> SourceLayers {
    let mut layers = Vec::new();
    for (s, height) in [180u32, 360, 720].into_iter().enumerate() {
        for (t, fps) in [7.5, 15.0, 30.0].into_iter().enumerate() {
            layers.push(LayerInfo {
                layer: LayerId::new(s as u8, t as u8),
                height,
                frame_rate: fps,
                bitrate_bps: RATES[s][t],
            });
        }
    }
    SourceLayers {
        owner: owner.into(),
        source_name: format!("{owner}-v0"),
        layers,
    }
}

/// A conference of `ids`, each sending one simulcast source, channels open.
fn conference(ids: &[&str]) -> (Conference, Vec<SourceLayers>) {
    let mut c = Conference::new("c".into(), "m".into(), None, Instant::now());
    let mut m = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut e = Endpoint::new(id.to_string(), "pwd".into());
        e.sources.push(simulcast_source(id, 100 * (i as u32 + 1)));
        e.channel_open = true;
        c.endpoints.insert(id.to_string(), e);
        m.push(measured(id));
    }
    (c, m)
}

fn constrain(c: &mut Conference, receiver: &str, json: &str) {
    let ClientMessage::ReceiverVideoConstraints(rc) = parse_client_message(json).unwrap() else {
        panic!("not constraints")
    };
    let config = AllocationConfig::default();
    c.endpoints
        .get_mut(receiver)
        .unwrap()
        .allocation
        .settings
        .apply(&rc, &config);
}

fn target(c: &Conference, receiver: &str, source: &str) -> Option<LayerId> {
    c.endpoints[receiver]
        .allocation
        .allocation
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| s.target)
}

fn messages(u: &Update, ep: &str, class: &str) -> Vec<Value> {
    u.messages
        .iter()
        .filter(|(e, m)| e == ep && m.contains(class))
        .map(|(_, m)| serde_json::from_str(m).unwrap())
        .collect()
}

/// Bandwidth trusted at `bps` for `receiver` (media started long ago).
fn limit(c: &mut Conference, receiver: &str, bps: i64, now: Instant) {
    let config = AllocationConfig::default();
    let a = &mut c.endpoints.get_mut(receiver).unwrap().allocation;
    a.media_since = Some(now - Duration::from_secs(60));
    a.bandwidth_changed(bps, &config);
}

#[test]
fn receivers_asking_180p_and_720p_get_those_layers() {
    let (mut c, m) = conference(&["s", "r180", "r720"]);
    constrain(
        &mut c,
        "r180",
        r#"{"colibriClass":"ReceiverVideoConstraints","defaultConstraints":{"maxHeight":180}}"#,
    );
    constrain(
        &mut c,
        "r720",
        r#"{"colibriClass":"ReceiverVideoConstraints","constraints":{"s-v0":{"maxHeight":720}}}"#,
    );
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert_eq!(target(&c, "r180", "s-v0"), Some(LayerId::new(0, 2)));
    assert_eq!(target(&c, "r720", "s-v0"), Some(LayerId::new(2, 2)));
    let a = &c.endpoints["r720"].allocation.allocation;
    let s = a.sources.iter().find(|s| s.name == "s-v0").unwrap();
    assert_eq!(
        (s.target_height, s.target_bps, s.ideal_bps),
        (720, 1_500_000, 1_500_000)
    );
    // The media core is told each receiver's targets.
    let (_, targets) = u.forwarding.iter().find(|(r, _)| r == "r180").unwrap();
    assert!(
        targets
            .iter()
            .any(|t| t.source_name == "s-v0" && t.target == Some(LayerId::new(0, 2)))
    );
    // The sender is asked for 720p (the most anyone needs).
    let ssc = messages(&u, "s", "SenderSourceConstraints");
    assert_eq!(ssc[0]["sourceName"], "s-v0");
    assert_eq!(ssc[0]["maxHeight"], 720);
    assert_eq!(
        messages(&u, "s", "SenderVideoConstraints")[0]["videoConstraints"]["idealHeight"],
        720
    );
    // Nothing changed: nothing told again.
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert!(u.messages.is_empty() && u.forwarding.is_empty());
}

#[test]
fn limited_bandwidth_falls_to_a_lower_layer_and_climbs_back() {
    let (mut c, m) = conference(&["s", "r"]);
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","constraints":{"s-v0":{"maxHeight":720}}}"#,
    );
    let now = Instant::now();
    let config = AllocationConfig::default();
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "s-v0"), Some(LayerId::new(2, 2)));
    limit(&mut c, "r", 600_000, now);
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "s-v0"), Some(LayerId::new(1, 2)));
    let a = &c.endpoints["r"].allocation.allocation;
    assert_eq!((a.target_bps, a.ideal_bps), (500_000, 1_500_000));
    limit(&mut c, "r", 120_000, now);
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "s-v0"), Some(LayerId::new(0, 1)));
    // The limit lifts.
    limit(&mut c, "r", 5_000_000, now);
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "s-v0"), Some(LayerId::new(2, 2)));
}

#[test]
fn bandwidth_is_ignored_in_the_first_seconds() {
    let (mut c, m) = conference(&["s", "r"]);
    let now = Instant::now();
    let config = AllocationConfig::default();
    let a = &mut c.endpoints.get_mut("r").unwrap().allocation;
    a.media_since = Some(now);
    a.bandwidth_changed(10_000, &config);
    update(&mut c, &m, &config, now + Duration::from_secs(5));
    assert_eq!(target(&c, "r", "s-v0"), Some(LayerId::new(0, 2)));
    update(&mut c, &m, &config, now + Duration::from_secs(11));
    assert_eq!(target(&c, "r", "s-v0"), None);
}

#[test]
fn last_n_one_keeps_only_the_dominant_speaker() {
    let (mut c, m) = conference(&["a", "b", "r"]);
    c.speakers = vec!["b".into(), "a".into()];
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#,
    );
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert!(target(&c, "r", "b-v0").is_some());
    assert_eq!(target(&c, "r", "a-v0"), None);
    let fs = messages(&u, "r", "ForwardedSources");
    assert_eq!(fs[0]["forwardedSources"], serde_json::json!(["b-v0"]));
    let ln = messages(&u, "r", "LastNEndpointsChangeEvent");
    assert_eq!(ln[0]["lastNEndpoints"], serde_json::json!(["b"]));
    assert_eq!(ln[0]["endpointsEnteringLastN"], serde_json::json!(["b"]));
    // The speaker changes: the forwarded source follows.
    c.speakers = vec!["a".into(), "b".into()];
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert_eq!(
        messages(&u, "r", "ForwardedSources")[0]["forwardedSources"],
        serde_json::json!(["a-v0"])
    );
    assert_eq!(
        messages(&u, "r", "LastNEndpointsChangeEvent")[0]["endpointsEnteringLastN"],
        serde_json::json!(["a"])
    );
    // b's source is now outside r's last-N and nobody else's: b is told 0
    // only if no other receiver wants it; a still wants it (180).
    assert!(messages(&u, "b", "SenderSourceConstraints").is_empty());
}

#[test]
fn nobody_watching_means_height_zero() {
    let (mut c, m) = conference(&["a", "r"]);
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":0}"#,
    );
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert_eq!(
        messages(&u, "a", "SenderSourceConstraints")[0]["maxHeight"],
        0
    );
    assert_eq!(
        messages(&u, "r", "ForwardedSources")[0]["forwardedSources"],
        serde_json::json!([])
    );
}

#[test]
fn on_stage_gets_its_preferred_layer_before_thumbnails() {
    let (mut c, m) = conference(&["a", "b", "c", "r"]);
    c.speakers = vec!["a".into(), "b".into(), "c".into()];
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","onStageSources":["c-v0"],
            "defaultConstraints":{"maxHeight":180},"constraints":{"c-v0":{"maxHeight":720}}}"#,
    );
    let now = Instant::now();
    let config = AllocationConfig::default();
    // 700 kbps: 360p30 (500k) for the stage, then 7.5 fps thumbnails
    // (50k each) and one step more for the first thumbnail.
    limit(&mut c, "r", 700_000, now);
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "c-v0"), Some(LayerId::new(1, 2)));
    assert!(target(&c, "r", "a-v0").is_some());
    // 400 kbps: the stage cannot reach 360p30, thumbnails get nothing.
    limit(&mut c, "r", 400_000, now);
    update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "c-v0"), Some(LayerId::new(0, 2)));
    assert_eq!(target(&c, "r", "a-v0"), None);
    assert_eq!(target(&c, "r", "b-v0"), None);
    // The stage source comes first in the allocation.
    assert_eq!(
        c.endpoints["r"].allocation.allocation.sources[0].name,
        "c-v0"
    );
}

#[test]
fn suspended_when_not_even_the_lowest_layer_fits() {
    let (mut c, m) = conference(&["a", "r"]);
    let now = Instant::now();
    let config = AllocationConfig::default();
    update(&mut c, &m, &config, now);
    assert!(target(&c, "r", "a-v0").is_some());
    limit(&mut c, "r", 20_000, now);
    let u = update(&mut c, &m, &config, now);
    assert_eq!(target(&c, "r", "a-v0"), None);
    let a = &c.endpoints["r"].allocation.allocation;
    assert!(a.has_suspended_sources());
    // Suspended sources are not listed as forwarded.
    assert_eq!(
        messages(&u, "r", "ForwardedSources")[0]["forwardedSources"],
        serde_json::json!([])
    );
    assert_eq!(
        messages(&u, "r", "LastNEndpointsChangeEvent")[0]["lastNEndpoints"],
        serde_json::json!([])
    );
    // The sender is still asked for 180p: r wants it, the link is short.
    assert!(messages(&u, "a", "SenderSourceConstraints").is_empty());
}

#[test]
fn unmeasured_sources_are_forwarded_at_their_top_layer() {
    let (mut c, _) = conference(&["a", "r"]);
    update(&mut c, &[], &AllocationConfig::default(), Instant::now());
    assert_eq!(
        target(&c, "r", "a-v0"),
        Some(LayerId::new(2, source::ALL_TEMPORAL))
    );
}

#[test]
fn selected_sources_come_before_speakers() {
    let (mut c, m) = conference(&["a", "b", "r"]);
    c.speakers = vec!["a".into()];
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1,"selectedSources":["b-v0"]}"#,
    );
    update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert!(target(&c, "r", "b-v0").is_some());
    assert_eq!(target(&c, "r", "a-v0"), None);
}

#[test]
fn screen_share_with_video_type_none_is_last_and_off() {
    let (mut c, m) = conference(&["a", "r"]);
    c.endpoints
        .get_mut("a")
        .unwrap()
        .video_types
        .insert("a-v0".into(), "none".into());
    update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert_eq!(target(&c, "r", "a-v0"), None);
    assert!(
        !c.endpoints["r"]
            .allocation
            .allocation
            .has_suspended_sources()
    );
}

#[test]
fn receiver_constraints_default_is_empty() {
    // A receiver that never sent constraints gets the initial 180p.
    let rc = ReceiverConstraints::default();
    let mut s = AllocationSettings::new(&AllocationConfig::default());
    assert!(!s.apply(&rc, &AllocationConfig::default()));
    assert_eq!(s.default_constraints.max_height, 180);
}

/// The messages as each client generation's BridgeChannel reads them:
/// current lib-jitsi-meet checks `typeof sourceName === "string"` and
/// `typeof maxHeight === "number"` and takes `forwardedSources` as a list
/// of names; 2.6726 takes `lastNEndpoints` (and `endpointsEnteringLastN`)
/// as lists of endpoint ids and `videoConstraints.idealHeight`.
#[test]
fn messages_parse_as_both_client_generations_read_them() {
    let (mut c, m) = conference(&["a", "b"]);
    let u = update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    let fs = &messages(&u, "a", "ForwardedSources")[0];
    assert!(
        fs["forwardedSources"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string)
    );
    let ssc = &messages(&u, "a", "SenderSourceConstraints")[0];
    assert!(ssc["sourceName"].is_string() && ssc["maxHeight"].is_number());
    let ln = &messages(&u, "a", "LastNEndpointsChangeEvent")[0];
    assert_eq!(ln["lastNEndpoints"], serde_json::json!(["b"]));
    assert_eq!(ln["endpointsEnteringLastN"], serde_json::json!(["b"]));
    let svc = &messages(&u, "a", "SenderVideoConstraints")[0];
    assert!(svc["videoConstraints"]["idealHeight"].is_number());
    // Every message is one JSON object with its colibriClass.
    for (_, text) in &u.messages {
        let v: Value = serde_json::from_str(text).unwrap();
        assert!(v["colibriClass"].is_string());
    }
}

#[test]
fn stats_filtered_in_large_conferences() {
    let (mut c, m) = conference(&["a", "b", "r"]);
    update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert!(wants_stats_from(&c, &c.endpoints["r"], "a"));
    for i in 0..20 {
        let id = format!("x{i:02}");
        c.endpoints
            .insert(id.clone(), Endpoint::new(id, "pwd".into()));
    }
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#,
    );
    c.speakers = vec!["b".into()];
    update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    // 23 endpoints: b is a recent speaker; a is outside r's last-N (its
    // effective constraints are 0); x00 sends nothing and never spoke.
    assert!(wants_stats_from(&c, &c.endpoints["r"], "b"));
    assert!(!wants_stats_from(&c, &c.endpoints["r"], "a"));
    assert!(!wants_stats_from(&c, &c.endpoints["r"], "x00"));
    // Selecting a brings its stats back.
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","selectedSources":["a-v0"]}"#,
    );
    assert!(wants_stats_from(&c, &c.endpoints["r"], "a"));
}

#[test]
fn a_sender_alone_is_not_constrained_until_a_receiver_comes_and_goes() {
    let (mut c, m) = conference(&["a"]);
    let config = AllocationConfig::default();
    let u = update(&mut c, &m, &config, Instant::now());
    assert!(messages(&u, "a", "SenderSourceConstraints").is_empty());
    let mut r = Endpoint::new("r".into(), "pwd".into());
    r.channel_open = true;
    c.endpoints.insert("r".into(), r);
    let u = update(&mut c, &m, &config, Instant::now());
    assert_eq!(
        messages(&u, "a", "SenderSourceConstraints")[0]["maxHeight"],
        180
    );
    c.endpoints.remove("r");
    let u = update(&mut c, &m, &config, Instant::now());
    assert_eq!(
        messages(&u, "a", "SenderSourceConstraints")[0]["maxHeight"],
        0
    );
}

#[test]
fn non_speakers_rank_in_join_order() {
    let mut c = Conference::new("c".into(), "m".into(), None, Instant::now());
    for (i, id) in ["zed", "amy", "bob", "r"].into_iter().enumerate() {
        let mut e = Endpoint::new(id.into(), "pwd".into());
        e.sources.push(simulcast_source(id, 100 * (i as u32 + 1)));
        c.add_endpoint(e);
    }
    let m: Vec<SourceLayers> = ["zed", "amy", "bob"].into_iter().map(measured).collect();
    assert_eq!(c.speaker_order(), vec!["zed", "amy", "bob", "r"]);
    constrain(
        &mut c,
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#,
    );
    update(&mut c, &m, &AllocationConfig::default(), Instant::now());
    assert!(target(&c, "r", "zed-v0").is_some());
    assert_eq!(target(&c, "r", "amy-v0"), None);
    c.speakers = vec!["bob".into()];
    assert_eq!(c.speaker_order(), vec!["bob", "zed", "amy", "r"]);
}
