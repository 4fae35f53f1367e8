//! The media core of the bridge: a sans-IO selective forwarding unit on
//! str0m. Datagrams and time go in ([`MediaCore::handle_receive`],
//! [`MediaCore::handle_timeout`]); datagrams to send and events come out
//! ([`MediaCore::poll_output`]) with the next deadline
//! ([`MediaCore::next_timeout`]). No socket, clock or thread in here: the
//! runtime owns the one UDP socket every endpoint shares.
//!
//! Start reading at [`MediaCore`]; one endpoint's str0m `Rtc` lives in
//! `endpoint.rs`, a conference's forwarding tables in `conference.rs`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{IceTransport, MediaDescription, Source};

/// How the core is set up by the runtime.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Addresses offered as ICE host candidates; each is the socket's
    /// address as peers reach it (ip + the bridge's UDP port).
    pub candidate_addresses: Vec<SocketAddr>,
    /// No packet from a connected endpoint for this long: it is reported
    /// expired (Videobridge expires inactive endpoints).
    pub endpoint_timeout: Duration,
}

/// What the core gives back to the runtime.
#[derive(Debug)]
pub enum MediaOutput {
    /// A datagram to send from the local `source` address to `destination`.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    Event(MediaEvent),
}

/// Something the signalling side must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// ICE and DTLS are up.
    EndpointConnected { conference: String, endpoint: String },
    /// Silent for `endpoint_timeout`; the core has removed it.
    EndpointExpired { conference: String, endpoint: String },
    /// The dominant speaker of a conference changed; `previous` lists the
    /// earlier speakers, most recent first; `silence` when nobody speaks.
    DominantSpeakerChanged {
        conference: String,
        endpoint: String,
        previous: Vec<String>,
        silence: bool,
    },
}

/// Why a call from the signalling side failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("unknown conference {0}")]
    UnknownConference(String),
    #[error("unknown endpoint {0}")]
    UnknownEndpoint(String),
    #[error("endpoint {0} exists")]
    EndpointExists(String),
    #[error("ssrc {ssrc} belongs to endpoint {owner}")]
    SsrcConflict { ssrc: u32, owner: String },
    #[error("invalid sources: {0}")]
    InvalidSources(String),
    #[error("rtc: {0}")]
    Rtc(String),
}

/// Counters and rates of the whole core (brewery stats, /colibri/stats).
#[derive(Debug, Clone, Default)]
pub struct MediaStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Malformed datagrams and datagrams that belong to no endpoint.
    pub packets_dropped: u64,
    pub nacks_received: u64,
    pub retransmissions_sent: u64,
    pub keyframe_requests: u64,
    pub conferences: u64,
    pub endpoints: u64,
    pub endpoints_sending_audio: u64,
    pub endpoints_sending_video: u64,
    pub bitrate_download_bps: u64,
    pub bitrate_upload_bps: u64,
    pub packet_rate_download: u64,
    pub packet_rate_upload: u64,
}

/// The bridge's media: every conference and endpoint, one str0m `Rtc` per
/// endpoint, all behind one UDP socket.
pub struct MediaCore {
    config: MediaConfig,
    outputs: VecDeque<MediaOutput>,
    stats: MediaStats,
}

impl MediaCore {
    pub fn new(config: MediaConfig) -> MediaCore {
        MediaCore {
            config,
            outputs: VecDeque::new(),
            stats: MediaStats::default(),
        }
    }

    /// Creates the conference on first use. Returns the bridge's local
    /// transport for this endpoint: fresh ufrag/pwd, the sha-256
    /// fingerprint of the bridge's DTLS certificate (setup "actpass"), one
    /// host candidate per candidate address, rtcp_mux true, no web socket.
    pub fn create_endpoint(
        &mut self,
        _now: Instant,
        _conference: &str,
        endpoint: &str,
        _ice_controlling: bool,
    ) -> Result<IceTransport, MediaError> {
        let _ = &self.config;
        Err(MediaError::Rtc(format!("not yet implemented ({endpoint})")))
    }

    /// The payload types and header extensions the focus negotiated for
    /// this endpoint (Colibri2 `<media>`); may be called again.
    pub fn set_media(
        &mut self,
        conference: &str,
        _endpoint: &str,
        _media: &[MediaDescription],
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownConference(conference.to_string()))
    }

    /// The endpoint's own ICE credentials, fingerprint and candidates.
    /// Starts ICE and DTLS (bridge DTLS passive).
    pub fn set_remote_transport(
        &mut self,
        _now: Instant,
        conference: &str,
        _endpoint: &str,
        _transport: &IceTransport,
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownConference(conference.to_string()))
    }

    /// Replaces the endpoint's sources (what it sends). Errors if an SSRC
    /// belongs to another endpoint of the conference (nothing changed then).
    pub fn set_sources(
        &mut self,
        conference: &str,
        _endpoint: &str,
        _sources: &[Source],
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownConference(conference.to_string()))
    }

    /// Stops (or resumes) forwarding the endpoint's audio and/or video.
    pub fn force_mute(
        &mut self,
        conference: &str,
        _endpoint: &str,
        _audio: bool,
        _video: bool,
    ) -> Result<(), MediaError> {
        Err(MediaError::UnknownConference(conference.to_string()))
    }

    /// No-op if unknown; the conference goes when its last endpoint goes.
    pub fn expire_endpoint(&mut self, _conference: &str, _endpoint: &str) {}

    pub fn expire_conference(&mut self, _conference: &str) {}

    pub fn has_conference(&self, _conference: &str) -> bool {
        false
    }

    pub fn endpoint_ids(&self, _conference: &str) -> Vec<String> {
        Vec::new()
    }

    pub fn handle_receive(
        &mut self,
        _now: Instant,
        _source: SocketAddr,
        _destination: SocketAddr,
        _contents: &[u8],
    ) {
        self.stats.packets_dropped += 1;
    }

    pub fn handle_timeout(&mut self, _now: Instant) {}

    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        self.outputs.pop_front()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        None
    }

    pub fn stats(&self) -> MediaStats {
        self.stats.clone()
    }
}
