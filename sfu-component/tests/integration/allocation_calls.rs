//! Bandwidth allocation end to end: str0m clients in a conference on the
//! whole sans-IO bridge (Colibri2, bridge channel, media core). Receivers
//! asking for 180p and 720p get different simulcast layers; last-N 1
//! forwards only the dominant speaker's video; a receiver behind a shaped
//! link falls to a lower layer within seconds and climbs back when the
//! limit lifts; the messages of both client generations follow. Run: `cargo test -p sfu-component --test integration allocation_calls::`.

use crate::bridge_net;
use crate::media_harness;

use std::time::Duration;

use bridge_net::{CallNet, Shaper};
use media_harness::{ClientSsrcs, layer_of};

/// The layer tags of the last `n` video packets `receiver` got on `ssrc`.
fn last_layers(net: &CallNet, receiver: &str, ssrc: u32, n: usize) -> Vec<u8> {
    let got = net.client(receiver).received_on(ssrc);
    got.iter()
        .rev()
        .take(n)
        .map(|r| layer_of(&r.payload))
        .collect()
}

#[test]
fn receivers_asking_180p_and_720p_get_different_layers() {
    let mut net = CallNet::new();
    net.join("s", ClientSsrcs::new(1000, 3));
    net.join("r180", ClientSsrcs::new(2000, 1));
    net.join("r720", ClientSsrcs::new(3000, 1));
    net.join("r2021", ClientSsrcs::new(4000, 1));
    net.send_simulcast("s");
    // A 2021 client (2.6726) keys its constraints by endpoint id.
    net.message(
        "r2021",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"selectedEndpoints":[],"onStageEndpoints":["s"],"defaultConstraints":{"maxHeight":180},"constraints":{"s":{"maxHeight":360}}}"#,
    );
    net.message(
        "r180",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"defaultConstraints":{"maxHeight":180},"constraints":{}}"#,
    );
    net.message(
        "r720",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"onStageSources":["s-v0"],"defaultConstraints":{"maxHeight":180},"constraints":{"s-v0":{"maxHeight":720}}}"#,
    );
    net.connect_all();
    net.run_for(Duration::from_secs(3));
    let visible = net.client("s").ssrcs.video[0];
    let low = last_layers(&net, "r180", visible, 20);
    let high = last_layers(&net, "r720", visible, 20);
    assert_eq!(low.len(), 20, "r180 got too little video");
    assert_eq!(high.len(), 20, "r720 got too little video");
    assert!(low.iter().all(|l| *l == 0), "r180 got layers {low:?}");
    assert!(high.iter().all(|l| *l == 2), "r720 got layers {high:?}");
    let middle = last_layers(&net, "r2021", visible, 20);
    assert!(
        middle.iter().all(|l| *l == 1),
        "r2021 got layers {middle:?}"
    );
    // The other SIM SSRCs never reach a receiver.
    for r in ["r180", "r720"] {
        for ssrc in &net.client("s").ssrcs.video[1..] {
            assert!(net.client(r).received_on(*ssrc).is_empty());
        }
    }
    // Both are told s-v0 is forwarded (both generations' messages).
    for r in ["r180", "r720"] {
        let fs = net.messages_of(r, "ForwardedSources");
        let names = fs.last().unwrap()["forwardedSources"].as_array().unwrap();
        assert!(names.contains(&"s-v0".into()), "{names:?}");
        let ln = net.messages_of(r, "LastNEndpointsChangeEvent");
        assert!(
            ln.last().unwrap()["lastNEndpoints"]
                .as_array()
                .unwrap()
                .contains(&"s".into())
        );
    }
    // The sender is asked for 720p of its camera.
    let ssc = net.messages_of("s", "SenderSourceConstraints");
    let last = ssc
        .iter()
        .rev()
        .find(|m| m["sourceName"] == "s-v0")
        .unwrap();
    assert_eq!(last["maxHeight"], 720);
    // The debug state shows the allocation with the measured heights.
    let stats = net.bridge.stats();
    let debug = net.bridge.debug_states();
    let conf = &debug[&net.conference];
    let r720 = &conf["endpoints"]["r720"]["bitrateController"]["bitrate_allocator"]["allocation"];
    let s = r720["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["source"] == "s-v0")
        .unwrap();
    assert_eq!(s["target_height"], 720, "{r720}");
    assert!(stats.total_target_bps > 0);

    // r720 switches to thumbnails: it falls to the 180p layer.
    net.message(
        "r720",
        r#"{"colibriClass":"ReceiverVideoConstraints","onStageSources":[],"constraints":{}}"#,
    );
    net.run_for(Duration::from_secs(2));
    let now_low = last_layers(&net, "r720", visible, 10);
    assert!(now_low.iter().all(|l| *l == 0), "r720 now got {now_low:?}");
    // The most anyone now needs is r2021's 360p.
    let ssc = net.messages_of("s", "SenderSourceConstraints");
    assert_eq!(ssc.last().unwrap()["maxHeight"], 360);
}

#[test]
fn last_n_one_forwards_only_the_dominant_speaker() {
    let mut net = CallNet::new();
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.join("r", ClientSsrcs::new(3000, 1));
    net.message(
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":1}"#,
    );
    net.client_mut("a").level = -10;
    net.connect_all();
    net.run_for(Duration::from_secs(3));
    let a_video = net.client("a").ssrcs.video[0];
    let b_video = net.client("b").ssrcs.video[0];
    let count = |net: &CallNet, ssrc| net.client("r").received_on(ssrc).len();
    let (a0, b0) = (count(&net, a_video), count(&net, b_video));
    net.run_for(Duration::from_secs(1));
    assert!(
        count(&net, a_video) > a0 + 15,
        "the speaker's video does not flow"
    );
    assert_eq!(
        count(&net, b_video),
        b0,
        "b's video reaches r outside last-N"
    );
    let fs = net.messages_of("r", "ForwardedSources");
    assert_eq!(
        fs.last().unwrap()["forwardedSources"],
        serde_json::json!(["a-v0"])
    );
    // Audio is not cut by last-N.
    let b_audio = net.client("b").ssrcs.audio;
    assert!(!net.client("r").received_on(b_audio).is_empty());

    // b speaks, a falls silent: r now gets b's video only.
    net.client_mut("a").level = -127;
    net.client_mut("b").level = -10;
    net.run_for(Duration::from_secs(4));
    let (a1, b1) = (count(&net, a_video), count(&net, b_video));
    net.run_for(Duration::from_secs(1));
    assert!(
        count(&net, b_video) > b1 + 15,
        "the new speaker's video does not flow"
    );
    assert_eq!(count(&net, a_video), a1, "a's video still reaches r");
    let ln = net.messages_of("r", "LastNEndpointsChangeEvent");
    assert_eq!(
        ln.last().unwrap()["lastNEndpoints"],
        serde_json::json!(["b"])
    );
    assert_eq!(
        ln.last().unwrap()["endpointsEnteringLastN"],
        serde_json::json!(["b"])
    );
}

/// The target layer of `source` in `receiver`'s allocation (debug state).
fn target_spatial(net: &CallNet, receiver: &str, source: &str) -> Option<u64> {
    let allocation = net.bridge.debug_states()[&net.conference]["endpoints"][receiver]["bitrateController"]
        ["bitrate_allocator"]["allocation"]
        .clone();
    allocation["allocations"]
        .as_array()?
        .iter()
        .find(|a| a["source"] == source)?["target"]["spatial"]
        .as_u64()
}

#[test]
fn a_shaped_receiver_falls_to_a_lower_layer_and_climbs_back() {
    let mut net = CallNet::new();
    // About 40, 110 and 330 kbps for the three layers.
    net.frame_padding = [120, 400, 1300];
    net.join("s", ClientSsrcs::new(1000, 3));
    net.join("r", ClientSsrcs::new(2000, 1));
    net.client_mut("r").sending = false;
    net.send_simulcast("s");
    net.message(
        "r",
        r#"{"colibriClass":"ReceiverVideoConstraints","onStageSources":["s-v0"],"constraints":{"s-v0":{"maxHeight":720}}}"#,
    );
    net.connect_all();
    // The estimate is trusted only after Videobridge's initial 10 s.
    net.run_for(Duration::from_secs(11));
    let visible = net.client("s").ssrcs.video[0];
    assert!(last_layers(&net, "r", visible, 10).iter().all(|l| *l == 2));
    net.shapers.insert("r".into(), Shaper::new(250_000));
    let mut fell = None;
    for second in 0..5 {
        net.run_for(Duration::from_secs(1));
        if target_spatial(&net, "r", "s-v0").is_some_and(|s| s < 2) {
            fell = Some(second);
            break;
        }
    }
    let debug =
        net.bridge.debug_states()[&net.conference]["endpoints"]["r"]["bitrateController"].clone();
    assert!(
        fell.is_some(),
        "still on the top layer behind the shaper: {debug}"
    );
    net.run_for(Duration::from_secs(1));
    let layers = last_layers(&net, "r", visible, 10);
    assert!(layers.iter().all(|l| *l < 2), "r still gets {layers:?}");
    // The limit lifts: back to 720p.
    net.shapers.clear();
    let mut climbed = None;
    for second in 0..10 {
        net.run_for(Duration::from_secs(1));
        if target_spatial(&net, "r", "s-v0") == Some(2) {
            climbed = Some(second);
            break;
        }
    }
    eprintln!("fell after {fell:?} s, climbed back after {climbed:?} s");
    let debug =
        net.bridge.debug_states()[&net.conference]["endpoints"]["r"]["bitrateController"].clone();
    assert!(climbed.is_some(), "did not climb back: {debug}");
}

#[test]
fn audio_subscription_none_stops_audio_only() {
    let mut net = CallNet::new();
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("r", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_secs(1));
    let audio = net.client("a").ssrcs.audio;
    let video = net.client("a").ssrcs.video[0];
    let count = |net: &CallNet, ssrc| net.client("r").received_on(ssrc).len();
    assert!(count(&net, audio) > 20, "no audio before");
    net.message(
        "r",
        r#"{"colibriClass":"ReceiverAudioSubscription","mode":"None"}"#,
    );
    net.run_for(Duration::from_millis(200));
    let (a0, v0) = (count(&net, audio), count(&net, video));
    net.run_for(Duration::from_secs(1));
    assert_eq!(count(&net, audio), a0, "audio still flows");
    assert!(count(&net, video) > v0 + 15, "video stopped too");
    // Custom: included and not excluded.
    net.message(
        "r",
        r#"{"colibriClass":"ReceiverAudioSubscription","mode":"Custom","include":["a-a0"],"exclude":[]}"#,
    );
    net.run_for(Duration::from_secs(1));
    assert!(count(&net, audio) > a0 + 20, "audio did not come back");
}
