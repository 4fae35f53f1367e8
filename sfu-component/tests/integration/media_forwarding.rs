//! The media core with real str0m peers: ICE, DTLS-SRTP, forwarding by
//! SSRC, NACK/RTX, keyframe requests, expiry, dominant speaker, bad input.
//! Run: `cargo test -p sfu-component --test integration media_forwarding::`.

use crate::media_harness;

use std::time::Duration;

use std::sync::{Arc, Mutex};

use media_harness::{
    CONFERENCE, ClientSsrcs, Net, audio_payload, rtp_extension_ids, rtp_ssrc_seq, vp8_payload,
};
use sfu_component::media::{MediaError, MediaEvent};

fn three_clients() -> Net {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.join("c", ClientSsrcs::new(3000, 1));
    net.connect_all();
    net
}

#[test]
fn two_clients_connect_and_exchange_audio_and_video() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    // Watch the extensions on forwarded packets: never the mid (id 10).
    let extension_ids: Arc<Mutex<Vec<u8>>> = Arc::default();
    let seen = extension_ids.clone();
    net.drop_to_client = Some(Box::new(move |_, datagram| {
        seen.lock().unwrap().extend(rtp_extension_ids(datagram));
        false
    }));
    net.connect_all();
    let connected: Vec<&str> = net
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::EndpointConnected {
                conference,
                endpoint,
            } if conference == CONFERENCE => Some(endpoint.as_str()),
            _ => None,
        })
        .collect();
    assert!(connected.contains(&"a") && connected.contains(&"b"));
    net.run_for(Duration::from_secs(1));

    let b = net.client("b");
    let audio = b.received_on(1000);
    let video = b.received_on(1010);
    assert!(
        audio.len() > 30,
        "b got {} audio packets from a",
        audio.len()
    );
    assert!(
        video.len() > 15,
        "b got {} video packets from a",
        video.len()
    );
    // Payloads intact, numbers kept.
    for r in &audio {
        assert_eq!(r.payload, audio_payload(1000, r.seq));
        assert_eq!(r.timestamp as u64, r.seq * 960);
    }
    for r in &video {
        assert_eq!(
            &r.payload[16..],
            &vp8_payload(0, 0, false, 1010, r.seq)[16..]
        );
    }
    let a = net.client("a");
    assert!(a.received_on(2000).len() > 30);
    assert!(a.received_on(2010).len() > 15);
    // Nothing comes back to its own sender.
    assert!(a.received_on(1000).is_empty());
    // The bridge gives each sender transport-wide CC feedback.
    assert!(a.twcc_feedback > 5 && b.twcc_feedback > 5);
    // Each sender was asked for a keyframe when the other connected.
    assert!(
        !a.keyframe_requests.is_empty() && !b.keyframe_requests.is_empty(),
        "a {:?} b {:?} stats {:?}",
        a.keyframe_requests,
        b.keyframe_requests,
        net.core.stats()
    );

    let ids = extension_ids.lock().unwrap();
    assert!(ids.contains(&1), "audio level forwarded");
    assert!(ids.contains(&5), "transport-cc on the bridge's packets");
    assert!(!ids.contains(&10), "the bridge must not stamp its mid");
    drop(ids);

    let stats = net.core.stats();
    assert_eq!(stats.conferences, 1);
    assert_eq!(stats.endpoints, 2);
    assert_eq!(stats.endpoints_sending_audio, 2);
    assert_eq!(stats.endpoints_sending_video, 2);
    assert!(stats.packets_received > 100 && stats.packets_sent > 100);
    assert!(stats.bitrate_download_bps > 0 && stats.packet_rate_upload > 0);
}

#[test]
fn a_client_without_usable_candidates_connects_peer_reflexive() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join_with("a", ClientSsrcs::new(1000, 1), false);
    net.join_with("b", ClientSsrcs::new(2000, 1), false);
    net.connect_all();
    // A later transport-info carries candidates only (no fingerprint).
    let trickled = media_signalling::IceTransport {
        candidates: vec![media_signalling::Candidate {
            foundation: "2".into(),
            component: 1,
            protocol: "udp".into(),
            priority: 1_000,
            address: net.client("a").addr,
            kind: "host".into(),
            generation: 0,
            id: None,
        }],
        ..Default::default()
    };
    net.core
        .set_remote_transport(net.now, CONFERENCE, "a", &trickled)
        .unwrap();
    net.run_for(Duration::from_millis(500));
    assert!(net.client("a").received_on(2010).len() > 5);
    assert!(net.client("b").received_on(1000).len() > 10);
}

#[test]
fn three_clients_each_receive_both_others() {
    let mut net = three_clients();
    net.run_for(Duration::from_secs(1));
    for (me, others) in [
        ("a", [2000, 3000]),
        ("b", [1000, 3000]),
        ("c", [1000, 2000]),
    ] {
        let client = net.client(me);
        for base in others {
            assert!(
                client.received_on(base).len() > 30,
                "{me} misses audio {base}"
            );
            assert!(
                client.received_on(base + 10).len() > 15,
                "{me} misses video {base}"
            );
        }
    }
}

#[test]
fn a_late_joiner_gets_the_others_and_a_keyframe_is_asked_for_it() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_secs(2));
    let asked_before = net.client("a").keyframe_requests.len();
    net.join("c", ClientSsrcs::new(3000, 1));
    net.connect_all();
    net.run_for(Duration::from_secs(1));
    assert!(net.client("a").keyframe_requests.len() > asked_before);
    let c = net.client("c");
    for ssrc in [1000, 1010, 2000, 2010] {
        let got = c.received_on(ssrc);
        assert!(got.len() > 15, "c got {} packets of {ssrc}", got.len());
        // Forwarded as sent: the sender's numbering, not restarted.
        assert!(got[0].seq > 30, "{ssrc} starts at {}", got[0].seq);
    }
    assert!(net.client("a").received_on(3010).len() > 15);
    assert!(net.client("b").received_on(3000).len() > 30);
}

#[test]
fn a_dropped_packet_is_nacked_and_recovered_through_rtx() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_millis(500));
    // Drop the next original transmission of one of a's video packets to b.
    let target = net.client("b").received_on(1010).last().unwrap().seq as u16 + 3;
    let mut done = false;
    net.drop_to_client = Some(Box::new(move |to, datagram| {
        if to == "b" && !done && rtp_ssrc_seq(datagram) == Some((1010, target)) {
            done = true;
            return true;
        }
        false
    }));
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.dropped, 1, "the packet was on the wire and dropped");
    let b = net.client("b");
    let recovered = b
        .received_on(1010)
        .into_iter()
        .filter(|r| r.seq as u16 == target)
        .count();
    assert_eq!(recovered, 1, "the dropped packet came back through RTX");
    let stats = net.core.stats();
    assert!(stats.nacks_received >= 1, "{stats:?}");
    assert!(stats.retransmissions_sent >= 1, "{stats:?}");
}

#[test]
fn a_pli_from_a_receiver_reaches_the_sender() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_secs(2));
    let before = net.client("a").keyframe_requests.len();
    let keyframes_before = net.core.stats().keyframe_requests;
    net.client_mut("b").request_keyframe(1010);
    net.run_for(Duration::from_millis(300));
    assert!(
        net.client("a").keyframe_requests.len() > before,
        "a got no keyframe request"
    );
    assert!(net.core.stats().keyframe_requests > keyframes_before);
}

#[test]
fn an_expired_endpoint_stops_its_streams_at_the_others() {
    let mut net = three_clients();
    net.run_for(Duration::from_millis(500));
    net.core.expire_endpoint(CONFERENCE, "c");
    assert_eq!(net.core.endpoint_ids(CONFERENCE), vec!["a", "b"]);
    net.run_for(Duration::from_millis(100));
    let cut = net.now;
    net.run_for(Duration::from_millis(900));
    for me in ["a", "b"] {
        let late = net
            .client(me)
            .received
            .iter()
            .filter(|r| r.at > cut && (r.ssrc == 3000 || r.ssrc == 3010))
            .count();
        assert_eq!(late, 0, "{me} still receives c");
    }
    // The others still hear each other.
    let after = |me: &str, ssrc| {
        net.client(me)
            .received_on(ssrc)
            .iter()
            .filter(|r| r.at > cut)
            .count()
    };
    assert!(after("a", 2000) > 30 && after("b", 1000) > 30);
    net.core.expire_endpoint(CONFERENCE, "a");
    net.core.expire_endpoint(CONFERENCE, "b");
    assert!(!net.core.has_conference(CONFERENCE));
}

#[test]
fn a_silent_endpoint_expires_after_the_timeout() {
    let mut net = Net::new(Duration::from_secs(2));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.join("c", ClientSsrcs::new(3000, 1));
    net.connect_all();
    net.run_for(Duration::from_millis(500));
    net.client_mut("c").online = false;
    net.run_for(Duration::from_millis(1500));
    assert_eq!(net.core.endpoint_ids(CONFERENCE).len(), 3, "not yet");
    net.run_for(Duration::from_millis(800));
    assert!(net.events.contains(&MediaEvent::EndpointExpired {
        conference: CONFERENCE.into(),
        endpoint: "c".into(),
    }));
    assert_eq!(net.core.endpoint_ids(CONFERENCE), vec!["a", "b"]);
    let cut = net.now;
    net.run_for(Duration::from_millis(500));
    let a = net.client("a");
    assert!(
        a.received_on(2000).iter().any(|r| r.at > cut),
        "a and b go on"
    );
}

#[test]
fn the_dominant_speaker_follows_the_loud_client() {
    let mut net = three_clients();
    net.client_mut("a").level = -20;
    net.run_for(Duration::from_secs(2));
    let last_speaker = |net: &Net| {
        net.events.iter().rev().find_map(|e| match e {
            MediaEvent::DominantSpeakerChanged {
                endpoint,
                previous,
                silence,
                ..
            } => Some((endpoint.clone(), previous.clone(), *silence)),
            _ => None,
        })
    };
    assert_eq!(last_speaker(&net).unwrap().0, "a");
    net.client_mut("a").level = -110;
    net.client_mut("c").level = -25;
    net.run_for(Duration::from_secs(4));
    let (speaker, previous, silence) = last_speaker(&net).unwrap();
    assert_eq!(speaker, "c");
    assert_eq!(previous, vec!["a".to_string()]);
    assert!(!silence);
    net.client_mut("c").level = -120;
    net.run_for(Duration::from_secs(4));
    let (_, _, silence) = last_speaker(&net).unwrap();
    assert!(silence, "nobody speaks: silence");
}

#[test]
fn garbage_datagrams_are_counted_and_ignored() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_millis(300));
    let before = net.core.stats().packets_dropped;
    let bridge = media_harness::BRIDGE.parse().unwrap();
    let stranger = "10.9.9.9:4000".parse().unwrap();
    let known = net.client("a").addr;
    let junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0x80; 3],
        vec![0x80, 100, 0, 1, 0, 0, 0, 1, 0, 0, 3, 0xe8, 9, 9, 9, 9],
        vec![0x81, 200, 0, 1, 0, 0, 3, 0xe8],
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        vec![
            0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6,
        ],
        (0..=255u8).collect(),
    ];
    for j in &junk {
        net.core.handle_receive(net.now, stranger, bridge, j);
        net.core.handle_receive(net.now, known, bridge, j);
    }
    // Pseudo-random datagrams shaped like each protocol on the port (STUN,
    // DTLS, RTP/RTCP) from the known address: str0m's parsers see them all.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..3000usize {
        let mut d = Vec::with_capacity(64);
        for _ in 0..(i % 97) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            d.push(x as u8);
        }
        if let Some(first) = d.first_mut() {
            *first = [0x00, 0x01, 22, 23, 0x80, 0x90][i % 6];
        }
        if i % 6 == 0 && d.len() >= 8 {
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        net.core.handle_receive(net.now, known, bridge, &d);
    }
    let dropped = net.core.stats().packets_dropped - before;
    assert!(dropped >= junk.len() as u64, "dropped only {dropped}");
    // The call goes on.
    let cut = net.now;
    net.run_for(Duration::from_millis(500));
    assert!(net.client("b").received_on(1000).iter().any(|r| r.at > cut));
}

#[test]
fn an_unsignalled_ssrc_is_not_forwarded() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let wire = seen.clone();
    net.drop_to_client = Some(Box::new(move |_, datagram| {
        if let Some((ssrc, _)) = rtp_ssrc_seq(datagram) {
            wire.lock().unwrap().push(ssrc);
        }
        false
    }));
    net.connect_all();
    for seq in 1..50 {
        let now = net.now;
        net.client_mut("a").send_unsignalled(now, 1099, seq);
        net.run_for(Duration::from_millis(20));
    }
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&1000), "signalled audio flows");
    assert!(!seen.contains(&1099), "unsignalled SSRC forwarded");
}

#[test]
fn an_ssrc_of_another_endpoint_is_refused() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    let stolen = ClientSsrcs::new(1000, 1).sources("b");
    match net.core.set_sources(CONFERENCE, "b", &stolen) {
        Err(MediaError::SsrcConflict { ssrc, owner }) => {
            assert_eq!(ssrc, 1000);
            assert_eq!(owner, "a");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Nothing changed: b still owns its own, and may set them again.
    net.core
        .set_sources(CONFERENCE, "b", &ClientSsrcs::new(2000, 1).sources("b"))
        .unwrap();
    assert!(matches!(
        net.core.set_sources(CONFERENCE, "nobody", &[]),
        Err(MediaError::UnknownEndpoint(_))
    ));
    assert!(matches!(
        net.core.create_endpoint(net.now, CONFERENCE, "a", true),
        Err(MediaError::EndpointExists(_))
    ));
}

#[test]
fn conferences_are_isolated_even_with_the_same_ids_and_ssrcs() {
    let mut net = Net::new(Duration::from_secs(60));
    let other = "room2@conference.example.com";
    net.join_full("x-a", CONFERENCE, "a", ClientSsrcs::new(1000, 1), true);
    net.join_full("x-b", CONFERENCE, "b", ClientSsrcs::new(2000, 1), true);
    net.join_full("y-a", other, "a", ClientSsrcs::new(1000, 1), true);
    net.join_full("y-c", other, "c", ClientSsrcs::new(3000, 1), true);
    net.connect_all();
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.core.stats().conferences, 2);
    assert_eq!(net.core.endpoint_ids(other), vec!["a", "c"]);
    // Nothing crosses rooms, although both rooms have an endpoint "a"
    // sending SSRC 1000.
    assert!(net.client("x-b").received_on(3000).is_empty());
    assert!(net.client("y-c").received_on(2000).is_empty());
    assert!(net.client("x-b").received_on(1000).len() > 30);
    assert!(net.client("y-c").received_on(1000).len() > 30);
    assert!(net.client("x-a").received_on(2000).len() > 30);
    assert!(net.client("y-a").received_on(3010).len() > 15);
    // Exactly one copy of each of a's packets reaches each room.
    let b_audio = net.client("x-b").received_on(1000);
    let mut seqs: Vec<u64> = b_audio.iter().map(|r| r.seq).collect();
    seqs.dedup();
    assert_eq!(seqs.len(), b_audio.len());
}

#[test]
fn the_core_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<sfu_component::media::MediaCore>();
}

#[test]
fn force_mute_stops_forwarding() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 1));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_millis(300));
    net.core.force_mute(CONFERENCE, "a", true, false).unwrap();
    net.run_for(Duration::from_millis(50));
    let cut = net.now;
    net.run_for(Duration::from_millis(500));
    let b = net.client("b");
    assert!(
        !b.received_on(1000).iter().any(|r| r.at > cut),
        "audio muted"
    );
    assert!(
        b.received_on(1010).iter().any(|r| r.at > cut),
        "video flows"
    );
    net.core.force_mute(CONFERENCE, "a", false, true).unwrap();
    net.run_for(Duration::from_millis(50));
    let cut = net.now;
    net.run_for(Duration::from_millis(500));
    let b = net.client("b");
    assert!(b.received_on(1000).iter().any(|r| r.at > cut), "audio back");
    assert!(
        !b.received_on(1010).iter().any(|r| r.at > cut),
        "video muted"
    );
}

#[test]
fn a_nack_for_a_stream_without_rtx_is_not_answered_and_breaks_nothing() {
    let mut net = Net::new(Duration::from_secs(60));
    // a sends video without a FID (rtx) SSRC; b negotiated rtx all the same.
    let mut no_rtx = ClientSsrcs::new(1000, 1);
    no_rtx.rtx.clear();
    net.join("a", no_rtx);
    net.join("b", ClientSsrcs::new(2000, 1));
    net.connect_all();
    net.run_for(Duration::from_millis(500));
    let target = net.client("b").received_on(1010).last().unwrap().seq as u16 + 3;
    let mut done = false;
    net.drop_to_client = Some(Box::new(move |to, datagram| {
        if to == "b" && !done && rtp_ssrc_seq(datagram) == Some((1010, target)) {
            done = true;
            return true;
        }
        false
    }));
    let before = net.client("b").received_on(1010).len();
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.dropped, 1, "the packet was on the wire and dropped");
    // No resend (nothing to resend it on), and media goes on flowing.
    let b = net.client("b");
    assert!(b.received_on(1010).len() > before + 20);
    assert!(!b.received_on(1010).iter().any(|r| r.seq as u16 == target));
}
