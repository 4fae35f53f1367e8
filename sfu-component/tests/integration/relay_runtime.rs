//! Two running bridges on loopback relayed as Jicofo relays them: the
//! bridge given the peer's `<web-socket>` connects its relay bridge channel
//! to the peer's `/colibri-relay-ws/…` over real HTTP, and an
//! EndpointMessage from an endpoint of one bridge reaches an endpoint of
//! the other through it. Run: `cargo test -p sfu-component --test
//! relay_runtime`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use media_signalling::IceTransport;
use media_signalling::xml::{parse_transport, transport_element};
use sfu_component::colibri2::NS_COLIBRI2;
use sfu_component::run::{BridgeOptions, RunningBridge, StanzaIo, start};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
const RELAY_IDS: [&str; 2] = ["jvb-a", "jvb-b"];

struct Running {
    _bridge: RunningBridge,
    to_bridge: mpsc::Sender<Element>,
    from_bridge: mpsc::UnboundedReceiver<Element>,
    iq: u32,
}

async fn running(n: usize) -> Running {
    let (to_bridge, incoming) = mpsc::channel(64);
    let (outgoing, from_bridge) = mpsc::unbounded_channel();
    let mut options = BridgeOptions::new(&format!("jvb{n}"));
    options.udp_bind = "127.0.0.1:0".parse().unwrap();
    options.http = Some("127.0.0.1:0".parse().unwrap());
    options.relay_id = Some(RELAY_IDS[n].to_string());
    let bridge = start(options, StanzaIo { incoming, outgoing })
        .await
        .unwrap();
    Running {
        _bridge: bridge,
        to_bridge,
        from_bridge,
        iq: 0,
    }
}

impl Running {
    /// A conference-modify of `body`; the answer's `<conference-modified>`.
    async fn modify(&mut self, create: bool, body: &str) -> Element {
        self.iq += 1;
        let id = format!("cm{}", self.iq);
        let create = if create { " create='true'" } else { "" };
        let xml = format!(
            "<iq xmlns='jabber:client' type='set' id='{id}' from='focus@auth.d/f' to='jvb@auth.d/b'>\
             <conference-modify xmlns='jitsi:colibri2' meeting-id='m-relay'{create}>{body}</conference-modify></iq>"
        );
        self.to_bridge
            .send(parse_element(&xml).unwrap())
            .await
            .unwrap();
        loop {
            let s = tokio::time::timeout(Duration::from_secs(5), self.from_bridge.recv())
                .await
                .expect("an answer in time")
                .expect("the bridge runs");
            if s.name() == "iq" && s.id() == Some(id.as_str()) {
                assert_eq!(s.type_(), Some("result"), "{s:?}");
                return s
                    .get_child("conference-modified", NS_COLIBRI2)
                    .unwrap()
                    .clone();
            }
        }
    }
}

fn transport_of(el: &Element, child: &str) -> IceTransport {
    let t = el
        .get_child(child, NS_COLIBRI2)
        .and_then(|e| e.get_child("transport", NS_COLIBRI2))
        .and_then(|t| t.get_child("transport", ICE_UDP))
        .expect("a transport");
    parse_transport(t).unwrap()
}

fn endpoint(id: &str, ssrc: u32) -> String {
    format!(
        "<endpoint id='{id}' create='true' stats-id='s-{id}'>\
           <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/></media>\
           <transport ice-controlling='true'/><capability name='source-names'/>\
           <sources><media-source type='audio' id='{id}-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{ssrc}' name='{id}-a0'/></media-source></sources>\
         </endpoint>"
    )
}

#[tokio::test]
async fn endpoint_messages_cross_the_relay_bridge_channel() {
    let mut bridges = [running(0).await, running(1).await];
    let eps = [("a1", 1111u32), ("b1", 2222u32)];
    let mut ws_urls = Vec::new();
    for (b, (id, ssrc)) in eps.iter().enumerate() {
        let answer = bridges[b].modify(true, &endpoint(id, *ssrc)).await;
        ws_urls.push(transport_of(&answer, "endpoint").web_socket.unwrap());
    }
    // Relays as Jicofo creates them: bridge 0 initiates.
    let mut relay_transports = Vec::new();
    for b in 0..2 {
        let (peer_ep, peer_ssrc) = eps[1 - b];
        let initiator = b == 0;
        let body = format!(
            "<relay id='{}' create='true' mesh-id='0'>\
               <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/></media>\
               <endpoints><endpoint id='{peer_ep}' create='true' stats-id='s'><capability name='source-names'/>\
                 <sources><media-source type='audio' id='{peer_ep}-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{peer_ssrc}' name='{peer_ep}-a0'/></media-source></sources>\
               </endpoint></endpoints>\
               <transport use-unique-port='{initiator}' ice-controlling='{initiator}'/>\
             </relay>",
            RELAY_IDS[1 - b]
        );
        let answer = bridges[b].modify(false, &body).await;
        relay_transports.push(transport_of(&answer, "relay"));
    }
    for b in 0..2 {
        let mut t = relay_transports[1 - b].clone();
        for f in &mut t.fingerprints {
            f.setup = Some(if b == 0 { "active" } else { "passive" }.into());
        }
        if b == 1 {
            t.web_socket = None;
        }
        let mut relay = Element::new("relay", NS_COLIBRI2).attr("id", RELAY_IDS[1 - b]);
        relay.push_child(Element::new("transport", NS_COLIBRI2).child(transport_element(&t)));
        bridges[b].modify(false, &relay.to_string()).await;
    }
    // Each endpoint's colibri-ws.
    let (mut a1, _) = tokio_tungstenite::connect_async(ws_urls[0].as_str())
        .await
        .unwrap();
    let (mut b1, _) = tokio_tungstenite::connect_async(ws_urls[1].as_str())
        .await
        .unwrap();
    // b1 writes to a1 until the relay channel is up and it arrives.
    let message =
        r#"{"colibriClass":"EndpointMessage","to":"a1","msgPayload":{"hello":"from b1"}}"#;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            b1.send(Message::text(message)).await.unwrap();
            let wait = tokio::time::sleep(Duration::from_millis(200));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    m = a1.next() => {
                        if let Some(Ok(Message::Text(t))) = m {
                            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                            if v["colibriClass"] == "EndpointMessage" {
                                return v;
                            }
                        }
                    }
                    _ = &mut wait => break,
                }
            }
        }
    })
    .await
    .expect("b1's message reached a1 across the relay channel");
    assert_eq!(got["from"], "b1");
    assert_eq!(got["msgPayload"]["hello"], "from b1");
}
