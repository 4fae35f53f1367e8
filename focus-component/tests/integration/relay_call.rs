//! A call over two lilt bridges relayed by the focus, all in one process
//! on loopback: lilt (Jitsi-style config), two bridges
//! (`sfu_component::run::run_with_link`, relay ids `relay-jvb1` and
//! `relay-jvb2`) and the focus with the split strategy. A str0m sender
//! lands on one bridge, a receiver on the other and one on the sender's:
//! both receive the sender's audio (one through the relay). Then the far
//! receiver's bridge stops: the receiver is moved to the sender's bridge
//! (a new session, as Jicofo's RestartJingle) and receives again.
//! [`start_bridge`], [`start_focus`] and [`participant`] serve
//! `ice_restart` too.
//! Run: `cargo test -p focus-component --test integration relay_call::`.

#[path = "relay_call/participant.rs"]
pub(crate) mod participant;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use focus_component::selection::Strategy;
use focus_component::{FocusOptions, run_with_link};
use participant::{Counters, answer};
use sfu_component::run::BridgeOptions;
use sfu_component::run::RunningBridge;
use testkit::{JitsiConfig, Peer, jingle_action};
use xmpp_core::client::{LinkSender, local};
use xmpp_core::{Element, Jid};

pub(crate) const ROOM: &str = "relays@conference.example.com";
pub(crate) const BREWERY: &str = "jvbbrewery@internal.auth.example.com";
pub(crate) const FOCUS: &str = "relays@conference.example.com/focus";
const SENDER_SSRC: u32 = 5000;

/// `jid`'s in-process session, available.
pub(crate) fn peer(server: &Arc<xmpp_core::Server>, jid: &str) -> Peer {
    let mut p = Peer::local(server, jid);
    p.timeout = Duration::from_secs(20);
    p.send("<presence/>");
    p
}

/// Conference IQ, room join, disco answer; returns the session-initiate.
async fn join(p: &mut Peer, nick: &str) -> Element {
    p.send(&format!(
        "<iq type='set' id='conf-{nick}' to='focus.example.com'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m-{nick}'/></iq>"
    ));
    p.expect("the conference IQ answer", |s| {
        s.id() == Some(&format!("conf-{nick}"))
    })
    .await;
    p.send(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let disco = p
        .expect("disco#info from the focus", |s| {
            s.get_child("query", "http://jabber.org/protocol/disco#info")
                .is_some()
                && s.type_() == Some("get")
        })
        .await;
    p.send(&format!(
        "<iq type='result' id='{}' to='{FOCUS}'><query xmlns='http://jabber.org/protocol/disco#info'>\
         <feature var='urn:xmpp:jingle:1'/><feature var='urn:xmpp:jingle:apps:rtp:audio'/></query></iq>",
        disco.id().unwrap()
    ));
    p.expect("session-initiate", |s| {
        jingle_action(s) == Some("session-initiate")
    })
    .await
}

/// A participant in the room: answers its offer, then runs its media and
/// answers the focus (a session-initiate gets a new session); returns
/// what it counts and a sender on its link.
pub(crate) async fn participant(
    server: Arc<xmpp_core::Server>,
    nick: &'static str,
    send: Option<u32>,
    expect: Option<u32>,
) -> (Arc<Counters>, LinkSender) {
    let mut p = peer(&server, &format!("{nick}@example.com/web"));
    let offer = join(&mut p, nick).await;
    p.send(&format!(
        "<iq type='result' id='{}' to='{FOCUS}'/>",
        offer.id().unwrap()
    ));
    let (mut media, reply, port) = answer(&offer, nick, send, expect).await;
    let counters = Arc::new(Counters::default());
    counters.bridge_port.store(port.into(), Ordering::Relaxed);
    counters.session_from(&offer);
    let link = p.tx.clone();
    let mut iq = Element::new("iq", "jabber:client")
        .attr("type", "set")
        .attr("id", format!("acc-{nick}"))
        .attr("to", FOCUS);
    iq.push_child(reply);
    assert!(p.tx.send(iq));
    let c = counters.clone();
    tokio::spawn(async move {
        let mut next_send = Instant::now();
        let mut n = 0;
        while !c.stop.load(Ordering::Relaxed) {
            let deadline = Instant::now() + Duration::from_millis(200);
            tokio::select! {
                s = p.link.recv() => {
                    let Some(s) = s else { break };
                    if s.name() == "iq" && s.id().is_some_and(|id| id.starts_with("ice-")) {
                        let refused = s
                            .get_child("error", "jabber:client")
                            .and_then(|e| e.get_child("resource-constraint", "urn:ietf:params:xml:ns:xmpp-stanzas"))
                            .is_some();
                        let n = if refused { &c.restarts_refused } else { &c.restarts_accepted };
                        n.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if s.name() != "iq" || !matches!(s.type_(), Some("set") | Some("get")) {
                        continue;
                    }
                    p.send(&format!(
                        "<iq type='result' id='{}' to='{}'/>",
                        s.id().unwrap_or(""),
                        s.from().unwrap_or("")
                    ));
                    // Restarted (moved to another bridge, ICE failed): a
                    // new session after session-terminate, as Jicofo's
                    // RestartJingle.
                    match jingle_action(&s) {
                        Some("session-terminate") => {
                            c.terminated.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Some("session-initiate") => {}
                        _ => continue,
                    }
                    let (mut m, reply, port) = answer(&s, nick, send, expect).await;
                    m.continue_from(&media);
                    media = m;
                    c.session_from(&s);
                    n += 1;
                    c.received.store(0, Ordering::Relaxed);
                    c.bridge_port.store(port.into(), Ordering::Relaxed);
                    c.replaced.fetch_add(1, Ordering::Relaxed);
                    let mut iq = Element::new("iq", "jabber:client")
                        .attr("type", "set")
                        .attr("id", format!("re-{nick}-{n}"))
                        .attr("to", FOCUS);
                    iq.push_child(reply);
                    p.tx.send(iq);
                }
                _ = media.turn(deadline, &mut next_send, &c) => {}
            }
        }
    });
    (counters, link)
}

pub(crate) async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bridge `jvb<n>` in the brewery (seen there by `watch`), on loopback,
/// with relay id `relay-jvb<n>` and its own HTTP listener (colibri-ws and
/// the relay bridge channel one bridge opens to the other).
pub(crate) async fn start_bridge(
    server: &Arc<xmpp_core::Server>,
    watch: &mut Peer,
    n: u32,
) -> RunningBridge {
    let link = local(
        server,
        &Jid::parse(&format!("jvb@auth.example.com/jvb{n}")).unwrap(),
    )
    .unwrap();
    let mut options = BridgeOptions::new(&format!("jvb{n}"));
    options.brewery = Some(BREWERY.to_string());
    options.udp_bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    options.addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    options.relay_id = Some(format!("relay-jvb{n}"));
    options.http = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    let bridge = sfu_component::run::run_with_link(link, options)
        .await
        .unwrap();
    watch
        .expect("the bridge in the brewery", |s| {
            s.name() == "presence"
                && s.from() == Some(&format!("{BREWERY}/jvb{n}"))
                && s.get_child("stats", "http://jitsi.org/protocol/colibri")
                    .is_some()
        })
        .await;
    bridge
}

/// The focus with `strategy`, once `watch` sees it in the brewery.
pub(crate) async fn start_focus(
    server: &Arc<xmpp_core::Server>,
    watch: &mut Peer,
    strategy: Strategy,
) -> tokio::task::JoinHandle<()> {
    let focus_link = local(server, &Jid::parse("focus@auth.example.com/focus").unwrap()).unwrap();
    let mut options = FocusOptions::new(&focus_link.jid.to_string(), "example.com");
    options.selection.strategy = strategy;
    let focus = tokio::spawn(run_with_link(focus_link, options));
    watch
        .expect("the focus in the brewery", |s| {
            s.from() == Some(&format!("{BREWERY}/focus"))
        })
        .await;
    focus
}

/// Someone in the brewery, to see bridges and the focus arrive.
pub(crate) fn brewery_watch(server: &Arc<xmpp_core::Server>) -> Peer {
    let watch = peer(server, "watch@auth.example.com/w");
    watch.send(&format!(
        "<presence to='{BREWERY}/watch'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    watch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_over_two_relayed_bridges_survives_losing_one() {
    let lilt = testkit::jitsi::start(&JitsiConfig::default(), "relay-test.cfg.lua")
        .await
        .unwrap();
    let server = lilt.server.clone();

    let mut watch = brewery_watch(&server);
    let mut bridges = Vec::new();
    for n in [1, 2] {
        bridges.push(start_bridge(&server, &mut watch, n).await);
    }
    let (port1, port2) = (bridges[0].udp_address.port(), bridges[1].udp_address.port());
    let focus = start_focus(&server, &mut watch, Strategy::Split).await;

    let (sender, _) = participant(server.clone(), "sender", Some(SENDER_SSRC), None).await;
    let (far, _) = participant(server.clone(), "far", None, Some(SENDER_SSRC)).await;
    let (near, _) = participant(server.clone(), "near", None, Some(SENDER_SSRC)).await;
    let port = |c: &Counters| c.bridge_port.load(Ordering::Relaxed) as u16;
    // Split: the sender on one bridge (the least loaded), the next
    // participant on the other, the third with the fewest participants.
    let home = port(&sender);
    assert!(home == port1 || home == port2);
    let other = if home == port1 { port2 } else { port1 };
    assert_eq!(port(&far), other, "split: a receiver on the other bridge");
    assert_eq!(port(&near), home, "split: the fewest participants");

    let got = |c: &Counters| c.received.load(Ordering::Relaxed);
    wait_for("media on both bridges", || {
        got(&far) > 50 && got(&near) > 50
    })
    .await;

    // The far receiver's bridge stops: it is moved to the sender's bridge
    // and receives again.
    let far_bridge = if other == port1 { 0 } else { 1 };
    assert!(bridges[far_bridge].handle.stop());
    wait_for("the far receiver moved", || {
        far.replaced.load(Ordering::Relaxed) > 0 && port(&far) == home
    })
    .await;
    wait_for("media again after the move", || got(&far) > 50).await;
    assert!(got(&near) > 50);

    for c in [&sender, &far, &near] {
        c.stop.store(true, Ordering::Relaxed);
    }
    focus.abort();
    drop(lilt);
}
