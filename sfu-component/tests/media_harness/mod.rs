//! A test network for the media core: str0m clients behaving as browsers
//! do towards Videobridge (ICE controlled, DTLS active, Opus with the
//! audio-level extension, VP8 with an FID retransmission SSRC, optionally
//! three simulcast layers) exchange datagrams with one `MediaCore` in
//! memory. Addresses are labels only: no socket is opened. Time is virtual
//! and advanced in small steps by [`Net::run_for`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{
    Candidate, Fingerprint, HeaderExtension, IceTransport, MediaDescription, MediaKind,
    PayloadType, RtcpFeedback, Source, SsrcGroup,
};
use sfu_component::media::{MediaConfig, MediaCore, MediaEvent, MediaOutput};
use str0m::format::Codec;
use str0m::media::{Frequency, KeyframeRequestKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, Ssrc};
use str0m::{Event, IceCreds, Input, Output, Rtc};

pub const CONFERENCE: &str = "room1@conference.example.com";
pub const BRIDGE: &str = "10.1.0.1:10000";
const STEP: Duration = Duration::from_millis(5);
const AUDIO_MID: &str = "0";
const VIDEO_MID: &str = "1";

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

/// A received RTP packet at a client.
#[derive(Debug, Clone)]
pub struct Received {
    pub ssrc: u32,
    pub seq: u64,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    pub at: Instant,
}

/// The SSRCs a client sends.
#[derive(Debug, Clone)]
pub struct ClientSsrcs {
    pub audio: u32,
    /// Video layers, lowest first (one without simulcast).
    pub video: Vec<u32>,
    /// The FID retransmission SSRC of each video layer.
    pub rtx: Vec<u32>,
}

impl ClientSsrcs {
    pub fn new(base: u32, layers: usize) -> ClientSsrcs {
        ClientSsrcs {
            audio: base,
            video: (0..layers as u32).map(|i| base + 10 + i).collect(),
            rtx: (0..layers as u32).map(|i| base + 20 + i).collect(),
        }
    }

    /// The sources as the focus signals them to the bridge.
    pub fn sources(&self, endpoint: &str) -> Vec<Source> {
        let mut video_ssrcs = self.video.clone();
        video_ssrcs.extend(self.rtx.iter().copied());
        let mut groups: Vec<SsrcGroup> = self
            .video
            .iter()
            .zip(&self.rtx)
            .map(|(v, r)| SsrcGroup {
                semantics: "FID".into(),
                ssrcs: vec![*v, *r],
            })
            .collect();
        if self.video.len() > 1 {
            groups.insert(
                0,
                SsrcGroup {
                    semantics: "SIM".into(),
                    ssrcs: self.video.clone(),
                },
            );
        }
        vec![
            Source {
                kind: MediaKind::Audio,
                name: format!("{endpoint}-a0"),
                ssrcs: vec![self.audio],
                groups: vec![],
                video_type: None,
                ..source_defaults()
            },
            Source {
                kind: MediaKind::Video,
                name: format!("{endpoint}-v0"),
                ssrcs: video_ssrcs,
                groups,
                video_type: Some("camera".into()),
                ..source_defaults()
            },
        ]
    }
}

fn source_defaults() -> Source {
    Source {
        kind: MediaKind::Audio,
        name: String::new(),
        ssrcs: vec![],
        groups: vec![],
        video_type: None,
        msid: None,
    }
}

/// A str0m client standing in for a browser.
pub struct Client {
    pub id: String,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub ssrcs: ClientSsrcs,
    /// Whether it is on the network (false: datagrams to and from it vanish).
    pub online: bool,
    /// Whether it sends media in `Net::run_for`.
    pub sending: bool,
    /// Audio level sent (str0m's sign: 0 loudest, -127 silence).
    pub level: i8,
    /// Layers it sends (indices into `ssrcs.video`).
    pub active_layers: Vec<usize>,
    pub connected: bool,
    pub received: Vec<Received>,
    /// Keyframe requests it got, by layer index.
    pub keyframe_requests: Vec<usize>,
    /// Whether the next frame of a layer is a key frame.
    pub keyframe_due: Vec<bool>,
    audio_seq: u64,
    video_seq: Vec<u64>,
    picture_id: Vec<u16>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    timeout: Option<Instant>,
}

impl Client {
    fn new(now: Instant, id: &str, addr: SocketAddr, ssrcs: ClientSsrcs) -> Client {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(3, Extension::AbsoluteSendTime)
            .set_extension(5, Extension::TransportSequenceNumber);
        let codecs = config.codec_config();
        codecs.add_config(
            Pt::new_with_value(111),
            None,
            Codec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            Default::default(),
        );
        codecs.add_config(
            Pt::new_with_value(100),
            Some(Pt::new_with_value(96)),
            Codec::Vp8,
            Frequency::NINETY_KHZ,
            None,
            Default::default(),
        );
        let mut rtc = config.build(now);
        rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").unwrap());
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(false);
            api.declare_media(Mid::from(AUDIO_MID), str0m::media::MediaKind::Audio);
            api.declare_media(Mid::from(VIDEO_MID), str0m::media::MediaKind::Video);
            api.declare_stream_tx(Ssrc::from(ssrcs.audio), None, Mid::from(AUDIO_MID), None);
            for (i, (v, r)) in ssrcs.video.iter().zip(&ssrcs.rtx).enumerate() {
                let rid = Rid::from(format!("l{i}").as_str());
                api.declare_stream_tx(
                    Ssrc::from(*v),
                    Some(Ssrc::from(*r)),
                    Mid::from(VIDEO_MID),
                    Some(rid),
                );
            }
        }
        let layers = ssrcs.video.len();
        Client {
            id: id.to_string(),
            addr,
            rtc,
            online: true,
            sending: true,
            level: -110,
            active_layers: (0..layers).collect(),
            connected: false,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            keyframe_due: vec![true; layers],
            audio_seq: 1,
            video_seq: vec![1; layers],
            picture_id: (0..layers as u16).map(|i| 1000 * i + 7).collect(),
            next_audio: Some(now),
            next_video: Some(now),
            timeout: Some(now),
            ssrcs,
        }
    }

    /// The client's transport as its session-accept carries it.
    fn transport(&mut self) -> IceTransport {
        let creds = self.rtc.direct_api().local_ice_credentials();
        let fp = self.rtc.direct_api().local_dtls_fingerprint().clone();
        let value = fp
            .bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        IceTransport {
            ufrag: creds.ufrag,
            pwd: creds.pass,
            fingerprints: vec![Fingerprint {
                hash: "sha-256".into(),
                value,
                setup: Some("active".into()),
            }],
            candidates: vec![Candidate {
                foundation: "1".into(),
                component: 1,
                protocol: "udp".into(),
                priority: 2_130_706_431,
                address: self.addr,
                kind: "host".into(),
                generation: 0,
                id: None,
            }],
            rtcp_mux: true,
            web_socket: None,
        }
    }

    /// Expects another client's streams (as the focus' source-add tells).
    pub fn expect(&mut self, other: &ClientSsrcs) {
        let mut api = self.rtc.direct_api();
        api.expect_stream_rx(Ssrc::from(other.audio), None, Mid::from(AUDIO_MID), None);
        if let (Some(v), Some(r)) = (other.video.first(), other.rtx.first()) {
            api.expect_stream_rx(
                Ssrc::from(*v),
                Some(Ssrc::from(*r)),
                Mid::from(VIDEO_MID),
                None,
            );
        }
    }

    /// Packets received on `ssrc`.
    pub fn received_on(&self, ssrc: u32) -> Vec<&Received> {
        self.received.iter().filter(|r| r.ssrc == ssrc).collect()
    }

    pub fn request_keyframe(&mut self, ssrc: u32) {
        if let Some(rx) = self.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
    }

    fn send_media(&mut self, now: Instant) {
        if !self.sending || !self.connected {
            return;
        }
        if self.next_audio.is_some_and(|t| t <= now) {
            self.next_audio = Some(now + Duration::from_millis(20));
            let seq = self.audio_seq;
            self.audio_seq += 1;
            let ext = ExtensionValues {
                audio_level: Some(self.level),
                voice_activity: Some(self.level > -60),
                ..ExtensionValues::default()
            };
            let payload = audio_payload(self.ssrcs.audio, seq);
            if let Some(tx) = self
                .rtc
                .direct_api()
                .stream_tx(&Ssrc::from(self.ssrcs.audio))
            {
                tx.write_rtp(
                    RtpWrite::new(
                        Pt::new_with_value(111),
                        seq.into(),
                        (seq * 960) as u32,
                        now,
                        payload,
                    )
                    .ext_vals(ext),
                );
            }
        }
        if self.next_video.is_some_and(|t| t <= now) {
            self.next_video = Some(now + Duration::from_millis(33));
            for layer in self.active_layers.clone() {
                let ssrc = self.ssrcs.video[layer];
                let seq = self.video_seq[layer];
                self.video_seq[layer] += 1;
                let key = std::mem::replace(&mut self.keyframe_due[layer], false);
                let pid = self.picture_id[layer];
                self.picture_id[layer] = (pid + 1) & 0x7fff;
                let payload = vp8_payload(pid, layer as u8, key, ssrc, seq);
                let ts = (seq * 3000) as u32 + 100_000 * layer as u32;
                if let Some(tx) = self.rtc.direct_api().stream_tx(&Ssrc::from(ssrc)) {
                    tx.write_rtp(
                        RtpWrite::new(Pt::new_with_value(100), seq.into(), ts, now, payload)
                            .marker(true)
                            .nackable(true),
                    );
                }
            }
        }
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Connected => self.connected = true,
            Event::RtpPacket(p) => self.received.push(Received {
                ssrc: *p.header.ssrc,
                seq: *p.seq_no,
                timestamp: p.header.timestamp,
                payload: p.payload.to_vec(),
                at: now,
            }),
            Event::KeyframeRequest(req) => {
                let layer = req
                    .rid
                    .and_then(|rid| {
                        rid.to_string()
                            .trim_start_matches('l')
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0);
                self.keyframe_requests.push(layer);
                if let Some(due) = self.keyframe_due.get_mut(layer) {
                    *due = true;
                }
            }
            _ => {}
        }
    }
}

/// Audio payload: the SSRC and sequence number, so content can be checked.
pub fn audio_payload(ssrc: u32, seq: u64) -> Vec<u8> {
    let mut p = vec![0xA0];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p
}

/// A one-packet VP8 frame: descriptor with 15-bit picture id, TL0PICIDX and
/// TID,
/// then a frame header (key frame or not), then the layer, SSRC and seq.
pub fn vp8_payload(picture_id: u16, layer: u8, key: bool, ssrc: u32, seq: u64) -> Vec<u8> {
    let mut p = vec![
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
        0x40,
        0x01,
        0xf0,
        0x00,
    ];
    p.push(layer);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p
}

/// The 15-bit picture id of a VP8 payload made by [`vp8_payload`].
pub fn picture_id_of(payload: &[u8]) -> u16 {
    (u16::from(payload[2] & 0x7f) << 8) | u16::from(payload[3])
}

/// The layer tag of a VP8 payload made by [`vp8_payload`].
pub fn layer_of(payload: &[u8]) -> u8 {
    payload[16]
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
        }
    }

    /// Adds a client the way Jicofo and a browser set one up: allocation,
    /// media, the client's transport, its sources; the client expects every
    /// existing client's streams and they expect its.
    pub fn join(&mut self, id: &str, ssrcs: ClientSsrcs) -> usize {
        let n = self.clients.len() as u8 + 2;
        let addr: SocketAddr = format!("10.1.0.{n}:5000").parse().unwrap();
        let bridge = self
            .core
            .create_endpoint(self.now, CONFERENCE, id, true)
            .unwrap();
        let mut client = Client::new(self.now, id, addr, ssrcs.clone());
        {
            let mut api = client.rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: bridge.ufrag.clone(),
                pass: bridge.pwd.clone(),
            });
            let fp: str0m::config::Fingerprint =
                format!("sha-256 {}", bridge.fingerprints[0].value)
                    .parse()
                    .unwrap();
            api.set_remote_fingerprint(fp);
            api.start_dtls(true).unwrap();
        }
        for c in &bridge.candidates {
            client
                .rtc
                .add_remote_candidate(str0m::Candidate::host(c.address, "udp").unwrap());
        }
        self.core.set_media(CONFERENCE, id, &jitsi_media()).unwrap();
        let transport = client.transport();
        self.core
            .set_remote_transport(self.now, CONFERENCE, id, &transport)
            .unwrap();
        self.core
            .set_sources(CONFERENCE, id, &ssrcs.sources(id))
            .unwrap();
        for other in &mut self.clients {
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
