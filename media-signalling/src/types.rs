//! The vocabulary shared by the signalling side (Colibri2, the bridge
//! channel) and the media core: what the focus says about an endpoint, and
//! what the bridge answers about its own transport. Plain data, no logic.

use std::net::SocketAddr;

/// Audio or video, as Colibri2's `<media type>` and Jingle's `media`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

/// An RTCP feedback type of a payload type (`<rtcp-fb type subtype>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpFeedback {
    pub kind: String,
    pub subtype: Option<String>,
}

/// A payload type the focus negotiated (`<payload-type>` in `<media>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadType {
    pub id: u8,
    /// `opus`, `VP8`, `rtx`, `telephone-event`, ...
    pub name: String,
    pub clockrate: u32,
    pub channels: Option<u8>,
    /// `<parameter name value>` pairs in order (`apt` for rtx).
    pub parameters: Vec<(String, String)>,
    pub feedback: Vec<RtcpFeedback>,
}

impl PayloadType {
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An RTP header extension (`<rtp-hdrext id uri>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderExtension {
    pub id: u8,
    pub uri: String,
}

/// What one `<media type>` of a Colibri2 endpoint carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    pub kind: MediaKind,
    pub payload_types: Vec<PayloadType>,
    pub header_extensions: Vec<HeaderExtension>,
}

/// `<ssrc-group semantics>`: `SIM` (simulcast layers, lowest first) or
/// `FID` (a primary SSRC and its retransmission SSRC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrcGroup {
    pub semantics: String,
    pub ssrcs: Vec<u32>,
}

/// One media source of an endpoint (`<media-source type id>`): a camera,
/// a screen share or a microphone, with its SSRCs and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub kind: MediaKind,
    /// The source name (`<endpoint>-v0`, `<endpoint>-a0`); the 2021 clients
    /// send none (empty here) and the focus names it after the endpoint.
    pub name: String,
    pub ssrcs: Vec<u32>,
    pub groups: Vec<SsrcGroup>,
    /// `desktop` for screen shares, `camera` otherwise.
    pub video_type: Option<String>,
    /// The WebRTC stream and track ids (`<parameter name='msid'>`, the
    /// compact JSON's `m`), which the receiving browser groups tracks by.
    pub msid: Option<String>,
}

impl Source {
    /// The SSRCs that carry the source's media (not retransmissions): the
    /// members of a `SIM` group, else every SSRC that is not the second of
    /// an `FID` pair.
    pub fn primary_ssrcs(&self) -> Vec<u32> {
        if let Some(sim) = self.groups.iter().find(|g| g.semantics == "SIM") {
            return sim.ssrcs.clone();
        }
        let rtx: Vec<u32> = self
            .groups
            .iter()
            .filter(|g| g.semantics == "FID")
            .filter_map(|g| g.ssrcs.get(1).copied())
            .collect();
        self.ssrcs
            .iter()
            .copied()
            .filter(|s| !rtx.contains(s))
            .collect()
    }

    /// The retransmission SSRC paired with `primary` by an `FID` group.
    pub fn rtx_for(&self, primary: u32) -> Option<u32> {
        self.groups
            .iter()
            .filter(|g| g.semantics == "FID")
            .find(|g| g.ssrcs.first() == Some(&primary))
            .and_then(|g| g.ssrcs.get(1).copied())
    }
}

/// An ICE candidate (`<candidate>` of an ICE-UDP transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub foundation: String,
    pub component: u8,
    pub protocol: String,
    pub priority: u32,
    pub address: SocketAddr,
    /// `host`, `srflx`, `relay`, `prflx`.
    pub kind: String,
    pub generation: u32,
    pub id: Option<String>,
}

/// A DTLS fingerprint (`<fingerprint hash setup>`), the value as
/// colon-separated upper-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: String,
    pub value: String,
    /// `actpass`, `active`, `passive`.
    pub setup: Option<String>,
}

/// An ICE-UDP transport as Jingle and Colibri2 carry it: the bridge's own
/// (answered to the focus) or an endpoint's (from its session-accept).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceTransport {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprints: Vec<Fingerprint>,
    pub candidates: Vec<Candidate>,
    pub rtcp_mux: bool,
    /// `<web-socket url>`: the bridge channel (only in what the bridge answers).
    pub web_socket: Option<String>,
}
