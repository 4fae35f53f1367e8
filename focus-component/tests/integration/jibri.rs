//! Recorder brokering: a moderator's start goes to an idle recorder of the
//! Jibri brewery, the status shows in the focus's presence, failures are
//! retried on another recorder, refusals carry Jicofo's conditions.

use crate::common;

use common::*;
use xmpp_core::Element;

const JIBRI_BREWERY: &str = "jibribrewery@internal.auth.example.com";

fn setup() -> Harness {
    let mut h = Harness::with_options(|o| o.jibri_brewery = Some(JIBRI_BREWERY.to_string()));
    assert!(
        h.out
            .iter()
            .any(|e| e.to() == Some(&format!("{JIBRI_BREWERY}/focus"))),
        "joins the Jibri brewery"
    );
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("mod1", PLAIN_FEATURES);
    h.answer_allocation(&alloc);
    h.feed(&format!(
        "<presence from='{ROOM}/mod1' to='{FOCUS_JID}'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <item affiliation='owner' role='moderator' jid='mod1@example.com/r'/></x></presence>"
    ));
    let alloc = h.join("guest1", PLAIN_FEATURES);
    h.answer_allocation(&alloc);
    h
}

fn jibri_presence(h: &mut Harness, nick: &str, status: &str) {
    h.feed(&format!(
        "<presence from='{JIBRI_BREWERY}/{nick}' to='{FOCUS_JID}'>\
         <jibri-status xmlns='http://jitsi.org/protocol/jibri'><busy-status status='{status}'/>\
         <health-status xmlns='http://jitsi.org/protocol/health' status='healthy'/></jibri-status></presence>"
    ));
}

fn start(from: &str, extra: &str) -> String {
    format!(
        "<iq type='set' id='rec' from='{ROOM}/{from}' to='{ROOM}/focus'>\
         <jibri xmlns='http://jitsi.org/protocol/jibri' action='start' {extra}/></iq>"
    )
}

fn status_in(out: &[Element]) -> Option<Element> {
    out.iter()
        .rev()
        .filter(|e| e.name() == "presence")
        .find_map(|p| {
            p.get_child("jibri-recording-status", "http://jitsi.org/protocol/jibri")
                .cloned()
        })
}

#[test]
fn recording_starts_on_an_idle_recorder_and_is_published() {
    let mut h = setup();
    jibri_presence(&mut h, "jibri-busy", "busy");
    jibri_presence(&mut h, "jibri-1", "idle");
    let out = h.feed(&start(
        "mod1",
        "recording_mode='file' app_data='{\"file_recording_metadata\":{}}'",
    ));
    let to_jibri = out
        .iter()
        .find(|e| {
            e.get_child("jibri", "http://jitsi.org/protocol/jibri")
                .is_some()
        })
        .expect("start sent to a recorder");
    assert_eq!(
        to_jibri.to(),
        Some(format!("{JIBRI_BREWERY}/jibri-1").as_str())
    );
    let j = to_jibri
        .get_child("jibri", "http://jitsi.org/protocol/jibri")
        .unwrap();
    assert_eq!(j.get_attr("action"), Some("start"));
    assert_eq!(j.get_attr("room"), Some(ROOM));
    assert_eq!(j.get_attr("recording_mode"), Some("file"));
    assert!(j.get_attr("app_data").is_some());
    let session_id = j.get_attr("session_id").unwrap().to_string();
    let st = status_in(&out).expect("pending published");
    assert_eq!(st.get_attr("status"), Some("pending"));
    assert_eq!(st.get_attr("session_id"), Some(session_id.as_str()));
    assert!(
        out.iter().all(|e| e.id() != Some("rec")),
        "answered once the recorder accepts"
    );

    let out = h.feed(&format!(
        "<iq type='result' id='{}' from='{JIBRI_BREWERY}/jibri-1' to='{FOCUS_JID}'>\
         <jibri xmlns='http://jitsi.org/protocol/jibri' status='pending'/></iq>",
        to_jibri.id().unwrap()
    ));
    assert!(
        out.iter()
            .any(|e| e.id() == Some("rec") && e.type_() == Some("result"))
    );

    let out = h.feed(&format!(
        "<iq type='set' id='on' from='jibri@auth.example.com/jibri-1' to='{FOCUS_JID}'>\
         <jibri xmlns='http://jitsi.org/protocol/jibri' status='on' session_id='{session_id}'/></iq>"
    ));
    assert_eq!(out[0].type_(), Some("result"));
    assert_eq!(status_in(&out).unwrap().get_attr("status"), Some("on"));

    // A second start is refused while it runs.
    let out = h.feed(&start("mod1", "recording_mode='file'"));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("unexpected-request")
    );

    // Stop.
    let out = h.feed(&format!(
        "<iq type='set' id='stop' from='{ROOM}/mod1' to='{ROOM}/focus'><jibri xmlns='http://jitsi.org/protocol/jibri' action='stop'/></iq>"
    ));
    assert_eq!(out[0].type_(), Some("result"));
    let stop = out
        .iter()
        .find(|e| e.to() == Some(&format!("{JIBRI_BREWERY}/jibri-1")))
        .expect("stop sent to the recorder");
    assert_eq!(
        stop.get_child("jibri", "http://jitsi.org/protocol/jibri")
            .unwrap()
            .get_attr("action"),
        Some("stop")
    );
    assert_eq!(status_in(&out).unwrap().get_attr("status"), Some("off"));
}

#[test]
fn a_failing_recorder_is_replaced() {
    let mut h = setup();
    jibri_presence(&mut h, "jibri-1", "idle");
    jibri_presence(&mut h, "jibri-2", "idle");
    let out = h.feed(&start(
        "mod1",
        "recording_mode='stream' streamid='abcd-1234'",
    ));
    let first = out
        .iter()
        .find(|e| {
            e.get_child("jibri", "http://jitsi.org/protocol/jibri")
                .is_some()
        })
        .unwrap()
        .clone();
    let out = h.feed(&format!(
        "<iq type='error' id='{}' from='{}' to='{FOCUS_JID}'><error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        first.id().unwrap(),
        first.to().unwrap()
    ));
    let second = out
        .iter()
        .find(|e| {
            e.get_child("jibri", "http://jitsi.org/protocol/jibri")
                .is_some()
        })
        .expect("retried on the other recorder");
    assert_ne!(second.to(), first.to());
    let j = second
        .get_child("jibri", "http://jitsi.org/protocol/jibri")
        .unwrap();
    assert_eq!(j.get_attr("streamid"), Some("abcd-1234"));
    // That one fails later, asking for a retry: nothing is left.
    let session_id = j.get_attr("session_id").unwrap().to_string();
    h.feed(&format!(
        "<iq type='result' id='{}' from='{}' to='{FOCUS_JID}'/>",
        second.id().unwrap(),
        second.to().unwrap()
    ));
    let out = h.feed(&format!(
        "<iq type='set' id='off' from='{}' to='{FOCUS_JID}'><jibri xmlns='http://jitsi.org/protocol/jibri' status='off' failure_reason='error' should_retry='true' session_id='{session_id}'/></iq>",
        second.to().unwrap()
    ));
    assert_eq!(out[0].type_(), Some("result"));
    let st = status_in(&out).unwrap();
    assert_eq!(st.get_attr("status"), Some("off"));
    assert_eq!(st.get_attr("failure_reason"), Some("error"));
}

#[test]
fn refusals_carry_jicofos_conditions() {
    let mut h = setup();
    let out = h.feed(&start("mod1", "recording_mode='file'"));
    assert_eq!(
        error_condition(&out[0]).as_deref(),
        Some("service-unavailable"),
        "no recorder"
    );
    jibri_presence(&mut h, "jibri-1", "idle");
    let out = h.feed(&start("guest1", "recording_mode='file'"));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("forbidden"));
    let out = h.feed(&start("mod1", "recording_mode='stream'"));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("bad-request"));
    let out = h.feed(&start("mod1", "recording_mode='hologram'"));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("bad-request"));
    let out = h.feed(&format!(
        "<iq type='set' id='x' from='{ROOM}/mod1' to='{ROOM}/focus'><jibri xmlns='http://jitsi.org/protocol/jibri' action='stop'/></iq>"
    ));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
    let out = h.feed(&format!(
        "<iq type='set' id='y' from='nobody@example.com/x' to='{FOCUS_JID}'><jibri xmlns='http://jitsi.org/protocol/jibri' status='on' session_id='zzz'/></iq>"
    ));
    assert_eq!(error_condition(&out[0]).as_deref(), Some("item-not-found"));
}
