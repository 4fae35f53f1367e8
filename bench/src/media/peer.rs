//! One simulated endpoint: a str0m `Rtc` in RTP mode (real ICE, DTLS and
//! SRTP) on its own UDP socket on 127.0.0.1, the streams it sends and the
//! packets it is sent. The lilt side configures the `Rtc` with str0m's
//! direct API from Colibri2 transports; the Janus side negotiates with
//! str0m's SDP API. Sending and receiving are driven by [`super::pump`].

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Frequency, Pt};
use str0m::rtp::{Extension, ExtensionValues, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Rtc};

use super::MediaError;
use super::payload::{self, Probe, VideoShape};

/// Payload types the endpoints use (Jitsi's numbers).
pub const PT_OPUS: u8 = 111;
pub const PT_VP8: u8 = 100;
pub const PT_VP8_RTX: u8 = 96;
/// Header extension ids (as Jitsi Meet's browsers map them).
pub const EXT_AUDIO_LEVEL: u8 = 1;
pub const EXT_TWCC: u8 = 5;
/// Bytes of one Opus packet (about 40 kbit/s).
pub const AUDIO_PAYLOAD: usize = 100;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
}

/// A stream this endpoint sends.
#[derive(Debug, Clone)]
pub struct OutStream {
    /// Global number of the stream in the run (in every probe).
    pub number: u32,
    pub kind: Kind,
    pub ssrc: Ssrc,
    pub rtx: Option<Ssrc>,
    pub pt: Pt,
    /// For one layer of a simulcast sender: its shape and size.
    pub layer: Option<SimLayer>,
    seq: u64,
    rtp_time: u32,
    index: u32,
    pub next_due: Instant,
}

impl OutStream {
    pub fn new(number: u32, kind: Kind, ssrc: Ssrc, rtx: Option<Ssrc>) -> OutStream {
        let pt = match kind {
            Kind::Audio => Pt::new_with_value(PT_OPUS),
            Kind::Video => Pt::new_with_value(PT_VP8),
        };
        OutStream {
            number,
            kind,
            ssrc,
            rtx,
            pt,
            layer: None,
            seq: 1 + u64::from(number % 1000),
            rtp_time: number.wrapping_mul(7919),
            index: 0,
            next_due: Instant::now(),
        }
    }
}

/// One layer of a simulcast video source: its own bit rate (packets per
/// frame), its size in key frames, temporal ids 0, 2, 1, 2 (three
/// temporal layers as browsers send them) and a key frame every
/// [`KEYFRAME_FRAMES`] frames (the bench's endpoints do not answer
/// keyframe requests; the bridge switches layers at key frames).
#[derive(Debug, Clone, Copy)]
pub struct SimLayer {
    pub shape: VideoShape,
    pub width: u16,
    pub height: u16,
    frames: u32,
}

/// Frames between two key frames of a simulcast layer (one second at 30
/// fps, a multiple of the four-frame temporal pattern).
pub const KEYFRAME_FRAMES: u32 = 32;

impl SimLayer {
    pub fn new(shape: VideoShape, width: u16, height: u16) -> SimLayer {
        SimLayer {
            shape,
            width,
            height,
            frames: 0,
        }
    }
}

/// One simulated endpoint.
pub struct Peer {
    pub name: String,
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub connected: bool,
    /// When the `Rtc` wants `Input::Timeout`.
    pub timeout: Instant,
    pub outgoing: Vec<OutStream>,
}

/// The codecs and extensions every endpoint's `Rtc` has: Opus and VP8 with
/// rtx, audio level and transport-wide sequence numbers.
pub fn rtc_config() -> str0m::RtcConfig {
    let mut config = Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .clear_extension_map()
        .set_extension(EXT_AUDIO_LEVEL, Extension::AudioLevel)
        .set_extension(EXT_TWCC, Extension::TransportSequenceNumber);
    let codecs = config.codec_config();
    codecs.add_config(
        Pt::new_with_value(PT_OPUS),
        None,
        Codec::Opus,
        Frequency::FORTY_EIGHT_KHZ,
        Some(2),
        str0m::format::FormatParams::parse_line("minptime=10;useinbandfec=1"),
    );
    codecs.add_config(
        Pt::new_with_value(PT_VP8),
        Some(Pt::new_with_value(PT_VP8_RTX)),
        Codec::Vp8,
        Frequency::NINETY_KHZ,
        None,
        str0m::format::FormatParams::parse_line(""),
    );
    config
}

impl Peer {
    /// A fresh endpoint: socket bound on `ip` (a loopback address), `Rtc`
    /// with its host candidate, sending transport-wide feedback.
    pub fn new(name: String, rtc: Rtc, ip: std::net::IpAddr) -> Result<Peer, MediaError> {
        let socket = UdpSocket::bind((ip, 0)).map_err(MediaError::io("binding UDP"))?;
        socket
            .set_nonblocking(true)
            .map_err(MediaError::io("non-blocking UDP"))?;
        let local = socket.local_addr().map_err(MediaError::io("UDP address"))?;
        let mut peer = Peer {
            name,
            rtc,
            socket,
            local,
            connected: false,
            timeout: Instant::now(),
            outgoing: Vec::new(),
        };
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| MediaError::Protocol(format!("candidate {local}: {e}")))?;
        peer.rtc.add_local_candidate(candidate);
        // Transport-wide feedback to the server, as browsers send it: the
        // bridge's bandwidth estimation (and its cost) is part of the run.
        peer.rtc.direct_api().enable_twcc_feedback();
        Ok(peer)
    }

    /// The local DTLS fingerprint as colon-separated upper-case hex.
    pub fn fingerprint(&mut self) -> String {
        hex_fingerprint(&self.rtc.direct_api().local_dtls_fingerprint().bytes)
    }

    /// Writes every packet that is due at `now`; `epoch` dates the probes.
    /// Returns the packets written per stream number (for the tally).
    pub fn send_due(
        &mut self,
        now: Instant,
        epoch: Instant,
        video: VideoShape,
        written: &mut Vec<(u32, u32)>,
    ) {
        for s in self.outgoing.iter_mut() {
            while s.next_due <= now {
                let video = s.layer.map(|l| l.shape).unwrap_or(video);
                let (count, step, period) = match s.kind {
                    Kind::Audio => (1, 960u32, Duration::from_millis(20)),
                    Kind::Video => (
                        video.packets_per_frame,
                        90_000 / video.fps,
                        Duration::from_secs(1) / video.fps,
                    ),
                };
                let mut api = self.rtc.direct_api();
                let Some(tx) = api.stream_tx(&s.ssrc) else {
                    s.next_due += period;
                    continue;
                };
                // A simulcast layer's frame: its temporal id and key frame.
                let frame = s.layer.as_mut().map(|l| {
                    let n = l.frames;
                    l.frames = l.frames.wrapping_add(1);
                    let tid = [0u8, 2, 1, 2][(n % 4) as usize];
                    let key = (n % KEYFRAME_FRAMES == 0).then_some((l.width, l.height));
                    (tid, key)
                });
                for i in 0..count {
                    let probe = Probe {
                        stream: s.number,
                        index: s.index,
                        sent: now.saturating_duration_since(epoch),
                    };
                    let (body, ext, marker) = match s.kind {
                        Kind::Audio => {
                            let ext = ExtensionValues {
                                audio_level: Some(-30),
                                voice_activity: Some(true),
                                ..ExtensionValues::default()
                            };
                            (payload::audio(AUDIO_PAYLOAD, probe), ext, false)
                        }
                        Kind::Video => (
                            match frame {
                                Some((tid, key)) => {
                                    payload::layer_video(video.packet_size, i == 0, tid, key, probe)
                                }
                                None => payload::video(video.packet_size, i == 0, probe),
                            },
                            ExtensionValues::default(),
                            i + 1 == count,
                        ),
                    };
                    let write = RtpWrite::new(s.pt, SeqNo::from(s.seq), s.rtp_time, now, body)
                        .marker(marker)
                        .ext_vals(ext)
                        .nackable(s.kind == Kind::Video);
                    tx.write_rtp(write);
                    s.seq += 1;
                    s.index += 1;
                }
                written.push((s.number, count));
                s.rtp_time = s.rtp_time.wrapping_add(step);
                s.next_due += period;
            }
        }
    }

    /// The earliest moment a stream of this endpoint sends next.
    pub fn next_send(&self) -> Option<Instant> {
        self.outgoing.iter().map(|s| s.next_due).min()
    }
}

/// Upper-case colon-separated hex, as SDP and Jingle write fingerprints.
pub fn hex_fingerprint(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A fingerprint in that notation as bytes.
pub fn parse_fingerprint(
    hash: &str,
    value: &str,
) -> Result<str0m::config::Fingerprint, MediaError> {
    let mut bytes = Vec::new();
    for part in value.split(':') {
        let b = u8::from_str_radix(part.trim(), 16)
            .map_err(|_| MediaError::Protocol(format!("bad fingerprint {value}")))?;
        bytes.push(b);
    }
    Ok(str0m::config::Fingerprint {
        hash_func: hash.to_ascii_lowercase(),
        bytes,
    })
}
