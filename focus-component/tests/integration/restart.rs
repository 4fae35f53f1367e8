//! Restarts as Jicofo's RestartJingle, on the sans-IO focus in virtual
//! time: ICE failure reported with session-info, or session-terminate with
//! `restart='true'`, ends the session (endpoint expired, sources removed
//! for the others) and a fresh session-initiate follows the new
//! allocation; restart requests beyond Jicofo's rate limit (5 s apart, 5 a
//! minute) are refused with `resource-constraint`.

use std::time::Duration;

use crate::common::*;
use crate::leave_and_mute::{colibri, up, up_with};
use xmpp_core::Element;

const FOCUS_NS: &str = "http://jitsi.org/protocol/focus";

/// The bridge-session id the focus gave the conference's sessions (one
/// bridge: the same for everyone).
fn bridge_session(h: &Harness) -> String {
    h.last(|e| jingle_action(e).as_deref() == Some("session-initiate"))
        .and_then(|o| {
            o.get_child("jingle", "urn:xmpp:jingle:1")?
                .get_child("bridge-session", FOCUS_NS)?
                .get_attr("id")
                .map(str::to_string)
        })
        .unwrap()
}

fn ice_failed(nick: &str, sid: &str, bsid: &str) -> String {
    format!(
        "<iq type='set' id='i' from='{ROOM}/{nick}' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='{sid}'>\
         <ice-state xmlns='{FOCUS_NS}'>failed</ice-state>\
         <bridge-session xmlns='{FOCUS_NS}' id='{bsid}'/></jingle></iq>"
    )
}

fn terminate_restart(nick: &str, sid: &str, bsid: &str) -> String {
    format!(
        "<iq type='set' id='t' from='{ROOM}/{nick}' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='{sid}'>\
         <reason><connectivity-error/><text>ICE FAILED</text></reason>\
         <bridge-session xmlns='{FOCUS_NS}' id='{bsid}' restart='true'/></jingle></iq>"
    )
}

fn new_allocation(out: &[Element]) -> Option<Element> {
    colibri(out)
        .into_iter()
        .find(|e| e.to_string().contains("create='true'"))
}

/// Restarts `nick`'s session after ICE failure and returns the new sid.
fn restart_after_ice_failure(h: &mut Harness, nick: &str, sid: &str, bsid: &str) -> String {
    let out = h.feed(&ice_failed(nick, sid, bsid));
    assert_eq!(out[0].type_(), Some("result"), "{:?}", out[0]);
    let c = colibri(&out);
    assert!(
        c[0].to_string().contains("expire='true'"),
        "old endpoint expired first"
    );
    let term = out
        .iter()
        .find(|e| jingle_action(e).as_deref() == Some("session-terminate"))
        .expect("session-terminate");
    assert_eq!(term.to(), Some(format!("{ROOM}/{nick}").as_str()));
    assert_eq!(sid_of(term), sid);
    let reason = term
        .get_child("jingle", "urn:xmpp:jingle:1")
        .and_then(|j| j.get_child("reason", "urn:xmpp:jingle:1"))
        .unwrap();
    assert!(reason.get_child("success", "urn:xmpp:jingle:1").is_some());
    assert_eq!(
        reason
            .get_child("text", "urn:xmpp:jingle:1")
            .map(|t| t.text_content()),
        Some("moving".to_string())
    );
    let realloc = new_allocation(&out).expect("a new allocation");
    let out = h.answer_allocation(&realloc);
    assert!(
        !out.iter()
            .any(|e| jingle_action(e).as_deref() == Some("transport-replace"))
    );
    let offer = offer_to(&out, nick).expect("a new session-initiate");
    let new_sid = sid_of(&offer);
    assert_ne!(new_sid, sid);
    new_sid
}

#[test]
fn ice_failure_restarts_the_session() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let bsid = bridge_session(&h);
    let before = h.out.len();
    let new_sid = restart_after_ice_failure(&mut h, "aaaa", &sids[0], &bsid);
    // bbbb was told aaaa's sources went away.
    let removed = h.out[before..]
        .iter()
        .find(|e| {
            e.to() == Some(&format!("{ROOM}/bbbb"))
                && jingle_action(e).as_deref() == Some("source-remove")
        })
        .expect("source-remove to bbbb");
    assert!(removed.to_string().contains("ssrc='100'"));
    // The old session is gone; the new one is accepted, and bbbb gets the
    // sources again.
    let out = h.feed(&ice_failed("aaaa", &sids[0], &bsid));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
    let out = h.accept("aaaa", &new_sid, &src(100, "aaaa a"), "");
    assert_eq!(out[0].type_(), Some("result"));
    let out = h.advance(Duration::from_millis(10));
    assert!(h.out.iter().rev().any(|e| {
        e.to() == Some(&format!("{ROOM}/bbbb"))
            && jingle_action(e).as_deref() == Some("source-add")
            && e.to_string().contains("ssrc='100'")
    }));
    drop(out);
    // Other session-info (e.g. ICE connected) is just acknowledged.
    let out = h.feed(&format!(
        "<iq type='set' id='j' from='{ROOM}/bbbb' to='{FOCUS_JID}'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='{}'>\
         <ice-state xmlns='{FOCUS_NS}'>connected</ice-state></jingle></iq>",
        sids[1]
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_(), Some("result"));
}

#[test]
fn ice_failure_for_a_stale_bridge_session_is_ignored() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let out = h.feed(&ice_failed("aaaa", &sids[0], "not-the-session"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_(), Some("result"));
}

#[test]
fn session_terminate_with_restart_reinvites() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let bsid = bridge_session(&h);
    // Another bridge session's id: Jicofo's item-not-found.
    let out = h.feed(&terminate_restart("aaaa", &sids[0], "stale"));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
    let out = h.feed(&terminate_restart("aaaa", &sids[0], &bsid));
    assert_eq!(out[0].type_(), Some("result"));
    let c = colibri(&out);
    assert!(c.iter().any(|e| e.to_string().contains("expire='true'")));
    // The client ended the session itself: no session-terminate back.
    assert!(
        !out.iter()
            .any(|e| jingle_action(e).as_deref() == Some("session-terminate"))
    );
    let realloc = new_allocation(&out).expect("a new allocation");
    let out = h.answer_allocation(&realloc);
    let offer = offer_to(&out, "aaaa").expect("a new session-initiate");
    assert_ne!(sid_of(&offer), sids[0]);
}

#[test]
fn restart_requests_are_rate_limited_per_participant() {
    // Virtual minutes pass: no health checks to answer.
    let (mut h, sids) = up_with(&["aaaa", "bbbb"], |o| {
        o.health_interval = Duration::from_secs(3600)
    });
    let bsid = bridge_session(&h);
    let mut sid = restart_after_ice_failure(&mut h, "aaaa", &sids[0], &bsid);
    h.accept("aaaa", &sid, &src(100, "aaaa a"), "");
    // A storm within min-interval: refused, the session untouched.
    for _ in 0..3 {
        let out = h.feed(&ice_failed("aaaa", &sid, &bsid));
        assert_eq!(out.len(), 1, "only the refusal: {out:?}");
        assert_eq!(
            error_condition(&out[0]).as_deref(),
            Some("resource-constraint")
        );
        assert_eq!(error_text(&out[0]).as_deref(), Some("rate-limited"));
    }
    // Another participant has its own limit.
    let out = h.feed(&ice_failed("bbbb", &sids[1], &bsid));
    assert_eq!(out[0].type_(), Some("result"));
    h.answer_allocation(&new_allocation(&out).unwrap());
    // 5 s apart: accepted, until five in the minute.
    for _ in 0..4 {
        h.advance(Duration::from_secs(5));
        sid = restart_after_ice_failure(&mut h, "aaaa", &sid, &bsid);
        h.accept("aaaa", &sid, &src(100, "aaaa a"), "");
    }
    h.advance(Duration::from_secs(5));
    let out = h.feed(&ice_failed("aaaa", &sid, &bsid));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("resource-constraint")
    );
    // session-terminate with restart over the limit: the session still
    // ends (endpoint expired), but no new session; the answer says why.
    let out = h.feed(&terminate_restart("aaaa", &sid, &bsid));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("resource-constraint")
    );
    assert!(
        colibri(&out)
            .iter()
            .any(|e| e.to_string().contains("expire='true'"))
    );
    assert!(new_allocation(&out).is_none());
}
