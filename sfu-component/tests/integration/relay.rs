//! Bridge-to-bridge relays: two sans-IO bridges in one process, relayed
//! with the Colibri2 stanzas Jicofo sends, str0m clients on both.
//! Run: `cargo test -p sfu-component --test integration relay::`.

use crate::media_harness;

#[path = "media_harness/relay_net.rs"]
mod relay_net;

use std::time::Duration;

use media_harness::layered::decode;
use media_harness::{ClientSsrcs, audio_payload, vp8_payload};
use relay_net::RelayNet;

/// a1 and a2 on bridge 0, b1 on bridge 1.
fn relayed_call() -> RelayNet {
    let mut net = RelayNet::new();
    net.join(0, "a1", ClientSsrcs::new(1000, 1));
    net.join(1, "b1", ClientSsrcs::new(2000, 1));
    net.join(0, "a2", ClientSsrcs::new(3000, 1));
    net.connect_relay();
    net.connect_all();
    net
}

#[test]
fn media_crosses_the_relay_both_ways() {
    let mut net = relayed_call();
    net.run_for(Duration::from_secs(2));
    assert!(net.relayed_datagrams > 0);
    let (c0, c1) = (net.conferences[0].clone(), net.conferences[1].clone());
    assert!(
        net.bridges[0].relay_connected(&c0, "jvb-b"),
        "relay on bridge 0 not connected"
    );
    assert!(
        net.bridges[1].relay_connected(&c1, "jvb-a"),
        "relay on bridge 1 not connected"
    );
    assert_eq!(net.bridges[1].relayed_endpoints(&c1), ["a1", "a2"]);
    assert_eq!(net.bridges[0].relayed_endpoints(&c0), ["b1"]);
    // Stats count this bridge's own endpoints only.
    assert_eq!(net.bridges[0].stats().participants, 2);
    assert_eq!(net.bridges[1].stats().participants, 1);
    let b1 = net.client("b1");
    let audio = b1.received_on(1000);
    let video = b1.received_on(1010);
    assert!(
        audio.len() > 40,
        "b1 got {} audio packets of a1",
        audio.len()
    );
    assert!(
        video.len() > 20,
        "b1 got {} video packets of a1",
        video.len()
    );
    for r in &audio {
        assert_eq!(r.payload, audio_payload(1000, r.seq));
    }
    for r in &video {
        assert_eq!(
            &r.payload[16..],
            &vp8_payload(0, 0, false, 1010, r.seq)[16..]
        );
    }
    // The other way: a1 and a2 get b1 through the relay.
    for a in ["a1", "a2"] {
        let c = net.client(a);
        assert!(c.received_on(2000).len() > 40, "{a} got no audio of b1");
        assert!(c.received_on(2010).len() > 20, "{a} got no video of b1");
    }
    // And locally as before.
    assert!(net.client("a2").received_on(1010).len() > 20);
}

#[test]
fn a_keyframe_request_crosses_the_relay_to_the_sender() {
    let mut net = relayed_call();
    net.run_for(Duration::from_secs(2));
    // Nobody asks: the sender is left alone.
    net.client_mut("a1").keyframe_requests.clear();
    net.run_for(Duration::from_millis(500));
    assert!(net.client("a1").keyframe_requests.is_empty());
    // b1, on the other bridge, sends a PLI for a1's video.
    net.client_mut("b1").request_keyframe(1010);
    net.run_for(Duration::from_millis(300));
    assert!(
        !net.client("a1").keyframe_requests.is_empty(),
        "b1's PLI did not reach a1 across the relay"
    );
}

#[test]
fn simulcast_layers_are_chosen_per_receiver_across_the_relay() {
    let mut net = RelayNet::new();
    net.join(0, "a1", ClientSsrcs::new(1000, 3));
    net.join(1, "b1", ClientSsrcs::new(2000, 1));
    net.join(1, "b2", ClientSsrcs::new(3000, 1));
    net.join(0, "a2", ClientSsrcs::new(4000, 1));
    net.client_mut("a1").layered = true;
    net.connect_relay();
    net.message(
        1,
        "b1",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":180},"constraints":{}}"#,
    );
    net.message(
        1,
        "b2",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"onStageSources":["a1-v0"],"defaultConstraints":{"maxHeight":180},"constraints":{"a1-v0":{"maxHeight":720}}}"#,
    );
    net.message(
        0,
        "a2",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":180},"constraints":{}}"#,
    );
    net.connect_all();
    net.run_for(Duration::from_secs(4));
    // Every layer crossed the relay once, on its own SSRC; each receiver
    // on bridge 1 decodes the layer it asked for on the first SIM SSRC.
    for (receiver, layer, height) in [("b1", 0u8, 180u16), ("b2", 2, 720), ("a2", 0, 180)] {
        let got = net.client(receiver).received_on(1010);
        let decoded = decode(&got);
        assert!(
            decoded.errors.is_empty(),
            "{receiver}: {:?}",
            decoded.errors
        );
        let last: Vec<u8> = decoded
            .frames
            .iter()
            .rev()
            .take(30)
            .map(|f| f.layer)
            .collect();
        assert_eq!(last.len(), 30, "{receiver} decoded too little");
        assert!(
            last.iter().all(|l| *l == layer),
            "{receiver} got layers {last:?}"
        );
        assert!(
            decoded
                .frames
                .iter()
                .any(|f| f.layer == layer && f.height == Some(height)),
            "{receiver}: no {height}p key frame"
        );
        for other in [1011, 1012] {
            assert!(net.client(receiver).received_on(other).is_empty());
        }
    }
    // The sender is asked for what the receivers of both bridges need:
    // b2's 720p came over the relay bridge channel (AddReceiver).
    let asked = net.messages_of("a1", "SenderSourceConstraints");
    assert_eq!(asked.last().unwrap()["maxHeight"], 720, "{asked:?}");
}

#[test]
fn an_endpoint_expired_on_its_bridge_stops_on_the_other() {
    let mut net = relayed_call();
    net.run_for(Duration::from_secs(1));
    net.leave(0, "a1");
    let c1 = net.conferences[1].clone();
    assert_eq!(net.bridges[1].relayed_endpoints(&c1), ["a2"]);
    assert!(
        !net.bridges[1]
            .conference(&c1)
            .unwrap()
            .endpoints
            .contains_key("a1")
    );
    let before = net.client("b1").received_on(1000).len();
    let before_a2 = net.client("b1").received_on(3000).len();
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        net.client("b1").received_on(1000).len(),
        before,
        "a1's audio still flows"
    );
    assert!(
        net.client("b1").received_on(3000).len() > before_a2 + 40,
        "a2's audio stopped"
    );
    // The focus expires the relay: nothing of bridge 0 reaches b1 any more.
    let relay = xmpp_core::Element::new("relay", "jitsi:colibri2")
        .attr("id", "jvb-a")
        .attr("expire", "true");
    net.conference_modify(1, vec![relay]);
    assert!(net.bridges[1].relayed_endpoints(&c1).is_empty());
    assert!(
        !net.bridges[1]
            .conference(&c1)
            .unwrap()
            .endpoints
            .contains_key("a2")
    );
    let before_a2 = net.client("b1").received_on(3000).len();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.client("b1").received_on(3000).len(), before_a2);
}

#[test]
fn the_dominant_speaker_is_chosen_across_bridges() {
    let mut net = relayed_call();
    net.client_mut("b1").level = -10;
    net.run_for(Duration::from_secs(3));
    // a1 and a2, on the other bridge, hear b1 as the dominant speaker.
    for a in ["a1", "a2"] {
        let events = net.messages_of(a, "DominantSpeakerEndpointChangeEvent");
        assert_eq!(
            events.last().map(|e| e["dominantSpeakerEndpoint"].clone()),
            Some(serde_json::json!("b1")),
            "{a} got {events:?}"
        );
    }
    // Then a1 speaks: b1 is told so by its own bridge.
    net.client_mut("b1").level = -110;
    net.client_mut("a1").level = -10;
    net.run_for(Duration::from_secs(3));
    let events = net.messages_of("b1", "DominantSpeakerEndpointChangeEvent");
    assert_eq!(events.last().unwrap()["dominantSpeakerEndpoint"], "a1");
}

#[test]
fn relay_requests_are_refused_as_videobridge_does() {
    let mut net = RelayNet::new();
    net.join(0, "a1", ClientSsrcs::new(1000, 1));
    let create = net.relay_create(0);
    net.conference_modify(0, vec![create.clone()]);
    let condition = |reply: &xmpp_core::Element| sfu_component::colibri2::error_condition(reply);
    // Twice: conflict.
    let reply = net.conference_modify_any(0, vec![create]);
    assert_eq!(condition(&reply).as_deref(), Some("conflict"));
    // An update of an unknown relay: bad-request.
    let unknown = xmpp_core::Element::new("relay", "jitsi:colibri2").attr("id", "jvb-x");
    let reply = net.conference_modify_any(0, vec![unknown]);
    assert_eq!(condition(&reply).as_deref(), Some("bad-request"));
    // A create without a transport: bad-request.
    let bare = xmpp_core::Element::new("relay", "jitsi:colibri2")
        .attr("id", "jvb-y")
        .attr("create", "true");
    let reply = net.conference_modify_any(0, vec![bare]);
    assert_eq!(condition(&reply).as_deref(), Some("bad-request"));
    // SCTP: feature-not-implemented.
    let mut sctp = xmpp_core::Element::new("relay", "jitsi:colibri2")
        .attr("id", "jvb-z")
        .attr("create", "true");
    sctp.push_child(
        xmpp_core::Element::new("transport", "jitsi:colibri2")
            .child(xmpp_core::Element::new("sctp", "jitsi:colibri2")),
    );
    let reply = net.conference_modify_any(0, vec![sctp]);
    assert_eq!(
        condition(&reply).as_deref(),
        Some("feature-not-implemented")
    );
    // Expire (known or not): answered with expire.
    let expire = xmpp_core::Element::new("relay", "jitsi:colibri2")
        .attr("id", "jvb-b")
        .attr("expire", "true");
    let reply = net.conference_modify(0, vec![expire]);
    let relay = reply
        .get_child("conference-modified", "jitsi:colibri2")
        .and_then(|cm| cm.get_child("relay", "jitsi:colibri2"))
        .unwrap();
    assert_eq!(relay.get_attr("expire"), Some("true"));
    let c0 = net.conferences[0].clone();
    assert!(!net.bridges[0].relay_connected(&c0, "jvb-b"));
    // The relay's transport answered to the create carried the relay
    // bridge-channel URL.
    let mut again = RelayNet::new();
    again.join(0, "a1", ClientSsrcs::new(1000, 1));
    let create = again.relay_create(0);
    let reply = again.conference_modify(0, vec![create]);
    let ws = reply
        .get_child("conference-modified", "jitsi:colibri2")
        .and_then(|cm| cm.get_child("relay", "jitsi:colibri2"))
        .and_then(|r| r.get_child("transport", "jitsi:colibri2"))
        .and_then(|t| t.get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1"))
        .and_then(|t| t.get_child("web-socket", "http://jitsi.org/protocol/colibri"))
        .and_then(|w| w.get_attr("url"))
        .unwrap()
        .to_string();
    let conference = again.conferences[0].clone();
    assert!(
        ws.starts_with(&format!(
            "ws://127.0.0.1/colibri-relay-ws/bridge-0/{conference}/jvb-b?pwd="
        )),
        "{ws}"
    );
}

#[test]
fn the_relay_bridge_channel_carries_messages_video_types_and_receivers() {
    let mut net = relayed_call();
    net.run_for(Duration::from_secs(1));
    assert!(net.relay_messages > 0);
    // An endpoint message to an endpoint of the other bridge.
    net.message(
        1,
        "b1",
        r#"{"colibriClass":"EndpointMessage","to":"a1","msgPayload":{"x":1}}"#,
    );
    let got = net.messages_of("a1", "EndpointMessage");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["from"], "b1");
    assert_eq!(got[0]["msgPayload"]["x"], 1);
    assert!(net.messages_of("a2", "EndpointMessage").is_empty());
    // To everyone: the other bridge's endpoints too.
    net.message(
        0,
        "a2",
        r#"{"colibriClass":"EndpointMessage","to":"","msgPayload":{"y":2}}"#,
    );
    let got = net.messages_of("b1", "EndpointMessage");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["from"], "a2");
    // A source's video type reaches the other bridge's allocation.
    net.message(
        0,
        "a1",
        r#"{"colibriClass":"SourceVideoTypeMessage","sourceName":"a1-v0","videoType":"desktop"}"#,
    );
    let c1 = net.conferences[1].clone();
    let relayed = &net.bridges[1].conference(&c1).unwrap().endpoints["a1"];
    assert_eq!(
        relayed.video_types.get("a1-v0").map(String::as_str),
        Some("desktop")
    );
    // What b1 asks of a1's video is told to a1's bridge (AddReceiver).
    net.message(
        1,
        "b1",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":180},"constraints":{}}"#,
    );
    net.run_for(Duration::from_millis(200));
    let c0 = net.conferences[0].clone();
    assert_eq!(
        net.bridges[0].relay_receiver_height(&c0, "jvb-b", "a1-v0"),
        Some(180)
    );
    net.message(
        1,
        "b1",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":0},"constraints":{"a2-v0":{"maxHeight":180}}}"#,
    );
    net.run_for(Duration::from_millis(200));
    assert_eq!(
        net.bridges[0].relay_receiver_height(&c0, "jvb-b", "a1-v0"),
        None
    );
    // Nobody on bridge 1 wants a1's video any more: it stops crossing the
    // relay (its audio and a2's video go on).
    let count = |net: &RelayNet, ssrc| net.relayed_rtp.get(&ssrc).copied().unwrap_or(0);
    let (video, audio, other) = (count(&net, 1010), count(&net, 1000), count(&net, 3010));
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        count(&net, 1010),
        video,
        "a1's video still crosses the relay"
    );
    assert!(count(&net, 1000) > audio + 40);
    assert!(count(&net, 3010) > other + 20);
}

#[test]
fn an_endpoint_moved_from_a_failed_bridge_becomes_local() {
    let mut net = relayed_call();
    net.run_for(Duration::from_secs(1));
    // b1 is re-invited on bridge 0 (its bridge failed) before the focus
    // expired the relay: the relayed b1 makes way for the local one.
    let mut ep = xmpp_core::Element::new("endpoint", "jitsi:colibri2")
        .attr("id", "b1")
        .attr("create", "true");
    ep.push_child(
        xmpp_core::Element::new("transport", "jitsi:colibri2").attr("ice-controlling", "true"),
    );
    net.conference_modify(0, vec![ep]);
    let c0 = net.conferences[0].clone();
    assert!(net.bridges[0].relayed_endpoints(&c0).is_empty());
    let b1 = &net.bridges[0].conference(&c0).unwrap().endpoints["b1"];
    assert!(b1.relay.is_none());
    assert_eq!(net.bridges[0].stats().participants, 3);
}
