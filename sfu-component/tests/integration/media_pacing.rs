//! Forwarded media is not held back by the bridge: Videobridge does not
//! pace what it forwards (allocation keeps the forwarded rate within the
//! receiver's estimate; only probing padding is paced). str0m's pacer sends
//! at 1.1 times its estimate, and its estimate follows what is sent: after
//! a receiver got a thumbnail for a while, the switch to a larger layer
//! (its key frame, then its rate) queues behind the pacer (55-60 ms here;
//! about 800 ms when audio is paced too). Simulated time (5 ms steps, no
//! network delay). Run:
//! `cargo test -p sfu-component --test integration media_pacing::`.

use crate::media_harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use media_harness::layered::decode;
use media_harness::{CONFERENCE, ClientSsrcs, Net};
use sfu_component::media::{ForwardingTarget, LayerId};

const STEP: Duration = Duration::from_millis(5);

/// a sends three layers; b and c receive.
fn call() -> Net {
    let mut net = Net::new(Duration::from_secs(60));
    net.join("a", ClientSsrcs::new(1000, 3));
    net.join("b", ClientSsrcs::new(2000, 1));
    net.join("c", ClientSsrcs::new(3000, 1));
    net.client_mut("a").layered = true;
    net.connect_all();
    net
}

fn target(net: &mut Net, receiver: &str, layer: LayerId) {
    let now = net.now;
    let target = ForwardingTarget {
        owner: "a".into(),
        source_name: "a-v0".into(),
        target: Some(layer),
    };
    net.core
        .set_forwarding(CONFERENCE, receiver, vec![target], now)
        .unwrap();
}

/// Runs `duration` step by step, noting when a sent each frame of `layer`.
fn run_noting_sends(
    net: &mut Net,
    duration: Duration,
    layer: usize,
    sent: &mut HashMap<u64, Instant>,
) {
    let end = net.now + duration;
    while net.now < end {
        let before = net.client("a").frames_sent[layer];
        net.run_for(STEP);
        let after = net.client("a").frames_sent[layer];
        for n in before..after {
            sent.insert(n, net.now);
        }
    }
}

#[test]
fn a_switch_up_after_a_thumbnail_is_not_held_back_by_the_pacer() {
    let mut net = call();
    let mut sent = HashMap::new();
    // b gets 180p long enough for str0m's estimate to follow it down.
    target(&mut net, "b", LayerId::new(0, 2));
    run_noting_sends(&mut net, Duration::from_secs(4), 2, &mut sent);
    let low = net.core.bandwidth_estimate(CONFERENCE, "b");
    target(&mut net, "b", LayerId::new(2, 2));
    run_noting_sends(&mut net, Duration::from_secs(3), 2, &mut sent);
    let got = net.client("b").received_on(1010);
    let d = decode(&got);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let mut delays: Vec<(u64, Duration)> = d
        .frames
        .iter()
        .filter(|f| f.layer == 2)
        .filter_map(|f| {
            Some((
                f.number,
                f.at.saturating_duration_since(*sent.get(&f.number)?),
            ))
        })
        .collect();
    assert!(delays.len() >= 60, "{} frames at 720p", delays.len());
    delays.sort_by_key(|(_, delay)| std::cmp::Reverse(*delay));
    // One step of the harness at most (the sender's own `Rtc` sends a
    // frame written after its timeout at the next step).
    assert!(
        delays.iter().all(|(_, delay)| *delay <= STEP),
        "720p frames held back (estimate towards b before the switch {low:?}): the slowest {:?}",
        &delays[..delays.len().min(5)]
    );
}
