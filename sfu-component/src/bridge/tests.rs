//! Media events reaching the signalling side.

use super::*;
use std::net::SocketAddr;

fn bridge_with_two_endpoints() -> (Bridge, String, Vec<(String, String)>) {
    let media = MediaConfig {
        candidate_addresses: vec!["127.0.0.1:10000".parse::<SocketAddr>().unwrap()],
        endpoint_timeout: Duration::from_secs(60),
    };
    let mut b = Bridge::new(BridgeConfig::new("jvb", "ws://127.0.0.1/colibri-ws", media));
    let now = Instant::now();
    let mut pwds = Vec::new();
    for (i, ep) in ["a", "b"].into_iter().enumerate() {
        let create = if i == 0 { " create='true'" } else { "" };
        let xml = format!(
            "<iq xmlns='jabber:client' type='set' id='i{i}'><conference-modify xmlns='jitsi:colibri2' meeting-id='m'{create}>\
             <endpoint id='{ep}' create='true'><transport ice-controlling='true'/></endpoint></conference-modify></iq>"
        );
        b.handle_stanza(now, xmpp_core::stream::parse_element(&xml).unwrap());
        let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
        assert!(matches!(&outs[0], Output::Stanza(s) if s.type_() == Some("result")));
    }
    let conf = b.conference_id("m").unwrap().to_string();
    for ep in ["a", "b"] {
        let pwd = b.conference(&conf).unwrap().endpoints[ep].pwd.clone();
        b.handle_channel_open(now, &conf, ep, &pwd).unwrap();
        pwds.push((ep.to_string(), pwd));
    }
    std::iter::from_fn(|| b.poll_output()).for_each(drop);
    (b, conf, pwds)
}

#[test]
fn dominant_speaker_reaches_every_endpoint() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    b.handle_media_event(MediaEvent::DominantSpeakerChanged {
        conference: conf.clone(),
        endpoint: "b".into(),
        previous: vec!["a".into()],
        silence: false,
    });
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    for ep in ["a", "b"] {
        let m = outs.iter().find_map(|o| match o {
            Output::Channel {
                endpoint, message, ..
            } if endpoint == ep && message.contains("DominantSpeakerEndpointChangeEvent") => {
                Some(serde_json::from_str::<serde_json::Value>(message).unwrap())
            }
            _ => None,
        });
        let m = m.unwrap_or_else(|| panic!("{ep} got no dominant speaker event"));
        assert_eq!(m["dominantSpeakerEndpoint"], "b");
        assert_eq!(m["previousSpeakers"], serde_json::json!(["a"]));
        assert_eq!(m["silence"], false);
    }
    assert_eq!(b.counters().dominant_speaker_changes, 1);
}

#[test]
fn media_expiry_removes_endpoint_then_conference() {
    let (mut b, conf, _) = bridge_with_two_endpoints();
    b.handle_media_event(MediaEvent::EndpointExpired {
        conference: conf.clone(),
        endpoint: "a".into(),
    });
    let outs: Vec<Output> = std::iter::from_fn(|| b.poll_output()).collect();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::CloseChannel { endpoint, .. } if endpoint == "a"))
    );
    assert!(b.conference(&conf).is_some());
    b.handle_media_event(MediaEvent::EndpointExpired {
        conference: conf.clone(),
        endpoint: "b".into(),
    });
    assert!(b.conference(&conf).is_none());
    assert!(b.conference_id("m").is_none());
}
