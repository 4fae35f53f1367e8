//! The running bridge over real sockets on loopback: Colibri2 through the
//! stanza channels, `/colibri/stats`, `/about/health` and `/metrics` over
//! HTTP, and real WebSocket clients on colibri-ws receiving ServerHello and
//! a relayed EndpointMessage.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sfu_component::colibri2::NS_COLIBRI2;
use sfu_component::run::{BridgeOptions, RunningBridge, StanzaIo, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";

struct Harness {
    bridge: RunningBridge,
    to_bridge: mpsc::Sender<Element>,
    from_bridge: mpsc::UnboundedReceiver<Element>,
}

async fn harness() -> Harness {
    let (to_bridge, incoming) = mpsc::channel(64);
    let (outgoing, from_bridge) = mpsc::unbounded_channel();
    let mut options = BridgeOptions::new("jvb-test");
    options.brewery = Some("jvbbrewery@internal.auth.d".into());
    options.udp_bind = "127.0.0.1:0".parse().unwrap();
    options.http = Some("127.0.0.1:0".parse().unwrap());
    let bridge = start(options, StanzaIo { incoming, outgoing })
        .await
        .unwrap();
    Harness {
        bridge,
        to_bridge,
        from_bridge,
    }
}

impl Harness {
    async fn next_stanza(&mut self) -> Element {
        tokio::time::timeout(Duration::from_secs(5), self.from_bridge.recv())
            .await
            .expect("a stanza in time")
            .expect("the bridge is running")
    }

    /// Sends an IQ, returns its answer (skipping presences).
    async fn ask(&mut self, xml: &str) -> Element {
        let iq = parse_element(xml).unwrap();
        let id = iq.id().unwrap().to_string();
        self.to_bridge.send(iq).await.unwrap();
        loop {
            let s = self.next_stanza().await;
            if s.name() == "iq" && s.id() == Some(id.as_str()) {
                return s;
            }
        }
    }

    fn http(&self) -> SocketAddr {
        self.bridge.http_address.unwrap()
    }
}

/// A plain HTTP/1.1 GET: (status, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn create(id: &str, endpoint: &str, conference_create: bool) -> String {
    let create = if conference_create {
        " create='true'"
    } else {
        ""
    };
    format!(
        "<iq xmlns='jabber:client' type='set' id='{id}' from='jvbbrewery@internal.auth.d/focus'>\
          <conference-modify xmlns='jitsi:colibri2' meeting-id='meet-http' name='room@conference.d'{create}>\
            <endpoint id='{endpoint}' create='true' stats-id='S-{endpoint}'>\
              <media type='audio'><payload-type xmlns='urn:xmpp:jingle:apps:rtp:1' id='111' name='opus' clockrate='48000' channels='2'/></media>\
              <transport ice-controlling='true'/>\
              <capability name='source-names'/>\
            </endpoint>\
          </conference-modify></iq>"
    )
}

fn ws_url(answer: &Element, endpoint: &str) -> String {
    answer
        .get_child("conference-modified", NS_COLIBRI2)
        .and_then(|m| {
            m.children()
                .find(|c| c.name() == "endpoint" && c.get_attr("id") == Some(endpoint))
        })
        .and_then(|e| e.get_child("transport", NS_COLIBRI2))
        .and_then(|t| t.get_child("transport", ICE_UDP))
        .and_then(|t| t.get_child("web-socket", "http://jitsi.org/protocol/colibri"))
        .and_then(|w| w.get_attr("url"))
        .expect("a web-socket url")
        .to_string()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Reads until a message of `class` arrives.
async fn until_class(ws: &mut Ws, class: &str) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["colibriClass"] == class {
            return m;
        }
    }
}

#[tokio::test]
async fn stats_health_metrics_and_colibri_ws() {
    let mut h = harness().await;
    // The brewery join comes first.
    let join = h.next_stanza().await;
    assert_eq!(join.name(), "presence");
    assert_eq!(join.to(), Some("jvbbrewery@internal.auth.d/jvb-test"));

    let (status, _) = get(h.http(), "/about/health").await;
    assert_eq!(status, 200);

    let a1 = h.ask(&create("c1", "ep1aaaaa", true)).await;
    assert_eq!(a1.type_(), Some("result"), "{a1}");
    let a2 = h.ask(&create("c2", "ep2bbbbb", false)).await;
    let url1 = ws_url(&a1, "ep1aaaaa");
    let url2 = ws_url(&a2, "ep2bbbbb");
    assert!(
        url1.starts_with(&format!("ws://{}/colibri-ws/default-id/", h.http())),
        "{url1}"
    );

    // /colibri/stats with Videobridge's names, once the snapshot is fresh.
    let mut stats = Value::Null;
    for _ in 0..30 {
        let (status, body) = get(h.http(), "/colibri/stats").await;
        assert_eq!(status, 200);
        stats = serde_json::from_str(&body).unwrap();
        if stats["participants"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats["conferences"], 1, "{stats}");
    assert_eq!(stats["participants"], 2, "{stats}");
    for key in [
        "stress_level",
        "bit_rate_download",
        "packet_rate_upload",
        "version",
        "healthy",
        "graceful_shutdown",
        "drain",
        "endpoints_with_suspended_sources",
        "num_eps_oversending",
    ] {
        assert!(stats.get(key).is_some(), "{key} in {stats}");
    }
    assert!(stats["current_timestamp"].as_u64().unwrap() > 0);
    assert_eq!(stats["conference_sizes"][2], 1, "{stats}");
    // Videobridge's debug endpoints: the bridge with its conferences, one
    // conference in full, one endpoint.
    let (status, body) = get(h.http(), "/debug").await;
    assert_eq!(status, 200);
    let debug: Value = serde_json::from_str(&body).unwrap();
    let conferences = debug["conferences"].as_object().unwrap();
    assert_eq!(conferences.len(), 1, "{debug}");
    let (conf_id, shallow) = conferences.iter().next().unwrap();
    assert_eq!(shallow["meetingId"], "meet-http");
    assert_eq!(shallow["endpoints"]["ep1aaaaa"], "S-ep1aaaaa", "{debug}");
    let (status, body) = get(h.http(), &format!("/debug/{conf_id}")).await;
    assert_eq!(status, 200);
    let full: Value = serde_json::from_str(&body).unwrap();
    let ep1 = &full["conferences"][conf_id]["endpoints"]["ep1aaaaa"];
    assert_eq!(ep1["statsId"], "S-ep1aaaaa", "{full}");
    let allocator = &ep1["bitrateController"]["bitrate_allocator"];
    assert_eq!(allocator["trustBwe"], false, "{full}");
    assert_eq!(
        allocator["allocationSettings"]["default_constraints"]["maxHeight"],
        180
    );
    assert!(full["conferences"][conf_id]["endpoints"]["ep2bbbbb"].is_object());
    let (status, body) = get(h.http(), &format!("/debug/{conf_id}/ep2bbbbb")).await;
    assert_eq!(status, 200);
    let one: Value = serde_json::from_str(&body).unwrap();
    let eps = one["conferences"][conf_id]["endpoints"]
        .as_object()
        .unwrap();
    assert_eq!(eps.keys().collect::<Vec<_>>(), vec!["ep2bbbbb"]);
    assert_eq!(get(h.http(), "/debug/nope").await.0, 404);
    assert_eq!(
        get(h.http(), &format!("/debug/{conf_id}/nope")).await.0,
        404
    );

    let (status, metrics) = get(h.http(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("jitsi_jvb_conferences 1"), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"));

    // A wrong password is refused before the upgrade.
    let bad = url1.replace("?pwd=", "?pwd=x");
    assert!(
        tokio_tungstenite::connect_async(bad.as_str())
            .await
            .is_err()
    );
    let wrong_bridge = url1.replace("/default-id/", "/other/");
    assert!(
        tokio_tungstenite::connect_async(wrong_bridge.as_str())
            .await
            .is_err()
    );

    let (mut ws1, _) = tokio_tungstenite::connect_async(url1.as_str())
        .await
        .unwrap();
    let hello = next_json(&mut ws1).await;
    assert_eq!(hello["colibriClass"], "ServerHello");
    let (mut ws2, _) = tokio_tungstenite::connect_async(url2.as_str())
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws2).await["colibriClass"], "ServerHello");

    ws1.send(Message::Text(
        r#"{"colibriClass":"EndpointMessage","to":"","msgPayload":{"type":"e2e-ping","id":7}}"#
            .into(),
    ))
    .await
    .unwrap();
    let relayed = until_class(&mut ws2, "EndpointMessage").await;
    assert_eq!(relayed["from"], "ep1aaaaa");
    assert_eq!(relayed["msgPayload"]["id"], 7);

    // Garbage does not close the channel.
    ws2.send(Message::Text("not json".into())).await.unwrap();
    ws2.send(Message::Text(
        r#"{"colibriClass":"EndpointMessage","to":"ep1aaaaa","msgPayload":{"n":2}}"#.into(),
    ))
    .await
    .unwrap();
    let relayed = until_class(&mut ws1, "EndpointMessage").await;
    assert_eq!(relayed["from"], "ep2bbbbb");
    assert_eq!(relayed["to"], "ep1aaaaa");

    // The focus expires ep2: its socket is closed by the bridge.
    let expire = "<iq xmlns='jabber:client' type='set' id='e1'><conference-modify xmlns='jitsi:colibri2' meeting-id='meet-http'>\
        <endpoint id='ep2bbbbb' expire='true'/></conference-modify></iq>";
    assert_eq!(h.ask(expire).await.type_(), Some("result"));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws2.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "ep2's channel closed");

    // Graceful shutdown: the last conference ends, the brewery is left,
    // the task finishes.
    assert!(h.bridge.handle.graceful_shutdown());
    let expire1 = "<iq xmlns='jabber:client' type='set' id='e2'><conference-modify xmlns='jitsi:colibri2' meeting-id='meet-http'>\
        <endpoint id='ep1aaaaa' expire='true'/></conference-modify></iq>";
    assert_eq!(h.ask(expire1).await.type_(), Some("result"));
    loop {
        let s = h.next_stanza().await;
        if s.name() == "presence" && s.type_() == Some("unavailable") {
            break;
        }
    }
    let http = h.http();
    tokio::time::timeout(Duration::from_secs(5), h.bridge.wait())
        .await
        .expect("the bridge stops")
        .unwrap();
    // Its HTTP listener stops with it.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(http).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the HTTP listener closed");
}
