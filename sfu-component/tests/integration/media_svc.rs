//! Scalable video through the bridge (issue 14): a VP9 SVC sender (3
//! spatial x 3 temporal layers on one SSRC), an AV1 L3T3 sender (the same
//! with the dependency descriptor) and an AV1 simulcast sender (three
//! SSRCs, L1T3 each), with receivers given 180p, 360p and 720p and a lower
//! temporal layer through `MediaCore::set_forwarding`. Every receiver's
//! stream is reassembled and checked as a decoder would
//! (`media_harness/svc_check.rs`): no sequence-number gap, a key frame
//! first, every frame's references received, the marker at the end of
//! each temporal unit; then the receivers switch layers. Run:
//! `cargo test -p sfu-component --test integration media_svc::`.

#[path = "media_harness/av1.rs"]
mod av1;
use crate::media_harness;
#[path = "media_harness/svc.rs"]
mod svc;
#[path = "media_harness/svc_check.rs"]
mod svc_check;

use std::time::Duration;

use media_harness::{CONFERENCE, Client, ClientSsrcs, Net, Received, jitsi_media};
use sfu_component::media::{ForwardingTarget, LayerId};
use svc::{Mode, SvcSender};
use svc_check::{SvcDecoded, check};

/// The receivers and the layers each is given.
const RECEIVERS: [(&str, u8, u8); 4] = [("b", 0, 2), ("c", 1, 2), ("d", 2, 2), ("e", 2, 0)];

/// a sends in `mode`; b, c, d and e receive with their targets.
fn call(mode: Mode) -> (Net, SvcSender) {
    let mut net = Net::new(Duration::from_secs(60));
    let layers = if mode == Mode::Av1Simulcast { 3 } else { 1 };
    net.join_svc("a", ClientSsrcs::new(1000, layers));
    for (i, (who, ..)) in RECEIVERS.iter().enumerate() {
        net.join_svc(who, ClientSsrcs::new(2000 + 1000 * i as u32, 1));
    }
    net.connect_all();
    for (who, s, t) in RECEIVERS {
        target(&mut net, who, s, t);
    }
    (net, SvcSender::new(mode))
}

fn target(net: &mut Net, receiver: &str, spatial: u8, temporal: u8) {
    let now = net.now;
    net.core
        .set_forwarding(
            CONFERENCE,
            receiver,
            vec![ForwardingTarget {
                owner: "a".into(),
                source_name: "a-v0".into(),
                target: Some(LayerId::new(spatial, temporal)),
            }],
            now,
        )
        .unwrap();
}

/// What `who` decoded of a's video (visible SSRC 1010).
fn decoded(net: &Net, mode: Mode, who: &str) -> SvcDecoded {
    let got: Vec<&Received> = net.client(who).received_on(1010);
    check(mode, &got)
}

/// Checks every receiver's last second: only its layers, at the frame
/// rate of its temporal layer; returns the decoded streams.
fn assert_layers(net: &Net, mode: Mode, targets: &[(&str, u8, u8)]) -> Vec<SvcDecoded> {
    let mut all = Vec::new();
    for (who, s, t) in targets {
        let d = decoded(net, mode, who);
        assert!(d.errors.is_empty(), "{who}: {:?}", d.errors);
        let units = d.units_after(net.now - Duration::from_secs(1));
        // A temporal unit every 35 ms: 28.6 a second, 14.3 up to TID 1, 7.1 of
        // TID 0.
        let expected = [7, 14, 28][usize::from(*t).min(2)];
        assert!(
            units.len().abs_diff(expected) <= 2,
            "{who}: {} units in a second: {units:?}",
            units.len()
        );
        for (layer, sid, tid) in &units {
            let got_layer = if mode == Mode::Av1Simulcast {
                *layer
            } else {
                *sid
            };
            assert_eq!(got_layer, *s, "{who}: {units:?}");
            assert!(*tid <= *t, "{who}: {units:?}");
        }
        all.push(d);
    }
    all
}

/// The active decode targets each receiver is told (AV1).
fn assert_active(decoded: &[SvcDecoded], expected: &[u32]) {
    for (d, want) in decoded.iter().zip(expected) {
        let last = d.frames.last().unwrap();
        assert_eq!(last.active, Some(*want), "{last:?}");
    }
}

/// a's source is measured as three spatial layers (with the heights its
/// scalability structure or template structure gives) of three temporal
/// layers each, for allocation.
fn assert_measured(net: &Net) {
    let layers = net.core.source_layers(CONFERENCE);
    let a = layers.iter().find(|s| s.owner == "a").unwrap();
    let got: Vec<(u8, u8, u32)> = a
        .layers
        .iter()
        .map(|l| (l.layer.spatial, l.layer.temporal, l.height))
        .collect();
    let want: Vec<(u8, u8, u32)> = (0..3u8)
        .flat_map(|s| (0..3u8).map(move |t| (s, t, [180, 360, 720][usize::from(s)])))
        .collect();
    assert_eq!(got, want);
}

/// The receivers switch: b up from 180p to 720p (at a key frame it asks
/// for), d down from 720p to 180p with fewer temporal layers.
fn switch_layers(net: &mut Net, sender: &mut SvcSender, mode: Mode) {
    let keys_before = sender.keyframes_sent.len();
    let cut = net.now;
    target(net, "b", 2, 2);
    target(net, "d", 0, 1);
    net.run_svc("a", sender, Duration::from_secs(2));
    assert!(
        sender.keyframes_sent.len() > keys_before,
        "no key frame was asked for"
    );
    let all = assert_layers(net, mode, &[("b", 2, 2), ("d", 0, 1)]);
    // b went up at a key frame; d down without one.
    let b = &all[0];
    let top = |f: &svc_check::GotFrame| {
        if mode == Mode::Av1Simulcast {
            f.layer
        } else {
            f.sid
        }
    };
    let up = b.frames.iter().find(|f| f.at > cut && top(f) == 2).unwrap();
    assert!(up.key, "b switched up at {up:?}");
}

#[test]
fn vp9_svc_receivers_get_their_spatial_and_temporal_layers() {
    let mode = Mode::Vp9Svc;
    let (mut net, mut sender) = call(mode);
    net.run_svc("a", &mut sender, Duration::from_secs(2));
    assert_measured(&net);
    assert_layers(&net, mode, &RECEIVERS);
    switch_layers(&mut net, &mut sender, mode);
}

#[test]
fn av1_svc_receivers_get_their_decode_targets() {
    let mode = Mode::Av1Svc;
    let (mut net, mut sender) = call(mode);
    net.run_svc("a", &mut sender, Duration::from_secs(2));
    assert_measured(&net);
    let decoded = assert_layers(&net, mode, &RECEIVERS);
    // Decode targets 3S+T: b (0,2) can decode S0 ones, c S0 and S1, d all;
    // e (2,0) the T0 ones.
    assert_active(&decoded, &[0b111, 0b111_111, 0x1ff, 0b001_001_001]);
    switch_layers(&mut net, &mut sender, mode);
}

#[test]
fn av1_simulcast_receivers_get_their_ssrc_and_temporal_layers() {
    let mode = Mode::Av1Simulcast;
    let (mut net, mut sender) = call(mode);
    net.run_svc("a", &mut sender, Duration::from_secs(2));
    assert_measured(&net);
    let decoded = assert_layers(&net, mode, &RECEIVERS);
    assert_active(&decoded, &[0b111, 0b111, 0b111, 0b001]);
    // Nothing on the other SIM SSRCs.
    for (who, ..) in RECEIVERS {
        let c = net.client(who);
        assert!(c.received_on(1011).is_empty() && c.received_on(1012).is_empty());
    }
    switch_layers(&mut net, &mut sender, mode);
}

/// An AV1 simulcast receiver goes through every layer and back (each
/// encoder numbering its templates from the same id, as browsers do): at
/// every switch the bridge shifts the new encoder's template ids past the
/// previous structure's, so the receiver's descriptor reader never reads a
/// template id of one encoder with another's templates, and frame numbers
/// go on by one; every layer decodes from its key frame on.
#[test]
fn av1_simulcast_switches_keep_template_ids_and_frame_numbers_consistent() {
    let mode = Mode::Av1Simulcast;
    let (mut net, mut sender) = call(mode);
    net.run_svc("a", &mut sender, Duration::from_secs(2));
    for (s, t) in [(2, 2), (1, 1), (0, 2), (2, 2)] {
        target(&mut net, "b", s, t);
        net.run_svc("a", &mut sender, Duration::from_secs(2));
        // No decoding error so far (template ids, frame numbers,
        // references, gaps), and the layer wanted in the last second.
        assert_layers(&net, mode, &[("b", s, t)]);
    }
    let d = decoded(&net, mode, "b");
    // The structure offsets b saw, at each change of encoder.
    let mut offsets: Vec<(u8, u8)> = Vec::new();
    for f in &d.frames {
        if let Some(offset) = f.structure_offset
            && offsets.last().is_none_or(|(layer, _)| *layer != f.layer)
        {
            offsets.push((f.layer, offset));
        }
    }
    // The last five encoders b got: 180p, then one per switch.
    let layers: Vec<u8> = offsets.iter().map(|(l, _)| *l).collect();
    assert!(layers.ends_with(&[0, 2, 1, 0, 2]), "{offsets:?}");
    // Four templates per structure: each encoder's ids follow the
    // previous one's (the sender numbers them all from 1).
    assert!(
        offsets.windows(2).all(|w| w[1].1 == (w[0].1 + 4) % 64),
        "{offsets:?}"
    );
    // Frame numbers only go forward (by one across a switch, by the
    // frames dropped within a layer: `svc_check` checks both).
    let numbers: Vec<u16> = d.frames.iter().filter_map(|f| f.frame_number).collect();
    assert!(
        numbers
            .windows(2)
            .all(|w| (1..=4).contains(&w[1].wrapping_sub(w[0]))),
        "frame numbers {numbers:?}"
    );
}
