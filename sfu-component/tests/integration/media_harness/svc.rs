//! Scalable video for the media tests: clients that negotiate VP9 (101)
//! and AV1 (41) besides VP8, with the AV1 dependency descriptor extension
//! (id 11, as lib-jitsi-meet and Chromium map it), and a sender of
//!
//! - VP9 SVC: three spatial layers (320x180, 640x360, 1280x720) by three
//!   temporal layers (0,2,1,2) on one SSRC, RFC 9628 non-flexible
//!   descriptor with the scalability structure on key pictures, upper
//!   spatial layers predicted from the one below (full SVC);
//! - AV1 L3T3: the same layers on one SSRC, each layer frame described by
//!   a dependency descriptor (the structure of [`super::av1`] on key
//!   frames);
//! - AV1 simulcast: three SSRCs (SIM group), L1T3 each, a structure per
//!   SSRC.
//!
//! Every layer frame's body starts with its spatial id, temporal id,
//! simulcast layer and temporal unit number, so a receiver can check what
//! it got (`svc_check.rs`). The sender is driven by the test (the client's
//! own VP8 sending is off), one temporal unit per call.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{HeaderExtension, MediaDescription, PayloadType, RtcpFeedback};
use str0m::Rtc;
use str0m::format::Codec;
use str0m::media::{Frequency, Mid, Pt, Rid};
use str0m::rtp::{Extension, ExtensionSerializer, ExtensionValues, RtpWrite, Ssrc};

use super::av1;
use super::{Client, ClientSsrcs, Net, jitsi_media};

pub const VP9_PT: u8 = 101;
pub const AV1_PT: u8 = 41;
pub const DD_ID: u8 = 11;
pub const DD_URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";
/// Bytes per layer frame of each spatial layer (key frames three times).
pub const FRAME_BYTES: [usize; 3] = [150, 500, 1500];
pub const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// Temporal ids by position after a key frame.
pub const TIDS: [u8; 4] = [0, 2, 1, 2];
const MTU_PAYLOAD: usize = 1100;
/// One temporal unit every 35 ms (seven 5 ms steps of the harness).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(35);

/// A dependency descriptor as the test clients send and receive it: raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdBytes(pub Vec<u8>);

#[derive(Debug)]
struct DdSerializer;

impl ExtensionSerializer for DdSerializer {
    fn write_to(&self, buf: &mut [u8], ev: &ExtensionValues) -> usize {
        match ev.user_values.get::<DdBytes>() {
            Some(dd) if dd.0.len() <= buf.len() => {
                buf[..dd.0.len()].copy_from_slice(&dd.0);
                dd.0.len()
            }
            _ => 0,
        }
    }
    fn parse_value(&self, buf: &[u8], ev: &mut ExtensionValues) -> bool {
        ev.user_values.set(DdBytes(buf.to_vec()));
        true
    }
    fn is_video(&self) -> bool {
        true
    }
    fn is_audio(&self) -> bool {
        false
    }
    fn requires_two_byte_form(&self, ev: &ExtensionValues) -> bool {
        ev.user_values
            .get::<DdBytes>()
            .is_some_and(|dd| dd.0.len() > 16)
    }
}

/// Jicofo's media description with VP9 and AV1 and the dependency
/// descriptor extension.
pub fn svc_media() -> Vec<MediaDescription> {
    let mut media = jitsi_media();
    let fb = |kind: &str, sub: Option<&str>| RtcpFeedback {
        kind: kind.into(),
        subtype: sub.map(Into::into),
    };
    let video = &mut media[1];
    for (pt, rtx, name) in [(VP9_PT, 97, "VP9"), (AV1_PT, 42, "AV1")] {
        video.payload_types.push(PayloadType {
            id: pt,
            name: name.into(),
            clockrate: 90000,
            channels: None,
            parameters: vec![],
            feedback: vec![
                fb("ccm", Some("fir")),
                fb("nack", None),
                fb("nack", Some("pli")),
                fb("transport-cc", None),
            ],
        });
        video.payload_types.push(PayloadType {
            id: rtx,
            name: "rtx".into(),
            clockrate: 90000,
            channels: None,
            parameters: vec![("apt".into(), pt.to_string())],
            feedback: vec![],
        });
    }
    video.header_extensions.push(HeaderExtension {
        id: DD_ID,
        uri: DD_URI.into(),
    });
    media
}

/// A client `Rtc` as the harness' but with VP9, AV1 and the descriptor.
fn svc_rtc(now: Instant, addr: SocketAddr, ssrcs: &ClientSsrcs) -> Rtc {
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .enable_raw_packets(true)
        .clear_codecs()
        .clear_extension_map()
        .set_extension(1, Extension::AudioLevel)
        .set_extension(3, Extension::AbsoluteSendTime)
        .set_extension(5, Extension::TransportSequenceNumber)
        .set_extension(DD_ID, Extension::with_serializer(DD_URI, DdSerializer));
    let codecs = config.codec_config();
    codecs.add_config(
        Pt::new_with_value(111),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        Default::default(),
    );
    for (pt, rtx, codec) in [
        (100, 96, Codec::Vp8),
        (VP9_PT, 97, Codec::Vp9),
        (AV1_PT, 42, Codec::Av1),
    ] {
        codecs.add_config(
            Pt::new_with_value(pt),
            Some(Pt::new_with_value(rtx)),
            codec,
            Frequency::NINETY_KHZ,
            None,
            Default::default(),
        );
    }
    let mut rtc = config.build(now);
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").unwrap());
    let mut api = rtc.direct_api();
    api.set_ice_controlling(false);
    api.enable_twcc_feedback();
    api.declare_media(Mid::from("0"), str0m::media::MediaKind::Audio);
    api.declare_media(Mid::from("1"), str0m::media::MediaKind::Video);
    api.declare_stream_tx(Ssrc::from(ssrcs.audio), None, Mid::from("0"), None);
    for (i, v) in ssrcs.video.iter().enumerate() {
        let rid = Rid::from(format!("l{i}").as_str());
        api.declare_stream_tx(
            Ssrc::from(*v),
            ssrcs.rtx.get(i).map(|r| Ssrc::from(*r)),
            Mid::from("1"),
            Some(rid),
        );
    }
    rtc
}

impl Net {
    /// [`Net::join`] for a client negotiating VP9 and AV1 with the
    /// dependency descriptor; it does not send media by itself.
    pub fn join_svc(&mut self, id: &str, ssrcs: ClientSsrcs) -> usize {
        let room = super::CONFERENCE;
        let n = self.clients.len() as u8 + 2;
        let addr: SocketAddr = format!("10.1.0.{n}:5000").parse().unwrap();
        let bridge = self.core.create_endpoint(self.now, room, id, true).unwrap();
        let mut client = Client::new(self.now, id, addr, ssrcs.clone());
        client.rtc = svc_rtc(self.now, addr, &ssrcs);
        client.room = room.to_string();
        client.sending = false;
        client.use_bridge_transport(&bridge);
        self.core.set_media(room, id, &svc_media()).unwrap();
        let transport = client.transport();
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

    /// Sends a temporal unit of `sender` every [`FRAME_INTERVAL`] for
    /// `duration`.
    pub fn run_svc(&mut self, who: &str, sender: &mut SvcSender, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            let now = self.now;
            sender.send(self.client_mut(who), now);
            self.run_for(FRAME_INTERVAL);
        }
    }
}

/// What a sender sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Vp9Svc,
    Av1Svc,
    Av1Simulcast,
}

/// The test's scalable video sender (state kept outside the client).
#[derive(Debug)]
pub struct SvcSender {
    pub mode: Mode,
    /// Temporal units sent, per SSRC.
    pub units: Vec<u64>,
    /// Position after the last key frame, per SSRC.
    since_key: Vec<u64>,
    seq: Vec<u64>,
    picture_id: u16,
    tl0: u8,
    frame_number: Vec<u16>,
    /// Key frames sent: SSRC index and temporal unit.
    pub keyframes_sent: Vec<(usize, u64)>,
}

impl SvcSender {
    pub fn new(mode: Mode) -> SvcSender {
        let ssrcs = if mode == Mode::Av1Simulcast { 3 } else { 1 };
        SvcSender {
            mode,
            units: vec![0; ssrcs],
            since_key: vec![0; ssrcs],
            seq: vec![1; ssrcs],
            picture_id: 300,
            tl0: 0,
            frame_number: (0..ssrcs as u16).map(|i| 65_500 + 7 * i).collect(),
            keyframes_sent: Vec::new(),
        }
    }

    /// Sends one temporal unit (one per SSRC in simulcast).
    pub fn send(&mut self, client: &mut Client, now: Instant) {
        let ssrcs = self.units.len();
        for layer in 0..ssrcs {
            let due = client.keyframe_due.get_mut(layer).unwrap();
            let key = std::mem::replace(due, false);
            let unit = self.units[layer];
            self.units[layer] += 1;
            if key {
                self.since_key[layer] = 0;
                self.keyframes_sent.push((layer, unit));
            }
            let tid = TIDS[(self.since_key[layer] % 4) as usize];
            self.since_key[layer] += 1;
            let ts = (unit as u32)
                .wrapping_mul(3000)
                .wrapping_add(11 * layer as u32);
            match self.mode {
                Mode::Vp9Svc => self.send_vp9(client, now, unit, key, tid, ts),
                Mode::Av1Svc => {
                    for sid in 0..3u8 {
                        let frame = LayerFrame {
                            layer: 0,
                            sid,
                            tid,
                            unit,
                            key,
                            last_of_unit: sid == 2,
                        };
                        self.send_av1(client, now, &frame, ts);
                    }
                }
                Mode::Av1Simulcast => {
                    let frame = LayerFrame {
                        layer,
                        sid: 0,
                        tid,
                        unit,
                        key,
                        last_of_unit: true,
                    };
                    self.send_av1(client, now, &frame, ts);
                }
            }
        }
    }

    fn send_vp9(
        &mut self,
        client: &mut Client,
        now: Instant,
        unit: u64,
        key: bool,
        tid: u8,
        ts: u32,
    ) {
        let pid = self.picture_id;
        self.picture_id = (pid + 1) & 0x7fff;
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        for sid in 0..3u8 {
            let body = frame_body(0, sid, tid, unit, key);
            let chunks: Vec<&[u8]> = body.chunks(MTU_PAYLOAD).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let (first, last) = (i == 0, i + 1 == chunks.len());
                let ss = key && sid == 0 && first;
                let mut p = vec![
                    0x80 | 0x20
                        | if key { 0 } else { 0x40 }
                        | if first { 0x08 } else { 0 }
                        | if last { 0x04 } else { 0 }
                        | if ss { 0x02 } else { 0 },
                    0x80 | (pid >> 8) as u8,
                    pid as u8,
                    (tid << 5) | (sid << 1) | u8::from(sid > 0),
                    self.tl0,
                ];
                if ss {
                    // N_S = 2 (three layers), Y (resolutions), no G.
                    p.push((2 << 5) | 0x10);
                    for (w, h) in SIZES {
                        p.extend_from_slice(&w.to_be_bytes());
                        p.extend_from_slice(&h.to_be_bytes());
                    }
                }
                p.extend_from_slice(chunk);
                let marker = last && sid == 2;
                self.write(client, 0, VP9_PT, now, ts, p, marker, None);
            }
        }
    }

    fn send_av1(&mut self, client: &mut Client, now: Instant, f: &LayerFrame, ts: u32) {
        let ssrc = f.layer;
        let number = self.frame_number[ssrc];
        self.frame_number[ssrc] = number.wrapping_add(1);
        let body = frame_body(f.layer as u8, f.sid, f.tid, f.unit, f.key);
        let chunks: Vec<&[u8]> = body.chunks(MTU_PAYLOAD).collect();
        let structure = match self.mode {
            Mode::Av1Simulcast => av1::Structure::l1t3(f.layer),
            _ => av1::Structure::l3t3(),
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let (first, last) = (i == 0, i + 1 == chunks.len());
            // Aggregation header: Z (continues an OBU), Y (continued), W=1,
            // N (first packet of a coded video sequence).
            let mut p = vec![
                if first { 0 } else { 0x80 }
                    | if last { 0 } else { 0x40 }
                    | 0x10
                    | if f.key && f.sid == 0 && first {
                        0x08
                    } else {
                        0
                    },
            ];
            p.extend_from_slice(chunk);
            let with_structure = f.key && f.sid == 0 && first;
            let dd = structure.descriptor(f, first, last, number, with_structure);
            let marker = last && f.last_of_unit;
            self.write(client, ssrc, AV1_PT, now, ts, p, marker, Some(dd));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        client: &mut Client,
        layer: usize,
        pt: u8,
        now: Instant,
        ts: u32,
        payload: Vec<u8>,
        marker: bool,
        dd: Option<Vec<u8>>,
    ) {
        let seq = self.seq[layer];
        self.seq[layer] += 1;
        let mut ext = ExtensionValues::default();
        if let Some(dd) = dd {
            ext.user_values.set(DdBytes(dd));
        }
        let ssrc = client.ssrcs.video[layer];
        if let Some(tx) = client.rtc.direct_api().stream_tx(&Ssrc::from(ssrc)) {
            tx.write_rtp(
                RtpWrite::new(Pt::new_with_value(pt), seq.into(), ts, now, payload)
                    .marker(marker)
                    .ext_vals(ext)
                    .nackable(true),
            );
        }
    }
}

/// One layer frame the sender sends.
#[derive(Debug, Clone, Copy)]
pub struct LayerFrame {
    /// Simulcast layer (SSRC index).
    pub layer: usize,
    pub sid: u8,
    pub tid: u8,
    pub unit: u64,
    pub key: bool,
    pub last_of_unit: bool,
}

/// A layer frame's body: simulcast layer, spatial and temporal id, key,
/// temporal unit, then filler to the layer's size.
fn frame_body(layer: u8, sid: u8, tid: u8, unit: u64, key: bool) -> Vec<u8> {
    let size_of = usize::from(sid.max(layer)).min(2);
    let size = FRAME_BYTES[size_of] * if key { 3 } else { 1 };
    let mut body = vec![layer, sid, tid, u8::from(key)];
    body.extend_from_slice(&unit.to_be_bytes());
    body.resize(size, 0xab);
    body
}

/// The header fields [`frame_body`] wrote: (layer, sid, tid, key, unit).
pub fn body_fields(body: &[u8]) -> Option<(u8, u8, u8, bool, u64)> {
    let unit = u64::from_be_bytes(body.get(4..12)?.try_into().ok()?);
    Some((body[0], body[1], body[2], body[3] == 1, unit))
}
