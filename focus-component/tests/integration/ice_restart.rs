//! ICE failure in a real call, restarted as Jicofo's RestartJingle: lilt
//! (Jitsi-style config), one bridge and the focus in one process on
//! loopback, str0m participants (`relay_call`'s). A sender and a receiver
//! exchange audio; the sender reports ICE failure (session-info
//! `<ice-state>failed</ice-state>` with its bridge-session id, as
//! lib-jitsi-meet sends it), gets session-terminate and then a fresh
//! session-initiate with a new sid, accepts it, and the receiver gets its
//! audio again. A storm of further reports within Jicofo's min-interval
//! is refused (`resource-constraint`) and the call goes on.
//! Run: `cargo test -p focus-component --test integration ice_restart::`.

use std::sync::atomic::Ordering;

use focus_component::selection::Strategy;
use testkit::JitsiConfig;
use xmpp_core::Element;

use crate::relay_call::participant::Counters;
use crate::relay_call::{FOCUS, brewery_watch, participant, start_bridge, start_focus, wait_for};

const SENDER_SSRC: u32 = 7000;

fn ice_failed(id: &str, c: &Counters) -> Element {
    let (sid, bsid) = c.session.lock().unwrap().clone();
    let xml = format!(
        "<iq xmlns='jabber:client' type='set' id='{id}' to='{FOCUS}'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='{sid}'>\
         <ice-state xmlns='http://jitsi.org/protocol/focus'>failed</ice-state>\
         <bridge-session xmlns='http://jitsi.org/protocol/focus' id='{bsid}'/></jingle></iq>"
    );
    xmpp_core::stream::parse_element(&xml).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_failure_restarts_the_session_and_media_flows_again() {
    let lilt = testkit::jitsi::start(&JitsiConfig::default(), "ice-restart.cfg.lua")
        .await
        .unwrap();
    let server = lilt.server.clone();
    let mut watch = brewery_watch(&server);
    let _bridge = start_bridge(&server, &mut watch, 1).await;
    let focus = start_focus(&server, &mut watch, Strategy::Single).await;

    let (sender, sender_link) =
        participant(server.clone(), "sender", Some(SENDER_SSRC), None).await;
    let (receiver, _) = participant(server.clone(), "receiver", None, Some(SENDER_SSRC)).await;
    let got = || receiver.received.load(Ordering::Relaxed);
    wait_for("audio to the receiver", || got() > 25).await;

    // ICE failed: session-terminate, then a new session the sender accepts.
    let old_sid = sender.session.lock().unwrap().0.clone();
    assert!(sender_link.send(ice_failed("ice-1", &sender)));
    wait_for("the restart", || {
        sender.terminated.load(Ordering::Relaxed) == 1
            && sender.replaced.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(sender.restarts_accepted.load(Ordering::Relaxed), 1);
    assert_ne!(sender.session.lock().unwrap().0, old_sid, "a new sid");
    let before = got();
    wait_for("audio again after the restart", || got() > before + 25).await;

    // A storm: at most one accepted within min-interval (none, unless the
    // first restart took 5 s), the rest refused.
    for n in 0..4 {
        assert!(sender_link.send(ice_failed(&format!("ice-storm-{n}"), &sender)));
    }
    wait_for("the storm answered", || {
        sender.restarts_accepted.load(Ordering::Relaxed)
            + sender.restarts_refused.load(Ordering::Relaxed)
            == 5
    })
    .await;
    assert!(sender.restarts_refused.load(Ordering::Relaxed) >= 3);
    let before = got();
    wait_for("audio still flowing", || got() > before + 25).await;

    for c in [&sender, &receiver] {
        c.stop.store(true, Ordering::Relaxed);
    }
    focus.abort();
    drop(lilt);
}
