//! Media events reaching the signalling side.

use super::*;
use std::net::SocketAddr;

fn bridge_with_two_endpoints() -> (Bridge, String, Vec<(String, String)>) {
    let media = MediaConfig {
        candidate_addresses: vec!["127.0.0.1:10000".parse::<SocketAddr>().unwrap()],
        endpoint_timeout: Duration::from_secs(60),
    };
    let mut b = Bridge::new(BridgeConfig::new("jvb", "ws://127.0.0.1/colibri-ws", media));
    let now = Instant::now();
    let mut pwds = Vec::new();
    for (i, ep) in ["a", "b"].into_iter().enumerate() {
        let create = if i == 0 { " create='true'" } else { "" };
        let xml = format!(
            "<iq xmlns='jabber:client' type='set' id='i{i}'><conference-modify xmlns='jitsi:colibri2' meeting-id='m'{create}>\
             <endpoint id='{ep}' create='true'><transport ice-controlling='true'/></endpoint></conference-modify></iq>"
        );
        b.handle_stanza(now, xmpp_core::stream::parse_element(&xml).unwrap());
        let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
        assert!(matches!(&outs[0], Output::Stanza(s) if s.type_() == Some("result")));
    }
    let conf = b.conference_id("m").unwrap().to_string();
    for ep in ["a", "b"] {
        let pwd = b.conference(&conf).unwrap().endpoints[ep].pwd.clone();
        b.handle_channel_open(now, &conf, ep, &pwd).unwrap();
        pwds.push((ep.to_string(), pwd));
    }
    std::iter::from_fn(|| b.poll_output()).for_each(drop);
    (b, conf, pwds)
}

#[test]
fn dominant_speaker_reaches_every_endpoint() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    b.handle_media_event(MediaEvent::DominantSpeakerChanged {
        conference: conf.clone(),
        endpoint: "b".into(),
        previous: vec!["a".into()],
        silence: false,
    });
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    for ep in ["a", "b"] {
        let m = outs.iter().find_map(|o| match o {
            Output::Channel {
                endpoint, message, ..
            } if endpoint == ep && message.contains("DominantSpeakerEndpointChangeEvent") => {
                Some(serde_json::from_str::<serde_json::Value>(message).unwrap())
            }
            _ => None,
        });
        let m = m.unwrap_or_else(|| panic!("{ep} got no dominant speaker event"));
        assert_eq!(m["dominantSpeakerEndpoint"], "b");
        assert_eq!(m["previousSpeakers"], serde_json::json!(["a"]));
        assert_eq!(m["silence"], false);
    }
    assert_eq!(b.counters().dominant_speaker_changes, 1);
}

#[test]
fn media_expiry_removes_endpoint_then_conference() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    b.handle_media_event(MediaEvent::EndpointExpired {
        conference: conf.clone(),
        endpoint: "a".into(),
    });
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::CloseChannel { endpoint, .. } if endpoint == "a"))
    );
    assert!(b.conference(&conf).is_some());
    b.handle_media_event(MediaEvent::EndpointExpired {
        conference: conf.clone(),
        endpoint: "b".into(),
    });
    assert!(b.conference(&conf).is_none());
    assert!(b.conference_id("m").is_none());
}

/// Sends `a` and `b` a video source each (a SIM group of three) through a
/// Colibri2 update, as the focus does after session-accept.
fn add_video_sources(b: &mut Bridge, now: Instant) {
    use media_signalling::{MediaKind, Source, SsrcGroup};
    for (i, ep) in ["a", "b"].into_iter().enumerate() {
        let base = 1000 * (i as u32 + 1);
        let source = Source {
            kind: MediaKind::Video,
            name: format!("{ep}-v0"),
            ssrcs: vec![base, base + 1, base + 2],
            groups: vec![SsrcGroup {
                semantics: "SIM".into(),
                ssrcs: vec![base, base + 1, base + 2],
            }],
            video_type: Some("camera".into()),
            msid: None,
        };
        let mut sources = Element::new("sources", NS_COLIBRI2);
        sources.push_child(media_signalling::xml::colibri2_media_source_element(
            &source,
        ));
        let mut endpoint = Element::new("endpoint", NS_COLIBRI2).attr("id", ep);
        endpoint.push_child(sources);
        let mut cm = Element::new("conference-modify", NS_COLIBRI2).attr("meeting-id", "m");
        cm.push_child(endpoint);
        let mut iq = Element::new("iq", "jabber:client")
            .attr("type", "set")
            .attr("id", format!("s{i}"));
        iq.push_child(cm);
        b.handle_stanza(now, iq);
    }
}

fn channel_messages(b: &mut Bridge) -> Vec<(String, serde_json::Value)> {
    std::iter::from_fn(|| b.poll_output())
        .filter_map(|o| match o {
            Output::Channel {
                endpoint, message, ..
            } => Some((endpoint, serde_json::from_str(&message).unwrap())),
            _ => None,
        })
        .collect()
}

#[test]
fn channel_messages_drive_allocation_and_sender_constraints() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    let now = Instant::now();
    add_video_sources(&mut b, now);
    let out = channel_messages(&mut b);
    // Each is told the other's source is forwarded; each sender is asked
    // for the thumbnail height every receiver starts with.
    let told = |out: &[(String, serde_json::Value)], ep: &str, class: &str| {
        out.iter()
            .filter(|(e, m)| e == ep && m["colibriClass"] == class)
            .map(|(_, m)| m.clone())
            .next_back()
    };
    assert_eq!(
        told(&out, "a", "ForwardedSources").unwrap()["forwardedSources"],
        serde_json::json!(["b-v0"])
    );
    assert_eq!(
        told(&out, "a", "SenderSourceConstraints").unwrap()["maxHeight"],
        180
    );
    // b wants a in 720p (current clients' shape).
    b.handle_channel_message(
        now,
        &conf,
        "b",
        r#"{"colibriClass":"ReceiverVideoConstraints","constraints":{"a-v0":{"maxHeight":720}}}"#,
    );
    let out = channel_messages(&mut b);
    assert_eq!(
        told(&out, "a", "SenderSourceConstraints").unwrap()["maxHeight"],
        720
    );
    assert_eq!(
        told(&out, "a", "SenderVideoConstraints").unwrap()["videoConstraints"]["idealHeight"],
        720
    );
    // b turns video off (2021 LastNChangedEvent): a is asked for nothing,
    // b is told nothing is forwarded.
    b.handle_channel_message(
        now,
        &conf,
        "b",
        r#"{"colibriClass":"LastNChangedEvent","lastN":0}"#,
    );
    let out = channel_messages(&mut b);
    assert_eq!(
        told(&out, "a", "SenderSourceConstraints").unwrap()["maxHeight"],
        0
    );
    assert_eq!(
        told(&out, "b", "ForwardedSources").unwrap()["forwardedSources"],
        serde_json::json!([])
    );
    assert_eq!(
        told(&out, "b", "LastNEndpointsChangeEvent").unwrap()["lastNEndpoints"],
        serde_json::json!([])
    );
    // The bridge's counters see b's receive side.
    let debug = &b.debug_states()[&conf];
    assert_eq!(
        debug["endpoints"]["b"]["bitrateController"]["bitrate_allocator"]["allocationSettings"]["last_n"],
        0
    );
}

/// Two endpoints with video; b's media started at the returned instant.
fn receiver_b_connected() -> (Bridge, String, Instant) {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    let start = Instant::now();
    add_video_sources(&mut b, start);
    channel_messages(&mut b);
    b.handle_media_event(MediaEvent::EndpointConnected {
        conference: conf.clone(),
        endpoint: "b".into(),
    });
    (b, conf, start)
}

#[test]
fn bandwidth_estimates_reallocate_past_the_threshold_once_trusted() {
    let (mut b, conf, start) = receiver_b_connected();
    channel_messages(&mut b);
    let bwe = |b: &Bridge| {
        b.conference(&conf).unwrap().endpoints["b"]
            .allocation
            .bwe_bps
    };
    // Within the initial period: recorded, not acted on.
    b.handle_media_event(MediaEvent::BandwidthEstimate {
        conference: conf.clone(),
        endpoint: "b".into(),
        bps: 10_000,
    });
    assert_eq!(bwe(&b), 10_000);
    assert!(channel_messages(&mut b).is_empty());
    // Later, a small change is ignored, a large one taken.
    let later = start + Duration::from_secs(11);
    b.handle_timeout(later);
    b.handle_media_event(MediaEvent::BandwidthEstimate {
        conference: conf.clone(),
        endpoint: "b".into(),
        bps: 11_000,
    });
    assert_eq!(bwe(&b), 10_000);
    b.handle_media_event(MediaEvent::BandwidthEstimate {
        conference: conf.clone(),
        endpoint: "b".into(),
        bps: 5_000_000,
    });
    assert_eq!(bwe(&b), 5_000_000);
    // Periodic reallocation is scheduled.
    assert!(
        b.next_timeout()
            .is_some_and(|t| t <= later + Duration::from_secs(5))
    );
}

#[test]
fn colibri2_initial_last_n_limits_a_receiver() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    let now = Instant::now();
    let xml = "<iq xmlns='jabber:client' type='set' id='ln'><conference-modify xmlns='jitsi:colibri2' meeting-id='m'>\
        <endpoint id='b'><initial-last-n value='0'/></endpoint></conference-modify></iq>";
    b.handle_stanza(now, xmpp_core::stream::parse_element(xml).unwrap());
    add_video_sources(&mut b, now);
    let out = channel_messages(&mut b);
    let last = |ep: &str, class: &str| {
        out.iter()
            .filter(|(e, m)| e == ep && m["colibriClass"] == class)
            .map(|(_, m)| m.clone())
            .next_back()
            .unwrap()
    };
    // b was told at channel open that nothing is forwarded; that stays.
    assert!(
        !out.iter()
            .any(|(e, m)| e == "b" && m["colibriClass"] == "ForwardedSources")
    );
    let allocation = &b.conference(&conf).unwrap().endpoints["b"]
        .allocation
        .allocation;
    assert!(allocation.forwarded().next().is_none());
    assert_eq!(
        last("a", "ForwardedSources")["forwardedSources"],
        serde_json::json!(["b-v0"])
    );
    // Nobody wants a's video.
    assert_eq!(last("a", "SenderSourceConstraints")["maxHeight"], 0);
    // The bridge channel's lastN overrides it.
    b.handle_channel_message(
        now,
        &conf,
        "b",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1}"#,
    );
    let out = channel_messages(&mut b);
    assert!(out.iter().any(|(e, m)| e == "b"
        && m["colibriClass"] == "ForwardedSources"
        && m["forwardedSources"] == serde_json::json!(["a-v0"])));
}

#[test]
fn a_lost_estimate_stops_limiting_the_receiver() {
    let (mut b, conf, start) = receiver_b_connected();
    let later = start + Duration::from_secs(11);
    b.handle_timeout(later);
    channel_messages(&mut b);
    let allocator = |b: &Bridge| {
        b.conference(&conf).unwrap().endpoints["b"]
            .allocation
            .clone()
    };
    // A trusted estimate.
    b.handle_media_event(MediaEvent::BandwidthEstimate {
        conference: conf.clone(),
        endpoint: "b".into(),
        bps: 300_000,
    });
    assert_eq!(
        allocator(&b).available_bps(later, &b.config.allocation),
        Some(300_000)
    );
    // b gives no transport-wide feedback after all: no estimate, no limit.
    b.handle_media_event(MediaEvent::BandwidthEstimateLost {
        conference: conf.clone(),
        endpoint: "b".into(),
    });
    let state = allocator(&b);
    assert_eq!(state.bwe_bps, -1);
    assert_eq!(state.available_bps(later, &b.config.allocation), None);
}
