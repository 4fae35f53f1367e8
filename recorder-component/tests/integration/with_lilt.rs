//! The recorder against lilt itself and lilt's focus: lilt started
//! in-process with a Jitsi-style config (an anonymous main domain, the auth
//! and recorder domains, the conference and internal MUCs, client_proxy at
//! `focus.<domain>`); the focus, a stub bridge, a participant and the
//! recorder (`run_with_links`, two in-process sessions) log in. The
//! participant (made moderator by the focus) starts a file recording
//! through the focus: the focus picks the recorder from the JibriBrewery,
//! the recorder answers pending, joins the room from the recorder domain
//! with Jibri's session id, says on, and the focus publishes it; the stop
//! goes the same way, and the recording's directory is left in Jibri's
//! layout with metadata.json and the finalize script run. In between, the
//! focus invites the recorder as a media participant (its endpoint is
//! allocated on the bridge and expired when it leaves).

use std::time::Duration;

use focus_component::{FocusOptions, run_with_link};
use recorder_component::{RecorderOptions, run_with_links};
use testkit::{JitsiConfig, Peer};
use xmpp_core::client::local;
use xmpp_core::{Element, Jid};

const ROOM: &str = "room1@conference.example.com";
const BREWERY: &str = "jvbbrewery@internal.auth.example.com";
const JIBRI_BREWERY: &str = "jibribrewery@internal.auth.example.com";
const JIBRI_NS: &str = "http://jitsi.org/protocol/jibri";

/// The stub bridge's answer to an allocation.
fn bridge_answer(request: &Element) -> String {
    testkit::colibri::allocation_answer(request, "")
}

fn focus_recording_status(p: &Element) -> Option<(String, String)> {
    let s = p.get_child("jibri-recording-status", JIBRI_NS)?;
    Some((
        s.get_attr("status")?.to_string(),
        s.get_attr("session_id").unwrap_or_default().to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_started_and_stopped_through_lilts_focus() {
    let config = JitsiConfig {
        http: true,
        recorder_domain: true,
        ..JitsiConfig::default()
    };
    let lilt = testkit::jitsi::start(&config, "recorder-test.cfg.lua")
        .await
        .unwrap();
    let (server, running) = (lilt.server, lilt.running);

    // The stub bridge, answering allocations and health checks.
    let mut bridge = testkit::colibri::stand_in_bridge(&server).await;

    // The recorder, on its two accounts.
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("recordings");
    let script = dir.path().join("finalize.sh");
    std::fs::write(&script, "#!/bin/sh\ntouch \"$1/finalized\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let control = local(
        &server,
        &Jid::parse("jibri@auth.example.com/jibri1").unwrap(),
    )
    .unwrap();
    let call = local(
        &server,
        &Jid::parse("recorder@recorder.example.com/rec1").unwrap(),
    )
    .unwrap();
    let mut options = RecorderOptions::new("", JIBRI_BREWERY, "", rec_dir.clone());
    options.brewery_nick = "jibri1".into();
    let recorder = tokio::spawn(run_with_links(control, call, options, Some(script)));

    let focus_link = local(
        &server,
        &Jid::parse("focus@auth.example.com/focus").unwrap(),
    )
    .unwrap();
    let mut focus_options = FocusOptions::new(&focus_link.jid.to_string(), "example.com");
    focus_options.jibri_brewery = Some(JIBRI_BREWERY.into());
    let focus = tokio::spawn(run_with_link(focus_link, focus_options));
    bridge
        .expect("the focus in the brewery", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{BREWERY}/focus"))
        })
        .await;
    let (alloc_tx, mut alloc_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let bridge_task = tokio::spawn(async move {
        loop {
            let req = bridge
                .expect("colibri2", |s| {
                    s.get_child("conference-modify", "jitsi:colibri2").is_some()
                        || s.get_child("healthcheck", "http://jitsi.org/protocol/healthcheck")
                            .is_some()
                })
                .await;
            if req
                .get_child("conference-modify", "jitsi:colibri2")
                .is_some()
            {
                bridge.send(&bridge_answer(&req));
                let _ = alloc_tx.send(req.to_string());
            } else {
                bridge.send(&format!(
                    "<iq type='result' id='{}' to='{}'/>",
                    req.id().unwrap(),
                    req.from().unwrap()
                ));
            }
        }
    });

    // A participant joins (and is made moderator, the first in the room).
    let mut a = Peer::new(local(&server, &Jid::parse("alice@example.com/web").unwrap()).unwrap());
    a.send("<presence/>");
    a.send(&format!(
        "<iq type='set' id='conf' to='focus.example.com'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m1'/></iq>"
    ));
    let answer = a
        .expect("conference IQ answer", |s| s.id() == Some("conf"))
        .await;
    assert_eq!(answer.type_(), Some("result"), "{answer}");
    a.send(&format!(
        "<presence to='{ROOM}/alice1'><x xmlns='http://jabber.org/protocol/muc'/>\
         <nick xmlns='http://jabber.org/protocol/nick'>Alice</nick></presence>"
    ));
    let disco = a
        .expect("disco#info from the focus", |s| {
            s.get_child("query", "http://jabber.org/protocol/disco#info")
                .is_some()
                && s.type_() == Some("get")
        })
        .await;
    a.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'>\
         <feature var='urn:ietf:rfc:4588'/></query></iq>",
        disco.id().unwrap(),
        disco.from().unwrap()
    ));
    let offer = a
        .expect("session-initiate", |s| {
            s.get_child("jingle", "urn:xmpp:jingle:1")
                .and_then(|j| j.get_attr("action"))
                == Some("session-initiate")
        })
        .await;
    a.send(&format!(
        "<iq type='result' id='{}' to='{}'/>",
        offer.id().unwrap(),
        offer.from().unwrap()
    ));
    a.expect("owner granted", |s| {
        s.name() == "presence"
            && s.from() == Some(&format!("{ROOM}/alice1"))
            && s.to_string().contains("affiliation='owner'")
    })
    .await;

    // Start a file recording (the recorder may still be joining the
    // brewery: retry while the focus has no recorder).
    let mut session_id = String::new();
    for attempt in 0..50 {
        a.send(&format!(
            "<iq type='set' id='rec{attempt}' to='{ROOM}/focus'>\
             <jibri xmlns='{JIBRI_NS}' action='start' recording_mode='file' \
             app_data='{{\"file_recording_metadata\":{{\"share\":true}}}}'/></iq>"
        ));
        let id = format!("rec{attempt}");
        let r = a
            .expect("the start answer", |s| s.id() == Some(id.as_str()))
            .await;
        if r.type_() == Some("result") {
            if let Some(j) = r.get_child("jibri", JIBRI_NS) {
                session_id = j.get_attr("session_id").unwrap_or_default().to_string();
            }
            break;
        }
        assert!(
            r.to_string().contains("service-unavailable"),
            "start refused: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The recorder in the room from the recorder domain, with Jibri's
    // session id and mode; the focus's presence says on.
    let rec_presence = a
        .expect("the recorder in the room", |s| {
            s.name() == "presence"
                && s.from()
                    .is_some_and(|f| f.starts_with(&format!("{ROOM}/recorder_")))
                && s.type_().is_none()
        })
        .await;
    let sid_in_room = rec_presence
        .get_child_text("session_id", "jabber:client")
        .unwrap();
    assert_eq!(
        rec_presence
            .get_child_text("mode", "jabber:client")
            .as_deref(),
        Some("file")
    );
    if !session_id.is_empty() {
        assert_eq!(sid_in_room, session_id);
    }
    let on = a
        .expect("the focus says on", |s| {
            s.from() == Some(&format!("{ROOM}/focus"))
                && focus_recording_status(s).is_some_and(|(st, _)| st == "on")
        })
        .await;
    assert_eq!(focus_recording_status(&on).unwrap().1, sid_in_room);

    // Stop.
    a.send(&format!(
        "<iq type='set' id='stop' to='{ROOM}/focus'><jibri xmlns='{JIBRI_NS}' action='stop'/></iq>"
    ));
    let r = a
        .expect("the stop answer", |s| s.id() == Some("stop"))
        .await;
    assert_eq!(r.type_(), Some("result"), "{r}");
    a.expect("the focus says off", |s| {
        s.from() == Some(&format!("{ROOM}/focus"))
            && focus_recording_status(s).is_some_and(|(st, _)| st == "off")
    })
    .await;
    a.expect("the recorder leaves", |s| {
        s.name() == "presence"
            && s.from()
                .is_some_and(|f| f.starts_with(&format!("{ROOM}/recorder_")))
            && s.type_() == Some("unavailable")
    })
    .await;

    // Jibri's layout, metadata.json and the finalize script.
    let session_dir = rec_dir.join(&sid_in_room);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !session_dir.join("finalized").exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        session_dir.join("finalized").exists(),
        "finalize script ran"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(session_dir.join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["meeting_url"], "https://example.com/room1");
    assert_eq!(meta["participants"][0]["id"], "alice1");
    assert_eq!(meta["participants"][0]["name"], "Alice");
    assert_eq!(meta["share"], true);
    let webm = std::fs::read_dir(&session_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.path().extension().is_some_and(|x| x == "webm"));
    assert!(webm, "the recording file is there");

    // The focus invited the recorder as a media participant (as Jicofo
    // invites Jibri, after its disco#info): an endpoint on the bridge for
    // the recorder's nick, expired when it left (the expiry may reach the
    // bridge after the recorder's unavailable presence reached us).
    let nick = rec_presence
        .from()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let expired = format!("<endpoint id='{nick}' expire='true'");
    let mut allocations = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !allocations.iter().any(|a: &String| a.contains(&expired)) {
        match tokio::time::timeout_at(deadline, alloc_rx.recv()).await {
            Ok(Some(a)) => allocations.push(a),
            _ => break,
        }
    }
    assert!(
        allocations
            .iter()
            .any(|a| a.contains(&format!("<endpoint id='{nick}' create='true'"))),
        "{allocations:#?}"
    );
    assert!(
        allocations.iter().any(|a| a.contains(&expired)),
        "{allocations:#?}"
    );

    bridge_task.abort();
    focus.abort();
    recorder.abort();
    drop(running);
}
