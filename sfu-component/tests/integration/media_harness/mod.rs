//! A test network for the media core: str0m clients behaving as browsers
//! do towards Videobridge (ICE controlled, DTLS active, Opus with the
//! audio-level extension, VP8 with an FID retransmission SSRC, optionally
//! three simulcast layers) exchange datagrams with one `MediaCore` in
//! memory. Addresses are labels only: no socket is opened. Time is virtual
//! and advanced in small steps by [`Net::run_for`].

#![allow(dead_code)]

mod client;
pub mod layered;
mod shaper;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{HeaderExtension, MediaDescription, MediaKind, PayloadType, RtcpFeedback};
use sfu_component::media::{MediaConfig, MediaCore, MediaEvent, MediaOutput};
use str0m::net::{Protocol, Receive};
use str0m::{Input, Output};

#[allow(unused_imports)]
pub use shaper::Shaper;

#[allow(unused_imports)]
pub use client::{
    Client, ClientSsrcs, Received, answered_transport, audio_payload, client_transport, layer_of,
    picture_id_of, tl0_of, vp8_payload,
};

pub const CONFERENCE: &str = "room1@conference.example.com";
pub const BRIDGE: &str = "10.1.0.1:10000";
const STEP: Duration = Duration::from_millis(5);

/// Jitsi's media description as Jicofo offers it (Opus 111, VP8 100 with
/// rtx 96; audio-level 1, abs-send-time 3, transport-cc 5).
pub fn jitsi_media() -> Vec<MediaDescription> {
    let fb = |kind: &str, sub: Option<&str>| RtcpFeedback {
        kind: kind.into(),
        subtype: sub.map(Into::into),
    };
    let ext = |id, uri: &str| HeaderExtension {
        id,
        uri: uri.into(),
    };
    vec![
        MediaDescription {
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
                feedback: vec![fb("transport-cc", None)],
            }],
            header_extensions: vec![
                ext(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                ext(
                    5,
                    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                ),
            ],
        },
        MediaDescription {
            kind: MediaKind::Video,
            payload_types: vec![
                PayloadType {
                    id: 100,
                    name: "VP8".into(),
                    clockrate: 90000,
                    channels: None,
                    parameters: vec![],
                    feedback: vec![
                        fb("ccm", Some("fir")),
                        fb("nack", None),
                        fb("nack", Some("pli")),
                        fb("goog-remb", None),
                        fb("transport-cc", None),
                    ],
                },
                PayloadType {
                    id: 96,
                    name: "rtx".into(),
                    clockrate: 90000,
                    channels: None,
                    parameters: vec![("apt".into(), "100".into())],
                    feedback: vec![],
                },
            ],
            header_extensions: vec![
                ext(
                    3,
                    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                ),
                ext(
                    5,
                    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                ),
                // The focus offers mid; the bridge must not map it.
                ext(10, "urn:ietf:params:rtp-hdrext:sdes:mid"),
            ],
        },
    ]
}

/// The RTP SSRC and sequence number of an SRTP datagram, if it is RTP.
pub fn rtp_ssrc_seq(datagram: &[u8]) -> Option<(u32, u16)> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 || (192..=223).contains(&datagram[1]) {
        return None;
    }
    let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
    let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
    Some((ssrc, seq))
}

type DropFilter = Box<dyn FnMut(&str, &[u8]) -> bool>;

/// Polls a client until it waits; its datagrams go to `to_core` (or
/// vanish when it is offline).
fn drain(now: Instant, client: &mut Client, to_core: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
    loop {
        match client.rtc.poll_output().unwrap() {
            Output::Timeout(t) => {
                client.timeout = Some(t);
                return;
            }
            Output::Transmit(t) => {
                if client.online {
                    to_core.push((t.source, t.destination, t.contents.into()));
                }
            }
            Output::Event(e) => client.handle_event(now, e),
        }
    }
}

/// The bridge and its clients.
pub struct Net {
    pub now: Instant,
    pub core: MediaCore,
    pub clients: Vec<Client>,
    pub events: Vec<MediaEvent>,
    /// Called for each datagram from the bridge with the receiving client's
    /// id; true drops it.
    pub drop_to_client: Option<DropFilter>,
    pub dropped: usize,
    /// Rate limits on the link from the bridge to a client (by id).
    pub shapers: Vec<(String, Shaper)>,
    /// Labels of clients to join without transport-wide feedback.
    pub no_feedback: Vec<String>,
}

impl Net {
    pub fn new(endpoint_timeout: Duration) -> Net {
        let now = Instant::now();
        let core = MediaCore::new(MediaConfig {
            candidate_addresses: vec![BRIDGE.parse().unwrap()],
            endpoint_timeout,
        });
        Net {
            now,
            core,
            clients: Vec::new(),
            events: Vec::new(),
            drop_to_client: None,
            dropped: 0,
            shapers: Vec::new(),
            no_feedback: Vec::new(),
        }
    }

    /// Adds a client the way Jicofo and a browser set one up: allocation,
    /// media, the client's transport, its sources; the client expects every
    /// existing client's streams and they expect its.
    pub fn join(&mut self, id: &str, ssrcs: ClientSsrcs) -> usize {
        self.join_with(id, ssrcs, true)
    }

    /// [`Net::join`]; without `signal_candidates` the client's transport
    /// carries no candidate (as Chromium's mDNS-only host candidates reach
    /// the bridge: unusable), so the bridge must learn its address from
    /// its checks (peer reflexive).
    pub fn join_with(&mut self, id: &str, ssrcs: ClientSsrcs, signal_candidates: bool) -> usize {
        self.join_full(id, CONFERENCE, id, ssrcs, signal_candidates)
    }

    /// A client labelled `label` joining conference `room` as `endpoint`;
    /// it expects the streams of the clients of the same room only.
    pub fn join_full(
        &mut self,
        label: &str,
        room: &str,
        endpoint: &str,
        ssrcs: ClientSsrcs,
        signal_candidates: bool,
    ) -> usize {
        let id = endpoint;
        let n = self.clients.len() as u8 + 2;
        let addr: SocketAddr = format!("10.1.0.{n}:5000").parse().unwrap();
        let bridge = self.core.create_endpoint(self.now, room, id, true).unwrap();
        let twcc = !self.no_feedback.iter().any(|l| l == label);
        let mut client = Client::with_feedback(self.now, label, addr, ssrcs.clone(), twcc);
        client.room = room.to_string();
        client.use_bridge_transport(&bridge);
        self.core.set_media(room, id, &jitsi_media()).unwrap();
        let mut transport = client.transport();
        if !signal_candidates {
            transport.candidates.clear();
        }
        self.core
            .set_remote_transport(self.now, room, id, &transport)
            .unwrap();
        self.core.set_sources(room, id, &ssrcs.sources(id)).unwrap();
        for other in self.clients.iter_mut().filter(|c| c.room == room) {
            other.expect(&ssrcs);
            client.expect(&other.ssrcs);
        }
        self.clients.push(client);
        self.clients.len() - 1
    }

    pub fn client(&self, id: &str) -> &Client {
        self.clients.iter().find(|c| c.id == id).unwrap()
    }

    pub fn client_mut(&mut self, id: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.id == id).unwrap()
    }

    /// Moves datagrams until nobody has anything to send now. Each client
    /// is polled right after every input (str0m's RTP mode holds one
    /// received packet until the next poll).
    fn settle(&mut self) {
        let mut to_core: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        // What the shapers let through by now.
        let now = self.now;
        for (id, shaper) in &mut self.shapers {
            let Some(client) = self.clients.iter_mut().find(|c| c.id == *id) else {
                continue;
            };
            while let Some((source, destination, contents)) = shaper.pop_due(now) {
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
                drain(now, client, &mut to_core);
            }
        }
        for _ in 0..1000 {
            for client in &mut self.clients {
                drain(self.now, client, &mut to_core);
            }
            let mut moved = !to_core.is_empty();
            for (source, destination, contents) in to_core.drain(..) {
                self.core
                    .handle_receive(self.now, source, destination, &contents);
            }
            while let Some(output) = self.core.poll_output() {
                moved = true;
                match output {
                    MediaOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        let Some(client) = self.clients.iter_mut().find(|c| c.addr == destination)
                        else {
                            continue;
                        };
                        if !client.online {
                            continue;
                        }
                        if let Some(filter) = self.drop_to_client.as_mut()
                            && filter(&client.id, &contents)
                        {
                            self.dropped += 1;
                            continue;
                        }
                        if let Some((_, shaper)) =
                            self.shapers.iter_mut().find(|(id, _)| *id == client.id)
                        {
                            shaper.push(self.now, source, destination, contents);
                            continue;
                        }
                        let input = Input::Receive(
                            self.now,
                            Receive {
                                proto: Protocol::Udp,
                                source,
                                destination,
                                contents: contents.as_slice().try_into().unwrap(),
                            },
                        );
                        client.rtc.handle_input(input).unwrap();
                        drain(self.now, client, &mut to_core);
                    }
                    MediaOutput::Event(e) => self.events.push(e),
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances virtual time by `duration` in 5 ms steps.
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
            if self.core.next_timeout().is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
            }
            self.settle();
        }
    }

    /// Runs until every client is connected (at most 5 s virtual).
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

/// The ids of the one-byte-form header extensions of an SRTP datagram (the
/// RTP header, extensions included, is not encrypted).
pub fn rtp_extension_ids(datagram: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    if rtp_ssrc_seq(datagram).is_none() || datagram[0] & 0x10 == 0 {
        return ids;
    }
    let start = 12 + 4 * usize::from(datagram[0] & 0x0f);
    let Some(header) = datagram.get(start..start + 4) else {
        return ids;
    };
    if header[0..2] != [0xbe, 0xde] {
        return ids;
    }
    let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let Some(body) = datagram.get(start + 4..start + 4 + words * 4) else {
        return ids;
    };
    let mut at = 0;
    while at < body.len() {
        let b = body[at];
        if b == 0 {
            at += 1;
            continue;
        }
        ids.push(b >> 4);
        at += 1 + usize::from(b & 0x0f) + 1;
    }
    ids
}
