//! Bridge selection over a table of brewery stats presences, and failover:
//! a bridge that stops answering health checks (or leaves the brewery)
//! loses its participants to another bridge.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use focus_component::bridges::{Brewery, SelectionConfig};
use xmpp_core::Element;

fn stats_presence(nick: &str, stats: &[(&str, &str)]) -> Element {
    let stats: String = stats
        .iter()
        .map(|(n, v)| format!("<stat name='{n}' value='{v}'/>"))
        .collect();
    el(&format!(
        "<presence from='{BREWERY}/{nick}'><stats xmlns='http://jitsi.org/protocol/colibri'>{stats}</stats></presence>"
    ))
}

fn brewery(rows: &[(&str, &[(&str, &str)])]) -> Brewery {
    let mut b = Brewery::new(SelectionConfig::default());
    for (nick, stats) in rows {
        b.on_presence(&format!("{BREWERY}/{nick}"), &stats_presence(nick, stats));
    }
    b
}

fn pick(b: &Brewery, now: Instant, region: Option<&str>) -> Option<String> {
    b.select(now, &[], region)
        .map(|j| j.rsplit('/').next().unwrap().to_string())
}

#[test]
fn selection_follows_jicofos_rules() {
    let now = Instant::now();
    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)]);
    type Case<'a> = (&'a str, &'a [Row<'a>], Option<&'a str>, Option<&'a str>);
    let table: &[Case] = &[
        (
            "least loaded",
            &[
                ("a", &[("stress_level", "0.5")]),
                ("b", &[("stress_level", "0.1")]),
            ],
            None,
            Some("b"),
        ),
        (
            "not overloaded first",
            &[
                ("a", &[("stress_level", "0.79")]),
                ("b", &[("stress_level", "0.8")]),
            ],
            None,
            Some("a"),
        ),
        (
            "all overloaded: least loaded",
            &[
                ("a", &[("stress_level", "0.95")]),
                ("b", &[("stress_level", "0.85")]),
            ],
            None,
            Some("b"),
        ),
        (
            "graceful shutdown excluded",
            &[
                (
                    "a",
                    &[("stress_level", "0.0"), ("graceful_shutdown", "true")],
                ),
                ("b", &[("stress_level", "0.6")]),
            ],
            None,
            Some("b"),
        ),
        (
            "shutting_down excluded",
            &[
                ("a", &[("stress_level", "0.0"), ("shutting_down", "true")]),
                ("b", &[("stress_level", "0.6")]),
            ],
            None,
            Some("b"),
        ),
        (
            "draining excluded",
            &[
                ("a", &[("stress_level", "0.0"), ("drain", "true")]),
                ("b", &[("stress_level", "0.6")]),
            ],
            None,
            Some("b"),
        ),
        (
            "unhealthy excluded",
            &[
                ("a", &[("stress_level", "0.0"), ("healthy", "false")]),
                ("b", &[("stress_level", "0.6")]),
            ],
            None,
            Some("b"),
        ),
        (
            "region preferred",
            &[
                ("eu", &[("stress_level", "0.1"), ("region", "eu")]),
                ("us", &[("stress_level", "0.5"), ("region", "us")]),
            ],
            Some("us"),
            Some("us"),
        ),
        (
            // Jicofo's single-bridge strategy: the least loaded bridge in
            // the region, overloaded or not (the region strategy differs).
            "region first even overloaded",
            &[
                ("eu", &[("stress_level", "0.1"), ("region", "eu")]),
                ("us", &[("stress_level", "0.9"), ("region", "us")]),
            ],
            Some("us"),
            Some("us"),
        ),
        (
            "unknown region falls back",
            &[
                ("eu", &[("stress_level", "0.3"), ("region", "eu")]),
                ("us", &[("stress_level", "0.2"), ("region", "us")]),
            ],
            Some("ap"),
            Some("us"),
        ),
        (
            "nothing usable",
            &[("a", &[("drain", "true")]), ("b", &[("healthy", "false")])],
            None,
            None,
        ),
        ("no bridges", &[], None, None),
        (
            "garbage stress ignored",
            &[
                ("a", &[("stress_level", "NaN")]),
                ("b", &[("stress_level", "0.2")]),
            ],
            None,
            Some("a"),
        ),
    ];
    for (name, rows, region, expected) in table {
        let b = brewery(rows);
        assert_eq!(pick(&b, now, *region).as_deref(), *expected, "{name}");
    }
}

#[test]
fn recently_added_endpoints_correct_the_stress() {
    let now = Instant::now();
    let mut b = brewery(&[
        (
            "a",
            &[
                ("stress_level", "0.30"),
                ("average_participant_stress", "0.05"),
            ],
        ),
        ("b", &[("stress_level", "0.31")]),
    ]);
    assert_eq!(pick(&b, now, None).as_deref(), Some("a"));
    b.endpoint_added(&format!("{BREWERY}/a"), now);
    assert_eq!(
        pick(&b, now, None).as_deref(),
        Some("b"),
        "0.30 + 0.05 > 0.31"
    );
    // After the ramp-up interval the correction is gone.
    assert_eq!(
        pick(&b, now + Duration::from_secs(21), None).as_deref(),
        Some("a")
    );
}

#[test]
fn a_conference_stays_on_its_bridge_until_it_fails() {
    let now = Instant::now();
    let mut b = brewery(&[
        ("a", &[("stress_level", "0.7")]),
        ("b", &[("stress_level", "0.1")]),
    ]);
    let a = format!("{BREWERY}/a");
    assert_eq!(b.select(now, &[(&a, 3)], None), Some(a.clone()));
    b.mark_failed(&a, now);
    assert_eq!(
        b.select(now, &[(&a, 3)], None),
        Some(format!("{BREWERY}/b"))
    );
    // Jicofo's failure reset: a minute later it is operational again.
    assert_eq!(
        b.select(now + Duration::from_secs(61), &[(&a, 3)], None),
        Some(a.clone())
    );
    // A bridge leaving the brewery is forgotten.
    b.on_presence(
        &a,
        &el(&format!("<presence from='{a}' type='unavailable'/>")),
    );
    assert_eq!(b.len(), 1);
}

/// Two bridges; A and B up on jvb1.
fn two_bridges() -> (Harness, String, String) {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.bridge("jvb2", &[("stress_level", "0.2")]);
    h.open_conference(ROOM);
    let mut sids = Vec::new();
    for nick in ["aaaa", "bbbb"] {
        let alloc = h.join(nick, PLAIN_FEATURES);
        assert_eq!(alloc.to(), Some(format!("{BREWERY}/jvb1").as_str()));
        let out = h.answer_allocation(&alloc);
        let sid = sid_of(&offer_to(&out, nick).unwrap());
        let audio = src(if nick == "aaaa" { 11 } else { 22 }, &format!("{nick} a"));
        h.accept(nick, &sid, &audio, "");
        sids.push(sid);
    }
    (h, sids[0].clone(), sids[1].clone())
}

fn health_checks(out: &[Element]) -> Vec<Element> {
    out.iter()
        .filter(|e| {
            e.get_child("healthcheck", "http://jitsi.org/protocol/healthcheck")
                .is_some()
        })
        .cloned()
        .collect()
}

fn check_failover(h: &mut Harness, out: Vec<Element>, sid_a: &str, sid_b: &str) {
    let jvb2 = format!("{BREWERY}/jvb2");
    let terminated = out.clone();
    let allocs: Vec<&Element> = out
        .iter()
        .filter(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .filter(|e| e.to() == Some(jvb2.as_str()))
        .collect();
    assert_eq!(
        allocs.len(),
        1,
        "one create on the new bridge, the others queued: {out:?}"
    );
    assert_eq!(allocs[0].to(), Some(jvb2.as_str()));
    let cm = allocs[0]
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap();
    assert_eq!(cm.get_attr("create"), Some("true"));
    let first = allocs[0].clone();
    let out = h.answer_allocation(&first);
    let second = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .expect("the queued participant is allocated next")
        .clone();
    assert_eq!(second.to(), Some(jvb2.as_str()));
    let mut all = terminated.clone();
    all.extend(out.clone());
    all.extend(h.answer_allocation(&second));
    // As Jicofo's RestartJingle re-invite: the old session ends ("moving"),
    // a new one starts with the new bridge's transport.
    let mut new_sids = Vec::new();
    for (nick, sid) in [("aaaa", sid_a), ("bbbb", sid_b)] {
        let to = format!("{ROOM}/{nick}");
        let terminate = all
            .iter()
            .find(|e| {
                e.to() == Some(&to) && jingle_action(e).as_deref() == Some("session-terminate")
            })
            .unwrap_or_else(|| panic!("{nick}'s old session ends"));
        assert_eq!(sid_of(terminate), sid, "the old session");
        assert!(terminate.to_string().contains("moving"), "{terminate}");
        let initiate = all
            .iter()
            .find(|e| {
                e.to() == Some(&to) && jingle_action(e).as_deref() == Some("session-initiate")
            })
            .unwrap_or_else(|| panic!("{nick} re-invited"));
        assert_ne!(sid_of(initiate), sid, "a new Jingle session");
        let t = initiate
            .get_child("jingle", "urn:xmpp:jingle:1")
            .unwrap()
            .get_child("content", "urn:xmpp:jingle:1")
            .unwrap()
            .get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1")
            .unwrap();
        assert_eq!(
            t.get_attr("ufrag"),
            Some("u-jvb2"),
            "the new bridge's transport"
        );
        new_sids.push(sid_of(initiate));
    }
    // session-accept brings the participant's sources and transport to the
    // new bridge.
    let out = h.feed(&format!(
        "<iq type='set' id='sa' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{}'>\
         <content name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{}</description>{}</content></jingle></iq>",
        new_sids[0],
        src(11, "aaaa a"),
        client_transport("aaaa")
    ));
    assert_eq!(out[0].type_(), Some("result"), "{}", out[0]);
    let upd = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .unwrap();
    assert_eq!(upd.to(), Some(jvb2.as_str()));
    let ep = upd
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap()
        .get_child("endpoint", "jitsi:colibri2")
        .unwrap();
    assert!(ep.get_child("sources", "jitsi:colibri2").is_some(), "{upd}");
}

#[test]
fn failover_when_a_bridge_stops_answering_health_checks() {
    let (mut h, sid_a, sid_b) = two_bridges();
    let out = h.advance(Duration::from_secs(10));
    let checks = health_checks(&out);
    assert_eq!(checks.len(), 2, "every bridge is checked every 10 s");
    // jvb2 answers, jvb1 stays silent.
    let jvb2_check = checks
        .iter()
        .find(|c| c.to().unwrap().ends_with("/jvb2"))
        .unwrap();
    h.feed(&format!(
        "<iq type='result' id='{}' from='{BREWERY}/jvb2' to='{FOCUS_JID}'/>",
        jvb2_check.id().unwrap()
    ));
    let out = h.advance(Duration::from_secs(5));
    check_failover(&mut h, out, &sid_a, &sid_b);
    assert_eq!(h.focus.stats(h.now).counters.participants_moved, 2);
}

#[test]
fn failover_when_a_health_check_is_refused() {
    let (mut h, sid_a, sid_b) = two_bridges();
    let out = h.advance(Duration::from_secs(10));
    let check = health_checks(&out)
        .into_iter()
        .find(|c| c.to().unwrap().ends_with("/jvb1"))
        .unwrap();
    let out = h.feed(&format!(
        "<iq type='error' id='{}' from='{BREWERY}/jvb1' to='{FOCUS_JID}'>\
         <error type='cancel'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        check.id().unwrap()
    ));
    check_failover(&mut h, out, &sid_a, &sid_b);
}

#[test]
fn failover_when_a_bridge_leaves_the_brewery() {
    let (mut h, sid_a, sid_b) = two_bridges();
    let out = h.feed(&format!(
        "<presence from='{BREWERY}/jvb1' to='{FOCUS_JID}' type='unavailable'/>"
    ));
    check_failover(&mut h, out, &sid_a, &sid_b);
}

#[test]
fn participants_wait_for_a_bridge() {
    let mut h = Harness::new();
    h.open_conference(ROOM);
    let out = h.feed(&format!(
        "<presence from='{ROOM}/aaaa' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='a@example.com/r'/></x>\
         <features><feature var='http://jitsi.org/json-encoded-sources'/></features></presence>"
    ));
    assert!(
        out.iter()
            .all(|e| e.get_child("conference-modify", "jitsi:colibri2").is_none())
    );
    let out = h.bridge("jvb1", &[("stress_level", "0.1")]);
    assert!(
        out.iter()
            .any(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some()),
        "allocated once a bridge appears"
    );
}

#[test]
fn colibri_update_errors_as_jicofo_handles_them() {
    let (mut h, sid_a, _sid_b) = two_bridges();
    // A transport-info: its update times out, which is only logged.
    let out = h.feed(&format!(
        "<iq type='set' id='ti' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='{sid_a}'>\
         <content name='audio'>{}</content></jingle></iq>",
        client_transport("aaaa")
    ));
    let update = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .unwrap()
        .clone();
    let cm = update
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap();
    assert_eq!(cm.get_attr("name"), None, "the name goes with create only");
    assert_eq!(
        cm.get_child("endpoint", "jitsi:colibri2")
            .unwrap()
            .get_attr("stats-id"),
        Some("Stats-aaaa")
    );
    let out = h.advance(Duration::from_secs(9));
    assert!(
        out.iter()
            .all(|e| e.get_child("conference-modify", "jitsi:colibri2").is_none())
    );

    // An update refused with unknown-endpoint: that participant alone is
    // allocated again on the same bridge.
    let out = h.feed(&format!(
        "<iq type='set' id='ti2' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='{sid_a}'>\
         <content name='audio'>{}</content></jingle></iq>",
        client_transport("aaaa")
    ));
    let update = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .unwrap()
        .clone();
    let out = h.feed(&format!(
        "<iq type='error' id='{}' from='{}' to='{FOCUS_JID}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <colibri2-error xmlns='jitsi:colibri2' reason='unknown-endpoint'/><endpoint xmlns='jitsi:colibri2' id='aaaa'/></error></iq>",
        update.id().unwrap(),
        update.to().unwrap()
    ));
    let realloc: Vec<&Element> = out
        .iter()
        .filter(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .collect();
    assert_eq!(realloc.len(), 1);
    assert_eq!(
        realloc[0].to(),
        Some(format!("{BREWERY}/jvb1").as_str()),
        "same bridge"
    );
    let ep = realloc[0]
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap()
        .get_child("endpoint", "jitsi:colibri2")
        .unwrap();
    assert_eq!(
        (ep.get_attr("id"), ep.get_attr("create")),
        (Some("aaaa"), Some("true"))
    );
    assert_eq!(h.focus.stats(h.now).counters.participants_moved, 0);
}

#[test]
fn an_unanswered_allocation_moves_the_conference() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.bridge("jvb2", &[("stress_level", "0.2")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa", PLAIN_FEATURES);
    assert_eq!(alloc.to(), Some(format!("{BREWERY}/jvb1").as_str()));
    let out = h.advance(Duration::from_secs(10));
    for check in health_checks(&out)
        .iter()
        .filter(|c| c.to().unwrap().ends_with("/jvb2"))
    {
        h.feed(&format!(
            "<iq type='result' id='{}' from='{BREWERY}/jvb2' to='{FOCUS_JID}'/>",
            check.id().unwrap()
        ));
    }
    let out = h.advance(Duration::from_secs(5));
    let again = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .expect("allocated elsewhere");
    assert_eq!(again.to(), Some(format!("{BREWERY}/jvb2").as_str()));
}
