//! Jibri's protocol on golden XML: the recorder driven with the stanzas a
//! focus and a conference room send, on virtual time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use recorder_component::files::ParticipantInfo;
use recorder_component::{Output, Recorder, RecorderEvent, RecorderOptions, StopReason};
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

const JIBRI: &str = "jibri@auth.meet.test/ctl";
const REC: &str = "recorder@recorder.meet.test/call";
const FOCUS: &str = "jibribrewery@internal.auth.meet.test/focus";
const ROOM: &str = "room1@conference.meet.test";

fn xml(s: &str) -> Element {
    parse_element(s).unwrap()
}

/// A canonical form for comparing stanzas: attributes sorted, the
/// parser's default `xml:lang` dropped.
fn canon(e: &Element) -> String {
    let mut attrs: Vec<(&str, &str)> = e.attrs().filter(|(k, _)| *k != "xml:lang").collect();
    attrs.sort();
    let mut out = format!("<{{{}}}{}", e.ns(), e.name());
    for (k, v) in attrs {
        out.push_str(&format!(" {k}={v:?}"));
    }
    out.push('>');
    for n in e.nodes() {
        match n {
            xmpp_core::stanza::Node::Element(c) => out.push_str(&canon(c)),
            xmpp_core::stanza::Node::Text(t) => out.push_str(t),
        }
    }
    out.push_str("</>");
    out
}

fn options(max: usize) -> RecorderOptions {
    let mut o = RecorderOptions::new(
        JIBRI,
        "jibribrewery@internal.auth.meet.test",
        REC,
        PathBuf::from("/rec"),
    );
    o.max_concurrent = max;
    o
}

fn drain(r: &mut Recorder) -> Vec<Output> {
    std::iter::from_fn(|| r.poll_output()).collect()
}

/// Asserts the outputs' stanzas (in order) equal the golden XML.
fn assert_stanzas(out: &[Output], golden: &[(&str, &str)]) {
    let got: Vec<(&str, String)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Control(e) => Some(("control", canon(e))),
            Output::Call(e) => Some(("call", canon(e))),
            Output::Event(_) => None,
        })
        .collect();
    let want: Vec<(&str, String)> = golden.iter().map(|(l, g)| (*l, canon(&xml(g)))).collect();
    assert_eq!(got, want);
}

/// The stanzas of the outputs as XML text.
fn rendered(out: &[Output]) -> String {
    out.iter()
        .filter_map(|o| match o {
            Output::Control(e) | Output::Call(e) => Some(e.to_xml()),
            Output::Event(_) => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<RecorderEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn start_iq(id: &str, session: &str, mode: &str) -> Element {
    xml(&format!(
        "<iq type='set' id='{id}' from='{FOCUS}' to='{JIBRI}'>\
         <jibri xmlns='http://jitsi.org/protocol/jibri' action='start' recording_mode='{mode}' \
         room='{ROOM}' session_id='{session}' \
         app_data='{{\"file_recording_metadata\":{{\"share\":true}}}}'/></iq>"
    ))
}

fn occupant(nick: &str, extra: &str) -> Element {
    xml(&format!(
        "<presence from='{ROOM}/{nick}' to='{REC}'>{extra}\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>"
    ))
}

fn self_presence(nick: &str) -> Element {
    xml(&format!(
        "<presence from='{ROOM}/{nick}' to='{REC}'>\
         <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/>\
         <status code='110'/></x></presence>"
    ))
}

#[test]
fn joins_the_brewery_idle_and_healthy() {
    let mut r = Recorder::new(options(2), Instant::now());
    assert_stanzas(
        &drain(&mut r),
        &[(
            "control",
            "<presence from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/jibri_ctl'>\
             <x xmlns='http://jabber.org/protocol/muc'/>\
             <jibri-status xmlns='http://jitsi.org/protocol/jibri'><busy-status status='idle'/>\
             <health-status xmlns='http://jitsi.org/protocol/health' status='healthy'/></jibri-status></presence>",
        )],
    );
    assert_eq!(r.next_timeout(), None);
}

#[test]
fn start_is_pending_then_on_once_in_the_room_and_stop_is_off() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(4), t0);
    drain(&mut r);
    r.handle_stanza(t0, start_iq("s1", "sess42", "file"));
    let out = drain(&mut r);
    assert_stanzas(
        &out,
        &[
            (
                "call",
                "<presence from='recorder@recorder.meet.test/call' to='room1@conference.meet.test/recorder_sess42'>\
                 <x xmlns='http://jabber.org/protocol/muc'/><session_id>sess42</session_id><mode>file</mode>\
                 <nick xmlns='http://jabber.org/protocol/nick'>Recorder</nick></presence>",
            ),
            (
                "control",
                "<iq id='s1' to='jibribrewery@internal.auth.meet.test/focus' from='jibri@auth.meet.test/ctl' type='result'>\
                 <jibri xmlns='http://jitsi.org/protocol/jibri' status='pending' session_id='sess42'/></iq>",
            ),
            // Still idle (1 of 4), said again: the focus marked it in use.
            (
                "control",
                "<presence from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/jibri_ctl'>\
                 <jibri-status xmlns='http://jitsi.org/protocol/jibri'>\
                 <busy-status xmlns='http://jitsi.org/protocol/jibri' status='idle'/>\
                 <health-status xmlns='http://jitsi.org/protocol/health' status='healthy'/></jibri-status></presence>",
            ),
        ],
    );
    assert_eq!(
        events(&out),
        [RecorderEvent::Started {
            session_id: "sess42".into(),
            room: ROOM.into(),
            dir: PathBuf::from("/rec/sess42"),
        }]
    );

    // The room's occupants, then our own presence: status on to the focus.
    r.handle_stanza(t0, occupant("focus", ""));
    r.handle_stanza(
        t0,
        occupant(
            "a1b2c3d4",
            "<nick xmlns='http://jabber.org/protocol/nick'>Alice</nick>",
        ),
    );
    r.handle_stanza(t0, self_presence("recorder_sess42"));
    let out = drain(&mut r);
    assert_stanzas(
        &out,
        &[(
            "control",
            "<iq id='jibri-1' type='set' from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/focus'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' status='on' session_id='sess42'/></iq>",
        )],
    );
    assert_eq!(
        events(&out),
        [RecorderEvent::ParticipantJoined {
            session_id: "sess42".into(),
            endpoint: "a1b2c3d4".into(),
            name: Some("Alice".into()),
        }]
    );

    // Jingle from the focus on the call link goes to the media side.
    let jingle = xml(&format!(
        "<iq type='set' id='j1' from='{ROOM}/focus' to='{REC}'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='x'/></iq>"
    ));
    r.handle_stanza(t0, jingle.clone());
    assert_eq!(
        events(&drain(&mut r)),
        [RecorderEvent::CallIq {
            session_id: "sess42".into(),
            iq: jingle
        }]
    );

    r.handle_stanza(
        t0 + Duration::from_secs(20),
        xml(&format!(
            "<iq type='set' id='s2' from='{FOCUS}' to='{JIBRI}'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' action='stop' session_id='sess42'/></iq>"
        )),
    );
    let out = drain(&mut r);
    assert_stanzas(
        &out,
        &[
            (
                "call",
                "<presence from='recorder@recorder.meet.test/call' to='room1@conference.meet.test/recorder_sess42' type='unavailable'/>",
            ),
            (
                "control",
                "<iq id='s2' to='jibribrewery@internal.auth.meet.test/focus' from='jibri@auth.meet.test/ctl' type='result'>\
                 <jibri xmlns='http://jitsi.org/protocol/jibri' status='off' session_id='sess42'/></iq>",
            ),
        ],
    );
    let ev = events(&out);
    let [
        RecorderEvent::Stopped {
            session_id,
            dir,
            reason,
            metadata,
        },
    ] = ev.as_slice()
    else {
        panic!("{ev:?}");
    };
    assert_eq!(session_id, "sess42");
    assert_eq!(dir, &PathBuf::from("/rec/sess42"));
    assert_eq!(reason, &StopReason::Requested);
    assert_eq!(metadata.meeting_url, "https://meet.test/room1");
    assert_eq!(
        metadata.participants,
        [ParticipantInfo {
            id: "a1b2c3d4".into(),
            name: Some("Alice".into())
        }]
    );
    assert_eq!(metadata.extra["share"], true);
    assert_eq!(r.sessions().count(), 0);
}

#[test]
fn busy_only_at_the_maximum_of_concurrent_recordings() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(2), t0);
    drain(&mut r);
    r.handle_stanza(t0, start_iq("a", "one", "file"));
    drain(&mut r);
    r.handle_stanza(t0, start_iq("b", "two", "file"));
    let out = drain(&mut r);
    // The second start answers pending, then the brewery hears busy.
    let last = out.last().unwrap();
    let Output::Control(p) = last else {
        panic!("{out:?}")
    };
    assert_eq!(
        canon(p),
        canon(&xml(
            "<presence from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/jibri_ctl'>\
             <jibri-status xmlns='http://jitsi.org/protocol/jibri'><busy-status status='busy'/>\
             <health-status xmlns='http://jitsi.org/protocol/health' status='healthy'/></jibri-status></presence>"
        ))
    );
    r.handle_stanza(t0, start_iq("c", "three", "file"));
    assert_stanzas(
        &drain(&mut r),
        &[(
            "control",
            "<iq id='c' to='jibribrewery@internal.auth.meet.test/focus' from='jibri@auth.meet.test/ctl' type='result'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' status='off' session_id='three' failure_reason='busy' should_retry='true'/></iq>",
        )],
    );
    // Stop one: idle again.
    r.handle_stanza(
        t0,
        xml(&format!(
            "<iq type='set' id='d' from='{FOCUS}' to='{JIBRI}'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' action='stop' session_id='one'/></iq>"
        )),
    );
    let out = drain(&mut r);
    let idle = out.iter().any(|o| {
        matches!(o, Output::Control(p) if p.name() == "presence" && p.to_xml().contains("status='idle'"))
    });
    assert!(idle, "{out:?}");
}

#[test]
fn stream_mode_and_bad_requests_are_refused_as_jibri_does() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(2), t0);
    drain(&mut r);
    r.handle_stanza(t0, start_iq("a", "s", "stream"));
    assert_stanzas(
        &drain(&mut r),
        &[(
            "control",
            "<iq id='a' to='jibribrewery@internal.auth.meet.test/focus' from='jibri@auth.meet.test/ctl' type='result'>\
             <jibri xmlns='http://jitsi.org/protocol/jibri' status='off' session_id='s' failure_reason='error' should_retry='false'/></iq>",
        )],
    );
    r.handle_stanza(
        t0,
        xml(&format!(
            "<iq type='set' id='b' from='{FOCUS}' to='{JIBRI}'><jibri xmlns='http://jitsi.org/protocol/jibri'/></iq>"
        )),
    );
    assert_stanzas(
        &drain(&mut r),
        &[(
            "control",
            "<iq id='b' to='jibribrewery@internal.auth.meet.test/focus' from='jibri@auth.meet.test/ctl' type='error'>\
             <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )],
    );
    // A session id that would leave the recordings directory.
    r.handle_stanza(t0, start_iq("c", "..", "file"));
    let out = drain(&mut r);
    assert!(rendered(&out).contains("failure_reason"), "{out:?}");
    assert_eq!(r.sessions().count(), 0);
}

fn started(max: usize) -> (Recorder, Instant) {
    let t0 = Instant::now();
    let mut o = options(max);
    o.max_duration = Some(Duration::from_secs(3600));
    let mut r = Recorder::new(o, t0);
    r.handle_stanza(t0, start_iq("a", "s1", "file"));
    r.handle_stanza(t0, occupant("focus", ""));
    r.handle_stanza(t0, occupant("p1", ""));
    r.handle_stanza(t0, self_presence("recorder_s1"));
    drain(&mut r);
    (r, t0)
}

fn stop_reason(out: &[Output]) -> Option<StopReason> {
    events(out).into_iter().find_map(|e| match e {
        RecorderEvent::Stopped { reason, .. } => Some(reason),
        _ => None,
    })
}

const OFF_SET: &str = "<iq id='jibri-2' type='set' from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/focus'>\
     <jibri xmlns='http://jitsi.org/protocol/jibri' status='off' session_id='s1'/></iq>";

#[test]
fn room_destroyed_stops_with_off() {
    let (mut r, t0) = started(2);
    r.handle_stanza(
        t0,
        xml(&format!(
            "<presence type='unavailable' from='{ROOM}/recorder_s1' to='{REC}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='none'/>\
             <destroy/><status code='110'/></x></presence>"
        )),
    );
    let out = drain(&mut r);
    assert_stanzas(&out, &[("control", OFF_SET)]);
    assert_eq!(stop_reason(&out), Some(StopReason::RoomDestroyed));
}

#[test]
fn everyone_else_leaving_stops_after_the_empty_timeout() {
    let (mut r, t0) = started(2);
    // A hidden participant (another recorder) and the focus do not count.
    r.handle_stanza(
        t0,
        xml(&format!(
            "<presence from='{ROOM}/other' to='{REC}'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <item jid='recorder@recorder.meet.test/zz' affiliation='none' role='participant'/></x></presence>"
        )),
    );
    assert_eq!(r.next_timeout(), Some(t0 + Duration::from_secs(3600)));
    let left = t0 + Duration::from_secs(10);
    r.handle_stanza(
        left,
        xml(&format!(
            "<presence type='unavailable' from='{ROOM}/p1' to='{REC}'/>"
        )),
    );
    let out = drain(&mut r);
    assert_eq!(
        events(&out),
        [RecorderEvent::ParticipantLeft {
            session_id: "s1".into(),
            endpoint: "p1".into()
        }]
    );
    assert_eq!(r.next_timeout(), Some(left + Duration::from_secs(30)));
    // Someone comes back in time: no stop.
    r.handle_stanza(left + Duration::from_secs(5), occupant("p2", ""));
    r.handle_timeout(left + Duration::from_secs(31));
    assert_eq!(stop_reason(&drain(&mut r)), None);
    let left2 = left + Duration::from_secs(40);
    r.handle_stanza(
        left2,
        xml(&format!(
            "<presence type='unavailable' from='{ROOM}/p2' to='{REC}'/>"
        )),
    );
    r.handle_timeout(left2 + Duration::from_secs(29));
    assert_eq!(stop_reason(&drain(&mut r)), None);
    r.handle_timeout(left2 + Duration::from_secs(30));
    let out = drain(&mut r);
    assert_stanzas(
        &out,
        &[
            (
                "call",
                "<presence from='recorder@recorder.meet.test/call' to='room1@conference.meet.test/recorder_s1' type='unavailable'/>",
            ),
            ("control", OFF_SET),
        ],
    );
    assert_eq!(stop_reason(&out), Some(StopReason::Empty));
    let RecorderEvent::Stopped { metadata, .. } = events(&out).pop().unwrap() else {
        panic!()
    };
    let ids: Vec<&str> = metadata
        .participants
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, ["p1", "p2"]);
}

#[test]
fn stops_at_the_maximum_duration() {
    let (mut r, t0) = started(2);
    r.handle_timeout(t0 + Duration::from_secs(3599));
    assert_eq!(stop_reason(&drain(&mut r)), None);
    r.handle_timeout(t0 + Duration::from_secs(3600));
    assert_eq!(stop_reason(&drain(&mut r)), Some(StopReason::MaxDuration));
}

#[test]
fn low_disk_space_refuses_and_stops_with_an_error() {
    let (mut r, t0) = started(3);
    r.set_free_space(t0, 10 << 30);
    assert!(drain(&mut r).is_empty());
    r.set_free_space(t0, 1 << 20);
    let out = drain(&mut r);
    assert_stanzas(
        &out,
        &[
            (
                "call",
                "<presence from='recorder@recorder.meet.test/call' to='room1@conference.meet.test/recorder_s1' type='unavailable'/>",
            ),
            (
                "control",
                "<iq id='jibri-2' type='set' from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/focus'>\
                 <jibri xmlns='http://jitsi.org/protocol/jibri' status='off' session_id='s1' failure_reason='error' should_retry='true'/></iq>",
            ),
            (
                "control",
                "<presence from='jibri@auth.meet.test/ctl' to='jibribrewery@internal.auth.meet.test/jibri_ctl'>\
                 <jibri-status xmlns='http://jitsi.org/protocol/jibri'><busy-status status='idle'/>\
                 <health-status xmlns='http://jitsi.org/protocol/health' status='unhealthy'/></jibri-status></presence>",
            ),
        ],
    );
    assert_eq!(stop_reason(&out), Some(StopReason::LowDiskSpace));
    r.handle_stanza(t0, start_iq("z", "s9", "file"));
    let out = drain(&mut r);
    assert!(
        rendered(&out).contains("failure_reason='error' should_retry='true'"),
        "{out:?}"
    );
}

#[test]
fn a_refused_join_and_a_media_failure_are_errors() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(2), t0);
    r.handle_stanza(t0, start_iq("a", "s1", "file"));
    r.handle_stanza(t0, start_iq("b", "s2", "file"));
    drain(&mut r);
    r.handle_stanza(
        t0,
        xml(&format!(
            "<presence type='error' from='{ROOM}/recorder_s1' to='{REC}'>\
             <error type='auth'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
        )),
    );
    let out = drain(&mut r);
    assert_eq!(
        stop_reason(&out),
        Some(StopReason::JoinFailed("not-allowed".into()))
    );
    assert!(rendered(&out).contains("failure_reason='error'"));
    r.media_failed(t0, "s2", "DTLS failed");
    let out = drain(&mut r);
    assert_eq!(
        stop_reason(&out),
        Some(StopReason::Media("DTLS failed".into()))
    );
}

#[test]
fn pings_are_answered_on_both_links() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(2), t0);
    drain(&mut r);
    r.handle_stanza(
        t0,
        xml("<iq type='get' id='p1' from='auth.meet.test' to='jibri@auth.meet.test/ctl'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    r.handle_stanza(
        t0,
        xml("<iq type='get' id='p2' from='meet.test' to='recorder@recorder.meet.test/call'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    assert_stanzas(
        &drain(&mut r),
        &[
            (
                "control",
                "<iq id='p1' to='auth.meet.test' from='jibri@auth.meet.test/ctl' type='result'/>",
            ),
            (
                "call",
                "<iq id='p2' to='meet.test' from='recorder@recorder.meet.test/call' type='result'/>",
            ),
        ],
    );
    // Anything else on the control link is not implemented.
    r.handle_stanza(
        t0,
        xml("<iq type='get' id='v' from='auth.meet.test' to='jibri@auth.meet.test/ctl'><query xmlns='jabber:iq:version'/></iq>"),
    );
    assert!(rendered(&drain(&mut r)).contains("feature-not-implemented"));
}

#[test]
fn the_focus_learns_the_call_sessions_features() {
    let t0 = Instant::now();
    let mut r = Recorder::new(options(2), t0);
    drain(&mut r);
    r.handle_stanza(
        t0,
        xml(&format!(
            "<iq type='get' id='d1' from='{ROOM}/focus' to='{REC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )),
    );
    let out = drain(&mut r);
    let text = rendered(&out);
    assert!(text.contains("type='result'"), "{text}");
    assert!(text.contains("urn:xmpp:jingle:apps:rtp:video"), "{text}");
    assert!(!text.contains("json-encoded-sources"), "{text}");
}
