//! The running bridge's media path over real UDP on loopback: a str0m
//! client (as a browser: ICE controlled, DTLS active) is allocated through
//! Colibri2, its transport forwarded by a second conference-modify, and it
//! connects (ICE and DTLS) to the bridge's socket; the bridge's stats then
//! count its packets.

use std::time::{Duration, Instant};

use media_signalling::xml::{parse_transport, transport_element};
use sfu_component::colibri2::NS_COLIBRI2;
use sfu_component::run::{BridgeOptions, StanzaIo, start};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

use crate::media_harness::client_transport;

const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";

async fn answer(
    to_bridge: &mpsc::Sender<Element>,
    from_bridge: &mut mpsc::UnboundedReceiver<Element>,
    xml: &str,
) -> Element {
    let iq = parse_element(xml).unwrap();
    let id = iq.id().unwrap().to_string();
    to_bridge.send(iq).await.unwrap();
    loop {
        let s = tokio::time::timeout(Duration::from_secs(5), from_bridge.recv())
            .await
            .unwrap()
            .unwrap();
        if s.name() == "iq" && s.id() == Some(id.as_str()) {
            return s;
        }
    }
}

#[tokio::test]
async fn a_client_connects_over_udp() {
    let (to_bridge, incoming) = mpsc::channel(64);
    let (outgoing, mut from_bridge) = mpsc::unbounded_channel();
    let mut options = BridgeOptions::new("jvb-udp");
    options.udp_bind = "127.0.0.1:0".parse().unwrap();
    options.ws_url_base = Some("ws://127.0.0.1:9/colibri-ws".into());
    let bridge = start(options, StanzaIo { incoming, outgoing })
        .await
        .unwrap();

    let create = "<iq xmlns='jabber:client' type='set' id='c1'>\
        <conference-modify xmlns='jitsi:colibri2' meeting-id='udp-meeting' create='true'>\
          <endpoint id='ep1aaaaa' create='true'>\
            <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/></media>\
            <transport ice-controlling='true'/>\
          </endpoint>\
        </conference-modify></iq>";
    let a = answer(&to_bridge, &mut from_bridge, create).await;
    let bridge_transport = a
        .get_child("conference-modified", NS_COLIBRI2)
        .and_then(|m| m.children().find(|c| c.name() == "endpoint"))
        .and_then(|e| e.get_child("transport", NS_COLIBRI2))
        .and_then(|t| t.get_child("transport", ICE_UDP))
        .map(|t| parse_transport(t).unwrap())
        .expect("the bridge's transport");
    assert_eq!(
        bridge_transport.candidates[0].address, bridge.udp_address,
        "the candidate is the bound socket"
    );

    // The client, as a browser answering Jicofo's offer.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").unwrap());
    for c in &bridge_transport.candidates {
        rtc.add_remote_candidate(str0m::Candidate::host(c.address, "udp").unwrap());
    }
    {
        let mut api = rtc.direct_api();
        api.set_ice_controlling(false);
        api.set_remote_ice_credentials(str0m::IceCreds {
            ufrag: bridge_transport.ufrag.clone(),
            pass: bridge_transport.pwd.clone(),
        });
        let fp: str0m::config::Fingerprint =
            format!("sha-256 {}", bridge_transport.fingerprints[0].value)
                .parse()
                .unwrap();
        api.set_remote_fingerprint(fp);
        api.start_dtls(true).unwrap();
    }
    let transport = transport_element(&client_transport(&mut rtc, addr));
    let update = Element::new("iq", "jabber:client")
        .attr("type", "set")
        .attr("id", "u1")
        .child(
            Element::new("conference-modify", NS_COLIBRI2)
                .attr("meeting-id", "udp-meeting")
                .child(
                    Element::new("endpoint", NS_COLIBRI2)
                        .attr("id", "ep1aaaaa")
                        .child(Element::new("transport", NS_COLIBRI2).child(transport)),
                ),
        );
    let r = answer(&to_bridge, &mut from_bridge, &update.to_xml()).await;
    assert_eq!(r.type_(), Some("result"), "{r}");

    // Drive the client until ICE and DTLS are up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ice_connected = false;
    let mut buf = vec![0u8; 2000];
    loop {
        assert!(Instant::now() < deadline, "the client did not connect");
        let timeout = match rtc.poll_output().unwrap() {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                socket.send_to(&t.contents, t.destination).await.unwrap();
                continue;
            }
            Output::Event(Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            )) => {
                ice_connected = true;
                continue;
            }
            Output::Event(Event::Connected) => break,
            Output::Event(_) => continue,
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
            Ok(Ok((n, source))) => {
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: addr,
                        contents: buf[..n].try_into().unwrap(),
                    },
                );
                rtc.handle_input(input).unwrap();
            }
            _ => rtc.handle_input(Input::Timeout(Instant::now())).unwrap(),
        }
    }
    assert!(ice_connected);
    // The bridge counted the client's datagrams.
    let mut received = 0;
    for _ in 0..30 {
        received = bridge.handle.stats().media.packets_received;
        if received > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        received > 0,
        "the bridge's stats count the client's packets"
    );
    assert!(bridge.handle.stop());
    bridge.wait().await.unwrap();
}
