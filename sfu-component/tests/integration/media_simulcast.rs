//! A simulcast sender (SIM group of three SSRCs with FID rtx each) through
//! the media core: receivers get the top layer the sender actually sends,
//! on the first SIM SSRC, with continuous sequence numbers and VP8 picture
//! ids across a layer switch. Run:
//! `cargo test -p sfu-component --test integration media_simulcast::`.

use crate::media_harness;

use std::time::Duration;

use media_harness::{ClientSsrcs, Net, layer_of, picture_id_of, tl0_of};

#[test]
fn the_top_layer_reaches_receivers_on_the_first_sim_ssrc_continuously() {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 3));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.join("c", ClientSsrcs::new(3000, 1));
    // a starts with its two lower layers only.
    net.client_mut("a").active_layers = vec![0, 1];
    net.connect_all();
    net.run_for(Duration::from_secs(1));
    {
        let b = net.client("b");
        let got = b.received_on(1010);
        assert!(got.len() > 15, "b got {} video packets", got.len());
        assert_eq!(
            layer_of(&got.last().unwrap().payload),
            1,
            "middle layer while top is off"
        );
        assert!(b.received_on(1011).is_empty() && b.received_on(1012).is_empty());
    }
    // The top layer starts with delta frames: the bridge asks for a keyframe
    // of it and switches there.
    let requests_before = net
        .client("a")
        .keyframe_requests
        .iter()
        .filter(|l| **l == 2)
        .count();
    {
        let a = net.client_mut("a");
        a.active_layers = vec![0, 1, 2];
        a.keyframe_due[2] = false;
    }
    net.run_for(Duration::from_secs(1));
    let requests_after = net
        .client("a")
        .keyframe_requests
        .iter()
        .filter(|l| **l == 2)
        .count();
    assert!(
        requests_after > requests_before,
        "no keyframe request for the top layer"
    );

    for me in ["b", "c"] {
        let client = net.client(me);
        let got = client.received_on(1010);
        assert_eq!(
            layer_of(&got.last().unwrap().payload),
            2,
            "{me}: top layer now"
        );
        assert!(got.iter().any(|r| layer_of(&r.payload) == 1));
        // Sequence numbers continue by one; picture ids by one per frame;
        // timestamps never go back.
        for pair in got.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "{me}: seq gap {} -> {}",
                pair[0].seq,
                pair[1].seq
            );
            assert_eq!(
                picture_id_of(&pair[1].payload),
                (picture_id_of(&pair[0].payload) + 1) & 0x7fff,
                "{me}: picture id jump at seq {}",
                pair[1].seq
            );
            assert_eq!(
                tl0_of(&pair[1].payload),
                tl0_of(&pair[0].payload).wrapping_add(1),
                "{me}: TL0PICIDX jump at seq {}",
                pair[1].seq
            );
            assert!(
                pair[1].timestamp > pair[0].timestamp,
                "{me}: timestamp went back"
            );
        }
    }

    // A receiver's PLI for the visible SSRC reaches the layer forwarded.
    let before = net.client("a").keyframe_requests.len();
    net.run_for(Duration::from_millis(300));
    net.client_mut("b").request_keyframe(1010);
    net.run_for(Duration::from_millis(300));
    let asked: Vec<usize> = net.client("a").keyframe_requests[before..].to_vec();
    assert!(asked.contains(&2), "PLI went to layers {asked:?}");

    // The top layer stops: after a second the bridge goes down to the
    // middle one, at one of its keyframes, still continuous.
    net.client_mut("a").active_layers = vec![0, 1];
    let cut = net.now;
    net.run_for(Duration::from_secs(2));
    let got = net.client("b").received_on(1010);
    assert_eq!(
        layer_of(&got.last().unwrap().payload),
        1,
        "back to the middle layer"
    );
    let after: Vec<_> = got.iter().filter(|r| r.at > cut).collect();
    for pair in after.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(
            picture_id_of(&pair[1].payload),
            (picture_id_of(&pair[0].payload) + 1) & 0x7fff
        );
    }
}
