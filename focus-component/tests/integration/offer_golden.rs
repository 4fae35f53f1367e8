//! The session-initiate, element by element, against Jicofo's layout
//! (JingleOfferFactory + CodecUtil with the stock codec configuration, the
//! bridge's transport copied, BUNDLE, bridge-session, the sources of the
//! bridge and of every other participant), written by hand.

use crate::common;

use common::*;
use xmpp_core::Element;

const AUDIO_DESC_HEAD: &str = "\
<payload-type id='111' name='opus' clockrate='48000' channels='2'>\
<parameter name='minptime' value='10'/><parameter name='useinbandfec' value='1'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/></payload-type>\
<payload-type id='126' name='telephone-event' clockrate='8000'/>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='10' uri='urn:ietf:params:rtp-hdrext:sdes:mid'/>\
<rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
<extmap-allow-mixed xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0'/><rtcp-mux/>";

const VIDEO_FB: &str = "\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='ccm' subtype='fir'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack'/>\
<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>";

fn video_desc_head() -> String {
    let tcc = "<rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>";
    format!(
        "<payload-type id='41' name='AV1' clockrate='90000'>{VIDEO_FB}{tcc}</payload-type>\
         <payload-type id='100' name='VP8' clockrate='90000'>{VIDEO_FB}{tcc}</payload-type>\
         <payload-type id='107' name='H264' clockrate='90000'>\
         <parameter name='profile-level-id' value='42e01f;level-asymmetry-allowed=1;packetization-mode=1;'/>{VIDEO_FB}{tcc}</payload-type>\
         <payload-type id='101' name='VP9' clockrate='90000'>{VIDEO_FB}{tcc}</payload-type>\
         <payload-type id='42' name='rtx' clockrate='90000'><parameter name='apt' value='41'/>{VIDEO_FB}</payload-type>\
         <payload-type id='96' name='rtx' clockrate='90000'><parameter name='apt' value='100'/>{VIDEO_FB}</payload-type>\
         <payload-type id='97' name='rtx' clockrate='90000'><parameter name='apt' value='101'/>{VIDEO_FB}</payload-type>\
         <payload-type id='99' name='rtx' clockrate='90000'><parameter name='apt' value='107'/></payload-type>\
         <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='11' uri='https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension'/>\
         <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='10' uri='urn:ietf:params:rtp-hdrext:sdes:mid'/>\
         <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='3' uri='http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time'/>\
         <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
         <extmap-allow-mixed xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0'/><rtcp-mux/>"
    )
}

/// A conference with participant A (sources: audio 1001, video 2001 + rtx
/// 2002) up; returns the harness.
fn conference_with_a() -> Harness {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1"), ("region", "eu-west")]);
    let answer = h.open_conference(ROOM);
    assert_eq!(answer.type_(), Some("result"));
    let alloc = h.join("aaaa1111", JSON_FEATURES);
    let out = h.answer_allocation(&alloc);
    let offer = offer_to(&out, "aaaa1111").expect("offer to A");
    let sid = sid_of(&offer);
    let out = h.accept(
        "aaaa1111",
        &sid,
        &src(1001, "sA tA-audio"),
        &format!(
            "{}{}{}",
            src(2001, "sA tA-video"),
            src(2002, "sA tA-video"),
            fid(2001, 2002)
        ),
    );
    assert_eq!(
        out[0].type_(),
        Some("result"),
        "session-accept acknowledged: {}",
        out[0]
    );
    h
}

fn transport(endpoint: &str) -> String {
    bridge_transport(&format!("{BREWERY}/jvb1"), endpoint)
}

/// Fills the random parts (id, sid, bridge-session id) of `expected` from
/// the actual offer.
fn expected(template: String, actual: &Element) -> Element {
    let jingle = actual.get_child("jingle", "urn:xmpp:jingle:1").unwrap();
    let bs = jingle
        .get_child("bridge-session", "http://jitsi.org/protocol/focus")
        .unwrap()
        .get_attr("id")
        .unwrap();
    el(&template
        .replace("{id}", actual.id().unwrap())
        .replace("{sid}", jingle.get_attr("sid").unwrap())
        .replace("{bs}", bs))
}

#[test]
fn session_initiate_with_ssrc_info_sources_matches_jicofo() {
    let mut h = conference_with_a();
    let alloc = h.join("bbbb2222", PLAIN_FEATURES);
    let cm = alloc
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap();
    assert_eq!(
        cm.get_attr("create"),
        None,
        "the conference already exists on the bridge"
    );
    let out = h.answer_allocation(&alloc);
    let offer = offer_to(&out, "bbbb2222").expect("offer to B");
    let ssma = "xmlns='urn:xmpp:jingle:apps:rtp:ssma:0'";
    let info =
        |owner: &str| format!("<ssrc-info xmlns='http://jitsi.org/jitmeet' owner='{owner}'/>");
    let a_jid = format!("{ROOM}/aaaa1111");
    let msid = |v: &str| format!("<parameter {ssma} name='msid' value='{v}'/>");
    let template = format!(
        "<iq to='{ROOM}/bbbb2222' type='set' id='{{id}}'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' initiator='{FOCUS_JID}' sid='{{sid}}'>\
         <content creator='initiator' name='audio' senders='both'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio' maxptime='60'>{AUDIO_DESC_HEAD}\
         <source {ssma} ssrc='1001' name='aaaa1111-a0'>{}{}</source>\
         <source {ssma} ssrc='411' name='jvb-a0'>{}</source>\
         </description>{}</content>\
         <content creator='initiator' name='video' senders='both'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>{}\
         <source {ssma} ssrc='2001' name='aaaa1111-v0'>{}{}</source>\
         <source {ssma} ssrc='2002' name='aaaa1111-v0'>{}{}</source>\
         <ssrc-group {ssma} semantics='FID'><source ssrc='2001'/><source ssrc='2002'/></ssrc-group>\
         <source {ssma} ssrc='422' name='jvb-v0'>{}</source>\
         </description>{}</content>\
         <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='audio'/><content name='video'/></group>\
         <bridge-session xmlns='http://jitsi.org/protocol/focus' id='{{bs}}' region='eu-west'/>\
         </jingle></iq>",
        info(&a_jid),
        msid("sA tA-audio"),
        info("jvb"),
        transport("bbbb2222"),
        video_desc_head(),
        info(&a_jid),
        msid("sA tA-video"),
        info(&a_jid),
        msid("sA tA-video"),
        info("jvb"),
        transport("bbbb2222"),
    );
    assert_same(&expected(template, &offer), &offer);
}

#[test]
fn session_initiate_with_json_sources_matches_jicofo() {
    let mut h = conference_with_a();
    let alloc = h.join("cccc3333", JSON_FEATURES);
    let out = h.answer_allocation(&alloc);
    let offer = offer_to(&out, "cccc3333").expect("offer to C");
    let json = r#"{"sources":{
        "aaaa1111":[[{"s":2001,"n":"aaaa1111-v0","m":"sA tA-video"},{"s":2002,"n":"aaaa1111-v0","m":"sA tA-video"}],[["f",2001,2002]],[{"s":1001,"n":"aaaa1111-a0","m":"sA tA-audio"}]],
        "jvb":[[{"s":422,"n":"jvb-v0"}],[],[{"s":411,"n":"jvb-a0"}]]}}"#;
    let template = format!(
        "<iq to='{ROOM}/cccc3333' type='set' id='{{id}}'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' initiator='{FOCUS_JID}' sid='{{sid}}'>\
         <content creator='initiator' name='audio' senders='both'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio' maxptime='60'>{AUDIO_DESC_HEAD}</description>{}</content>\
         <content creator='initiator' name='video' senders='both'>\
         <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>{}</description>{}</content>\
         <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='audio'/><content name='video'/></group>\
         <bridge-session xmlns='http://jitsi.org/protocol/focus' id='{{bs}}' region='eu-west'/>\
         <json-message xmlns='http://jitsi.org/jitmeet'>{json}</json-message>\
         </jingle></iq>",
        transport("cccc3333"),
        video_desc_head(),
        transport("cccc3333"),
    );
    assert_same(&expected(template, &offer), &offer);
}

#[test]
fn start_muted_rooms_offer_startmuted() {
    let mut h = Harness::with_options(|o| o.start_muted = Some((true, false)));
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa1111", JSON_FEATURES);
    let out = h.answer_allocation(&alloc);
    let offer = offer_to(&out, "aaaa1111").unwrap();
    let jingle = offer.get_child("jingle", "urn:xmpp:jingle:1").unwrap();
    let names: Vec<&str> = jingle.children().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "content",
            "content",
            "group",
            "startmuted",
            "bridge-session",
            "json-message"
        ]
    );
    let sm = jingle
        .get_child("startmuted", "http://jitsi.org/jitmeet")
        .unwrap();
    assert_eq!(
        (sm.get_attr("audio"), sm.get_attr("video")),
        (Some("true"), Some("false"))
    );
}

#[test]
fn allocation_request_is_colibri2_as_jicofo_sends_it() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.open_conference(ROOM);
    let alloc = h.join("aaaa1111", JSON_FEATURES);
    assert_eq!(alloc.to(), Some(format!("{BREWERY}/jvb1").as_str()));
    let cm = alloc
        .get_child("conference-modify", "jitsi:colibri2")
        .unwrap();
    assert_eq!(cm.get_attr("create"), Some("true"));
    assert_eq!(cm.get_attr("name"), Some(ROOM));
    assert!(cm.get_attr("meeting-id").is_some_and(|m| m.len() == 36));
    let ep = cm.get_child("endpoint", "jitsi:colibri2").unwrap();
    assert_eq!(ep.get_attr("id"), Some("aaaa1111"));
    assert_eq!(ep.get_attr("create"), Some("true"));
    assert_eq!(ep.get_attr("stats-id"), Some("Stats-aaaa1111"));
    let children: Vec<&str> = ep.children().map(|c| c.name()).collect();
    assert_eq!(children, ["media", "media", "transport", "capability"]);
    let media: Vec<&Element> = ep.children().filter(|c| c.name() == "media").collect();
    assert_eq!(media[0].get_attr("type"), Some("audio"));
    assert_eq!(media[1].get_attr("type"), Some("video"));
    let video_pts: Vec<&str> = media[1]
        .children()
        .filter(|c| c.name() == "payload-type")
        .filter_map(|c| c.get_attr("id"))
        .collect();
    assert_eq!(
        video_pts,
        ["41", "100", "107", "101", "42", "96", "97", "99"]
    );
    let t = ep.get_child("transport", "jitsi:colibri2").unwrap();
    assert_eq!(t.get_attr("ice-controlling"), Some("true"));
    let cap = ep.get_child("capability", "jitsi:colibri2").unwrap();
    assert_eq!(cap.get_attr("name"), Some("source-names"));
}

#[test]
fn start_muted_follows_the_conference_iq_thresholds() {
    let mut h = Harness::new();
    h.bridge("jvb1", &[("stress_level", "0.1")]);
    h.feed(&format!(
        "<iq type='set' id='c1' from='focus.{DOMAIN}/u@{DOMAIN}/r' to='{FOCUS_JID}'>\
         <conference xmlns='http://jitsi.org/protocol/focus' room='{ROOM}' machine-uid='m'>\
         <property name='startAudioMuted' value='1'/><property name='startVideoMuted' value='2'/></conference></iq>"
    ));
    h.open_conference(ROOM);
    let mut startmuted = Vec::new();
    for nick in ["p1", "p2", "p3"] {
        let alloc = h.join(nick, JSON_FEATURES);
        let out = h.answer_allocation(&alloc);
        let offer = offer_to(&out, nick).unwrap();
        let sm = offer
            .get_child("jingle", "urn:xmpp:jingle:1")
            .unwrap()
            .get_child("startmuted", "http://jitsi.org/jitmeet")
            .map(|s| {
                (
                    s.get_attr("audio").unwrap().to_string(),
                    s.get_attr("video").unwrap().to_string(),
                )
            });
        startmuted.push(sm);
    }
    let pair = |a: &str, v: &str| Some((a.to_string(), v.to_string()));
    assert_eq!(
        startmuted,
        [None, pair("true", "false"), pair("true", "true")]
    );
}
