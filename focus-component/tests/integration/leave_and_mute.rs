//! Leaving (session-terminate, endpoint expired, sources removed from the
//! others; the last one out ends the conference) and muting.

use crate::common;

use common::*;
use xmpp_core::Element;

pub(crate) fn up(nicks: &[&str]) -> (Harness, Vec<String>) {
    up_with(nicks, |_| {})
}

/// `nicks` in a conference, each with an accepted session; `tweak` sets
/// the focus's options.
pub(crate) fn up_with(
    nicks: &[&str],
    tweak: impl FnOnce(&mut focus_component::FocusOptions),
) -> (Harness, Vec<String>) {
    let mut h = Harness::with_options(tweak);
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let mut sids = Vec::new();
    for (i, nick) in nicks.iter().enumerate() {
        let alloc = h.join(nick, PLAIN_FEATURES);
        let out = h.answer_allocation(&alloc);
        let sid = sid_of(&offer_to(&out, nick).unwrap());
        h.accept(nick, &sid, &src(100 + i as u32, &format!("{nick} a")), "");
        sids.push(sid);
    }
    (h, sids)
}

pub(crate) fn colibri(out: &[Element]) -> Vec<Element> {
    out.iter()
        .filter(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
        .cloned()
        .collect()
}

#[test]
fn leaving_ends_the_session_and_expires_the_endpoint() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let out = h.feed(&format!(
        "<presence from='{ROOM}/bbbb' to='{FOCUS_JID}' type='unavailable'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/></x></presence>"
    ));
    let term = out
        .iter()
        .find(|e| jingle_action(e).as_deref() == Some("session-terminate"))
        .expect("session-terminate");
    assert_eq!(term.to(), Some(format!("{ROOM}/bbbb").as_str()));
    assert_eq!(sid_of(term), sids[1]);
    let reason = term
        .get_child("jingle", "urn:xmpp:jingle:1")
        .unwrap()
        .get_child("reason", "urn:xmpp:jingle:1")
        .unwrap();
    assert!(reason.get_child("gone", "urn:xmpp:jingle:1").is_some());
    let c = colibri(&out);
    assert_eq!(c.len(), 1);
    let ep = c[0]
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap()
        .get_child("endpoint", "jitsi:colibri2")
        .unwrap();
    assert_eq!(
        (ep.get_attr("id"), ep.get_attr("expire")),
        (Some("bbbb"), Some("true"))
    );
    let rm = out
        .iter()
        .find(|e| jingle_action(e).as_deref() == Some("source-remove"))
        .expect("A is told B's sources are gone");
    assert_eq!(rm.to(), Some(format!("{ROOM}/aaaa").as_str()));

    // The last one out: the conference expires and the focus leaves.
    let out = h.feed(&format!(
        "<presence from='{ROOM}/aaaa' to='{FOCUS_JID}' type='unavailable'/>"
    ));
    let c = colibri(&out);
    let cm = c
        .iter()
        .map(|e| e.get_child("conference-modify", "jitsi:colibri2").unwrap())
        .find(|cm| cm.get_attr("expire") == Some("true"))
        .expect("conference expired");
    assert!(cm.get_attr("meeting-id").is_some());
    assert!(out.iter().any(|e| e.name() == "presence"
        && e.type_() == Some("unavailable")
        && e.to() == Some(format!("{ROOM}/focus").as_str())));
    assert_eq!(h.focus.stats(h.now).conferences, 0);
}

fn mute_iq(from: &str, target: &str, mute: bool) -> String {
    format!(
        "<iq type='set' id='m' from='{ROOM}/{from}' to='{ROOM}/focus'>\
         <mute xmlns='http://jitsi.org/jitmeet/audio' jid='{ROOM}/{target}'>{mute}</mute></iq>"
    )
}

#[test]
fn moderators_mute_others_at_the_bridge() {
    let (mut h, _sids) = up(&["aaaa", "bbbb"]);
    // aaaa was made owner (first participant); the MUC says so.
    h.feed(&format!(
        "<presence from='{ROOM}/aaaa' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator' jid='aaaa@guest.example.com/r'/></x></presence>"
    ));
    let out = h.feed(&mute_iq("aaaa", "bbbb", true));
    assert_eq!(out[0].type_(), Some("result"));
    let fm = colibri(&out)
        .into_iter()
        .find_map(|e| {
            let ep = e
                .get_child("conference-modify", "jitsi:colibri2")?
                .get_child("endpoint", "jitsi:colibri2")?
                .clone();
            ep.get_child("force-mute", "jitsi:colibri2")
                .cloned()
                .map(|f| (ep, f))
        })
        .expect("force-mute at the bridge");
    assert_eq!(fm.0.get_attr("id"), Some("bbbb"));
    assert_eq!(fm.1.get_attr("audio"), Some("true"));
    let told = out
        .iter()
        .find(|e| {
            e.to() == Some(format!("{ROOM}/bbbb").as_str())
                && e.get_child("mute", "http://jitsi.org/jitmeet/audio")
                    .is_some()
        })
        .expect("the participant is told");
    let m = told
        .get_child("mute", "http://jitsi.org/jitmeet/audio")
        .unwrap();
    assert_eq!(m.get_attr("actor"), Some(format!("{ROOM}/aaaa").as_str()));

    // bbbb may not mute nor unmute aaaa; it may unmute itself.
    let out = h.feed(&mute_iq("bbbb", "aaaa", true));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("not-allowed"));
    let out = h.feed(&mute_iq("aaaa", "bbbb", false));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("not-allowed"),
        "only the participant unmutes itself"
    );
    let out = h.feed(&mute_iq("bbbb", "bbbb", false));
    assert_eq!(out[0].type_(), Some("result"));
    // Unknown target.
    let out = h.feed(&mute_iq("aaaa", "nobody", true));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
    // Malformed value.
    let out = h.feed(&mute_iq("aaaa", "bbbb", true).replace(">true<", ">maybe<"));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("bad-request"));
}

#[test]
fn av_moderation_force_mutes_non_moderators() {
    let (mut h, _sids) = up(&["aaaa", "bbbb"]);
    h.feed(&format!(
        "<presence from='{ROOM}/aaaa' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator' jid='aaaa@guest.example.com/r'/></x></presence>"
    ));
    let msg = |json: &str| {
        format!(
            "<message from='avmoderation.{DOMAIN}' to='{FOCUS_JID}'><json-message xmlns='http://jitsi.org/jitmeet'>{json}</json-message></message>"
        )
    };
    let out = h.feed(&msg(&format!(
        r#"{{"type":"av_moderation","enabled":true,"room":"{ROOM}","actor":"{ROOM}/aaaa","mediaType":"audio"}}"#
    )));
    let muted: Vec<String> = colibri(&out)
        .iter()
        .filter_map(|e| {
            let ep = e
                .get_child("conference-modify", "jitsi:colibri2")?
                .get_child("endpoint", "jitsi:colibri2")?;
            ep.get_child("force-mute", "jitsi:colibri2")?;
            ep.get_attr("id").map(str::to_string)
        })
        .collect();
    assert_eq!(muted, ["bbbb"], "the moderator stays unmuted");
    // Not whitelisted: bbbb may not unmute itself.
    let out = h.feed(&mute_iq("bbbb", "bbbb", false));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("not-allowed"));
    // Whitelisted: it may.
    h.feed(&msg(&format!(
        r#"{{"type":"av_moderation","room":"{ROOM}","whitelists":{{"audio":["{ROOM}/bbbb"]}},"mediaType":"audio"}}"#
    )));
    let out = h.feed(&mute_iq("bbbb", "bbbb", false));
    assert_eq!(out[0].type_(), Some("result"));
    // Garbage messages change nothing.
    h.feed(&msg("not json"));
    h.feed(&msg(r#"{"type":"av_moderation"}"#));
}

#[test]
fn a_client_silent_on_disco_is_invited_with_defaults() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    h.feed(&format!(
        "<presence from='{ROOM}/quiet' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='q@example.com/r'/></x></presence>"
    ));
    let out = h.advance(std::time::Duration::from_secs(5));
    assert!(
        colibri(&out)
            .iter()
            .any(|e| e.to_string().contains("create='true'"))
    );
}

#[test]
fn room_destruction_ends_every_session() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let out = h.feed(&format!(
        "<presence from='{ROOM}/focus' to='{FOCUS_JID}' type='unavailable'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
         <destroy/><status code='110'/></x></presence>"
    ));
    let terminated: Vec<String> = out
        .iter()
        .filter(|e| jingle_action(e).as_deref() == Some("session-terminate"))
        .map(sid_of)
        .collect();
    assert_eq!(terminated.len(), 2);
    assert!(sids.iter().all(|s| terminated.contains(s)));
    assert!(colibri(&out).iter().any(|e| {
        e.get_child("conference-modify", "jitsi:colibri2")
            .is_some_and(|cm| cm.get_attr("expire") == Some("true"))
    }));
    assert!(
        out.iter()
            .all(|e| !(e.name() == "presence" && e.type_() == Some("unavailable"))),
        "no leave for a room that is gone"
    );
    assert_eq!(h.focus.stats(h.now).conferences, 0);
}

#[test]
fn a_kicked_participant_is_ended_like_a_leaving_one() {
    let (mut h, sids) = up(&["aaaa", "bbbb"]);
    let out = h.feed(&format!(
        "<presence from='{ROOM}/bbbb' to='{FOCUS_JID}' type='unavailable'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/><status code='307'/></x></presence>"
    ));
    let term = out
        .iter()
        .find(|e| jingle_action(e).as_deref() == Some("session-terminate"))
        .unwrap();
    assert_eq!(sid_of(term), sids[1]);
    assert!(term.to_string().contains("kicked"));
}

#[test]
fn a_refused_offer_expires_the_endpoint() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa", PLAIN_FEATURES);
    let out = h.answer_allocation(&alloc);
    let offer = offer_to(&out, "aaaa").unwrap();
    let out = h.feed(&format!(
        "<iq type='error' id='{}' from='{ROOM}/aaaa' to='{FOCUS_JID}'><error type='cancel'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        offer.id().unwrap()
    ));
    assert!(
        colibri(&out)
            .iter()
            .any(|e| e.to_string().contains("expire='true'"))
    );
    assert_eq!(h.focus.stats(h.now).counters.offer_failures, 1);
    // A late session-accept for that session is an unknown session.
    let out = h.accept("aaaa", &sid_of(&offer), "", "");
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
}
