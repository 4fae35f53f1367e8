//! Bridge-to-bridge relays: two sans-IO bridges in one process, relayed
//! with the Colibri2 stanzas Jicofo sends, str0m clients on both.
//! Run: `cargo test -p sfu-component --test relay`.

mod media_harness;

#[path = "media_harness/relay_net.rs"]
mod relay_net;

use std::time::Duration;

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
