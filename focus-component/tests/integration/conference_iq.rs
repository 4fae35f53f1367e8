//! The conference IQ: ready once the room is joined (and configured when
//! the focus created it locked), Jicofo's authentication flow and errors,
//! malformed requests refused without harm.

use crate::common;

use common::*;
use focus_component::AuthOptions;

fn conference_iq(room: &str, from_user: &str, extra: &str) -> String {
    format!(
        "<iq type='set' id='c1' from='focus.{DOMAIN}/{from_user}' to='{FOCUS_JID}'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{room}' {extra}>\
         <property name='startAudioMuted' value='9'/></conference></iq>"
    )
}

#[test]
fn answer_waits_for_the_room_and_says_ready() {
    let mut h = Harness::new();
    let out = h.feed(&conference_iq(ROOM, "u1@example.com/r", "machine-uid='m'"));
    assert_eq!(out.len(), 1, "only the join presence: {out:?}");
    let join = &out[0];
    assert_eq!(join.name(), "presence");
    assert_eq!(join.to(), Some(format!("{ROOM}/focus").as_str()));
    assert!(
        join.get_child("x", "http://jabber.org/protocol/muc")
            .is_some()
    );
    assert!(
        join.get_child("versions", "http://jitsi.org/jitmeet")
            .is_some()
    );
    assert!(
        join.get_child("conference-properties", "http://jitsi.org/protocol/focus")
            .is_some()
    );

    let out = h.feed(&format!(
        "<presence from='{ROOM}/focus' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator'/><status code='110'/></x></presence>"
    ));
    assert_eq!(out.len(), 1);
    let answer = &out[0];
    assert_eq!(answer.id(), Some("c1"));
    assert_eq!(answer.type_(), Some("result"));
    assert_eq!(
        answer.to(),
        Some(format!("focus.{DOMAIN}/u1@example.com/r").as_str())
    );
    let c = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(c.get_attr("ready"), Some("true"));
    assert_eq!(c.get_attr("room"), Some(ROOM));
    assert_eq!(c.get_attr("focusjid"), Some("focus@auth.example.com"));
    let props: Vec<(Option<&str>, Option<&str>)> = c
        .children()
        .map(|p| (p.get_attr("name"), p.get_attr("value")))
        .collect();
    assert!(props.contains(&(Some("authentication"), Some("false"))));
    assert!(props.contains(&(Some("externalAuth"), Some("false"))));

    // A second request for the same room is answered at once.
    let out = h.feed(&conference_iq(ROOM, "u2@example.com/r", "machine-uid='m2'"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_(), Some("result"));
}

#[test]
fn a_created_locked_room_is_configured_before_ready() {
    let mut h = Harness::new();
    h.feed(&conference_iq(ROOM, "u1@example.com/r", ""));
    let out = h.feed(&format!(
        "<presence from='{ROOM}/focus' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator'/><status code='201'/><status code='110'/></x></presence>"
    ));
    assert_eq!(out.len(), 1, "only the configuration form: {out:?}");
    let form = &out[0];
    assert_eq!(form.to(), Some(ROOM));
    let x = form
        .get_child("query", "http://jabber.org/protocol/muc#owner")
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .unwrap();
    assert_eq!(x.get_attr("type"), Some("submit"));
    assert!(
        x.children()
            .any(|f| f.get_attr("var") == Some("muc#roomconfig_whois"))
    );
    let out = h.feed(&format!(
        "<iq type='result' id='{}' from='{ROOM}' to='{FOCUS_JID}'/>",
        form.id().unwrap()
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id(), Some("c1"));
    assert_eq!(out[0].type_(), Some("result"));
}

#[test]
fn malformed_requests_are_bad_request() {
    let mut h = Harness::new();
    for bad in [
        format!(
            "<iq type='set' id='c1' from='focus.{DOMAIN}/u@x/r' to='{FOCUS_JID}'><conference xmlns='http://jitsi.org/protocol/focus'/></iq>"
        ),
        conference_iq("no-node-here", "u@x/r", ""),
        conference_iq("a@b/c", "u@x/r", ""),
        conference_iq("@conference.example.com", "u@x/r", ""),
    ] {
        let out = h.feed(&bad);
        assert_eq!(out.len(), 1, "{bad}");
        assert_eq!(out[0].type_(), Some("error"));
        assert_eq!(
            error_condition(&out[0]).as_deref(),
            Some("bad-request"),
            "{bad}"
        );
    }
    // Nothing else broke: a good request still works.
    let answer = h.open_conference(ROOM);
    assert_eq!(answer.type_(), Some("result"));
}

#[test]
fn unknown_requests_get_an_error_never_silence() {
    let mut h = Harness::new();
    let out = h.feed(&format!(
        "<iq type='set' id='x1' from='someone@example.com/r' to='{FOCUS_JID}'><weird xmlns='urn:x'/></iq>"
    ));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("service-unavailable")
    );
    let out = h.feed(&format!(
        "<iq type='get' id='x2' from='someone@example.com/r' to='{FOCUS_JID}'/>"
    ));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("bad-request"));
}

fn secure() -> Harness {
    Harness::with_options(|o| {
        o.authentication = Some(AuthOptions {
            login_domain: DOMAIN.to_string(),
        })
    })
}

#[test]
fn secure_domain_guest_cannot_create_a_room() {
    let mut h = secure();
    let out = h.feed(&conference_iq(
        ROOM,
        "anon@guest.example.com/r",
        "machine-uid='m'",
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(error_condition(&out[0]).as_deref(), Some("not-authorized"));
    assert!(h.focus.stats(h.now).conferences == 0, "no room was joined");
}

#[test]
fn secure_domain_login_gets_session_and_guest_may_join_after() {
    let mut h = secure();
    h.feed(&conference_iq(
        ROOM,
        "alice@example.com/r",
        "machine-uid='m-alice'",
    ));
    let out = h.feed(&format!(
        "<presence from='{ROOM}/focus' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator'/><status code='110'/></x></presence>"
    ));
    let answer = out.iter().find(|e| e.id() == Some("c1")).unwrap();
    let c = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(c.get_attr("identity"), Some("alice@example.com"));
    let session = c
        .get_attr("session-id")
        .expect("session-id for a logged-in user")
        .to_string();
    assert!(c.children().any(
        |p| p.get_attr("name") == Some("authentication") && p.get_attr("value") == Some("true")
    ));

    // The user reconnects anonymously with its session-id.
    let out = h.feed(&conference_iq(
        ROOM,
        "anon1@guest.example.com/r",
        &format!("machine-uid='m-alice' session-id='{session}'"),
    ));
    assert_eq!(out[0].type_(), Some("result"));
    let c = out[0]
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(c.get_attr("identity"), Some("alice@example.com"));

    // A plain guest may join now that the room exists.
    let out = h.feed(&conference_iq(
        ROOM,
        "anon2@guest.example.com/r",
        "machine-uid='g'",
    ));
    assert_eq!(out[0].type_(), Some("result"));

    // Joining, the authenticated participant is made owner; the guest not.
    let out = h.feed(&format!(
        "<presence from='{ROOM}/alice1' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='anon1@guest.example.com/r'/></x></presence>"
    ));
    let grant = out
        .iter()
        .find(|e| {
            e.get_child("query", "http://jabber.org/protocol/muc#admin")
                .is_some()
        })
        .expect("owner granted");
    let item = grant
        .get_child("query", "http://jabber.org/protocol/muc#admin")
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(item.get_attr("affiliation"), Some("owner"));
    assert_eq!(item.get_attr("jid"), Some("anon1@guest.example.com"));
    let out = h.feed(&format!(
        "<presence from='{ROOM}/guest2' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='anon2@guest.example.com/r'/></x></presence>"
    ));
    assert!(out.iter().all(|e| {
        e.get_child("query", "http://jabber.org/protocol/muc#admin")
            .is_none()
    }));
}

#[test]
fn secure_domain_unknown_session_is_session_invalid() {
    let mut h = secure();
    let out = h.feed(&conference_iq(
        ROOM,
        "anon@guest.example.com/r",
        "machine-uid='m' session-id='forged'",
    ));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("not-acceptable"));
    let err = out[0].children().find(|c| c.name() == "error").unwrap();
    assert!(
        err.get_child("session-invalid", "http://jitsi.org/protocol/focus")
            .is_some()
    );
}

#[test]
fn secure_domain_login_without_machine_uid_is_bad_request() {
    let mut h = secure();
    let out = h.feed(&conference_iq(ROOM, "alice@example.com/r", ""));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("bad-request"));
}

#[test]
fn first_participant_is_made_owner_without_authentication() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[]);
    h.open_conference(ROOM);
    let out = h.feed(&format!(
        "<presence from='{ROOM}/p1' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='p1@example.com/r'/></x></presence>"
    ));
    assert!(out.iter().any(|e| {
        e.get_child("query", "http://jabber.org/protocol/muc#admin")
            .is_some()
    }));
    let out = h.feed(&format!(
        "<presence from='{ROOM}/p2' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='none' role='participant' jid='p2@example.com/r'/></x></presence>"
    ));
    assert!(out.iter().all(|e| {
        e.get_child("query", "http://jabber.org/protocol/muc#admin")
            .is_none()
    }));
}

#[test]
fn a_room_nobody_joins_is_left_after_the_initial_timeout() {
    let mut h = Harness::new();
    h.open_conference(ROOM);
    let out = h.advance(std::time::Duration::from_secs(14));
    assert!(out.iter().all(|e| e.type_() != Some("unavailable")));
    let out = h.advance(std::time::Duration::from_secs(1));
    assert!(out.iter().any(|e| e.name() == "presence"
        && e.type_() == Some("unavailable")
        && e.to() == Some(format!("{ROOM}/focus").as_str())));
    assert_eq!(h.focus.stats(h.now).conferences, 0);
    // A later request starts it again.
    let out = h.feed(&format!(
        "<iq type='set' id='again' from='focus.{DOMAIN}/u@{DOMAIN}/r' to='{FOCUS_JID}'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m'/></iq>"
    ));
    assert!(
        out.iter()
            .any(|e| e.name() == "presence" && e.to() == Some(format!("{ROOM}/focus").as_str()))
    );
}

#[test]
fn a_room_the_focus_cannot_join_answers_not_ready() {
    let mut h = Harness::new();
    h.feed(&format!(
        "<iq type='set' id='c9' from='focus.{DOMAIN}/u@{DOMAIN}/r' to='{FOCUS_JID}'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m'/></iq>"
    ));
    let out = h.feed(&format!(
        "<presence from='{ROOM}/focus' to='{FOCUS_JID}' type='error'><error type='cancel'>\
         <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
    ));
    let answer = out.iter().find(|e| e.id() == Some("c9")).unwrap();
    let c = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(c.get_attr("ready"), Some("false"));
}
