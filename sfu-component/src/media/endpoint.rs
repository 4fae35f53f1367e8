//! One endpoint of a conference as the bridge sees it: its ICE credentials,
//! what the focus negotiated (codecs, header extensions, sources) and the
//! str0m `Rtc` that terminates its ICE, DTLS and SRTP.
//!
//! The `Rtc` is built when ICE starts (`set_remote_transport`), because
//! str0m fixes codecs and header-extension ids at construction and the
//! focus may send `<media>` after the endpoint was allocated. All endpoints
//! share the bridge's one DTLS certificate, so the fingerprint answered at
//! allocation time stays valid.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{IceTransport, MediaDescription, MediaKind, Source};
use str0m::bwe::Bitrate;
use str0m::config::{DtlsCert, Fingerprint as DtlsFingerprint};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Mid, Pt, Rid};
use str0m::rtp::Extension;
use str0m::{Candidate, IceCreds, Rtc};

use super::forward::{LayerForwarder, Target};
use super::{AudioSubscription, LayerId, MediaError};

/// How long a forwarded video packet is kept for resends. Videobridge's
/// `PacketCache` keeps 1,000 ms (at most 500 packets) per stream; str0m's
/// default is 3 s and 1,000 packets. The cache is per receiver and stream
/// (str0m's `StreamTx` owns it), each slot an `RtpPacket` of 408 bytes plus
/// 24 of bookkeeping (the payload itself is shared between receivers), so
/// it was most of an endpoint's memory: at 3 s a 1 Mbit/s stream kept
/// its whole 256-packet ring, 108 KiB per receiver; at 500 ms it keeps
/// about 60 packets (a ring of 66 slots, 28 KiB). Half a second answers
/// NACKs on links up to ~400 ms round trip (a NACK leaves the receiver a
/// few tens of ms after the gap shows); str0m's bandwidth probes pad with
/// the newest cached packets, which this window always holds.
pub(crate) const RESEND_WINDOW: Duration = Duration::from_millis(500);

/// At most this many packets per stream within [`RESEND_WINDOW`] (a
/// 4 Mbit/s screen share sends ~400 packets a second): the ring never grows
/// beyond it, whatever a sender sends.
pub(crate) const RESEND_PACKETS_MAX: usize = 256;

/// Resends are given up for a stream when they pass this share of what it
/// sends (str0m's default).
const RESEND_RATIO_CAP: f32 = 0.15;

/// Sets up a `StreamTx` that forwards another endpoint's stream to this
/// one: not paced, as Videobridge does not pace forwarded media
/// (allocation keeps it within the receiver's estimate; str0m's pacer at
/// 1.1 times an estimate that follows the sent rate held a switch up after
/// a thumbnail 55-60 ms, `tests/media_pacing.rs`, and bunched frames).
/// With unpaced media str0m's estimate towards a receiver on a free link
/// settles at about what it receives more often (it is capped at 1.5 times
/// that anyway): `media_layers`' bottleneck test allows for it.
///
/// Video keeps [`RESEND_WINDOW`] for resends. Audio is never resent (no
/// rtx for Opus, its packets are not nackable), so its cache is made inert
/// and without the resend-ratio bookkeeping.
pub(crate) fn configure_forwarded_stream(tx: &mut str0m::rtp::StreamTx, kind: MediaKind) {
    tx.set_unpaced(true);
    match kind {
        MediaKind::Video => {
            tx.set_rtx_cache(RESEND_PACKETS_MAX, RESEND_WINDOW, Some(RESEND_RATIO_CAP));
        }
        MediaKind::Audio => tx.set_rtx_cache(0, Duration::ZERO, None),
    }
}

/// The bandwidth estimate a receiver's link starts at (Videobridge starts
/// allocation from 2.5 Mbit/s; str0m's probing finds the real value).
pub(crate) const INITIAL_ESTIMATE_BPS: u64 = 2_500_000;

/// The mid under which the bridge's `Rtc` carries all audio streams.
pub(crate) const AUDIO_MID: &str = "a";
/// The mid under which the bridge's `Rtc` carries all video streams.
pub(crate) const VIDEO_MID: &str = "v";

/// A stream this endpoint receives from another endpoint through the
/// bridge: a `StreamTx` on this endpoint's `Rtc`.
#[derive(Debug, Clone)]
pub(crate) struct ForwardedStream {
    /// The synthetic rid given to the `StreamTx`, so that a keyframe
    /// request (which str0m reports by mid+rid) finds its sender.
    pub rid: Rid,
    /// The endpoint that sends it.
    pub sender: String,
    pub kind: MediaKind,
    /// The sender's FID SSRC, on which str0m resends from its cache.
    pub rtx: Option<u32>,
    /// Audio: the roll-over counter of the first packet forwarded,
    /// subtracted from every extended sequence number so a receiver joining
    /// late starts at ROC 0 as SRTP expects (video: the forwarder does it).
    pub roc_base: Option<u64>,
    /// Video: layer choice and rewriting for this receiver.
    pub forwarder: LayerForwarder,
}

/// One endpoint of a conference.
pub(crate) struct Endpoint {
    pub ufrag: String,
    pub pwd: String,
    ice_controlling: bool,
    media: Vec<MediaDescription>,
    remote: Option<IceTransport>,
    pub rtc: Option<Rtc>,
    pub connected: bool,
    /// Last datagram from the endpoint (expiry after `endpoint_timeout`).
    pub last_activity: Instant,
    pub sources: Vec<Source>,
    pub mute_audio: bool,
    pub mute_video: bool,
    /// When the `Rtc` wants `Input::Timeout` next.
    pub rtc_timeout: Option<Instant>,
    /// The latest time the `Rtc` was given.
    pub rtc_now: Option<Instant>,
    /// Receiver-visible SSRC -> stream forwarded to this endpoint.
    pub forwarded: HashMap<u32, ForwardedStream>,
    /// Synthetic rid -> receiver-visible SSRC.
    pub rid_to_ssrc: HashMap<Rid, u32>,
    /// SSRCs declared as `StreamRx` (what this endpoint sends).
    pub rx_ssrcs: HashSet<u32>,
    /// The rtx SSRCs of the forwarded streams (to count retransmissions).
    pub rtx_ssrcs: HashSet<u32>,
    next_rid: u32,
    pub last_audio_received: Option<Instant>,
    pub last_video_received: Option<Instant>,
    /// Cumulative egress counters str0m reported per (mid, rid): NACKs and
    /// keyframe requests received from this endpoint.
    pub egress_counters: HashMap<(Mid, Option<Rid>), (u64, u64)>,
    /// Which audio sources this endpoint receives.
    pub audio_subscription: AudioSubscription,
    /// str0m's last bandwidth estimate towards this endpoint (bps).
    pub bandwidth_estimate: Option<u64>,
    pub connected_at: Option<Instant>,
    /// Transport-wide feedback came from it (str0m's stats show an RTT).
    pub twcc_seen: bool,
    /// No feedback came: estimation is off for it (`feedback.rs`).
    pub bwe_off: bool,
    /// Allocation's targets for this receiver by (owner, source name);
    /// `None` until allocation decided (everything at the top layer).
    pub forwarding: Option<HashMap<(String, String), LayerId>>,
    /// A relay to a peer bridge (`media/relay.rs`), not a participant.
    pub relay: bool,
    /// DTLS client (`setup='active'`): relays only; endpoints are passive.
    pub dtls_active: bool,
}

impl Endpoint {
    pub fn new(now: Instant, ice_controlling: bool) -> Endpoint {
        let creds = IceCreds::new();
        Endpoint {
            ufrag: creds.ufrag,
            pwd: creds.pass,
            ice_controlling,
            media: Vec::new(),
            remote: None,
            rtc: None,
            connected: false,
            last_activity: now,
            sources: Vec::new(),
            mute_audio: false,
            mute_video: false,
            rtc_timeout: None,
            rtc_now: None,
            forwarded: HashMap::new(),
            rid_to_ssrc: HashMap::new(),
            rx_ssrcs: HashSet::new(),
            rtx_ssrcs: HashSet::new(),
            next_rid: 0,
            last_audio_received: None,
            last_video_received: None,
            egress_counters: HashMap::new(),
            audio_subscription: AudioSubscription::All,
            bandwidth_estimate: None,
            connected_at: None,
            twcc_seen: false,
            bwe_off: false,
            forwarding: None,
            relay: false,
            dtls_active: false,
        }
    }

    /// Records the negotiated media. Before ICE is up the `Rtc` is rebuilt
    /// with the new codecs; once connected a change is ignored (str0m
    /// cannot change codecs on a live `Rtc`). Returns whether the `Rtc` was
    /// rebuilt (its streams must then be declared again).
    pub fn set_media(
        &mut self,
        now: Instant,
        media: &[MediaDescription],
        cert: &DtlsCert,
        candidates: &[SocketAddr],
    ) -> Result<bool, MediaError> {
        if self.media.as_slice() == media {
            return Ok(false);
        }
        if self.connected {
            tracing::debug!("media changed on a connected endpoint: kept the first codecs");
            return Ok(false);
        }
        self.media = media.to_vec();
        if self.rtc.is_some() {
            self.build_rtc(now, cert, candidates)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Applies the endpoint's ICE credentials, fingerprint and candidates,
    /// building the `Rtc` on first use. Returns whether it was built now.
    pub fn set_remote_transport(
        &mut self,
        now: Instant,
        transport: &IceTransport,
        cert: &DtlsCert,
        candidates: &[SocketAddr],
    ) -> Result<bool, MediaError> {
        let built = if self.rtc.is_none() {
            // The first transport must carry the fingerprint; a later
            // transport-info may bring candidates only.
            remote_fingerprint(transport)?;
            self.remote = Some(transport.clone());
            self.build_rtc(now, cert, candidates)?;
            true
        } else {
            // A later transport-info: only new candidates matter.
            if let Some(rtc) = self.rtc.as_mut() {
                for c in &transport.candidates {
                    if let Some(candidate) = remote_candidate(c) {
                        rtc.add_remote_candidate(candidate);
                    }
                }
            }
            if let Some(remote) = self.remote.as_mut() {
                for c in &transport.candidates {
                    if !remote.candidates.contains(c) {
                        remote.candidates.push(c.clone());
                    }
                }
            }
            false
        };
        Ok(built)
    }

    fn build_rtc(
        &mut self,
        now: Instant,
        cert: &DtlsCert,
        candidates: &[SocketAddr],
    ) -> Result<(), MediaError> {
        let Some(remote) = self.remote.clone() else {
            return Ok(());
        };
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .set_local_ice_credentials(IceCreds {
                ufrag: self.ufrag.clone(),
                pass: self.pwd.clone(),
            })
            .set_stats_interval(Some(Duration::from_secs(1)))
            .enable_bwe(Some(Bitrate::bps(INITIAL_ESTIMATE_BPS)))
            .clear_codecs()
            .clear_extension_map();
        configure_codecs(&mut config, &self.media);
        for (id, ext) in header_extensions(&self.media) {
            config = config.set_extension(id, ext);
        }
        let mut rtc = config.build(now);
        for address in candidates {
            let candidate = Candidate::host(*address, "udp")
                .map_err(|e| MediaError::Rtc(format!("candidate {address}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        for c in &remote.candidates {
            if let Some(candidate) = remote_candidate(c) {
                rtc.add_remote_candidate(candidate);
            }
        }
        let fingerprint = remote_fingerprint(&remote)?;
        {
            let mut api = rtc.direct_api();
            api.set_ice_controlling(self.ice_controlling);
            api.set_remote_ice_credentials(IceCreds {
                ufrag: remote.ufrag.clone(),
                pass: remote.pwd.clone(),
            });
            api.set_remote_fingerprint(fingerprint);
            api.enable_twcc_feedback();
            api.declare_media(Mid::from(AUDIO_MID), str0m::media::MediaKind::Audio);
            api.declare_media(Mid::from(VIDEO_MID), str0m::media::MediaKind::Video);
            api.start_dtls(self.dtls_active)
                .map_err(|e| MediaError::Rtc(format!("dtls: {e}")))?;
        }
        self.rtc = Some(rtc);
        self.rtc_timeout = Some(now);
        self.forwarded.clear();
        self.rid_to_ssrc.clear();
        self.rx_ssrcs.clear();
        self.rtx_ssrcs.clear();
        Ok(())
    }

    /// A fresh synthetic rid for a new forwarded stream: eight hex digits,
    /// exactly what a str0m `Rid` holds (longer ones are truncated).
    pub fn allocate_rid(&mut self) -> Rid {
        self.next_rid = self.next_rid.wrapping_add(1);
        Rid::from(format!("{:08x}", self.next_rid).as_str())
    }

    /// What this receiver should get of a video source.
    pub fn target_for(&self, owner: &str, source_name: &str) -> Target {
        match &self.forwarding {
            None => Target::Top,
            Some(targets) => targets
                .get(&(owner.to_string(), source_name.to_string()))
                .map_or(Target::Suspended, |l| Target::Layer(*l)),
        }
    }

    /// Whether the endpoint's `Rtc` can carry payload type `pt`.
    pub fn supports_pt(&self, pt: Pt) -> bool {
        self.rtc
            .as_ref()
            .is_some_and(|rtc| rtc.codec_config().params().iter().any(|p| p.pt() == pt))
    }
}

/// The mid of a media kind in the bridge's `Rtc`s.
pub(crate) fn mid_of(kind: MediaKind) -> Mid {
    match kind {
        MediaKind::Audio => Mid::from(AUDIO_MID),
        MediaKind::Video => Mid::from(VIDEO_MID),
    }
}

fn codec_of(name: &str) -> Option<Codec> {
    match name.to_ascii_lowercase().as_str() {
        "opus" => Some(Codec::Opus),
        "vp8" => Some(Codec::Vp8),
        "vp9" => Some(Codec::Vp9),
        "h264" => Some(Codec::H264),
        "av1" => Some(Codec::Av1),
        "telephone-event" => Some(Codec::Tele),
        _ => None,
    }
}

/// Codecs from the focus' payload types, or Jitsi's defaults when the
/// focus sent none.
fn configure_codecs(config: &mut str0m::RtcConfig, media: &[MediaDescription]) {
    let codecs = config.codec_config();
    let mut added = false;
    for description in media {
        for pt in &description.payload_types {
            let Some(codec) = codec_of(&pt.name) else {
                continue;
            };
            let Some(clock) = std::num::NonZeroU32::new(pt.clockrate) else {
                continue;
            };
            let rtx = description
                .payload_types
                .iter()
                .filter(|p| p.name.eq_ignore_ascii_case("rtx"))
                .find(|p| p.parameter("apt") == Some(pt.id.to_string().as_str()))
                .map(|p| Pt::new_with_value(p.id));
            let line = pt
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            codecs.add_config(
                Pt::new_with_value(pt.id),
                rtx,
                codec,
                Frequency::from_nonzero(clock),
                pt.channels
                    .or(if codec == Codec::Opus { Some(2) } else { None }),
                FormatParams::parse_line(&line),
            );
            added = true;
        }
    }
    if added {
        return;
    }
    let defaults: [(u8, Option<u8>, Codec, &str); 5] = [
        (111, None, Codec::Opus, "minptime=10;useinbandfec=1"),
        (100, Some(96), Codec::Vp8, ""),
        (101, Some(97), Codec::Vp9, "profile-id=0"),
        (
            107,
            Some(99),
            Codec::H264,
            "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1",
        ),
        (41, Some(42), Codec::Av1, ""),
    ];
    for (pt, rtx, codec, fmtp) in defaults {
        let (clock, channels) = if codec == Codec::Opus {
            (Frequency::FORTY_EIGHT_KHZ, Some(2))
        } else {
            (Frequency::NINETY_KHZ, None)
        };
        codecs.add_config(
            Pt::new_with_value(pt),
            rtx.map(Pt::new_with_value),
            codec,
            clock,
            channels,
            FormatParams::parse_line(fmtp),
        );
    }
}

/// Header extensions the bridge maps: those str0m knows, except mid and
/// rid (str0m would stamp the bridge's own mid/rid on forwarded packets and
/// Chromium would demux by them instead of by SSRC); and AV1's
/// dependency descriptor (`dependency_descriptor.rs`), read for layer
/// dropping and written per receiver.
fn header_extensions(media: &[MediaDescription]) -> Vec<(u8, Extension)> {
    let known = [
        Extension::AudioLevel,
        Extension::AbsoluteSendTime,
        Extension::TransportSequenceNumber,
        Extension::TransmissionTimeOffset,
        Extension::VideoOrientation,
        Extension::AbsoluteCaptureTime,
        Extension::PlayoutDelay,
        Extension::VideoContentType,
        Extension::VideoTiming,
    ];
    let mut out: Vec<(u8, Extension)> = Vec::new();
    for ext in media.iter().flat_map(|m| m.header_extensions.iter()) {
        if ext.id == 0 || ext.id > 14 || out.iter().any(|(id, _)| *id == ext.id) {
            continue;
        }
        if let Some(known) = known.iter().find(|k| k.as_uri() == ext.uri) {
            out.push((ext.id, known.clone()));
        }
        if ext.uri == super::dependency_descriptor::URI {
            let serializer = super::dependency_descriptor::Serializer;
            out.push((ext.id, Extension::with_serializer(&ext.uri, serializer)));
        }
    }
    if out.is_empty() {
        out = vec![
            (1, Extension::AudioLevel),
            (3, Extension::AbsoluteSendTime),
            (5, Extension::TransportSequenceNumber),
        ];
    }
    out
}

/// The sha-256 (else first) fingerprint of a remote transport.
fn remote_fingerprint(transport: &IceTransport) -> Result<DtlsFingerprint, MediaError> {
    let chosen = transport
        .fingerprints
        .iter()
        .find(|f| f.hash.eq_ignore_ascii_case("sha-256"))
        .or_else(|| transport.fingerprints.first())
        .ok_or_else(|| MediaError::Rtc("remote transport has no fingerprint".into()))?;
    let mut bytes = Vec::new();
    for hex in chosen.value.split(':') {
        let byte = u8::from_str_radix(hex.trim(), 16)
            .map_err(|_| MediaError::Rtc(format!("bad fingerprint {}", chosen.value)))?;
        bytes.push(byte);
    }
    Ok(DtlsFingerprint {
        hash_func: chosen.hash.to_ascii_lowercase(),
        bytes,
    })
}

/// A signalled candidate as str0m's; `None` for what str0m cannot use
/// (TCP, relay without its base, bad addresses).
fn remote_candidate(c: &media_signalling::Candidate) -> Option<Candidate> {
    if !c.protocol.eq_ignore_ascii_case("udp") || c.component != 1 {
        return None;
    }
    let candidate = match c.kind.as_str() {
        "host" => Candidate::host(c.address, "udp"),
        "srflx" | "prflx" | "relay" => Candidate::server_reflexive(c.address, c.address, "udp"),
        _ => return None,
    };
    candidate.ok()
}
