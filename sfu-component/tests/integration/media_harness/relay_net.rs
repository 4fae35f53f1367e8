//! Two sans-IO bridges of one conference, relayed, with str0m clients on
//! each: the test plays the focus (Colibri2 stanzas exactly as Jicofo's
//! `Colibri2Session` builds them) and the network (datagrams between
//! clients and bridges, and between the bridges). Addresses are labels;
//! time is virtual (5 ms steps).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::IceTransport;
use media_signalling::xml::{
    colibri2_media_element, colibri2_media_source_element, parse_transport, transport_element,
};
use sfu_component::bridge::{Bridge, BridgeConfig, Output};
use sfu_component::media::MediaConfig;
use str0m::net::{Protocol, Receive};
use str0m::{Input, Output as RtcOutput};
use xmpp_core::Element;

use crate::media_harness::{Client, ClientSsrcs, answered_transport, jitsi_media};

const NS_COLIBRI2: &str = "jitsi:colibri2";
const NS_ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
pub const MEETING: &str = "meeting-relay";
const STEP: Duration = Duration::from_millis(5);

/// The bridges' relay ids (brewery `relay_id`) and addresses.
pub const RELAY_IDS: [&str; 2] = ["jvb-a", "jvb-b"];
const ADDRESSES: [&str; 2] = ["10.1.0.1:10000", "10.2.0.1:10000"];

pub struct RelayNet {
    pub now: Instant,
    pub bridges: [Bridge; 2],
    /// Each bridge's conference id.
    pub conferences: [String; 2],
    /// Clients and the bridge each is on.
    pub clients: Vec<(usize, Client)>,
    /// Bridge-channel messages each endpoint got, parsed.
    pub channel: BTreeMap<String, Vec<serde_json::Value>>,
    /// Datagrams that went from one bridge to the other.
    pub relayed_datagrams: usize,
    /// Whether the relay has been set up (new endpoints are then told to
    /// the other bridge).
    relayed: bool,
    /// RTP datagrams from bridge 0 to bridge 1, by SSRC.
    pub relayed_rtp: BTreeMap<u32, usize>,
    /// Messages that went over the relay bridge channel.
    pub relay_messages: usize,
    /// Datagrams from clients not yet handed to their bridge.
    to_bridges: Vec<(usize, SocketAddr, SocketAddr, Vec<u8>)>,
    iq: u32,
}

impl RelayNet {
    pub fn new() -> RelayNet {
        let now = Instant::now();
        let bridge = |i: usize| {
            let media = MediaConfig {
                candidate_addresses: vec![ADDRESSES[i].parse().unwrap()],
                endpoint_timeout: Duration::from_secs(60),
            };
            let mut config =
                BridgeConfig::new(&format!("bridge-{i}"), "ws://127.0.0.1/colibri-ws", media);
            config.relay_id = Some(RELAY_IDS[i].to_string());
            let mut b = Bridge::new(config);
            b.start(now);
            b
        };
        RelayNet {
            now,
            bridges: [bridge(0), bridge(1)],
            conferences: [String::new(), String::new()],
            clients: Vec::new(),
            channel: BTreeMap::new(),
            relayed_datagrams: 0,
            relayed: false,
            to_bridges: Vec::new(),
            relay_messages: 0,
            relayed_rtp: BTreeMap::new(),
            iq: 0,
        }
    }

    /// Sends a `conference-modify` with `children` to bridge `b`; returns
    /// the answer (which must be a result).
    pub fn conference_modify(&mut self, b: usize, children: Vec<Element>) -> Element {
        let reply = self.conference_modify_any(b, children);
        assert_eq!(reply.type_(), Some("result"), "{reply:?}");
        reply
    }

    /// [`RelayNet::conference_modify`], any answer.
    pub fn conference_modify_any(&mut self, b: usize, children: Vec<Element>) -> Element {
        self.iq += 1;
        let mut cm = Element::new("conference-modify", NS_COLIBRI2).attr("meeting-id", MEETING);
        if self.conferences[b].is_empty() {
            cm.set_attr("create", Some("true".into()));
            cm.set_attr("name", Some("room@conference.example.com".into()));
        }
        for c in children {
            cm.push_child(c);
        }
        let mut iq = Element::new("iq", "jabber:client")
            .attr("type", "set")
            .attr("id", format!("cm{}", self.iq))
            .attr("from", "focus@auth.example.com/focus")
            .attr("to", format!("jvb@auth.example.com/{}", RELAY_IDS[b]));
        iq.push_child(cm);
        self.bridges[b].handle_stanza(self.now, iq);
        let mut reply = None;
        while let Some(o) = self.bridges[b].poll_output() {
            match o {
                Output::Stanza(s) if s.name() == "iq" => reply = Some(s),
                other => self.take(b, other),
            }
        }
        if self.conferences[b].is_empty()
            && let Some(id) = self.bridges[b].conference_id(MEETING)
        {
            self.conferences[b] = id.to_string();
        }
        reply.expect("no answer to conference-modify")
    }

    /// `<endpoint id create stats-id>` with `<sources>`, as Jicofo's
    /// `ParticipantInfo.toEndpoint` writes a relayed endpoint.
    fn relayed_endpoint(id: &str, ssrcs: &ClientSsrcs, create: bool) -> Element {
        let mut ep = Element::new("endpoint", NS_COLIBRI2).attr("id", id);
        if create {
            ep.set_attr("create", Some("true".into()));
            ep.set_attr("stats-id", Some(format!("stats-{id}")));
            ep.push_child(Element::new("capability", NS_COLIBRI2).attr("name", "source-names"));
        }
        let mut sources = Element::new("sources", NS_COLIBRI2);
        for s in ssrcs.sources(id) {
            sources.push_child(colibri2_media_source_element(&s));
        }
        ep.push_child(sources);
        ep
    }

    /// Adds an endpoint on bridge `b` as Jicofo and a browser do; once the
    /// relay is up, the other bridge learns it through its relay.
    pub fn join(&mut self, b: usize, id: &str, ssrcs: ClientSsrcs) {
        let mut ep = Element::new("endpoint", NS_COLIBRI2)
            .attr("id", id)
            .attr("create", "true")
            .attr("stats-id", format!("stats-{id}"));
        for m in jitsi_media() {
            ep.push_child(colibri2_media_element(&m));
        }
        ep.push_child(Element::new("transport", NS_COLIBRI2).attr("ice-controlling", "true"));
        ep.push_child(Element::new("capability", NS_COLIBRI2).attr("name", "source-names"));
        let reply = self.conference_modify(b, vec![ep]);
        let transport = answered_transport(&reply);
        let n = self.clients.len() as u8 + 2;
        let addr: SocketAddr = format!("10.{}.0.{n}:5000", b + 1).parse().unwrap();
        let mut client = Client::new(self.now, id, addr, ssrcs.clone());
        client.use_bridge_transport(&transport);
        let ep = client.colibri2_endpoint(id, &ssrcs);
        self.conference_modify(b, vec![ep]);
        for (_, other) in &mut self.clients {
            other.expect(&ssrcs);
            client.expect(&other.ssrcs);
        }
        self.clients.push((b, client));
        let conference = self.conferences[b].clone();
        let pwd = self.bridges[b].conference(&conference).unwrap().endpoints[id]
            .pwd
            .clone();
        self.bridges[b]
            .handle_channel_open(self.now, &conference, id, &pwd)
            .unwrap();
        if self.relayed {
            let other = 1 - b;
            let mut relay = Element::new("relay", NS_COLIBRI2).attr("id", RELAY_IDS[b]);
            let mut eps = Element::new("endpoints", NS_COLIBRI2);
            eps.push_child(Self::relayed_endpoint(id, &ssrcs, true));
            relay.push_child(eps);
            self.conference_modify(other, vec![relay]);
        }
        self.settle();
    }

    /// The focus expires endpoint `id` of bridge `b`: on `b`, and on the
    /// other bridge's relay.
    pub fn leave(&mut self, b: usize, id: &str) {
        let ep = Element::new("endpoint", NS_COLIBRI2)
            .attr("id", id)
            .attr("expire", "true");
        self.conference_modify(b, vec![ep]);
        let mut relay = Element::new("relay", NS_COLIBRI2).attr("id", RELAY_IDS[b]);
        let mut eps = Element::new("endpoints", NS_COLIBRI2);
        eps.push_child(
            Element::new("endpoint", NS_COLIBRI2)
                .attr("id", id)
                .attr("expire", "true"),
        );
        relay.push_child(eps);
        self.conference_modify(1 - b, vec![relay]);
        self.clients.retain(|(_, c)| c.id != id);
        self.settle();
    }

    /// Jicofo's relay create for bridge `b` (the peer's relay id, its
    /// endpoints; `initiator` on bridge 0).
    pub fn relay_create(&self, b: usize) -> Element {
        let other = 1 - b;
        let initiator = if b == 0 { "true" } else { "false" };
        let mut relay = Element::new("relay", NS_COLIBRI2)
            .attr("id", RELAY_IDS[other])
            .attr("create", "true")
            .attr("mesh-id", "0");
        for m in jitsi_media() {
            relay.push_child(colibri2_media_element(&m));
        }
        let mut eps = Element::new("endpoints", NS_COLIBRI2);
        for (_, c) in self.clients.iter().filter(|(cb, _)| *cb == other) {
            eps.push_child(Self::relayed_endpoint(&c.id, &c.ssrcs, true));
        }
        relay.push_child(eps);
        relay.push_child(
            Element::new("transport", NS_COLIBRI2)
                .attr("use-unique-port", initiator)
                .attr("ice-controlling", initiator),
        );
        relay
    }

    /// Sets up the relay as Jicofo does: create on both, then each side's
    /// transport to the other with the DTLS role forced (bridge 0 active)
    /// and the web-socket kept for the side that connects (bridge 0).
    pub fn connect_relay(&mut self) {
        let mut transports: Vec<IceTransport> = Vec::new();
        for b in 0..2 {
            let create = self.relay_create(b);
            let reply = self.conference_modify(b, vec![create]);
            let t = reply
                .get_child("conference-modified", NS_COLIBRI2)
                .and_then(|cm| cm.get_child("relay", NS_COLIBRI2))
                .and_then(|r| r.get_child("transport", NS_COLIBRI2))
                .and_then(|t| t.get_child("transport", NS_ICE_UDP))
                .map(|t| parse_transport(t).unwrap())
                .expect("no relay transport");
            assert_eq!(t.fingerprints[0].setup.as_deref(), Some("actpass"));
            transports.push(t);
        }
        for b in 0..2 {
            let mut t = transports[1 - b].clone();
            for f in &mut t.fingerprints {
                f.setup = Some(if b == 0 { "active" } else { "passive" }.into());
            }
            if b != 0 {
                t.web_socket = None;
            }
            let mut relay = Element::new("relay", NS_COLIBRI2).attr("id", RELAY_IDS[1 - b]);
            relay.push_child(Element::new("transport", NS_COLIBRI2).child(transport_element(&t)));
            self.conference_modify(b, vec![relay]);
        }
        self.relayed = true;
        // Bridge 0 was given bridge 1's web-socket: it connects.
        assert!(self.bridges[1].take_relay_connects().is_empty());
        let connects = self.bridges[0].take_relay_connects();
        assert_eq!(connects.len(), 1);
        let (conference, relay, url) = connects[0].clone();
        assert_eq!(relay, RELAY_IDS[1]);
        let c1 = self.conferences[1].clone();
        let prefix = format!(
            "ws://127.0.0.1/colibri-relay-ws/bridge-1/{c1}/{}?pwd=",
            RELAY_IDS[0]
        );
        let pwd = url
            .strip_prefix(&prefix)
            .expect("relay web-socket URL")
            .to_string();
        let key = sfu_component::media::relay_key(RELAY_IDS[0]);
        assert!(
            self.bridges[1]
                .handle_channel_open(self.now, &c1, &key, "wrong")
                .is_err()
        );
        self.bridges[1]
            .handle_channel_open(self.now, &c1, &key, &pwd)
            .unwrap();
        self.bridges[0].handle_relay_channel_connected(self.now, &conference, &relay);
        self.settle();
    }

    pub fn client(&self, id: &str) -> &Client {
        &self.clients.iter().find(|(_, c)| c.id == id).unwrap().1
    }

    pub fn client_mut(&mut self, id: &str) -> &mut Client {
        &mut self.clients.iter_mut().find(|(_, c)| c.id == id).unwrap().1
    }

    /// A bridge-channel message from endpoint `id` on bridge `b`.
    pub fn message(&mut self, b: usize, id: &str, json: &str) {
        let conference = self.conferences[b].clone();
        self.bridges[b].handle_channel_message(self.now, &conference, id, json);
        self.settle();
    }

    pub fn messages_of(&self, id: &str, class: &str) -> Vec<&serde_json::Value> {
        self.channel
            .get(id)
            .map(|m| m.iter().filter(|v| v["colibriClass"] == class).collect())
            .unwrap_or_default()
    }

    fn take(&mut self, from: usize, output: Output) {
        match output {
            Output::Transmit {
                source,
                destination,
                contents,
            } => {
                let other = 1 - from;
                if destination == ADDRESSES[other].parse::<SocketAddr>().unwrap() {
                    self.relayed_datagrams += 1;
                    if from == 0
                        && let Some((ssrc, _)) = crate::media_harness::rtp_ssrc_seq(&contents)
                    {
                        *self.relayed_rtp.entry(ssrc).or_default() += 1;
                    }
                    self.bridges[other].handle_datagram(self.now, source, destination, &contents);
                    return;
                }
                let now = self.now;
                if let Some((b, client)) =
                    self.clients.iter_mut().find(|(_, c)| c.addr == destination)
                {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination,
                            contents: contents.as_slice().try_into().unwrap(),
                        },
                    );
                    client.rtc.handle_input(input).unwrap();
                    // str0m's RTP mode holds one received packet until the
                    // next poll: poll after every input.
                    drain(now, *b, client, &mut self.to_bridges);
                }
            }
            Output::Channel {
                endpoint, message, ..
            } if endpoint.starts_with("relay:") => {
                // The relay bridge channel: to the other bridge, where the
                // relay is keyed by this bridge's relay id.
                self.relay_messages += 1;
                let other = 1 - from;
                let conference = self.conferences[other].clone();
                let key = sfu_component::media::relay_key(RELAY_IDS[from]);
                self.bridges[other].handle_channel_message(self.now, &conference, &key, &message);
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

    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut to_bridge = std::mem::take(&mut self.to_bridges);
            let now = self.now;
            for (b, client) in &mut self.clients {
                drain(now, *b, client, &mut to_bridge);
            }
            let mut moved = !to_bridge.is_empty();
            for (b, source, destination, contents) in to_bridge {
                self.bridges[b].handle_datagram(now, source, destination, &contents);
            }
            for b in 0..2 {
                while let Some(o) = self.bridges[b].poll_output() {
                    moved = true;
                    self.take(b, o);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances virtual time by `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            for (_, client) in &mut self.clients {
                if client.timeout.is_some_and(|t| t <= now) {
                    client.rtc.handle_input(Input::Timeout(now)).unwrap();
                }
                client.send_media(now);
                client.timeout = Some(now);
            }
            for b in &mut self.bridges {
                if b.next_timeout().is_some_and(|t| t <= now) {
                    b.handle_timeout(now);
                }
            }
            self.settle();
        }
    }

    /// Runs until every client is connected (at most 5 s virtual).
    pub fn connect_all(&mut self) {
        for _ in 0..1000 {
            if self.clients.iter().all(|(_, c)| c.connected) {
                return;
            }
            self.run_for(STEP);
        }
        panic!("clients did not connect");
    }
}

/// Polls a client until it waits; its datagrams go to `out` for bridge `b`.
fn drain(
    now: Instant,
    b: usize,
    client: &mut Client,
    out: &mut Vec<(usize, SocketAddr, SocketAddr, Vec<u8>)>,
) {
    loop {
        match client.rtc.poll_output().unwrap() {
            RtcOutput::Timeout(t) => {
                client.timeout = Some(t);
                return;
            }
            RtcOutput::Transmit(t) => out.push((b, t.source, t.destination, t.contents.into())),
            RtcOutput::Event(e) => client.handle_event(now, e),
        }
    }
}
