//! The recorder's answer to the focus's Jingle offer, sans-IO: what a
//! receive-only browser answers (contents kept, `senders='initiator'`, the
//! offer's payload types and header-extension ids, DTLS `setup='active'`,
//! host candidates on the given addresses, no sources), and the bridge
//! channel URL taken from the offer.

use std::time::{Duration, Instant};

use media_signalling::xml::{ns as mns, parse_jingle_description, parse_transport};
use recorder_component::media_link::MediaLink;
use xmpp_core::stream::parse_element;

const OFFER: &str = "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='abc123' initiator='focus@auth.example.com/focus'>\
  <content creator='initiator' name='audio' senders='both'>\
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>\
      <payload-type id='111' name='opus' clockrate='48000' channels='2'>\
        <parameter name='useinbandfec' value='1'/>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='transport-cc'/>\
      </payload-type>\
      <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='1' uri='urn:ietf:params:rtp-hdrext:ssrc-audio-level'/>\
      <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='5' uri='http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01'/>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='1001' name='aaaa1111-a0'>\
        <ssrc-info xmlns='http://jitsi.org/jitmeet' owner='room1@conference.example.com/aaaa1111'/>\
      </source>\
    </description>\
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bu' pwd='bridgepasswordbridgepass'>\
      <rtcp-mux/>\
      <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99</fingerprint>\
      <candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1' network='0' port='10000' priority='1' protocol='udp' type='host'/>\
      <web-socket xmlns='http://jitsi.org/protocol/colibri' url='ws://127.0.0.1:9090/colibri-ws/jvb/conf/rec'/>\
    </transport>\
  </content>\
  <content creator='initiator' name='video' senders='both'>\
    <description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>\
      <payload-type id='100' name='VP8' clockrate='90000'>\
        <rtcp-fb xmlns='urn:xmpp:jingle:apps:rtp:rtcp-fb:0' type='nack' subtype='pli'/>\
      </payload-type>\
      <payload-type id='96' name='rtx' clockrate='90000'><parameter name='apt' value='100'/></payload-type>\
      <rtp-hdrext xmlns='urn:xmpp:jingle:apps:rtp:rtp-hdrext:0' id='3' uri='http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time'/>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2001' name='aaaa1111-v0'/>\
      <source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='2002' name='aaaa1111-v0'/>\
      <ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'><source ssrc='2001'/><source ssrc='2002'/></ssrc-group>\
    </description>\
    <transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='bu' pwd='bridgepasswordbridgepass'/>\
  </content>\
  <group xmlns='urn:xmpp:jingle:apps:grouping:0' semantics='BUNDLE'><content name='audio'/><content name='video'/></group>\
</jingle>";

#[test]
fn answers_the_offer_as_a_receive_only_browser() {
    let offer = parse_element(OFFER).unwrap();
    let local = "127.0.0.1:40000".parse().unwrap();
    let (link, accept) = MediaLink::accept(
        Instant::now(),
        &offer,
        "recorder@recorder.example.com/rec1",
        &[local],
    )
    .unwrap();
    assert_eq!(link.sid(), "abc123");
    assert_eq!(
        link.web_socket(),
        Some("ws://127.0.0.1:9090/colibri-ws/jvb/conf/rec")
    );
    assert!(!link.is_connected());

    assert_eq!(accept.get_attr("action"), Some("session-accept"));
    assert_eq!(accept.get_attr("sid"), Some("abc123"));
    assert_eq!(
        accept.get_attr("responder"),
        Some("recorder@recorder.example.com/rec1")
    );
    let contents: Vec<_> = accept
        .children()
        .filter(|c| c.is("content", mns::JINGLE))
        .collect();
    assert_eq!(contents.len(), 2);
    for (content, (name, ids, exts)) in contents.iter().zip([
        (
            "audio",
            vec![111u8],
            vec![
                (1u8, "ssrc-audio-level"),
                (5, "transport-wide-cc-extensions-01"),
            ],
        ),
        ("video", vec![100, 96], vec![(3, "abs-send-time")]),
    ]) {
        assert_eq!(content.get_attr("name"), Some(name));
        assert_eq!(content.get_attr("creator"), Some("initiator"));
        assert_eq!(content.get_attr("senders"), Some("initiator"));
        let desc = content.get_child("description", mns::RTP).unwrap();
        assert_eq!(desc.get_attr("media"), Some(name));
        assert!(
            desc.children().all(|c| c.name() != "source"),
            "no sources: {desc}"
        );
        let d = parse_jingle_description(desc).unwrap();
        let got: Vec<u8> = d.payload_types.iter().map(|p| p.id).collect();
        assert_eq!(got, ids);
        let got: Vec<(u8, bool)> = d.header_extensions.iter().map(|e| (e.id, true)).collect();
        assert_eq!(got.len(), exts.len());
        for ((id, uri), e) in exts.iter().zip(&d.header_extensions) {
            assert_eq!(e.id, *id);
            assert!(e.uri.ends_with(uri));
        }
        let t = parse_transport(content.get_child("transport", mns::ICE_UDP).unwrap()).unwrap();
        assert!(t.ufrag.len() >= 4 && t.pwd.len() >= 22, "{t:?}");
        assert!(t.rtcp_mux);
        assert_eq!(t.fingerprints.len(), 1);
        assert_eq!(t.fingerprints[0].hash, "sha-256");
        assert_eq!(t.fingerprints[0].setup.as_deref(), Some("active"));
        assert_eq!(t.fingerprints[0].value.split(':').count(), 32);
        assert_eq!(t.candidates.len(), 1);
        assert_eq!(t.candidates[0].address, local);
        assert_eq!(t.candidates[0].kind, "host");
        assert_eq!(t.web_socket, None);
    }
    let group = accept.get_child("group", mns::GROUPING).unwrap();
    assert_eq!(group.get_attr("semantics"), Some("BUNDLE"));
    assert_eq!(group.children().count(), 2);
}

#[test]
fn an_offer_without_what_is_needed_is_refused() {
    let local = "127.0.0.1:40000".parse().unwrap();
    let no_transport = parse_element(
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'>\
         <content name='audio'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></content></jingle>",
    )
    .unwrap();
    assert!(MediaLink::accept(Instant::now(), &no_transport, "r@x/y", &[local]).is_err());
    let no_content =
        parse_element("<jingle xmlns='urn:xmpp:jingle:1' action='session-initiate' sid='s'/>")
            .unwrap();
    assert!(MediaLink::accept(Instant::now(), &no_content, "r@x/y", &[local]).is_err());
    let bad_fingerprint = parse_element(
        &OFFER.replace(
            "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
            "nonsense",
        ),
    )
    .unwrap();
    assert!(MediaLink::accept(Instant::now(), &bad_fingerprint, "r@x/y", &[local]).is_err());
}

/// The runtime side: the offer answered (the IQ acknowledged, then a
/// session-accept to the focus), and a link that never connects (nothing
/// answers on the bridge's candidate) fails its recording after
/// [`CONNECT_TIMEOUT`].
#[tokio::test]
async fn a_link_that_never_connects_fails_the_recording() {
    use recorder_component::media_runtime::{CONNECT_TIMEOUT, MediaLinks};
    use recorder_component::recordings::Recordings;

    let dir = tempfile::tempdir().unwrap();
    let mut files = Recordings::new(dir.path(), None);
    let (mut links, _rx) = MediaLinks::new(false);
    // A bridge candidate on a port where nothing listens (loopback only).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let offer = OFFER.replace("port='10000'", &format!("port='{port}'"));
    let iq = parse_element(&format!(
        "<iq xmlns='jabber:client' type='set' id='j1' from='room1@conference.example.com/focus' \
         to='recorder@recorder.example.com/rec1'>{offer}</iq>"
    ))
    .unwrap();
    let now = Instant::now();
    let out = links.call_iq(now, "s1", &iq, "recorder@recorder.example.com/rec1");
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].type_(), Some("result"));
    assert_eq!(out[0].id(), Some("j1"));
    assert_eq!(out[1].type_(), Some("set"));
    assert_eq!(out[1].to(), Some("room1@conference.example.com/focus"));
    let accept = out[1].get_child("jingle", mns::JINGLE).unwrap();
    assert_eq!(accept.get_attr("action"), Some("session-accept"));
    let deadline = links.next_timeout().unwrap();
    assert!(deadline <= now + CONNECT_TIMEOUT);

    assert!(
        links
            .handle_timeout(now + Duration::from_secs(1), &mut files)
            .is_empty()
    );
    let failed = links.handle_timeout(now + CONNECT_TIMEOUT, &mut files);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "s1");
    assert!(links.next_timeout().is_none(), "the link is gone");

    // Another Jingle IQ is acknowledged too; one without Jingle is refused.
    let info = parse_element(
        "<iq xmlns='jabber:client' type='set' id='j2' from='room1@conference.example.com/focus'>\
         <jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='abc123'/></iq>",
    )
    .unwrap();
    let out = links.call_iq(now, "s1", &info, "r@x/y");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].type_(), Some("result"));
    let other = parse_element(
        "<iq xmlns='jabber:client' type='get' id='j3' from='room1@conference.example.com/focus'>\
         <query xmlns='urn:example'/></iq>",
    )
    .unwrap();
    assert_eq!(
        links.call_iq(now, "s1", &other, "r@x/y")[0].type_(),
        Some("error")
    );
}

/// The link against a str0m peer standing in for the bridge (ICE
/// controlling, DTLS passive, as Videobridge), datagrams passed in memory
/// on virtual time: it connects, the bridge's RTP comes out as plain RTP
/// packets for the recording, and a keyframe request reaches the bridge.
#[test]
fn connects_to_a_bridge_and_yields_its_rtp() {
    use recorder_component::media_link::LinkOutput;
    use recorder_component::rtp::RtpPacket;
    use str0m::format::Codec;
    use str0m::media::{Frequency, Mid, Pt};
    use str0m::net::{Protocol, Receive};
    use str0m::rtp::{RtpWrite, Ssrc};
    use str0m::{Event, Input, Output, Rtc};

    let bridge_addr: std::net::SocketAddr = "10.9.0.1:10000".parse().unwrap();
    let rec_addr: std::net::SocketAddr = "10.9.0.2:5000".parse().unwrap();
    let mut now = Instant::now();
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .clear_extension_map();
    config.codec_config().add_config(
        Pt::new_with_value(100),
        None,
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        Default::default(),
    );
    let mut bridge = config.build(now);
    bridge.add_local_candidate(str0m::Candidate::host(bridge_addr, "udp").unwrap());
    bridge.add_remote_candidate(str0m::Candidate::host(rec_addr, "udp").unwrap());
    let creds = bridge.direct_api().local_ice_credentials();
    let fp: String = bridge
        .direct_api()
        .local_dtls_fingerprint()
        .bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let offer = OFFER
        .replace("ufrag='bu'", &format!("ufrag='{}'", creds.ufrag))
        .replace(
            "pwd='bridgepasswordbridgepass'",
            &format!("pwd='{}'", creds.pass),
        )
        .replace(
            "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
            &fp,
        )
        .replace("ip='127.0.0.1' network='0' port='10000'", "ip='10.9.0.1' network='0' port='10000'");
    let (mut link, accept) =
        MediaLink::accept(now, &parse_element(&offer).unwrap(), "r@x/y", &[rec_addr]).unwrap();
    let t = parse_transport(
        accept
            .children()
            .find_map(|c| c.get_child("transport", mns::ICE_UDP))
            .unwrap(),
    )
    .unwrap();
    {
        let mut api = bridge.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(str0m::IceCreds {
            ufrag: t.ufrag.clone(),
            pass: t.pwd.clone(),
        });
        api.set_remote_fingerprint(
            format!("sha-256 {}", t.fingerprints[0].value)
                .parse()
                .unwrap(),
        );
        api.declare_media(Mid::from("1"), str0m::media::MediaKind::Video);
        api.declare_stream_tx(Ssrc::from(2001), None, Mid::from("1"), None);
        api.start_dtls(false).unwrap();
    }

    let mut bridge_connected = false;
    let mut keyframe_requests = 0;
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut sent = 0u64;
    for step in 0..2000 {
        now += Duration::from_millis(5);
        bridge.handle_input(Input::Timeout(now)).unwrap();
        if link.next_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        if bridge_connected && link.is_connected() && step % 6 == 0 && sent < 20 {
            sent += 1;
            let mut payload = vec![0x10, if sent == 1 { 0x10 } else { 0x11 }, 0, 0];
            payload.extend_from_slice(&sent.to_be_bytes());
            if let Some(tx) = bridge.direct_api().stream_tx(&Ssrc::from(2001)) {
                tx.write_rtp(
                    RtpWrite::new(
                        Pt::new_with_value(100),
                        sent.into(),
                        (sent * 3000) as u32,
                        now,
                        payload,
                    )
                    .marker(true),
                );
            }
        }
        if sent == 10 && keyframe_requests == 0 {
            link.request_keyframe(2001);
        }
        // Move datagrams both ways until quiet.
        for _ in 0..50 {
            let mut moved = false;
            loop {
                match bridge.poll_output().unwrap() {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        moved = true;
                        link.handle_receive(now, t.source, t.destination, &t.contents);
                    }
                    Output::Event(Event::Connected) => bridge_connected = true,
                    Output::Event(Event::KeyframeRequest(_)) => keyframe_requests += 1,
                    Output::Event(_) => {}
                }
            }
            while let Some(out) = link.poll_output() {
                match out {
                    LinkOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        moved = true;
                        let input = Input::Receive(
                            now,
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination,
                                contents: contents.as_slice().try_into().unwrap(),
                            },
                        );
                        bridge.handle_input(input).unwrap();
                    }
                    LinkOutput::Packet(p) => packets.push(p),
                    LinkOutput::Connected | LinkOutput::Disconnected => {}
                }
            }
            if !moved {
                break;
            }
        }
        if sent >= 20 && keyframe_requests > 0 && packets.len() >= 20 {
            break;
        }
    }
    assert!(bridge_connected && link.is_connected());
    let rtp: Vec<RtpPacket> = packets
        .iter()
        .filter_map(|p| RtpPacket::parse(p).ok())
        .filter(|p| p.ssrc == 2001)
        .collect();
    assert!(rtp.len() >= 20, "{} RTP packets of 20", rtp.len());
    assert_eq!(rtp[0].payload_type, 100);
    assert_eq!(&rtp[0].payload[4..12], &1u64.to_be_bytes());
    assert_eq!(rtp[0].timestamp, 3000);
    assert!(keyframe_requests >= 1, "the PLI reached the bridge");
}
