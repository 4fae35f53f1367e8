//! The str0m client standing in for a browser, and the payloads it sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{Candidate, Fingerprint, IceTransport, MediaKind, Source, SsrcGroup};
use str0m::format::Codec;
use str0m::media::{Frequency, KeyframeRequestKind, Mid, Pt, Rid};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::{Extension, ExtensionValues, RawPacket, RtpWrite, Ssrc};
use str0m::{Event, Rtc};
use xmpp_core::Element;

const NS_COLIBRI2: &str = "jitsi:colibri2";

/// The ICE-UDP transport a Colibri2 `<conference-modified>` answer gives
/// its (first) endpoint.
pub fn answered_transport(reply: &Element) -> IceTransport {
    reply
        .get_child("conference-modified", NS_COLIBRI2)
        .and_then(|cm| cm.get_child("endpoint", NS_COLIBRI2))
        .and_then(|e| e.get_child("transport", NS_COLIBRI2))
        .and_then(|t| t.get_child("transport", media_signalling::xml::ns::ICE_UDP))
        .map(|t| media_signalling::xml::parse_transport(t).unwrap())
        .expect("no transport")
}

const AUDIO_MID: &str = "0";
const VIDEO_MID: &str = "1";

/// A received RTP packet at a client.
#[derive(Debug, Clone)]
pub struct Received {
    pub ssrc: u32,
    pub seq: u64,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    pub marker: bool,
    pub at: Instant,
    /// Its header extension values (user ones included).
    pub ext: ExtensionValues,
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
    /// The harness' label of the client.
    pub id: String,
    /// The conference it is in.
    pub room: String,
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
    /// Transport-wide congestion control feedback packets it got.
    pub twcc_feedback: usize,
    /// Whether the next frame of a layer is a key frame.
    pub keyframe_due: Vec<bool>,
    audio_seq: u64,
    pub(crate) video_seq: Vec<u64>,
    pub(crate) picture_id: Vec<u16>,
    /// Sends realistic VP8 simulcast (`layered.rs`): 320x180, 640x360 and
    /// 1280x720 key frames, temporal layers 0,2,1,2, frames of
    /// [`super::layered::FRAME_BYTES`] split into packets.
    pub layered: bool,
    /// Per layer: frames sent and the TL0PICIDX (layered mode).
    pub(crate) frames_sent: Vec<u64>,
    /// Key frames sent in layered mode: layer, frame number, when.
    pub keyframes_sent: Vec<(usize, u64, Instant)>,
    pub(crate) tl0: Vec<u8>,
    next_audio: Option<Instant>,
    next_video: Option<Instant>,
    /// When the client's `Rtc` wants a timeout.
    pub timeout: Option<Instant>,
}

/// A client's transport for the bridge: `rtc`'s ICE credentials and
/// fingerprint (`setup='active'`), one host candidate at `addr`.
pub fn client_transport(rtc: &mut Rtc, addr: SocketAddr) -> IceTransport {
    let creds = rtc.direct_api().local_ice_credentials();
    let fp = rtc.direct_api().local_dtls_fingerprint().clone();
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
            address: addr,
            kind: "host".into(),
            generation: 0,
            id: None,
        }],
        rtcp_mux: true,
        web_socket: None,
    }
}

impl Client {
    pub fn new(now: Instant, id: &str, addr: SocketAddr, ssrcs: ClientSsrcs) -> Client {
        Client::with_feedback(now, id, addr, ssrcs, true)
    }

    /// A client that sends transport-wide feedback or not.
    pub fn with_feedback(
        now: Instant,
        id: &str,
        addr: SocketAddr,
        ssrcs: ClientSsrcs,
        twcc: bool,
    ) -> Client {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .enable_raw_packets(true)
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
            if twcc {
                api.enable_twcc_feedback();
            }
            api.declare_media(Mid::from(AUDIO_MID), str0m::media::MediaKind::Audio);
            api.declare_media(Mid::from(VIDEO_MID), str0m::media::MediaKind::Video);
            api.declare_stream_tx(Ssrc::from(ssrcs.audio), None, Mid::from(AUDIO_MID), None);
            // A layer without an rtx SSRC (none given) is sent without one.
            for (i, v) in ssrcs.video.iter().enumerate() {
                let rid = Rid::from(format!("l{i}").as_str());
                api.declare_stream_tx(
                    Ssrc::from(*v),
                    ssrcs.rtx.get(i).map(|r| Ssrc::from(*r)),
                    Mid::from(VIDEO_MID),
                    Some(rid),
                );
            }
        }
        let layers = ssrcs.video.len();
        Client {
            id: id.to_string(),
            room: String::new(),
            addr,
            rtc,
            online: true,
            sending: true,
            level: -110,
            active_layers: (0..layers).collect(),
            connected: false,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            twcc_feedback: 0,
            keyframe_due: vec![true; layers],
            audio_seq: 1,
            video_seq: vec![1; layers],
            picture_id: (0..layers as u16).map(|i| 1000 * i + 7).collect(),
            layered: false,
            frames_sent: vec![0; layers],
            keyframes_sent: Vec::new(),
            tl0: vec![0; layers],
            next_audio: Some(now),
            next_video: Some(now),
            timeout: Some(now),
            ssrcs,
        }
    }

    /// The client's transport as its session-accept carries it.
    /// The `<endpoint id>` of a Colibri2 conference-modify with this
    /// client's transport and `ssrcs`' sources.
    pub fn colibri2_endpoint(&mut self, id: &str, ssrcs: &ClientSsrcs) -> Element {
        use media_signalling::xml::{colibri2_media_source_element, transport_element};
        let mut ep = Element::new("endpoint", NS_COLIBRI2).attr("id", id);
        let mut t = Element::new("transport", NS_COLIBRI2);
        t.push_child(transport_element(&self.transport()));
        ep.push_child(t);
        let mut sources = Element::new("sources", NS_COLIBRI2);
        for s in ssrcs.sources(id) {
            sources.push_child(colibri2_media_source_element(&s));
        }
        ep.push_child(sources);
        ep
    }

    /// The bridge's transport: its ICE credentials, sha-256 fingerprint
    /// and candidates; DTLS starts (the client is the DTLS client).
    pub fn use_bridge_transport(&mut self, bridge: &IceTransport) {
        {
            let mut api = self.rtc.direct_api();
            api.set_remote_ice_credentials(str0m::IceCreds {
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
            self.rtc
                .add_remote_candidate(str0m::Candidate::host(c.address, "udp").unwrap());
        }
    }

    pub fn transport(&mut self) -> IceTransport {
        client_transport(&mut self.rtc, self.addr)
    }

    /// Expects another client's streams (as the focus' source-add tells).
    pub fn expect(&mut self, other: &ClientSsrcs) {
        let mut api = self.rtc.direct_api();
        api.expect_stream_rx(Ssrc::from(other.audio), None, Mid::from(AUDIO_MID), None);
        if let Some(v) = other.video.first() {
            api.expect_stream_rx(
                Ssrc::from(*v),
                other.rtx.first().map(|r| Ssrc::from(*r)),
                Mid::from(VIDEO_MID),
                None,
            );
        }
    }

    /// Packets received on `ssrc`.
    pub fn received_on(&self, ssrc: u32) -> Vec<&Received> {
        self.received.iter().filter(|r| r.ssrc == ssrc).collect()
    }

    /// Sends one audio-like packet on an SSRC of its own choosing (declared
    /// on the fly, as a misbehaving client might).
    pub fn send_unsignalled(&mut self, now: Instant, ssrc: u32, seq: u64) {
        // In a media section of its own: str0m keys send streams by mid and
        // rid too, and a second one on the audio mid would replace the audio.
        let mid = Mid::from("9");
        if self.rtc.media(mid).is_none() {
            self.rtc
                .direct_api()
                .declare_media(mid, str0m::media::MediaKind::Audio);
        }
        let mut api = self.rtc.direct_api();
        if api.stream_tx(&Ssrc::from(ssrc)).is_none() {
            api.declare_stream_tx(Ssrc::from(ssrc), None, mid, None);
        }
        if let Some(tx) = api.stream_tx(&Ssrc::from(ssrc)) {
            tx.write_rtp(RtpWrite::new(
                Pt::new_with_value(111),
                seq.into(),
                (seq * 960) as u32,
                now,
                audio_payload(ssrc, seq),
            ));
        }
    }

    pub fn request_keyframe(&mut self, ssrc: u32) {
        if let Some(rx) = self.rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
        }
    }

    pub fn send_media(&mut self, now: Instant) {
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
                if self.layered {
                    self.send_layered_frame(now, layer);
                    continue;
                }
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

    pub fn handle_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Connected => self.connected = true,
            Event::RtpPacket(p) => self.received.push(Received {
                ssrc: *p.header.ssrc,
                seq: *p.seq_no,
                timestamp: p.header.timestamp,
                payload: p.payload.to_vec(),
                marker: p.header.marker,
                at: now,
                ext: p.header.ext_vals.clone(),
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
            Event::RawPacket(raw) => {
                if matches!(*raw, RawPacket::RtcpRx(Rtcp::Twcc(_))) {
                    self.twcc_feedback += 1;
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

/// The TL0PICIDX of a VP8 payload made by [`vp8_payload`].
pub fn tl0_of(payload: &[u8]) -> u8 {
    payload[4]
}

/// The layer tag of a VP8 payload made by [`vp8_payload`].
pub fn layer_of(payload: &[u8]) -> u8 {
    payload[16]
}
