//! A whole bridge in memory for allocation tests: the sans-IO `Bridge`
//! (Colibri2 stanzas from a test focus, bridge-channel messages, UDP
//! datagrams) with the media harness' str0m clients standing in for
//! browsers. Addresses are labels; time is virtual (5 ms steps).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::xml::colibri2_media_element;
use sfu_component::bridge::{Bridge, BridgeConfig, Output};
use sfu_component::media::MediaConfig;
use str0m::media::Pt;
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Input, Output as RtcOutput};
use xmpp_core::Element;

use crate::media_harness::{BRIDGE, Client, ClientSsrcs, answered_transport, jitsi_media};

const NS_COLIBRI2: &str = "jitsi:colibri2";
const NS_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
pub const MEETING: &str = "meeting-1";
const STEP: Duration = Duration::from_millis(5);

/// Heights a simulcast sender of [`CallNet::send_simulcast`] encodes.
pub const HEIGHTS: [u16; 3] = [180, 360, 720];

/// A sender's next picture id and sequence number per layer, and when its
/// next frame is due.
type SimulcastSender = (Vec<u16>, Vec<u64>, Option<Instant>);

pub struct CallNet {
    pub now: Instant,
    pub bridge: Bridge,
    pub conference: String,
    pub clients: Vec<Client>,
    /// Bridge-channel messages each endpoint got, parsed.
    pub channel: BTreeMap<String, Vec<serde_json::Value>>,
    /// Senders whose video the test writes itself (simulcast with real
    /// heights), by client id.
    simulcast: BTreeMap<String, SimulcastSender>,
    /// Bytes of padding each simulcast layer's frames carry (sets the
    /// layers' bit rates).
    pub frame_padding: [usize; 3],
    /// Shaped bridge → client links, by client id.
    pub shapers: BTreeMap<String, Shaper>,
    /// Datagrams on a shaped link: (delivery time, source, destination,
    /// contents).
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    iq: u32,
}

/// A shaped bridge → client link: datagrams queue behind each other at
/// `bps` (so delay grows as a bottleneck's does) and are dropped once the
/// queue holds more than `max_queue` of sending time.
#[derive(Debug, Clone)]
pub struct Shaper {
    pub bps: u64,
    pub max_queue: Duration,
    busy_until: Option<Instant>,
    pub dropped: usize,
}

impl Shaper {
    pub fn new(bps: u64) -> Shaper {
        Shaper {
            bps,
            max_queue: Duration::from_millis(300),
            busy_until: None,
            dropped: 0,
        }
    }

    /// When a datagram of `len` bytes arriving at `now` leaves the link,
    /// `None` if the queue is full.
    fn departure(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let start = self.busy_until.filter(|t| *t > now).unwrap_or(now);
        if start.saturating_duration_since(now) > self.max_queue {
            self.dropped += 1;
            return None;
        }
        let done = start + Duration::from_secs_f64(len as f64 * 8.0 / self.bps as f64);
        self.busy_until = Some(done);
        Some(done)
    }
}

impl CallNet {
    pub fn new() -> CallNet {
        let media = MediaConfig {
            candidate_addresses: vec![BRIDGE.parse().unwrap()],
            endpoint_timeout: Duration::from_secs(60),
        };
        let config = BridgeConfig::new("jvb", "ws://127.0.0.1/colibri-ws", media);
        let now = Instant::now();
        let mut bridge = Bridge::new(config);
        bridge.start(now);
        CallNet {
            now,
            bridge,
            conference: String::new(),
            clients: Vec::new(),
            channel: BTreeMap::new(),
            simulcast: BTreeMap::new(),
            frame_padding: [0; 3],
            shapers: BTreeMap::new(),
            in_flight: Vec::new(),
            iq: 0,
        }
    }

    fn conference_modify(&mut self, endpoint: Element, create: bool) -> Element {
        self.iq += 1;
        let mut cm = Element::new("conference-modify", NS_COLIBRI2).attr("meeting-id", MEETING);
        if create {
            cm.set_attr("create", Some("true".into()));
        }
        cm.push_child(endpoint);
        let iq = Element::new("iq", "jabber:client")
            .attr("type", "set")
            .attr("id", format!("cm{}", self.iq))
            .attr("from", "focus@auth.example.com/focus")
            .attr("to", "jvb@auth.example.com/jvb");
        let mut iq = iq;
        iq.push_child(cm);
        self.bridge.handle_stanza(self.now, iq);
        let mut reply = None;
        while let Some(o) = self.bridge.poll_output() {
            match o {
                Output::Stanza(s) if s.name() == "iq" => reply = Some(s),
                other => self.take(other),
            }
        }
        let reply = reply.expect("no answer to conference-modify");
        assert_eq!(reply.type_(), Some("result"), "{reply:?}");
        reply
    }

    /// Adds an endpoint as Jicofo and a browser do: allocate with media,
    /// then the client's transport and sources; every client expects the
    /// others' streams; the bridge channel opens.
    pub fn join(&mut self, id: &str, ssrcs: ClientSsrcs) {
        let create = self.clients.is_empty();
        let mut ep = Element::new("endpoint", NS_COLIBRI2)
            .attr("id", id)
            .attr("create", "true")
            .attr("stats-id", format!("stats-{id}"));
        for m in jitsi_media() {
            ep.push_child(colibri2_media_element(&m));
        }
        ep.push_child(Element::new("transport", NS_COLIBRI2).attr("ice-controlling", "true"));
        ep.push_child(Element::new("capability", NS_COLIBRI2).attr("name", "source-names"));
        let reply = self.conference_modify(ep, create);
        let transport = answered_transport(&reply);
        if self.conference.is_empty() {
            self.conference = self.bridge.conference_id(MEETING).unwrap().to_string();
        }
        let n = self.clients.len() as u8 + 2;
        let addr: SocketAddr = format!("10.1.0.{n}:5000").parse().unwrap();
        let mut client = Client::new(self.now, id, addr, ssrcs.clone());
        client.use_bridge_transport(&transport);
        let ep = client.colibri2_endpoint(id, &ssrcs);
        self.conference_modify(ep, false);
        for other in &mut self.clients {
            other.expect(&ssrcs);
            client.expect(&other.ssrcs);
        }
        self.clients.push(client);
        let pwd = self.bridge.conference(&self.conference).unwrap().endpoints[id]
            .pwd
            .clone();
        let conference = self.conference.clone();
        self.bridge
            .handle_channel_open(self.now, &conference, id, &pwd)
            .unwrap();
        self.settle();
    }

    /// The test writes this client's video: three simulcast layers whose
    /// key frames carry 320x180, 640x360 and 1280x720.
    pub fn send_simulcast(&mut self, id: &str) {
        let layers = self.client(id).ssrcs.video.len();
        self.client_mut(id).sending = false;
        self.simulcast.insert(
            id.to_string(),
            (
                (0..layers as u16).map(|l| 100 * l + 1).collect(),
                vec![1; layers],
                None,
            ),
        );
    }

    pub fn client(&self, id: &str) -> &Client {
        self.clients.iter().find(|c| c.id == id).unwrap()
    }

    pub fn client_mut(&mut self, id: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.id == id).unwrap()
    }

    /// A bridge-channel message from `id`.
    pub fn message(&mut self, id: &str, json: &str) {
        let conference = self.conference.clone();
        self.bridge
            .handle_channel_message(self.now, &conference, id, json);
        self.settle();
    }

    /// The messages of `class` endpoint `id` got.
    pub fn messages_of(&self, id: &str, class: &str) -> Vec<&serde_json::Value> {
        self.channel
            .get(id)
            .map(|m| m.iter().filter(|v| v["colibriClass"] == class).collect())
            .unwrap_or_default()
    }

    fn take(&mut self, output: Output) {
        match output {
            Output::Transmit {
                source,
                destination,
                contents,
            } => {
                let now = self.now;
                let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination) else {
                    return;
                };
                if let Some(shaper) = self.shapers.get_mut(&client.id) {
                    if let Some(at) = shaper.departure(now, contents.len()) {
                        self.in_flight.push((at, source, destination, contents));
                    }
                    return;
                }
                deliver(now, client, source, destination, &contents);
            }
            Output::Channel {
                endpoint, message, ..
            } => {
                let v: serde_json::Value = serde_json::from_str(&message).unwrap();
                self.channel.entry(endpoint).or_default().push(v);
            }
            _ => {}
        }
    }

    /// Hands the shaped links' datagrams that are due to their clients.
    fn deliver_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(at, ..)| *at <= now);
        self.in_flight = later;
        for (_, source, destination, contents) in due {
            if let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination) {
                deliver(now, client, source, destination, &contents);
            }
        }
    }

    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut to_bridge = Vec::new();
            for client in &mut self.clients {
                drain(self.now, client, &mut to_bridge);
            }
            let mut moved = !to_bridge.is_empty();
            for (source, destination, contents) in to_bridge {
                self.bridge
                    .handle_datagram(self.now, source, destination, &contents);
            }
            while let Some(o) = self.bridge.poll_output() {
                moved = true;
                self.take(o);
            }
            if !moved {
                return;
            }
        }
    }

    fn write_simulcast(&mut self) {
        let now = self.now;
        let padding = self.frame_padding;
        for (id, (pids, seqs, next)) in self.simulcast.iter_mut() {
            if next.is_some_and(|t| t > now) {
                continue;
            }
            *next = Some(now + Duration::from_millis(33));
            let Some(client) = self.clients.iter_mut().find(|c| c.id == *id) else {
                continue;
            };
            if !client.connected {
                continue;
            }
            for layer in 0..seqs.len() {
                let ssrc = client.ssrcs.video[layer];
                let seq = seqs[layer];
                seqs[layer] += 1;
                // A key frame when asked for, and every second.
                let key =
                    std::mem::replace(&mut client.keyframe_due[layer], false) || seq % 30 == 1;
                let pid = pids[layer];
                pids[layer] = (pid + 1) & 0x7fff;
                let mut payload = vp8_frame(pid, layer, key);
                payload.resize(payload.len() + padding[layer.min(2)], 0);
                let ts = (seq * 3000) as u32 + 100_000 * layer as u32;
                if let Some(tx) = client.rtc.direct_api().stream_tx(&Ssrc::from(ssrc)) {
                    tx.write_rtp(
                        RtpWrite::new(Pt::new_with_value(100), seq.into(), ts, now, payload)
                            .marker(true)
                            .nackable(true),
                    );
                }
            }
        }
    }

    /// Advances virtual time by `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            for client in &mut self.clients {
                if client.timeout.is_some_and(|t| t <= now) {
                    client.rtc.handle_input(Input::Timeout(now)).unwrap();
                }
                client.send_media(now);
                client.timeout = Some(now);
            }
            self.write_simulcast();
            self.deliver_due();
            if self.bridge.next_timeout().is_some_and(|t| t <= now) {
                self.bridge.handle_timeout(now);
            }
            self.settle();
        }
    }

    pub fn connect_all(&mut self) {
        for _ in 0..1000 {
            if self.clients.iter().all(|c| c.connected) {
                return;
            }
            self.run_for(STEP);
        }
        panic!("clients did not connect");
    }
}

fn deliver(
    now: Instant,
    client: &mut Client,
    source: SocketAddr,
    destination: SocketAddr,
    contents: &[u8],
) {
    let input = Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents: contents.try_into().unwrap(),
        },
    );
    client.rtc.handle_input(input).unwrap();
}

fn drain(now: Instant, client: &mut Client, out: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
    loop {
        match client.rtc.poll_output().unwrap() {
            RtcOutput::Timeout(t) => {
                client.timeout = Some(t);
                return;
            }
            RtcOutput::Transmit(t) => out.push((t.source, t.destination, t.contents.into())),
            RtcOutput::Event(e) => client.handle_event(now, e),
        }
    }
}

/// A one-packet VP8 frame of `layer` (RFC 7741 descriptor: 15-bit picture
/// id, TL0PICIDX, TID 0; on a key frame the frame header with the layer's
/// size), then the layer tag at offset 16 as the media harness' frames.
pub fn vp8_frame(picture_id: u16, layer: usize, key: bool) -> Vec<u8> {
    let height = HEIGHTS[layer.min(2)];
    let width = height * 16 / 9;
    let [w0, w1] = width.to_le_bytes();
    let [h0, h1] = height.to_le_bytes();
    vec![
        0x90,
        0xe0,
        0x80 | (picture_id >> 8) as u8,
        picture_id as u8,
        (picture_id % 256) as u8,
        0x00,
        if key { 0x10 } else { 0x11 },
        0,
        0,
        0x9d,
        0x01,
        0x2a,
        w0,
        w1,
        h0,
        h1,
        layer as u8,
    ]
}
