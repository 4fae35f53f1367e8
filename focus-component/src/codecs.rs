//! Jicofo's default codecs and RTP header extensions (its `CodecUtil` with
//! the stock `jicofo.codec` configuration): what the offer and every Colibri2
//! `<media>` carry.
//!
//! Audio: Opus 111 (minptime 10, useinbandfec 1, transport-cc) and
//! telephone-event 126. Video, in Jicofo's order: AV1 41, VP8 100, H264 107,
//! VP9 101, each with ccm fir / nack / nack pli / transport-cc, then their
//! rtx 42, 96, 97, 99 (`apt`; H264's rtx has no feedback). Header extensions:
//! audio-level 1, mid 10, transport-cc 5 for audio; AV1 dependency
//! descriptor 11, mid 10, abs-send-time 3, transport-cc 5 for video.

use media_signalling::{HeaderExtension, MediaDescription, MediaKind, PayloadType, RtcpFeedback};

pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_TCC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_AV1_DD: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// What the offer adapts to the participant (Jicofo's `OfferOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferOptions {
    /// The client advertises `urn:ietf:rfc:4588`.
    pub rtx: bool,
    /// The client advertises `http://jitsi.org/tcc`.
    pub tcc: bool,
}

impl Default for OfferOptions {
    fn default() -> Self {
        OfferOptions {
            rtx: true,
            tcc: true,
        }
    }
}

fn fb(kind: &str, subtype: Option<&str>) -> RtcpFeedback {
    RtcpFeedback {
        kind: kind.to_string(),
        subtype: subtype.map(str::to_string),
    }
}

fn pt(id: u8, name: &str, clockrate: u32) -> PayloadType {
    PayloadType {
        id,
        name: name.to_string(),
        clockrate,
        channels: None,
        parameters: Vec::new(),
        feedback: Vec::new(),
    }
}

fn video_pt(id: u8, name: &str, options: OfferOptions) -> PayloadType {
    let mut p = pt(id, name, 90000);
    p.feedback.push(fb("ccm", Some("fir")));
    p.feedback.push(fb("nack", None));
    p.feedback.push(fb("nack", Some("pli")));
    if options.tcc {
        p.feedback.push(fb("transport-cc", None));
    }
    p
}

fn rtx(id: u8, apt: u8, with_feedback: bool) -> PayloadType {
    let mut p = pt(id, "rtx", 90000);
    p.parameters.push(("apt".into(), apt.to_string()));
    if with_feedback {
        p.feedback.push(fb("ccm", Some("fir")));
        p.feedback.push(fb("nack", None));
        p.feedback.push(fb("nack", Some("pli")));
    }
    p
}

/// The audio payload types in Jicofo's order.
pub fn audio_payload_types(options: OfferOptions) -> Vec<PayloadType> {
    let mut opus = pt(111, "opus", 48000);
    opus.channels = Some(2);
    opus.parameters.push(("minptime".into(), "10".into()));
    opus.parameters.push(("useinbandfec".into(), "1".into()));
    if options.tcc {
        opus.feedback.push(fb("transport-cc", None));
    }
    vec![opus, pt(126, "telephone-event", 8000)]
}

/// The video payload types in Jicofo's order: codecs, then their rtx.
pub fn video_payload_types(options: OfferOptions) -> Vec<PayloadType> {
    let mut h264 = video_pt(107, "H264", options);
    // Jicofo's one-parameter spelling of the H264 fmtp line.
    h264.parameters.push((
        "profile-level-id".into(),
        "42e01f;level-asymmetry-allowed=1;packetization-mode=1;".into(),
    ));
    let mut v = vec![
        video_pt(41, "AV1", options),
        video_pt(100, "VP8", options),
        h264,
        video_pt(101, "VP9", options),
    ];
    if options.rtx {
        v.push(rtx(42, 41, true));
        v.push(rtx(96, 100, true));
        v.push(rtx(97, 101, true));
        v.push(rtx(99, 107, false));
    }
    v
}

fn ext(id: u8, uri: &str) -> HeaderExtension {
    HeaderExtension {
        id,
        uri: uri.to_string(),
    }
}

pub fn audio_header_extensions(options: OfferOptions) -> Vec<HeaderExtension> {
    let mut v = vec![ext(1, URI_AUDIO_LEVEL), ext(10, URI_MID)];
    if options.tcc {
        v.push(ext(5, URI_TCC));
    }
    v
}

pub fn video_header_extensions(options: OfferOptions) -> Vec<HeaderExtension> {
    let mut v = vec![
        ext(11, URI_AV1_DD),
        ext(10, URI_MID),
        ext(3, URI_ABS_SEND_TIME),
    ];
    if options.tcc {
        v.push(ext(5, URI_TCC));
    }
    v
}

/// Both media descriptions, audio first.
pub fn media_descriptions(options: OfferOptions) -> [MediaDescription; 2] {
    [
        MediaDescription {
            kind: MediaKind::Audio,
            payload_types: audio_payload_types(options),
            header_extensions: audio_header_extensions(options),
        },
        MediaDescription {
            kind: MediaKind::Video,
            payload_types: video_payload_types(options),
            header_extensions: video_header_extensions(options),
        },
    ]
}
