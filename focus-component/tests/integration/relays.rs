//! A conference over two bridges (the split strategy), relayed as Jicofo
//! relays them: the `<relay>` requests each bridge gets, the transports
//! passed across with the DTLS roles forced, relay endpoints following
//! participants (join, sources, leave), relays torn down when a bridge
//! leaves the conference, and a failed bridge's participants moved to a
//! new bridge with the relays rebuilt.

use crate::common;

use common::*;
use focus_component::selection::Strategy;
use xmpp_core::Element;

const C2: &str = "jitsi:colibri2";

fn jvb(n: &str) -> String {
    format!("{BREWERY}/{n}")
}

fn split_harness(bridges: &[&str]) -> Harness {
    let mut h = Harness::with_options(|o| o.selection.strategy = Strategy::Split);
    for (i, n) in bridges.iter().enumerate() {
        let stress = format!("0.{}", i + 1);
        h.bridge(
            n,
            &[
                ("stress_level", stress.as_str()),
                ("relay_id", &format!("relay-{n}")),
                ("version", "2.3"),
            ],
        );
    }
    h.open_conference(ROOM);
    h
}

fn colibri_to<'a>(out: &'a [Element], bridge: &str) -> Vec<&'a Element> {
    out.iter()
        .filter(|e| e.to() == Some(bridge))
        .filter(|e| e.get_child("conference-modify", C2).is_some())
        .collect()
}

fn cm(iq: &Element) -> &Element {
    iq.get_child("conference-modify", C2).unwrap()
}

fn relay(iq: &Element) -> Option<&Element> {
    iq.get_child("conference-modify", C2)?
        .get_child("relay", C2)
}

/// The request to `bridge` holding a `<relay>`.
fn relay_request(out: &[Element], bridge: &str) -> Element {
    colibri_to(out, bridge)
        .into_iter()
        .find(|e| relay(e).is_some())
        .unwrap_or_else(|| panic!("a relay request to {bridge}: {out:?}"))
        .clone()
}

/// The `bridge-count` the focus's last room presence in `out` announces.
fn bridge_count(out: &[Element]) -> Option<String> {
    out.iter()
        .rev()
        .filter(|e| e.name() == "presence" && e.to() == Some(&format!("{ROOM}/focus")))
        .find_map(|e| {
            e.get_child("conference-properties", "http://jitsi.org/protocol/focus")?
                .children()
                .find(|p| p.get_attr("key") == Some("bridge-count"))?
                .get_attr("value")
                .map(str::to_string)
        })
}

fn endpoint_ids(relay: &Element) -> Vec<String> {
    relay
        .get_child("endpoints", C2)
        .map(|eps| {
            eps.children()
                .map(|e| e.get_attr("id").unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A participant joins, is allocated on the bridge the focus picks and
/// accepts; returns (bridge it went to, sid, everything sent on the way).
fn join_and_accept(h: &mut Harness, nick: &str, ssrc: u32) -> (String, String, Vec<Element>) {
    let alloc = h.join(nick, PLAIN_FEATURES);
    let mut out = vec![alloc.clone()];
    let bridge = alloc.to().unwrap().to_string();
    out.extend(h.answer_allocation(&alloc));
    let sid = sid_of(&offer_to(&out, nick).expect("offer"));
    out.extend(h.accept(nick, &sid, &src(ssrc, &format!("{nick} a")), ""));
    (bridge, sid, out)
}

/// The bridge answers a relay creation with its relay transport.
fn answer_relay(h: &mut Harness, request: &Element) -> Vec<Element> {
    let to = request.to().unwrap().to_string();
    let id = relay(request).unwrap().get_attr("id").unwrap().to_string();
    h.feed(&format!(
        "<iq type='result' id='{}' from='{to}' to='{FOCUS_JID}'>\
         <conference-modified xmlns='jitsi:colibri2' meeting-id='{}'>\
         <relay id='{id}'><transport>{}</transport></relay></conference-modified></iq>",
        request.id().unwrap(),
        cm(request).get_attr("meeting-id").unwrap(),
        bridge_transport(&to, &format!("relay-{id}"))
    ))
}

#[test]
fn two_bridges_are_relayed_as_jicofo_relays_them() {
    let mut h = split_harness(&["jvb1", "jvb2"]);
    let (b1, _, _) = join_and_accept(&mut h, "aaaa", 11);
    assert_eq!(b1, jvb("jvb1"));
    let alloc = h.join("bbbb", PLAIN_FEATURES);
    assert_eq!(
        alloc.to(),
        Some(jvb("jvb2").as_str()),
        "split: a second bridge"
    );
    assert_eq!(cm(&alloc).get_attr("create"), Some("true"));
    let out = h.answer_allocation(&alloc);

    // Each bridge gets a relay to the other, with the other's endpoints.
    let to2 = relay_request(&out, &jvb("jvb2"));
    let to1 = relay_request(&out, &jvb("jvb1"));
    let r2 = relay(&to2).unwrap();
    let r1 = relay(&to1).unwrap();
    assert_eq!(cm(&to2).get_attr("create"), None);
    assert_eq!(r2.get_attr("id"), Some("relay-jvb1"));
    assert_eq!(r1.get_attr("id"), Some("relay-jvb2"));
    for r in [r1, r2] {
        assert_eq!(r.get_attr("create"), Some("true"));
        assert_eq!(r.get_attr("mesh-id"), Some("0"));
        let media: Vec<&str> = r
            .children()
            .filter(|c| c.name() == "media")
            .map(|m| m.get_attr("type").unwrap())
            .collect();
        assert_eq!(media, ["audio", "video"]);
        let video = r
            .children()
            .find(|c| c.name() == "media" && c.get_attr("type") == Some("video"))
            .unwrap();
        assert!(video.children().any(|c| c.name() == "payload-type"));
        assert!(video.children().any(|c| c.name() == "rtp-hdrext"));
    }
    assert_eq!(endpoint_ids(r2), ["aaaa"]);
    assert_eq!(endpoint_ids(r1), ["bbbb"]);
    let aaaa = r2
        .get_child("endpoints", C2)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(aaaa.get_attr("create"), Some("true"));
    assert_eq!(aaaa.get_attr("stats-id"), Some("Stats-aaaa"));
    assert_eq!(
        aaaa.get_child("capability", C2)
            .and_then(|c| c.get_attr("name")),
        Some("source-names")
    );
    let ssrcs: Vec<&str> = aaaa
        .get_child("sources", C2)
        .expect("aaaa's sources ride with its relay endpoint")
        .children()
        .flat_map(|ms| ms.children())
        .filter_map(|s| s.get_attr("ssrc"))
        .collect();
    assert_eq!(ssrcs, ["11"]);
    // The bridge already in the conference initiates (Jicofo's
    // addLinkBetween(existing, new)).
    let t2 = r2.get_child("transport", C2).unwrap();
    let t1 = r1.get_child("transport", C2).unwrap();
    let roles = |t: &Element| {
        (
            t.get_attr("use-unique-port").map(str::to_string),
            t.get_attr("ice-controlling").map(str::to_string),
        )
    };
    assert_eq!(roles(t1), (Some("true".into()), Some("true".into())));
    assert_eq!(roles(t2), (Some("false".into()), Some("false".into())));

    // jvb2's relay transport goes to jvb1 (active, WebSocket kept) and
    // jvb1's to jvb2 (passive, no WebSocket).
    let out = answer_relay(&mut h, &to2);
    let set = relay_request(&out, &jvb("jvb1"));
    let r = relay(&set).unwrap();
    assert_eq!(r.get_attr("id"), Some("relay-jvb2"));
    assert_eq!(r.get_attr("create"), None);
    let t = r
        .get_child("transport", C2)
        .unwrap()
        .get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1")
        .unwrap();
    assert_eq!(t.get_attr("ufrag"), Some("u-jvb2"));
    let fp = t
        .get_child("fingerprint", "urn:xmpp:jingle:apps:dtls:0")
        .unwrap();
    assert_eq!(fp.get_attr("setup"), Some("active"));
    assert!(t.children().any(|c| c.name() == "web-socket"));
    assert!(
        t.get_child("candidate", "urn:xmpp:jingle:transports:ice-udp:1")
            .is_some()
    );

    let out = answer_relay(&mut h, &to1);
    let set = relay_request(&out, &jvb("jvb2"));
    let r = relay(&set).unwrap();
    assert_eq!(r.get_attr("id"), Some("relay-jvb1"));
    let t = r
        .get_child("transport", C2)
        .unwrap()
        .get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1")
        .unwrap();
    assert_eq!(t.get_attr("ufrag"), Some("u-jvb1"));
    let fp = t
        .get_child("fingerprint", "urn:xmpp:jingle:apps:dtls:0")
        .unwrap();
    assert_eq!(fp.get_attr("setup"), Some("passive"));
    assert!(t.children().all(|c| c.name() != "web-socket"));

    // bbbb's sources reach jvb1's relay to jvb2.
    let sid_b = sid_of(&offer_to(&h.out, "bbbb").unwrap());
    let out = h.accept("bbbb", &sid_b, &src(22, "bbbb a"), "");
    let upd = relay_request(&out, &jvb("jvb1"));
    let r = relay(&upd).unwrap();
    assert_eq!(r.get_attr("id"), Some("relay-jvb2"));
    let ep = r
        .get_child("endpoints", C2)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(
        (ep.get_attr("id"), ep.get_attr("create")),
        (Some("bbbb"), None)
    );
    assert!(ep.get_child("sources", C2).is_some());

    // A third participant: the bridge with fewer, and a relay endpoint on
    // the other.
    let before = h.out.len();
    let alloc = h.join("cccc", PLAIN_FEATURES);
    assert_eq!(alloc.to(), Some(jvb("jvb1").as_str()));
    let add = relay_request(&h.out[before..], &jvb("jvb2"));
    let r = relay(&add).unwrap();
    assert_eq!(r.get_attr("id"), Some("relay-jvb1"));
    let ep = r
        .get_child("endpoints", C2)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(
        (ep.get_attr("id"), ep.get_attr("create")),
        (Some("cccc"), Some("true"))
    );
    h.answer_allocation(&alloc);

    // cccc leaves: expired on jvb1 and in jvb2's relay.
    let out = h.feed(&format!(
        "<presence from='{ROOM}/cccc' to='{FOCUS_JID}' type='unavailable'/>"
    ));
    let exp = relay_request(&out, &jvb("jvb2"));
    let ep = relay(&exp)
        .unwrap()
        .get_child("endpoints", C2)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(
        (ep.get_attr("id"), ep.get_attr("expire")),
        (Some("cccc"), Some("true"))
    );
    assert!(colibri_to(&out, &jvb("jvb1")).iter().any(|e| {
        cm(e)
            .get_child("endpoint", C2)
            .is_some_and(|ep| ep.get_attr("expire") == Some("true"))
    }));

    // bbbb leaves: jvb2 leaves the conference, jvb1's relay to it expires.
    let out = h.feed(&format!(
        "<presence from='{ROOM}/bbbb' to='{FOCUS_JID}' type='unavailable'/>"
    ));
    let to2 = colibri_to(&out, &jvb("jvb2"));
    assert!(
        to2.iter().any(|e| cm(e).get_attr("expire") == Some("true")),
        "the conference expires on jvb2: {out:?}"
    );
    let exp = relay_request(&out, &jvb("jvb1"));
    let r = relay(&exp).unwrap();
    assert_eq!(
        (r.get_attr("id"), r.get_attr("expire")),
        (Some("relay-jvb2"), Some("true"))
    );
    assert_eq!(bridge_count(&out).as_deref(), Some("1"));
    let stats = h.focus.stats(h.now);
    assert_eq!(stats.conference_bridges, 1);
}

#[test]
fn a_failed_bridges_participants_move_and_the_relays_are_rebuilt() {
    let mut h = split_harness(&["jvb1", "jvb2"]);
    join_and_accept(&mut h, "aaaa", 11);
    let (b2, sid_b, out) = join_and_accept(&mut h, "bbbb", 22);
    assert_eq!(b2, jvb("jvb2"));
    let to2 = relay_request(&out, &jvb("jvb2"));
    let to1 = relay_request(&out, &jvb("jvb1"));
    answer_relay(&mut h, &to2);
    answer_relay(&mut h, &to1);
    assert_eq!(h.focus.stats(h.now).conference_bridges, 2);
    // A third bridge appears, then jvb2 leaves the brewery.
    h.bridge(
        "jvb3",
        &[
            ("stress_level", "0.5"),
            ("relay_id", "relay-jvb3"),
            ("version", "2.3"),
        ],
    );
    let out = h.feed(&format!(
        "<presence from='{}' to='{FOCUS_JID}' type='unavailable'/>",
        jvb("jvb2")
    ));
    let exp = relay_request(&out, &jvb("jvb1"));
    assert_eq!(
        (
            relay(&exp).unwrap().get_attr("id"),
            relay(&exp).unwrap().get_attr("expire")
        ),
        (Some("relay-jvb2"), Some("true"))
    );
    let alloc = colibri_to(&out, &jvb("jvb3"))
        .into_iter()
        .next()
        .expect("bbbb is allocated on the new bridge")
        .clone();
    assert_eq!(cm(&alloc).get_attr("create"), Some("true"));
    let ep = cm(&alloc).get_child("endpoint", C2).unwrap();
    assert_eq!(ep.get_attr("id"), Some("bbbb"));
    let mut all = out.clone();
    let out = h.answer_allocation(&alloc);
    all.extend(out.clone());
    // Re-invited as Jicofo's RestartJingle: its session ended "moving" and
    // a new one offered.
    let to_b = format!("{ROOM}/bbbb");
    let jingle_to_b: Vec<(String, String)> = all
        .iter()
        .filter(|e| e.to() == Some(to_b.as_str()))
        .filter_map(|e| Some((jingle_action(e)?, sid_of(e))))
        .collect();
    let restarted = jingle_to_b
        .iter()
        .any(|(a, sid)| a == "session-terminate" && *sid == sid_b)
        && jingle_to_b
            .iter()
            .any(|(a, sid)| a == "session-initiate" && *sid != sid_b);
    assert!(restarted, "bbbb re-invited: {jingle_to_b:?}");
    // The relays are rebuilt between jvb1 and jvb3.
    let to3 = relay_request(&out, &jvb("jvb3"));
    let to1 = relay_request(&out, &jvb("jvb1"));
    assert_eq!(relay(&to3).unwrap().get_attr("id"), Some("relay-jvb1"));
    assert_eq!(endpoint_ids(relay(&to3).unwrap()), ["aaaa"]);
    assert_eq!(relay(&to1).unwrap().get_attr("id"), Some("relay-jvb3"));
    assert_eq!(endpoint_ids(relay(&to1).unwrap()), ["bbbb"]);
    let stats = h.focus.stats(h.now);
    assert_eq!(stats.counters.participants_moved, 1);
    assert_eq!(stats.conference_bridges, 2);
    let load: Vec<(String, usize, usize)> = stats
        .per_bridge
        .iter()
        .map(|b| {
            (
                b.jid.rsplit('/').next().unwrap().to_string(),
                b.conferences,
                b.participants,
            )
        })
        .collect();
    assert_eq!(
        load,
        [("jvb1".to_string(), 1, 1), ("jvb3".to_string(), 1, 1)],
        "jvb2 is gone from the brewery"
    );
    let json = stats.to_json();
    assert_eq!(json["conference_bridges"], 2);
    assert_eq!(
        json["bridge_selector"]["bridges"][jvb("jvb3")]["relay_id"],
        "relay-jvb3"
    );
}

#[test]
fn a_failed_relay_creation_fails_that_bridges_session() {
    let mut h = split_harness(&["jvb1", "jvb2"]);
    join_and_accept(&mut h, "aaaa", 11);
    let (_, _, out) = join_and_accept(&mut h, "bbbb", 22);
    let to2 = relay_request(&out, &jvb("jvb2"));
    let out = h.feed(&format!(
        "<iq type='error' id='{}' from='{}' to='{FOCUS_JID}'><error type='cancel'>\
         <internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        to2.id().unwrap(),
        jvb("jvb2")
    ));
    // bbbb goes back to jvb1 (jvb2 is not operational now), and jvb1's
    // relay to jvb2 expires.
    let to1 = colibri_to(&out, &jvb("jvb1"));
    assert!(
        to1.iter()
            .any(|e| relay(e).is_some_and(|r| r.get_attr("expire") == Some("true")))
    );
    assert!(to1.iter().any(|e| {
        cm(e).get_child("endpoint", C2).is_some_and(|ep| {
            ep.get_attr("id") == Some("bbbb") && ep.get_attr("create") == Some("true")
        })
    }));
}

#[test]
fn a_bridge_in_graceful_shutdown_keeps_its_participants_and_gets_no_new_ones() {
    let mut h = Harness::with_options(|o| {
        o.selection.strategy = Strategy::RegionBased;
        o.selection.octo = true;
    });
    for (n, stress) in [("jvb1", "0.1"), ("jvb2", "0.2")] {
        h.bridge(
            n,
            &[
                ("stress_level", stress),
                ("relay_id", &format!("relay-{n}")),
            ],
        );
    }
    h.open_conference(ROOM);
    let (b, _, _) = join_and_accept(&mut h, "aaaa", 11);
    assert_eq!(b, jvb("jvb1"));
    // Region-based without regions: the conference's bridge.
    let (b, _, _) = join_and_accept(&mut h, "bbbb", 22);
    assert_eq!(b, jvb("jvb1"));
    let out = h.bridge(
        "jvb1",
        &[
            ("stress_level", "0.1"),
            ("relay_id", "relay-jvb1"),
            ("graceful_shutdown", "true"),
        ],
    );
    assert!(
        out.iter()
            .all(|e| e.get_child("conference-modify", C2).is_none() && jingle_action(e).is_none()),
        "nobody is moved: {out:?}"
    );
    // A newcomer goes to jvb2, relayed to jvb1.
    let alloc = h.join("cccc", PLAIN_FEATURES);
    assert_eq!(alloc.to(), Some(jvb("jvb2").as_str()));
    let out = h.answer_allocation(&alloc);
    let to1 = relay_request(&out, &jvb("jvb1"));
    assert_eq!(endpoint_ids(relay(&to1).unwrap()), ["cccc"]);
    let to2 = relay_request(&out, &jvb("jvb2"));
    assert_eq!(endpoint_ids(relay(&to2).unwrap()), ["aaaa", "bbbb"]);
}

#[test]
fn three_bridges_form_one_mesh() {
    let mut h = split_harness(&["jvb1", "jvb2", "jvb3"]);
    let mut creates = Vec::new();
    for (nick, ssrc) in [("aaaa", 11), ("bbbb", 22), ("cccc", 33)] {
        let (_, _, out) = join_and_accept(&mut h, nick, ssrc);
        creates.extend(
            out.into_iter()
                .filter(|e| relay(e).is_some_and(|r| r.get_attr("create") == Some("true"))),
        );
    }
    let mut pairs: Vec<(String, String, Vec<String>)> = creates
        .iter()
        .map(|e| {
            let r = relay(e).unwrap();
            (
                e.to().unwrap().rsplit('/').next().unwrap().to_string(),
                r.get_attr("id").unwrap().to_string(),
                endpoint_ids(r),
            )
        })
        .collect();
    pairs.sort();
    let expected: Vec<(String, String, Vec<String>)> = [
        ("jvb1", "relay-jvb2", vec!["bbbb"]),
        ("jvb1", "relay-jvb3", vec!["cccc"]),
        ("jvb2", "relay-jvb1", vec!["aaaa"]),
        ("jvb2", "relay-jvb3", vec!["cccc"]),
        ("jvb3", "relay-jvb1", vec!["aaaa"]),
        ("jvb3", "relay-jvb2", vec!["bbbb"]),
    ]
    .into_iter()
    .map(|(b, r, e)| {
        (
            b.to_string(),
            r.to_string(),
            e.into_iter().map(str::to_string).collect(),
        )
    })
    .collect();
    assert_eq!(
        pairs, expected,
        "a relay each way between every two bridges"
    );
    assert_eq!(h.focus.stats(h.now).conference_bridges, 3);
}

/// A participant joins with `<jitsi_participant_region>` in its presence;
/// returns the allocation request.
fn join_from(h: &mut Harness, nick: &str, region: &str) -> Element {
    let out = h.feed(&format!(
        "<presence from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='{nick}@guest.{DOMAIN}/r'/></x>\
         <stats-id>Stats-{nick}</stats-id><jitsi_participant_region>{region}</jitsi_participant_region></presence>"
    ));
    let disco = out
        .iter()
        .find(|e| {
            e.get_child("query", "http://jabber.org/protocol/disco#info")
                .is_some()
        })
        .unwrap()
        .clone();
    let out = h.feed(&format!(
        "<iq type='result' id='{}' from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
         <query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:xmpp:jingle:1'/></query></iq>",
        disco.id().unwrap()
    ));
    out.into_iter()
        .find(|e| e.get_child("conference-modify", C2).is_some())
        .unwrap()
}

#[test]
fn region_based_puts_participants_on_their_regions_bridges() {
    let mut h = Harness::with_options(|o| {
        o.selection.strategy = Strategy::RegionBased;
        o.selection.octo = true;
    });
    for (n, region, stress) in [
        ("eu1", "eu-west", "0.1"),
        ("us1", "us-east", "0.3"),
        ("eu2", "eu-west", "0.2"),
    ] {
        h.bridge(
            n,
            &[
                ("stress_level", stress),
                ("region", region),
                ("relay_id", &format!("relay-{n}")),
            ],
        );
    }
    h.open_conference(ROOM);
    let a = join_from(&mut h, "aaaa", "us-east");
    assert_eq!(a.to(), Some(jvb("us1").as_str()));
    h.answer_allocation(&a);
    let b = join_from(&mut h, "bbbb", "eu-west");
    assert_eq!(
        b.to(),
        Some(jvb("eu1").as_str()),
        "the least loaded in eu-west"
    );
    let out = h.answer_allocation(&b);
    assert_eq!(
        relay(&relay_request(&out, &jvb("eu1")))
            .unwrap()
            .get_attr("id"),
        Some("relay-us1")
    );
    // Another eu-west participant joins the conference's eu-west bridge,
    // not the other one.
    let c = join_from(&mut h, "cccc", "eu-west");
    assert_eq!(c.to(), Some(jvb("eu1").as_str()));
    // The offer tells the participant its bridge's region.
    let out = h.answer_allocation(&c);
    let offer = offer_to(&out, "cccc").unwrap();
    assert!(offer.to_string().contains("eu-west"), "{offer}");
}
