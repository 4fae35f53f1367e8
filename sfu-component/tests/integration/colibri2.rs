//! The sans-IO bridge driven with Colibri2 as Jicofo writes it (requests
//! written by hand from Jicofo's Colibri2Session / ParticipantInviteRunnable
//! and the protocol notes) and with bridge-channel messages of both client
//! generations; the real media core answers the transports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_component::brewery::{BreweryConfig, DEFAULT_REFRESH};
use sfu_component::bridge::{Bridge, BridgeConfig, Output};
use sfu_component::colibri2::{NS_COLIBRI2, error_condition};
use sfu_component::media::MediaConfig;
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
const DTLS: &str = "urn:xmpp:jingle:apps:dtls:0";
const COLIBRI: &str = "http://jitsi.org/protocol/colibri";

fn bridge() -> Bridge {
    let media = MediaConfig {
        candidate_addresses: vec!["127.0.0.1:10000".parse::<SocketAddr>().unwrap()],
        endpoint_timeout: Duration::from_secs(60),
    };
    let mut config = BridgeConfig::new("jvb1", "wss://meet.example.com/colibri-ws/", media);
    config.brewery = Some(BreweryConfig {
        room: "jvbbrewery@internal.auth.meet.example.com".into(),
        nick: "jvb1".into(),
        refresh: DEFAULT_REFRESH,
    });
    Bridge::new(config)
}

fn drain(b: &mut Bridge) -> Vec<Output> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

fn stanzas(outs: &[Output]) -> Vec<&Element> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Stanza(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn channel_messages(outs: &[Output], to: &str) -> Vec<Value> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Channel {
                endpoint, message, ..
            } if endpoint == to => Some(serde_json::from_str(message).unwrap()),
            _ => None,
        })
        .collect()
}

/// One IQ in, its answer out.
fn ask(b: &mut Bridge, xml: &str) -> Element {
    b.handle_stanza(Instant::now(), parse_element(xml).unwrap());
    let outs = drain(b);
    let iq = stanzas(&outs)
        .into_iter()
        .find(|s| s.name() == "iq")
        .cloned();
    iq.expect("an IQ answer")
}

const AUDIO_MEDIA: &str = "<media type='audio'>\
    <payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'>\
      <parameter name='minptime' value='10'/><parameter name='useinbandfec' value='1'/>\
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>\
    </payload-type>\
    <payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='126' name='telephone-event' clockrate='8000'/>\
    <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
    <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
  </media>";

const VIDEO_MEDIA: &str = "<media type='video'>\
    <payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='100' name='VP8' clockrate='90000'>\
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
      <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>\
    </payload-type>\
    <payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='96' name='rtx' clockrate='90000'>\
      <parameter name='apt' value='100'/>\
    </payload-type>\
    <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='3' uri='http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time'/>\
    <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
  </media>";

/// Jicofo's first allocation: create the conference and one endpoint.
fn create_request(id: &str, meeting: &str, endpoint: &str, create_conf: bool) -> String {
    let create = if create_conf { " create='true'" } else { "" };
    format!(
        "<iq xmlns='jabber:client' type='set' id='{id}' from='jvbbrewery@internal.auth.meet.example.com/focus' to='jvb@auth.meet.example.com/x'>\
          <conference-modify xmlns='jitsi:colibri2' meeting-id='{meeting}' name='room@conference.meet.example.com'{create}>\
            <endpoint id='{endpoint}' create='true' stats-id='Wily-{endpoint}' muc-role='participant'>\
              {AUDIO_MEDIA}{VIDEO_MEDIA}\
              <transport ice-controlling='true'/>\
              <capability name='source-names'/>\
            </endpoint>\
          </conference-modify></iq>"
    )
}

/// The focus forwards the participant's session-accept: transport and
/// sources.
fn update_request(id: &str, meeting: &str, endpoint: &str, ssrcs: (u32, u32, u32)) -> String {
    let (a, v, rtx) = ssrcs;
    format!(
        "<iq xmlns='jabber:client' type='set' id='{id}' from='jvbbrewery@internal.auth.meet.example.com/focus'>\
          <conference-modify xmlns='jitsi:colibri2' meeting-id='{meeting}'>\
            <endpoint id='{endpoint}'>\
              <transport>\
                <transport xmlns='{ICE_UDP}' ufrag='cl1' pwd='clientpassword0123456789'>\
                  <rtcp-mux/>\
                  <fingerprint xmlns='{DTLS}' hash='sha-256' setup='active'>AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99</fingerprint>\
                  <candidate component='1' foundation='1' generation='0' id='c1' network='1' priority='2130706431' protocol='udp' ip='127.0.0.1' port='40000' type='host'/>\
                </transport>\
              </transport>\
              <sources>\
                <media-source type='audio' id='{endpoint}-a0'>\
                  <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{a}' name='{endpoint}-a0'><parameter name='msid' value='s{endpoint} a{endpoint}'/></source>\
                </media-source>\
                <media-source type='video' id='{endpoint}-v0'>\
                  <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{v}' name='{endpoint}-v0' videoType='camera'/>\
                  <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{rtx}' name='{endpoint}-v0'/>\
                  <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
                    <source ssrc='{v}'/><source ssrc='{rtx}'/>\
                  </ssrc-group>\
                </media-source>\
              </sources>\
            </endpoint>\
          </conference-modify></iq>"
    )
}

fn expire_request(id: &str, meeting: &str, endpoint: &str) -> String {
    format!(
        "<iq xmlns='jabber:client' type='set' id='{id}'>\
          <conference-modify xmlns='jitsi:colibri2' meeting-id='{meeting}'>\
            <endpoint id='{endpoint}' expire='true'/>\
          </conference-modify></iq>"
    )
}

fn endpoint_transport(answer: &Element, endpoint: &str) -> Element {
    let modified = answer
        .get_child("conference-modified", NS_COLIBRI2)
        .expect("conference-modified");
    let ep = modified
        .children()
        .find(|c| c.name() == "endpoint" && c.get_attr("id") == Some(endpoint))
        .expect("the endpoint in the answer");
    ep.get_child("transport", NS_COLIBRI2)
        .and_then(|t| t.get_child("transport", ICE_UDP))
        .cloned()
        .expect("an ICE-UDP transport")
}

fn ws_pwd(transport: &Element) -> (String, String) {
    let url = transport
        .get_child("web-socket", COLIBRI)
        .and_then(|w| w.get_attr("url"))
        .unwrap()
        .to_string();
    let pwd = url.split("?pwd=").nth(1).unwrap().to_string();
    (url, pwd)
}

#[test]
fn create_conference_answer_has_transport_and_feedback_sources() {
    let mut b = bridge();
    let answer = ask(&mut b, &create_request("c1", "meet-1", "ep1aaaaa", true));
    assert_eq!(answer.type_(), Some("result"), "{answer}");
    assert_eq!(answer.id(), Some("c1"));
    assert_eq!(
        answer.to(),
        Some("jvbbrewery@internal.auth.meet.example.com/focus")
    );
    let t = endpoint_transport(&answer, "ep1aaaaa");
    let ufrag = t.get_attr("ufrag").unwrap();
    let pwd = t.get_attr("pwd").unwrap();
    assert!(
        !ufrag.is_empty() && pwd.len() >= 22,
        "ICE pwd of 22+ chars: {t}"
    );
    assert!(t.get_child("rtcp-mux", ICE_UDP).is_some());
    let fp = t.get_child("fingerprint", DTLS).expect("fingerprint");
    assert_eq!(fp.get_attr("hash"), Some("sha-256"));
    assert_eq!(fp.get_attr("setup"), Some("actpass"));
    assert_eq!(fp.text_content().split(':').count(), 32, "{fp}");
    let cand = t
        .children()
        .find(|c| c.name() == "candidate")
        .expect("a candidate");
    assert_eq!(cand.get_attr("ip"), Some("127.0.0.1"));
    assert_eq!(cand.get_attr("port"), Some("10000"));
    assert_eq!(cand.get_attr("type"), Some("host"));
    let conf_id = b.conference_id("meet-1").unwrap().to_string();
    let (url, url_pwd) = ws_pwd(&t);
    assert_eq!(
        url,
        format!("wss://meet.example.com/colibri-ws/jvb1/{conf_id}/ep1aaaaa?pwd={pwd}")
    );
    assert_eq!(url_pwd, pwd);
    // Feedback sources: jvb-a0 / jvb-v0 with SSRCs and msid.
    let sources = answer
        .get_child("conference-modified", NS_COLIBRI2)
        .and_then(|m| m.get_child("sources", NS_COLIBRI2))
        .expect("feedback sources");
    let ids: Vec<_> = sources
        .children()
        .map(|m| (m.get_attr("type").unwrap(), m.get_attr("id").unwrap()))
        .collect();
    assert_eq!(ids, vec![("audio", "jvb-a0"), ("video", "jvb-v0")]);
    for ms in sources.children() {
        let s = ms.children().find(|c| c.name() == "source").unwrap();
        assert!(s.get_attr("ssrc").unwrap().parse::<u32>().unwrap() > 0);
    }
    // The stats count it.
    let stats = b.stats();
    assert_eq!((stats.conferences, stats.participants), (1, 1));
}

#[test]
fn errors_as_videobridge_gives_them() {
    let mut b = bridge();
    // Unknown conference without create.
    let r = ask(&mut b, &update_request("u1", "nope", "ep1aaaaa", (1, 2, 3)));
    assert_eq!(r.type_(), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    let reason = r
        .children()
        .find(|c| c.name() == "error")
        .and_then(|e| e.get_child("error", NS_COLIBRI2))
        .and_then(|e| e.get_attr("reason"));
    assert_eq!(reason, Some("conference_not_found"));
    // Create twice: the conference exists.
    assert_eq!(
        ask(&mut b, &create_request("c1", "m", "ep1aaaaa", true)).type_(),
        Some("result")
    );
    let r = ask(&mut b, &create_request("c2", "m", "ep2bbbbb", true));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    // The endpoint exists.
    let r = ask(&mut b, &create_request("c3", "m", "ep1aaaaa", false));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    // Unknown endpoint without create: bad-request as Videobridge.
    let r = ask(&mut b, &update_request("u2", "m", "ghost000", (1, 2, 3)));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    // Sources: ep1 takes 11/12/13; ep2 may not reuse 12; nor an SSRC twice.
    assert_eq!(
        ask(&mut b, &update_request("u3", "m", "ep1aaaaa", (11, 12, 13))).type_(),
        Some("result")
    );
    assert_eq!(
        ask(&mut b, &create_request("c4", "m", "ep2bbbbb", false)).type_(),
        Some("result")
    );
    let r = ask(&mut b, &update_request("u4", "m", "ep2bbbbb", (21, 12, 23)));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r}");
    let r = ask(&mut b, &update_request("u5", "m", "ep2bbbbb", (21, 21, 23)));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r}");
    assert_eq!(
        ask(&mut b, &update_request("u6", "m", "ep2bbbbb", (21, 22, 23))).type_(),
        Some("result")
    );
    // Endpoint create without transport.
    let r = ask(
        &mut b,
        "<iq xmlns='jabber:client' type='set' id='x'><conference-modify xmlns='jitsi:colibri2' meeting-id='m'>\
           <endpoint id='ep3ccccc' create='true'/></conference-modify></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    // Not Colibri2 at all.
    let r = ask(
        &mut b,
        "<iq xmlns='jabber:client' type='get' id='v'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn conference_expires_with_its_last_endpoint() {
    let mut b = bridge();
    ask(&mut b, &create_request("c1", "m", "ep1aaaaa", true));
    ask(&mut b, &create_request("c2", "m", "ep2bbbbb", false));
    let r = ask(&mut b, &expire_request("e1", "m", "ep1aaaaa"));
    let ep = r
        .get_child("conference-modified", NS_COLIBRI2)
        .and_then(|m| m.children().find(|c| c.name() == "endpoint"))
        .unwrap();
    assert_eq!(ep.get_attr("expire"), Some("true"));
    assert!(b.conference_id("m").is_some());
    ask(&mut b, &expire_request("e2", "m", "ep2bbbbb"));
    assert!(
        b.conference_id("m").is_none(),
        "expired with the last endpoint"
    );
    let r = ask(&mut b, &update_request("u", "m", "ep2bbbbb", (1, 2, 3)));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    assert_eq!(b.stats().total_conferences_completed, 1);
}

#[test]
fn empty_conference_expires_after_a_while() {
    let mut b = bridge();
    let now = Instant::now();
    b.handle_stanza(
        now,
        parse_element(
            "<iq xmlns='jabber:client' type='set' id='c'><conference-modify xmlns='jitsi:colibri2' meeting-id='m' create='true'/></iq>",
        )
        .unwrap(),
    );
    drain(&mut b);
    assert!(b.conference_id("m").is_some());
    let deadline = b.next_timeout().unwrap();
    assert!(deadline <= now + Duration::from_secs(61));
    b.handle_timeout(now + Duration::from_secs(61));
    drain(&mut b);
    assert!(b.conference_id("m").is_none());
}

#[test]
fn brewery_presence_health_and_graceful_shutdown() {
    let mut b = bridge();
    let now = Instant::now();
    b.start(now);
    let outs = drain(&mut b);
    let join = stanzas(&outs)[0].clone();
    assert_eq!(
        join.to(),
        Some("jvbbrewery@internal.auth.meet.example.com/jvb1")
    );
    let stats = join.get_child("stats", COLIBRI).expect("stats");
    let names: Vec<&str> = stats
        .children()
        .filter_map(|c| c.get_attr("name"))
        .collect();
    for n in [
        "stress_level",
        "conferences",
        "participants",
        "endpoints_sending_video",
        "endpoints_sending_audio",
        "bit_rate_download",
        "bit_rate_upload",
        "packet_rate_download",
        "packet_rate_upload",
        "version",
        "release",
        "graceful_shutdown",
        "drain",
        "healthy",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // Refreshed every few seconds.
    b.handle_timeout(now + DEFAULT_REFRESH);
    assert_eq!(stanzas(&drain(&mut b)).len(), 1);
    // Drain: the stats say so at once.
    b.set_drain(now, true);
    let outs = drain(&mut b);
    let d = stanzas(&outs)[0]
        .get_child("stats", COLIBRI)
        .unwrap()
        .children()
        .find(|c| c.get_attr("name") == Some("drain"))
        .and_then(|c| c.get_attr("value"))
        .map(str::to_string);
    assert_eq!(d.as_deref(), Some("true"));
    // Health check.
    let r = ask(
        &mut b,
        "<iq xmlns='jabber:client' type='get' id='h' from='focus@auth.d/f'><healthcheck xmlns='http://jitsi.org/protocol/healthcheck'/></iq>",
    );
    assert_eq!(r.type_(), Some("result"));
    // Graceful shutdown with a conference: stats say so, new conferences refused.
    ask(&mut b, &create_request("c1", "m", "ep1aaaaa", true));
    b.graceful_shutdown(now);
    let outs = drain(&mut b);
    let p = stanzas(&outs)[0];
    let gs = p
        .get_child("stats", COLIBRI)
        .unwrap()
        .children()
        .find(|c| c.get_attr("name") == Some("graceful_shutdown"))
        .and_then(|c| c.get_attr("value"));
    assert_eq!(gs, Some("true"));
    let r = ask(&mut b, &create_request("c2", "m2", "ep9", true));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
    // The last conference ends: leave the brewery, finished.
    b.handle_stanza(
        now,
        parse_element(&expire_request("e", "m", "ep1aaaaa")).unwrap(),
    );
    let outs = drain(&mut b);
    assert!(
        stanzas(&outs)
            .iter()
            .any(|s| s.name() == "presence" && s.type_() == Some("unavailable"))
    );
    assert!(outs.iter().any(|o| matches!(o, Output::Finished)));
    assert!(b.is_finished());
}

#[test]
fn bridge_channel_both_generations() {
    let mut b = bridge();
    let now = Instant::now();
    let a1 = ask(&mut b, &create_request("c1", "m", "ep1aaaaa", true));
    let a2 = ask(&mut b, &create_request("c2", "m", "ep2bbbbb", false));
    ask(&mut b, &update_request("u1", "m", "ep1aaaaa", (11, 12, 13)));
    ask(&mut b, &update_request("u2", "m", "ep2bbbbb", (21, 22, 23)));
    let conf = b.conference_id("m").unwrap().to_string();
    let (_, pwd1) = ws_pwd(&endpoint_transport(&a1, "ep1aaaaa"));
    let (_, pwd2) = ws_pwd(&endpoint_transport(&a2, "ep2bbbbb"));
    // Wrong password and unknown endpoint are refused.
    assert!(
        b.handle_channel_open(now, &conf, "ep1aaaaa", "wrong")
            .is_err()
    );
    assert!(b.handle_channel_open(now, &conf, "nobody", &pwd1).is_err());
    b.handle_channel_open(now, &conf, "ep1aaaaa", &pwd1)
        .unwrap();
    let outs = drain(&mut b);
    let m1 = channel_messages(&outs, "ep1aaaaa");
    assert_eq!(m1[0]["colibriClass"], "ServerHello");
    assert!(m1.iter().any(|m| m["colibriClass"] == "ForwardedSources"
        && m["forwardedSources"] == serde_json::json!(["ep2bbbbb-v0"])));
    assert!(
        m1.iter()
            .any(|m| m["colibriClass"] == "LastNEndpointsChangeEvent"
                && m["lastNEndpoints"] == serde_json::json!(["ep2bbbbb"]))
    );
    assert!(m1.iter().any(
        |m| m["colibriClass"] == "SenderSourceConstraints" && m["sourceName"] == "ep1aaaaa-v0"
    ));
    assert!(
        m1.iter()
            .any(|m| m["colibriClass"] == "SenderVideoConstraints")
    );
    b.handle_channel_open(now, &conf, "ep2bbbbb", &pwd2)
        .unwrap();
    drain(&mut b);

    // EndpointMessage: broadcast and targeted, from set by the bridge.
    b.handle_channel_message(
        now,
        &conf,
        "ep1aaaaa",
        r#"{"colibriClass":"EndpointMessage","to":"","msgPayload":{"type":"hello"}}"#,
    );
    let outs = drain(&mut b);
    let got = channel_messages(&outs, "ep2bbbbb");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["from"], "ep1aaaaa");
    assert_eq!(got[0]["msgPayload"]["type"], "hello");
    assert!(channel_messages(&outs, "ep1aaaaa").is_empty(), "not echoed");
    b.handle_channel_message(
        now,
        &conf,
        "ep2bbbbb",
        r#"{"colibriClass":"EndpointMessage","to":"ep1aaaaa","msgPayload":{"n":1}}"#,
    );
    let got = channel_messages(&drain(&mut b), "ep1aaaaa");
    assert_eq!(
        (got[0]["from"].as_str(), got[0]["to"].as_str()),
        (Some("ep2bbbbb"), Some("ep1aaaaa"))
    );
    // EndpointStats relayed to the others.
    b.handle_channel_message(
        now,
        &conf,
        "ep2bbbbb",
        r#"{"colibriClass":"EndpointStats","bitrate":{"upload":100},"connectionQuality":90}"#,
    );
    let got = channel_messages(&drain(&mut b), "ep1aaaaa");
    assert_eq!(got[0]["colibriClass"], "EndpointStats");
    assert_eq!(got[0]["from"], "ep2bbbbb");
    assert_eq!(got[0]["connectionQuality"], 90);

    // Current clients: constraints by source name raise the sender's height.
    b.handle_channel_message(now, &conf, "ep2bbbbb",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"onStageSources":["ep1aaaaa-v0"],
            "defaultConstraints":{"maxHeight":180},"constraints":{"ep1aaaaa-v0":{"maxHeight":720}}}"#);
    let got = channel_messages(&drain(&mut b), "ep1aaaaa");
    assert!(
        got.iter()
            .any(|m| m["colibriClass"] == "SenderSourceConstraints" && m["maxHeight"] == 720),
        "{got:?}"
    );
    // 2.6726: constraints by endpoint id.
    b.handle_channel_message(now, &conf, "ep2bbbbb",
        r#"{"colibriClass":"ReceiverVideoConstraints","lastN":-1,"selectedEndpoints":[],"onStageEndpoints":[],
            "defaultConstraints":{"maxHeight":180},"constraints":{"ep1aaaaa":{"maxHeight":360}}}"#);
    let got = channel_messages(&drain(&mut b), "ep1aaaaa");
    assert!(
        got.iter()
            .any(|m| m["colibriClass"] == "SenderVideoConstraints"
                && m["videoConstraints"]["idealHeight"] == 360),
        "{got:?}"
    );
    // 2021 legacy messages: LastN 0 stops forwarding to ep2.
    b.handle_channel_message(
        now,
        &conf,
        "ep2bbbbb",
        r#"{"colibriClass":"LastNChangedEvent","lastN":0}"#,
    );
    let outs = drain(&mut b);
    let got = channel_messages(&outs, "ep2bbbbb");
    assert!(
        got.iter().any(|m| m["colibriClass"] == "ForwardedSources"
            && m["forwardedSources"] == serde_json::json!([])),
        "{got:?}"
    );
    let got = channel_messages(&outs, "ep1aaaaa");
    assert!(
        got.iter()
            .any(|m| m["colibriClass"] == "SenderSourceConstraints" && m["maxHeight"] == 0),
        "{got:?}"
    );
    for text in [
        r#"{"colibriClass":"ReceiverVideoConstraint","maxFrameHeight":180}"#,
        r#"{"colibriClass":"SelectedEndpointsChangedEvent","selectedEndpoints":["ep1aaaaa"]}"#,
        r#"{"colibriClass":"SourceVideoTypeMessage","sourceName":"ep2bbbbb-v0","videoType":"desktop"}"#,
        r#"{"colibriClass":"VideoTypeMessage","videoType":"camera"}"#,
        r#"{"colibriClass":"ReceiverAudioSubscription","mode":"None"}"#,
        r#"{"colibriClass":"ClientHello"}"#,
    ] {
        b.handle_channel_message(now, &conf, "ep2bbbbb", text);
    }
    drain(&mut b);
    assert_eq!(b.counters().channel_messages_dropped, 0);
    assert_eq!(
        b.counters().channel_messages_by_class["ReceiverAudioSubscription"],
        1
    );
    // Garbage: counted, ignored.
    for text in [
        "{",
        "[]",
        r#"{"colibriClass":"Bogus"}"#,
        &"x".repeat(70_000),
    ] {
        b.handle_channel_message(now, &conf, "ep2bbbbb", text);
    }
    assert_eq!(b.counters().channel_messages_dropped, 4);
    assert!(channel_messages(&drain(&mut b), "ep1aaaaa").is_empty());

    // Expiring an endpoint closes its channel.
    b.handle_stanza(
        now,
        parse_element(&expire_request("e", "m", "ep2bbbbb")).unwrap(),
    );
    let outs = drain(&mut b);
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::CloseChannel { endpoint, .. } if endpoint == "ep2bbbbb"))
    );
}
