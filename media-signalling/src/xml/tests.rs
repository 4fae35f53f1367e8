use super::*;
use crate::json::{json_sources_element, parse_json_sources};

fn parse(xml: &str) -> Element {
    xmpp_core::stream::parse_element(xml).expect("well-formed")
}

#[test]
fn payload_type_round_trips() {
    let vp8 = PayloadType {
        id: 100,
        name: "VP8".into(),
        clockrate: 90000,
        channels: None,
        parameters: vec![],
        feedback: vec![
            RtcpFeedback {
                kind: "ccm".into(),
                subtype: Some("fir".into()),
            },
            RtcpFeedback {
                kind: "nack".into(),
                subtype: None,
            },
            RtcpFeedback {
                kind: "transport-cc".into(),
                subtype: None,
            },
        ],
    };
    let rtx = PayloadType {
        id: 96,
        name: "rtx".into(),
        clockrate: 90000,
        channels: None,
        parameters: vec![("apt".into(), "100".into())],
        feedback: vec![],
    };
    for pt in [vp8, rtx] {
        let el = payload_type_element(&pt);
        assert_eq!(parse_payload_type(&parse(&el.to_xml())).unwrap(), pt);
    }
    let err = parse_payload_type(&parse(
        "<payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='x'/>",
    ));
    assert_eq!(err.unwrap_err().element, "payload-type");
}

#[test]
fn transport_from_a_session_accept() {
    let el = parse(
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='Xy7z' pwd='secretpwd0123456789abcd'>\
           <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>AA:BB:CC</fingerprint>\
           <candidate component='1' foundation='842163049' generation='0' id='c1' ip='10.213.0.2' port='50000' priority='2122260223' protocol='udp' type='host' network='1'/>\
           <candidate component='1' foundation='1' generation='0' ip='2c1f.local' port='50001' priority='1' protocol='udp' type='host'/>\
           <rtcp-mux/>\
         </transport>",
    );
    let t = parse_transport(&el).unwrap();
    assert_eq!(t.ufrag, "Xy7z");
    assert!(t.rtcp_mux);
    assert_eq!(t.fingerprints[0].setup.as_deref(), Some("active"));
    assert_eq!(t.fingerprints[0].value, "AA:BB:CC");
    assert_eq!(t.candidates.len(), 1, "the mDNS candidate is skipped");
    assert_eq!(t.candidates[0].address, "10.213.0.2:50000".parse().unwrap());
    // What lilt writes reads back the same.
    let mut ours = t.clone();
    ours.web_socket = Some("wss://meet.example.com/colibri-ws/default-id/c/e?pwd=p".into());
    assert_eq!(
        parse_transport(&parse(&transport_element(&ours).to_xml())).unwrap(),
        ours
    );
}

/// A 2021 client's simulcast video answer: no names, an msid, SIM + 3 FID.
#[test]
fn simulcast_sources_are_one_source() {
    let msid = "<parameter name='msid' value='stream-1 track-1'/>";
    let mut xml = String::from("<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>");
    for ssrc in [1, 2, 3, 11, 12, 13] {
        xml.push_str(&format!(
            "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{ssrc}'>{msid}</source>"
        ));
    }
    xml.push_str("<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='SIM'><source ssrc='1'/><source ssrc='2'/><source ssrc='3'/></ssrc-group>");
    for (p, r) in [(1, 11), (2, 12), (3, 13)] {
        xml.push_str(&format!("<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'><source ssrc='{p}'/><source ssrc='{r}'/></ssrc-group>"));
    }
    xml.push_str("</description>");
    let sources = parse_jingle_sources(&parse(&xml), MediaKind::Video).unwrap();
    assert_eq!(sources.len(), 1);
    let s = &sources[0];
    assert_eq!(s.ssrcs, vec![1, 2, 3, 11, 12, 13]);
    assert_eq!(s.groups.len(), 4);
    assert_eq!(s.primary_ssrcs(), vec![1, 2, 3]);
    assert_eq!(s.rtx_for(2), Some(12));
    assert_eq!(s.msid.as_deref(), Some("stream-1 track-1"));
}

#[test]
fn two_unlinked_audio_sources_stay_apart() {
    let xml = "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
        <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='5' name='a-a0'/>\
        <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='6' name='b-a0'/></description>";
    let sources = parse_jingle_sources(&parse(xml), MediaKind::Audio).unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[1].name, "b-a0");
}

#[test]
fn compact_json_round_trips() {
    let video = Source {
        kind: MediaKind::Video,
        name: "abcd1234-v0".into(),
        ssrcs: vec![1, 11],
        groups: vec![SsrcGroup {
            semantics: "FID".into(),
            ssrcs: vec![1, 11],
        }],
        video_type: Some("desktop".into()),
        msid: Some("s t".into()),
    };
    let audio = Source {
        kind: MediaKind::Audio,
        name: "abcd1234-a0".into(),
        ssrcs: vec![7],
        groups: vec![],
        video_type: None,
        msid: None,
    };
    let sources = vec![video.clone(), audio.clone()];
    let el = json_sources_element(&[("abcd1234", &sources)]);
    let text = el.text_content();
    assert!(text.contains(r#""f",1,11"#), "{text}");
    assert!(text.contains(r#""v":"d""#), "{text}");
    assert!(
        text.ends_with(r#"[{"n":"abcd1234-a0","s":7}]]}}"#),
        "no empty audio-groups list: {text}"
    );
    let parsed = parse_json_sources(&text).unwrap();
    assert_eq!(parsed, vec![("abcd1234".to_string(), vec![video, audio])]);
    assert!(parse_json_sources("{\"sources\":{\"x\":[[{\"n\":\"no ssrc\"}]]}}").is_err());
    assert!(parse_json_sources("not json").is_err());
}

#[test]
fn colibri2_sources_round_trip() {
    let source = Source {
        kind: MediaKind::Video,
        name: "ep-v0".into(),
        ssrcs: vec![100, 101],
        groups: vec![SsrcGroup {
            semantics: "FID".into(),
            ssrcs: vec![100, 101],
        }],
        video_type: None,
        msid: None,
    };
    let sources =
        Element::new("sources", ns::COLIBRI2).child(colibri2_media_source_element(&source));
    assert_eq!(
        parse_colibri2_sources(&parse(&sources.to_xml())).unwrap(),
        vec![source]
    );
}

#[test]
fn colibri2_media_round_trips() {
    let media = MediaDescription {
        kind: MediaKind::Audio,
        payload_types: vec![PayloadType {
            id: 111,
            name: "opus".into(),
            clockrate: 48000,
            channels: Some(2),
            parameters: vec![
                ("minptime".into(), "10".into()),
                ("useinbandfec".into(), "1".into()),
            ],
            feedback: vec![RtcpFeedback {
                kind: "transport-cc".into(),
                subtype: None,
            }],
        }],
        header_extensions: vec![HeaderExtension {
            id: 1,
            uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into(),
        }],
    };
    let el = colibri2_media_element(&media);
    assert_eq!(parse_colibri2_media(&parse(&el.to_xml())).unwrap(), media);
}

#[test]
fn groups_must_name_sources_and_ssrc_0_is_refused() {
    let desc = |body: &str| {
        parse(&format!(
            "<description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>{body}</description>"
        ))
    };
    let src = |s: u32| format!("<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{s}'/>");
    let fid = "<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'><source ssrc='1'/><source ssrc='2'/></ssrc-group>";
    let ok = desc(&format!("{}{}{fid}", src(1), src(2)));
    assert_eq!(
        parse_jingle_sources(&ok, MediaKind::Video).unwrap().len(),
        1
    );
    let dangling = desc(&format!("{}{fid}", src(1)));
    let err = parse_jingle_sources(&dangling, MediaKind::Video).unwrap_err();
    assert_eq!(err.element, "ssrc-group", "{err}");
    let zero = desc(&src(0));
    assert!(parse_jingle_sources(&zero, MediaKind::Video).is_err());
    let empty = desc(&format!(
        "{}<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='SIM'/>",
        src(1)
    ));
    assert!(parse_jingle_sources(&empty, MediaKind::Video).is_err());
}

#[test]
fn source_elements_in_jicofos_order() {
    let source = Source {
        kind: MediaKind::Audio,
        name: "ep-a0".into(),
        ssrcs: vec![9],
        groups: vec![],
        video_type: None,
        msid: Some("s t".into()),
    };
    let els = jingle_source_elements(&[source], Some("room@conference.example.com/ep"));
    let names: Vec<&str> = els[0].children().map(|c| c.name()).collect();
    assert_eq!(names, ["ssrc-info", "parameter"]);
}
