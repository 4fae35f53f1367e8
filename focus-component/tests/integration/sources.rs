//! Source signalling: session-accept and source-add go to the bridge and,
//! batched, to every other participant; refused sources get Jicofo's
//! errors; bad Jingle gets an error reply and the conference goes on.

use crate::common;

use std::time::Duration;

use common::*;
use xmpp_core::Element;

/// A conference with participants up (each accepted without sources);
/// returns the harness and each participant's sid.
fn conference(nicks: &[(&str, &[&str])], delay_ms: u64) -> (Harness, Vec<String>) {
    let mut h = Harness::with_options(|o| {
        o.source_signaling_delays
            .insert(0, Duration::from_millis(delay_ms));
    });
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let mut sids = Vec::new();
    for (nick, features) in nicks {
        let alloc = h.join(nick, features);
        let out = h.answer_allocation(&alloc);
        let sid = sid_of(&offer_to(&out, nick).unwrap());
        let out = h.accept(nick, &sid, "", "");
        assert_eq!(out[0].type_(), Some("result"));
        sids.push(sid);
    }
    (h, sids)
}

fn source_add(nick: &str, sid: &str, audio: &str, video: &str) -> String {
    let content = |media: &str, body: &str| {
        if body.is_empty() {
            String::new()
        } else {
            format!(
                "<content name='{media}'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='{media}'>{body}</description></content>"
            )
        }
    };
    format!(
        "<iq type='set' id='sa-{nick}' from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='{sid}'>{}{}</jingle></iq>",
        content("audio", audio),
        content("video", video)
    )
}

fn to(out: &[Element], nick: &str, action: &str) -> Vec<Element> {
    out.iter()
        .filter(|e| {
            e.to() == Some(&format!("{ROOM}/{nick}")) && jingle_action(e).as_deref() == Some(action)
        })
        .cloned()
        .collect()
}

fn ssrcs_in(e: &Element) -> Vec<String> {
    let mut v = Vec::new();
    fn walk(e: &Element, v: &mut Vec<String>) {
        for c in e.children() {
            if c.name() == "source"
                && c.ns() == "urn:xmpp:jingle:apps:rtp:ssma:0"
                && let Some(s) = c.get_attr("ssrc")
                && c.get_child("ssrc-info", "http://jitsi.org/jitmeet")
                    .is_some()
            {
                v.push(s.to_string());
            }
            walk(c, v);
        }
    }
    walk(e, &mut v);
    v.sort();
    v
}

#[test]
fn source_add_goes_to_the_bridge_and_batched_to_the_others() {
    let (mut h, sids) = conference(
        &[
            ("aaaa", PLAIN_FEATURES),
            ("bbbb", PLAIN_FEATURES),
            ("cccc", JSON_FEATURES),
        ],
        500,
    );
    let out = h.feed(&source_add("aaaa", &sids[0], &src(101, "a1 t"), ""));
    assert_eq!(out[0].type_(), Some("result"), "{}", out[0]);
    let update = out
        .iter()
        .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .expect("the bridge is told");
    let ep = update
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap()
        .get_child("endpoint", "jitsi:colibri2")
        .unwrap();
    assert_eq!(ep.get_attr("id"), Some("aaaa"));
    assert!(ep.get_child("sources", "jitsi:colibri2").is_some());
    assert!(
        to(&out, "bbbb", "source-add").is_empty(),
        "not yet: batched"
    );

    h.advance(Duration::from_millis(200));
    let out = h.feed(&source_add(
        "bbbb",
        &sids[1],
        &src(201, "b1 t"),
        &format!("{}{}{}", src(202, "b2 t"), src(203, "b2 t"), fid(202, 203)),
    ));
    assert_eq!(out[0].type_(), Some("result"));
    assert!(to(&out, "cccc", "source-add").is_empty());

    // At 500 ms after the first change everyone gets one batch.
    let out = h.advance(Duration::from_millis(300));
    let to_c = to(&out, "cccc", "source-add");
    assert_eq!(
        to_c.len(),
        1,
        "one batched source-add: {:?}",
        out.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    let json = to_c[0]
        .get_child("jingle", "urn:xmpp:jingle:1")
        .unwrap()
        .get_child("json-message", "http://jitsi.org/jitmeet")
        .expect("json sources for a json client");
    let v: serde_json::Value = serde_json::from_str(&json.text_content()).unwrap();
    assert_eq!(v["sources"]["aaaa"][2][0]["s"], 101);
    assert_eq!(v["sources"]["bbbb"][2][0]["s"], 201);
    assert_eq!(
        v["sources"]["bbbb"][1][0],
        serde_json::json!(["f", 202, 203])
    );

    let to_b = to(&out, "bbbb", "source-add");
    assert_eq!(to_b.len(), 1);
    assert_eq!(
        ssrcs_in(&to_b[0]),
        ["101"],
        "B gets A's source only, as <source> with ssrc-info"
    );
    // A's own batch started with B's change, 200 ms later.
    assert!(to(&out, "aaaa", "source-add").is_empty());
    let out = h.advance(Duration::from_millis(200));
    let to_a = to(&out, "aaaa", "source-add");
    assert_eq!(to_a.len(), 1);
    assert_eq!(ssrcs_in(&to_a[0]), ["201", "202", "203"]);
    assert_eq!(sid_of(&to_a[0]), sids[0]);

    // Removal: a source-remove to the others.
    let remove =
        source_add("aaaa", &sids[0], &src(101, "a1 t"), "").replace("source-add", "source-remove");
    let out = h.feed(&remove);
    assert_eq!(out[0].type_(), Some("result"));
    let out = h.advance(Duration::from_millis(500));
    let rm = to(&out, "bbbb", "source-remove");
    assert_eq!(rm.len(), 1);
    assert_eq!(ssrcs_in(&rm[0]), ["101"]);
    assert!(to(&out, "bbbb", "source-add").is_empty());
}

#[test]
fn a_change_made_and_undone_within_the_batch_is_not_signalled() {
    let (mut h, sids) = conference(&[("aaaa", PLAIN_FEATURES), ("bbbb", PLAIN_FEATURES)], 500);
    h.feed(&source_add("aaaa", &sids[0], &src(101, "a t"), ""));
    h.feed(
        &source_add("aaaa", &sids[0], &src(101, "a t"), "").replace("source-add", "source-remove"),
    );
    let out = h.advance(Duration::from_secs(1));
    assert!(
        to(&out, "bbbb", "source-add").is_empty() && to(&out, "bbbb", "source-remove").is_empty(),
        "{out:?}"
    );
}

fn refused(h: &mut Harness, xml: &str) -> (String, String) {
    let out = h.feed(xml);
    assert_eq!(out[0].type_(), Some("error"), "{xml} -> {}", out[0]);
    (
        error_condition(&out[0]).unwrap(),
        error_text(&out[0]).unwrap_or_default(),
    )
}

#[test]
fn invalid_sources_are_refused_with_jicofos_conditions() {
    let (mut h, sids) = conference(&[("aaaa", PLAIN_FEATURES), ("bbbb", PLAIN_FEATURES)], 0);
    assert_eq!(
        h.feed(&source_add("aaaa", &sids[0], &src(101, "a t"), ""))[0].type_(),
        Some("result")
    );

    // B claims A's SSRC.
    let (cond, text) = refused(&mut h, &source_add("bbbb", &sids[1], &src(101, "b t"), ""));
    assert_eq!(cond, "bad-request");
    assert!(text.contains("SSRC is already used: 101"), "{text}");

    // A FID group with three SSRCs.
    let bad_fid = format!(
        "{}{}{}<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'><source ssrc='301'/><source ssrc='302'/><source ssrc='303'/></ssrc-group>",
        src(301, "v t"),
        src(302, "v t"),
        src(303, "v t")
    );
    let (cond, text) = refused(&mut h, &source_add("bbbb", &sids[1], "", &bad_fid));
    assert_eq!(cond, "bad-request");
    assert!(text.contains("Invalid FID group"), "{text}");

    // A group over an SSRC never signalled.
    let unknown = format!("{}{}", src(401, "v t"), fid(401, 402));
    let (cond, text) = refused(&mut h, &source_add("bbbb", &sids[1], "", &unknown));
    assert_eq!(cond, "bad-request");
    assert!(text.contains("hasn't been signaled"), "{text}");

    // Unknown group semantics.
    let weird = format!(
        "{}{}<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FEC'><source ssrc='501'/><source ssrc='502'/></ssrc-group>",
        src(501, "v t"),
        src(502, "v t")
    );
    let (cond, _) = refused(&mut h, &source_add("bbbb", &sids[1], "", &weird));
    assert_eq!(cond, "bad-request");

    // Too many SSRCs for one endpoint.
    let many: String = (600..625).map(|s| src(s, &format!("m{s} t"))).collect();
    let (cond, text) = refused(&mut h, &source_add("bbbb", &sids[1], "", &many));
    assert_eq!(cond, "bad-request");
    assert!(text.contains("SSRC limit (20) exceeded"), "{text}");

    // An SSRC that is not a number.
    let (cond, _) = refused(
        &mut h,
        &source_add(
            "bbbb",
            &sids[1],
            "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='x'/>",
            "",
        ),
    );
    assert_eq!(cond, "bad-request");

    // Removing a source B does not own.
    let rm =
        source_add("bbbb", &sids[1], &src(101, "a t"), "").replace("source-add", "source-remove");
    let (cond, text) = refused(&mut h, &rm);
    assert_eq!(cond, "bad-request");
    assert!(text.contains("not owned"), "{text}");

    // None of that reached anyone, and the conference goes on.
    assert_eq!(
        h.feed(&source_add("bbbb", &sids[1], &src(102, "b t"), ""))[0].type_(),
        Some("result")
    );
    let st = h.focus.stats(h.now);
    assert_eq!(
        (st.conferences, st.participants, st.jingle_sessions),
        (1, 2, 2)
    );
}

#[test]
fn bad_jingle_gets_an_error_reply() {
    let (mut h, sids) = conference(&[("aaaa", PLAIN_FEATURES)], 0);
    // session-accept for an unknown session.
    let (cond, _) = refused(
        &mut h,
        &format!(
            "<iq type='set' id='x' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='nope'/></iq>"
        ),
    );
    assert_eq!(cond, "item-not-found");
    // From someone who is not a participant at all.
    let (cond, _) = refused(
        &mut h,
        &format!(
            "<iq type='set' id='x' from='{ROOM}/ghost' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{}'/></iq>",
            sids[0]
        ),
    );
    assert_eq!(cond, "item-not-found");
    // Unknown contents.
    let (cond, text) = refused(
        &mut h,
        &format!(
            "<iq type='set' id='x' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='{}'>\
                  <content name='hologram'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='hologram'/></content></jingle></iq>",
            sids[0]
        ),
    );
    assert_eq!(cond, "bad-request");
    assert!(text.contains("hologram"));
    // transport-info without a transport.
    let (cond, _) = refused(
        &mut h,
        &format!(
            "<iq type='set' id='x' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='{}'><content name='audio'/></jingle></iq>",
            sids[0]
        ),
    );
    assert_eq!(cond, "bad-request");
    // An unknown action.
    let (cond, _) = refused(
        &mut h,
        &format!(
            "<iq type='set' id='x' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='dance' sid='{}'/></iq>",
            sids[0]
        ),
    );
    assert_eq!(cond, "bad-request");
    // A good transport-info still goes to the bridge.
    let out = h.feed(&format!(
        "<iq type='set' id='ti' from='{ROOM}/aaaa' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='transport-info' sid='{}'>\
         <content name='audio'>{}</content></jingle></iq>",
        sids[0],
        client_transport("aaaa")
    ));
    assert_eq!(out[0].type_(), Some("result"));
    assert!(
        out.iter()
            .any(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
    );
}

#[test]
fn sources_of_the_accept_reach_later_participants_offer_and_the_others() {
    let (mut h, _sids) = conference(&[("aaaa", PLAIN_FEATURES)], 0);
    let alloc = h.join("bbbb", PLAIN_FEATURES);
    let out = h.answer_allocation(&alloc);
    let offer_b = offer_to(&out, "bbbb").unwrap();
    let sid_b = sid_of(&offer_b);
    let out = h.accept("bbbb", &sid_b, &src(700, "b a"), "");
    assert_eq!(out[0].type_(), Some("result"));
    let to_a = to(&out, "aaaa", "source-add");
    assert_eq!(to_a.len(), 1, "with no delay the fan-out is immediate");
    assert_eq!(ssrcs_in(&to_a[0]), ["700"]);
}

#[test]
fn signaling_delay_follows_the_conference_size_as_jicofo_configures_it() {
    let mut o = focus_component::FocusOptions::new(FOCUS_JID, DOMAIN);
    assert_eq!(
        o.source_signaling_delay(100),
        Duration::ZERO,
        "Jicofo's default: none"
    );
    o.source_signaling_delays
        .insert(200, Duration::from_millis(1000));
    o.source_signaling_delays
        .insert(100, Duration::from_millis(500));
    o.source_signaling_delays
        .insert(50, Duration::from_millis(200));
    let delays: Vec<u128> = [0, 49, 50, 99, 100, 150, 200, 1000]
        .iter()
        .map(|n| o.source_signaling_delay(*n).as_millis())
        .collect();
    assert_eq!(delays, [0, 0, 200, 200, 500, 500, 1000, 1000]);
}
