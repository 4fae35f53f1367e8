//! The focus against lilt itself: lilt started in-process with a Jitsi
//! style config (anonymous main domain, auth domain, conference and
//! brewery MUCs, `client_proxy` at `focus.<domain>`); the focus, a stub
//! Colibri2 bridge and participants log in with in-process sessions. A
//! participant's conference IQ goes through client_proxy, the focus joins
//! the room, allocates on the bridge and offers Jingle through the MUC's
//! occupant JIDs; session-accept reaches the bridge, a second participant
//! gets the first one's sources.

use std::time::Duration;

use focus_component::{FocusOptions, run_with_link};
use testkit::{JitsiConfig, Peer, jingle_action};
use xmpp_core::client::local;
use xmpp_core::{Clock, Element, Jid};

const ROOM: &str = "room1@conference.example.com";
const BREWERY: &str = "jvbbrewery@internal.auth.example.com";

/// The stand-in bridge's answer, with its feedback source.
fn bridge_answer(request: &Element) -> String {
    testkit::colibri::allocation_answer(
        request,
        "<sources><media-source type='audio' id='jvb-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='9' name='jvb-a0'/></media-source></sources>",
    )
}

async fn participant(server: &std::sync::Arc<xmpp_core::Server>, user: &str) -> Peer {
    let p = Peer::new(
        local(
            server,
            &Jid::parse(&format!("{user}@example.com/web")).unwrap(),
        )
        .unwrap(),
    );
    p.send("<presence/>");
    p
}

/// Conference IQ, join, disco answer, offer; returns the session id.
async fn join(p: &mut Peer, nick: &str, json: bool) -> (String, Element) {
    p.send(&format!(
        "<iq type='set' id='conf-{nick}' to='focus.example.com'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m-{nick}'/></iq>"
    ));
    let answer = p
        .expect("the conference IQ answer", |s| {
            s.id() == Some(&format!("conf-{nick}"))
        })
        .await;
    assert_eq!(answer.type_(), Some("result"), "{answer}");
    let c = answer
        .get_child("conference", "http://jitsi.org/protocol/focus")
        .unwrap();
    assert_eq!(c.get_attr("ready"), Some("true"));
    assert_eq!(c.get_attr("focusjid"), Some("focus@auth.example.com"));
    p.send(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ));
    let features = if json {
        "<feature var='http://jitsi.org/json-encoded-sources'/><feature var='urn:ietf:rfc:4588'/>"
    } else {
        "<feature var='urn:ietf:rfc:4588'/>"
    };
    let disco = p
        .expect("disco#info from the focus", |s| {
            s.get_child("query", "http://jabber.org/protocol/disco#info")
                .is_some()
                && s.type_() == Some("get")
        })
        .await;
    assert_eq!(disco.from(), Some(format!("{ROOM}/focus").as_str()));
    p.send(&format!(
        "<iq type='result' id='{}' to='{}'><query xmlns='http://jabber.org/protocol/disco#info'>{features}</query></iq>",
        disco.id().unwrap(),
        disco.from().unwrap()
    ));
    let offer = p
        .expect("session-initiate", |s| {
            jingle_action(s) == Some("session-initiate")
        })
        .await;
    assert_eq!(
        offer.from(),
        Some(format!("{ROOM}/focus").as_str()),
        "Jingle comes from the focus's occupant JID"
    );
    p.send(&format!(
        "<iq type='result' id='{}' to='{}'/>",
        offer.id().unwrap(),
        offer.from().unwrap()
    ));
    let sid = offer
        .get_child("jingle", "urn:xmpp:jingle:1")
        .unwrap()
        .get_attr("sid")
        .unwrap()
        .to_string();
    (sid, offer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_through_lilt() {
    let lilt = testkit::jitsi::start(&JitsiConfig::default(), "focus-test.cfg.lua")
        .await
        .unwrap();
    let server = lilt.server.clone();

    // The stub bridge: in the brewery with stats, answers Colibri2.
    let mut bridge = testkit::colibri::stand_in_bridge(&server).await;

    let focus_link = local(
        &server,
        &Jid::parse("focus@auth.example.com/focus").unwrap(),
    )
    .unwrap();
    let options = FocusOptions::new(&focus_link.jid.to_string(), "example.com");
    assert_eq!(options.brewery, BREWERY);
    let focus = tokio::spawn(run_with_link(focus_link, options));
    bridge
        .expect("the focus in the brewery", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{BREWERY}/focus"))
        })
        .await;

    let mut a = participant(&server, "alice").await;
    // The bridge answers allocations as they come.
    let bridge_task = tokio::spawn(async move {
        let mut requests = Vec::new();
        loop {
            let req = bridge
                .expect("colibri2", |s| {
                    s.get_child("conference-modify", "jitsi:colibri2").is_some()
                        || s.get_child("healthcheck", "http://jitsi.org/protocol/healthcheck")
                            .is_some()
                })
                .await;
            if req
                .get_child("healthcheck", "http://jitsi.org/protocol/healthcheck")
                .is_some()
            {
                bridge.send(&format!(
                    "<iq type='result' id='{}' to='{}'/>",
                    req.id().unwrap(),
                    req.from().unwrap()
                ));
                continue;
            }
            bridge.send(&bridge_answer(&req));
            requests.push(req.to_string());
            if requests.iter().any(|r| r.contains("ssrc='22'")) {
                return requests;
            }
        }
    });

    let (sid_a, offer_a) = join(&mut a, "alice1", true).await;
    let content = offer_a
        .get_child("jingle", "urn:xmpp:jingle:1")
        .unwrap()
        .get_child("content", "urn:xmpp:jingle:1")
        .unwrap();
    assert!(
        content
            .get_child("transport", "urn:xmpp:jingle:transports:ice-udp:1")
            .is_some()
    );
    a.send(&format!(
        "<iq type='set' id='acc-a' to='{ROOM}/focus'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{sid_a}'>\
         <content creator='initiator' name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='11'><parameter name='msid' value='a a'/></source></description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='au' pwd='ap'/></content></jingle></iq>"
    ));
    let acc = a
        .expect("session-accept answered", |s| s.id() == Some("acc-a"))
        .await;
    assert_eq!(acc.type_(), Some("result"), "{acc}");

    let mut b = participant(&server, "bob").await;
    let (sid_b, offer_b) = join(&mut b, "bob1", false).await;
    assert!(
        offer_b.to_string().contains("ssrc='11'"),
        "B's offer has A's source: {offer_b}"
    );
    assert!(
        offer_b
            .to_string()
            .contains(&format!("owner='{ROOM}/alice1'"))
    );
    b.send(&format!(
        "<iq type='set' id='acc-b' to='{ROOM}/focus'><jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{sid_b}'>\
         <content creator='initiator' name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
         <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='22'><parameter name='msid' value='b b'/></source></description>\
         <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bu' pwd='bp'/></content></jingle></iq>"
    ));
    assert_eq!(
        b.expect("accepted", |s| s.id() == Some("acc-b"))
            .await
            .type_(),
        Some("result")
    );
    let add = a
        .expect("source-add with B's source", |s| {
            jingle_action(s) == Some("source-add")
        })
        .await;
    assert!(add.to_string().contains("22"), "{add}");
    assert_eq!(add.from(), Some(format!("{ROOM}/focus").as_str()));

    let requests = tokio::time::timeout(Duration::from_secs(10), bridge_task)
        .await
        .unwrap()
        .unwrap();
    assert!(requests[0].contains("create='true'"), "{}", requests[0]);
    assert!(
        requests.iter().any(|r| r.contains("ufrag='au'")),
        "A's transport reached the bridge"
    );

    focus.abort();
    drop(lilt);
}

/// `lilt focus` as a standalone client: over c2s (STARTTLS, SASL) with a
/// password file, serving /about/health over HTTP on loopback; a
/// participant's conference IQ (sent to the focus's JID: no client_proxy
/// needed) is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lilt_focus_over_c2s_with_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["auth.example.com".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(certs.join("auth.example.com.crt"), cert.pem()).unwrap();
    std::fs::write(certs.join("auth.example.com.key"), key.serialize_pem()).unwrap();
    let text = format!(
        "certificates = {:?}\n{}",
        certs.to_str().unwrap(),
        JitsiConfig::default().to_lua()
    );
    let config = lua_compat::config::load_str(&text, &dir.path().join("lilt.cfg.lua")).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("auth.example.com").unwrap()).unwrap();
    provider.create_user("focus", Some("s3cret")).unwrap();
    let running = lilt::startup::start(server.clone()).await.unwrap();
    let addr = running
        .listening
        .iter()
        .find(|l| l.kind == "c2s")
        .map(|l| l.addr)
        .unwrap();

    let password_file = dir.path().join("focus.pass");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let args = <focus_component::FocusArgs as clap::Parser>::try_parse_from([
        "focus",
        "--xmpp",
        &addr.to_string(),
        "--jid",
        "focus@auth.example.com",
        "--password-file",
        password_file.to_str().unwrap(),
        "--domain",
        "example.com",
        "--muc",
        "conference.example.com",
        "--brewery",
        BREWERY,
        "--insecure-tls",
        "--http",
        &http.to_string(),
    ])
    .unwrap();
    let focus = tokio::spawn(focus_component::run(args));

    // The focus joins the brewery: a watcher there sees it.
    let mut watcher =
        Peer::new(local(&server, &Jid::parse("jvb@auth.example.com/w").unwrap()).unwrap());
    watcher.send("<presence/>");
    watcher.send(&format!(
        "<presence to='{BREWERY}/jvb1'><x xmlns='http://jabber.org/protocol/muc'/>\
         <stats xmlns='http://jitsi.org/protocol/colibri'><stat name='stress_level' value='0.1'/></stats></presence>"
    ));
    let seen = watcher
        .expect("the focus in the brewery", |s| {
            s.name() == "presence" && s.from() == Some(&format!("{BREWERY}/focus"))
        })
        .await;
    let focus_jid = seen
        .get_child("x", "http://jabber.org/protocol/muc#user")
        .and_then(|x| x.get_child("item", "http://jabber.org/protocol/muc#user"))
        .and_then(|i| i.get_attr("jid"))
        .expect("real JIDs visible in the brewery")
        .to_string();
    assert!(
        focus_jid.starts_with("focus@auth.example.com/"),
        "{focus_jid}"
    );

    let mut p = Peer::new(local(&server, &Jid::parse("carol@example.com/web").unwrap()).unwrap());
    p.send("<presence/>");
    p.send(&format!(
        "<iq type='set' id='c1' to='{focus_jid}'><conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m'/></iq>"
    ));
    let answer = p
        .expect("conference IQ answer", |s| s.id() == Some("c1"))
        .await;
    assert_eq!(answer.type_(), Some("result"), "{answer}");

    // /about/health: a bridge is in the brewery, so healthy.
    let mut status = String::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
        s.write_all(b"GET /about/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        status = body.lines().next().unwrap_or("").to_string();
        if status.contains("200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "HTTP/1.1 200 OK");

    focus.abort();
    drop(running);
}
