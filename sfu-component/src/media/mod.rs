//! The media core of the bridge: a sans-IO selective forwarding unit on
//! str0m. Datagrams and time go in ([`MediaCore::handle_receive`],
//! [`MediaCore::handle_timeout`]); datagrams to send and events come out
//! ([`MediaCore::poll_output`]) with the next deadline
//! ([`MediaCore::next_timeout`]). No socket, clock or thread in here: the
//! runtime owns the one UDP socket every endpoint shares.
//!
//! Start reading at [`MediaCore`], then:
//! - `demux.rs`: which endpoint a datagram belongs to (STUN USERNAME's
//!   local ufrag for a new address, then the source address);
//! - `endpoint.rs`: one endpoint's str0m `Rtc` (RTP mode, direct API, full
//!   ICE with the role Jicofo signals, DTLS passive, TWCC feedback, the
//!   focus' payload types and header-extension ids, never `sdes:mid`);
//! - `streams.rs`: the `StreamRx`/`StreamTx` each `Rtc` declares;
//! - `conference.rs`: sources and SSRCs, polling `Rtc`s in turn;
//! - `route.rs`: forwarding one packet, keyframe-request routing;
//! - `layers.rs`: the interface to bandwidth allocation (layers measured,
//!   forwarding targets per receiver, audio subscriptions);
//! - `forward.rs`: per (receiver, source) layer switching, temporal
//!   dropping and header rewriting onto the first `SIM` SSRC;
//! - `measure.rs`: bit rate, frame rate and height of incoming layers;
//! - `codec.rs`: VP8 descriptors, key frames of every codec;
//! - `feedback.rs`: `LayersChanged`, `BandwidthEstimate`, BWE probing;
//! - `speaker.rs`: dominant speaker identification;
//! - `stats.rs`: counters and rates.
//!
//! What str0m does for us per `Rtc`: SRTP, RTCP sender and receiver
//! reports, NACKs towards senders for lost packets, RTX answers to
//! receivers' NACKs from each `StreamTx`'s cache, TWCC feedback, parsing of
//! REMB from receivers (parsed, unused), bandwidth estimation from TWCC
//! feedback with probing.
//!
//! Not done here: the choice of layers (allocation, outside the media
//! core, tells it through `layers.rs`), RED and FEC (a payload type
//! other than Opus, VP8, VP9, H264, AV1, their rtx and telephone-event, such
//! as `red` or `ulpfec`, is not configured and its packets are dropped), ICE
//! restarts (a second transport only adds candidates), ICE over TCP, SCTP
//! data channels.

mod codec;
mod conference;
mod demux;
mod dependency_descriptor;
mod endpoint;
mod feedback;
mod forward;
mod layers;
mod measure;
mod relay;
mod route;
mod speaker;
mod stats;
mod streams;
mod vp9;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media_signalling::{Candidate, Fingerprint, IceTransport, MediaDescription, Source};
use str0m::Input;
use str0m::config::DtlsCert;
use str0m::net::{Protocol, Receive};

/// The AV1 dependency descriptor's parser and writer, for the fuzz target.
#[doc(hidden)]
pub use dependency_descriptor::check_descriptors as check_av1_dependency_descriptors;
pub use layers::{AudioSubscription, ForwardingTarget, LayerId, LayerInfo, SourceLayers};
pub use relay::relay_key;
pub use stats::MediaStats;

use conference::Conference;
use demux::{Demux, EndpointKey};
use endpoint::Endpoint;
use stats::Counters;

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
    EndpointConnected {
        conference: String,
        endpoint: String,
    },
    /// Silent for `endpoint_timeout`; the core has removed it.
    EndpointExpired {
        conference: String,
        endpoint: String,
    },
    /// The dominant speaker of a conference changed; `previous` lists the
    /// earlier speakers, most recent first; `silence` when nobody speaks.
    DominantSpeakerChanged {
        conference: String,
        endpoint: String,
        previous: Vec<String>,
        silence: bool,
    },
    /// str0m's bandwidth estimate for the link towards `endpoint` (from
    /// transport-wide feedback, with probing up to what its forwarding
    /// targets need) moved by more than 5 %, or a second passed since the
    /// last report of a different value. Allocation reallocates on it.
    BandwidthEstimate {
        conference: String,
        endpoint: String,
        bps: u64,
    },
    /// No transport-wide feedback comes from `endpoint` (a client without
    /// transport-cc): there is no estimate towards it any more, and the
    /// one reported before (str0m's initial value) must not limit what it
    /// is sent. `BandwidthEstimate` follows if feedback starts.
    BandwidthEstimateLost {
        conference: String,
        endpoint: String,
    },
    /// The layers `endpoint` sends changed: a layer started or stopped, a
    /// height changed, or a bitrate moved by more than 20 %. Read
    /// [`MediaCore::source_layers`] and reallocate.
    LayersChanged {
        conference: String,
        endpoint: String,
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

/// The bridge's media: every conference and endpoint, one str0m `Rtc` per
/// endpoint, all behind one UDP socket.
pub struct MediaCore {
    config: MediaConfig,
    /// The bridge's DTLS certificate, shared by every endpoint (`None` only
    /// if the crypto provider could not make one: allocation then fails).
    cert: Option<DtlsCert>,
    /// Its sha-256 fingerprint, colon-separated upper-case hex.
    fingerprint: String,
    conferences: HashMap<String, Conference>,
    demux: Demux,
    outputs: VecDeque<MediaOutput>,
    counters: Counters,
}

/// How long a failed `Rtc` waits before it is polled again.
const RETRY: Duration = Duration::from_millis(100);

impl MediaCore {
    pub fn new(config: MediaConfig) -> MediaCore {
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider.dtls_provider.generate_certificate();
        let fingerprint = cert
            .as_ref()
            .map(|c| {
                provider
                    .sha256_provider
                    .sha256(&c.certificate)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        MediaCore {
            config,
            cert,
            fingerprint,
            conferences: HashMap::new(),
            demux: Demux::default(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Creates the conference on first use. Returns the bridge's local
    /// transport for this endpoint: fresh ufrag/pwd, the sha-256
    /// fingerprint of the bridge's DTLS certificate (setup "actpass"), one
    /// host candidate per candidate address, rtcp_mux true, no web socket.
    pub fn create_endpoint(
        &mut self,
        now: Instant,
        conference: &str,
        endpoint: &str,
        ice_controlling: bool,
    ) -> Result<IceTransport, MediaError> {
        if self.cert.is_none() {
            return Err(MediaError::Rtc("no DTLS certificate".into()));
        }
        let exists = self
            .conferences
            .get(conference)
            .is_some_and(|c| c.endpoints.contains_key(endpoint));
        if exists {
            return Err(MediaError::EndpointExists(endpoint.to_string()));
        }
        let mut candidates = Vec::new();
        for address in &self.config.candidate_addresses {
            let priority = str0m::Candidate::host(*address, "udp")
                .map(|c| c.prio())
                .map_err(|e| MediaError::Rtc(format!("candidate {address}: {e}")))?;
            candidates.push(Candidate {
                foundation: "1".into(),
                component: 1,
                protocol: "udp".into(),
                priority,
                address: *address,
                kind: "host".into(),
                generation: 0,
                id: None,
            });
        }
        let e = Endpoint::new(now, ice_controlling);
        let transport = IceTransport {
            ufrag: e.ufrag.clone(),
            pwd: e.pwd.clone(),
            fingerprints: vec![Fingerprint {
                hash: "sha-256".into(),
                value: self.fingerprint.clone(),
                setup: Some("actpass".into()),
            }],
            candidates,
            rtcp_mux: true,
            web_socket: None,
        };
        self.demux
            .add_ufrag(&e.ufrag, (conference.to_string(), endpoint.to_string()));
        self.conferences
            .entry(conference.to_string())
            .or_insert_with(|| Conference::new(conference))
            .endpoints
            .insert(endpoint.to_string(), e);
        Ok(transport)
    }

    /// The payload types and header extensions the focus negotiated for
    /// this endpoint (Colibri2 `<media>`); may be called again.
    pub fn set_media(
        &mut self,
        conference: &str,
        endpoint: &str,
        media: &[MediaDescription],
    ) -> Result<(), MediaError> {
        let conf = conference_of(&mut self.conferences, conference, endpoint)?;
        let cert = self
            .cert
            .as_ref()
            .ok_or_else(|| MediaError::Rtc("no DTLS certificate".into()))?;
        let candidates = &self.config.candidate_addresses;
        let Some(e) = conf.endpoints.get_mut(endpoint) else {
            return Err(MediaError::UnknownEndpoint(endpoint.to_string()));
        };
        let now = e.last_activity;
        if e.set_media(now, media, cert, candidates)? {
            conf.declare_all_streams();
        }
        Ok(())
    }

    /// The endpoint's own ICE credentials, fingerprint and candidates.
    /// Starts ICE and DTLS (bridge DTLS passive).
    pub fn set_remote_transport(
        &mut self,
        now: Instant,
        conference: &str,
        endpoint: &str,
        transport: &IceTransport,
    ) -> Result<(), MediaError> {
        let conf = conference_of(&mut self.conferences, conference, endpoint)?;
        let cert = self
            .cert
            .as_ref()
            .ok_or_else(|| MediaError::Rtc("no DTLS certificate".into()))?;
        let candidates = &self.config.candidate_addresses;
        let Some(e) = conf.endpoints.get_mut(endpoint) else {
            return Err(MediaError::UnknownEndpoint(endpoint.to_string()));
        };
        if e.set_remote_transport(now, transport, cert, candidates)? {
            conf.declare_all_streams();
        }
        conf.drive(now, endpoint, &mut self.outputs, &mut self.counters);
        Ok(())
    }

    /// Replaces the endpoint's sources (what it sends). Errors if an SSRC
    /// belongs to another endpoint of the conference (nothing changed then).
    pub fn set_sources(
        &mut self,
        conference: &str,
        endpoint: &str,
        sources: &[Source],
    ) -> Result<(), MediaError> {
        let conf = conference_of(&mut self.conferences, conference, endpoint)?;
        conf.set_sources(endpoint, sources)
    }

    /// Stops (`true`) or resumes (`false`) forwarding the endpoint's audio
    /// and video.
    pub fn force_mute(
        &mut self,
        conference: &str,
        endpoint: &str,
        audio: bool,
        video: bool,
    ) -> Result<(), MediaError> {
        let conf = conference_of(&mut self.conferences, conference, endpoint)?;
        if let Some(e) = conf.endpoints.get_mut(endpoint) {
            e.mute_audio = audio;
            e.mute_video = video;
        }
        Ok(())
    }

    /// No-op if unknown; the conference goes when its last endpoint goes.
    pub fn expire_endpoint(&mut self, conference: &str, endpoint: &str) {
        let Some(conf) = self.conferences.get_mut(conference) else {
            return;
        };
        if let Some(mut removed) = conf.remove_endpoint(endpoint) {
            if let Some(rtc) = removed.rtc.as_mut() {
                rtc.disconnect();
            }
            self.demux
                .remove_endpoint(&(conference.to_string(), endpoint.to_string()));
        }
        if conf.endpoints.is_empty() {
            self.conferences.remove(conference);
        }
    }

    pub fn expire_conference(&mut self, conference: &str) {
        for endpoint in self.endpoint_ids(conference) {
            self.expire_endpoint(conference, &endpoint);
        }
        self.conferences.remove(conference);
    }

    pub fn has_conference(&self, conference: &str) -> bool {
        self.conferences.contains_key(conference)
    }

    pub fn endpoint_ids(&self, conference: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .conferences
            .get(conference)
            .map(|c| c.endpoints.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// One datagram from the socket. What belongs to no endpoint, or that
    /// the endpoint's `Rtc` refuses, is dropped and counted.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.counters.received(now, contents.len());
        let destination = local_address(&self.config.candidate_addresses, destination);
        let Some((conference, endpoint)) = self.demux.route(source, contents) else {
            self.counters.packets_dropped += 1;
            return;
        };
        let Some(conf) = self.conferences.get_mut(conference) else {
            self.counters.packets_dropped += 1;
            return;
        };
        let Some(e) = conf.endpoints.get_mut(endpoint) else {
            self.counters.packets_dropped += 1;
            return;
        };
        let Some(rtc) = e.rtc.as_mut() else {
            // ICE checks before the focus passed the endpoint's transport:
            // the browser retries them.
            self.counters.packets_dropped += 1;
            return;
        };
        let Ok(datagram) = contents.try_into() else {
            self.counters.packets_dropped += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents: datagram,
            },
        );
        if !rtc.accepts(&input) {
            self.counters.packets_dropped += 1;
            return;
        }
        if let Err(err) = rtc.handle_input(input) {
            tracing::debug!(%conference, %endpoint, "dropped datagram: {err}");
            self.counters.packets_dropped += 1;
        }
        e.last_activity = now;
        e.rtc_now = Some(now);
        conf.drive(now, endpoint, &mut self.outputs, &mut self.counters);
    }

    /// Time passed: str0m timers, dominant-speaker decisions, expiry of
    /// silent endpoints.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.counters.download.roll(now);
        self.counters.upload.roll(now);
        let mut expired: Vec<EndpointKey> = Vec::new();
        for (conference_id, conf) in self.conferences.iter_mut() {
            let due: Vec<String> = conf
                .endpoints
                .iter()
                .filter(|(_, e)| e.rtc_timeout.is_some_and(|t| t <= now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                if let Some(e) = conf.endpoints.get_mut(&id)
                    && let Some(rtc) = e.rtc.as_mut()
                {
                    e.rtc_now = Some(now);
                    if let Err(err) = rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(endpoint = id, "rtc timeout: {err}");
                    }
                }
                conf.drive(now, &id, &mut self.outputs, &mut self.counters);
                if let Some(e) = conf.endpoints.get_mut(&id)
                    && e.rtc_timeout.is_some_and(|t| t <= now)
                {
                    e.rtc_timeout = Some(now + RETRY);
                }
            }
            if conf.next_feedback_check().is_some_and(|t| t <= now) {
                conf.check_feedback(now, &mut self.outputs);
            }
            if let Some(change) = conf.speaker.handle_timeout(now) {
                self.outputs
                    .push_back(MediaOutput::Event(MediaEvent::DominantSpeakerChanged {
                        conference: conference_id.clone(),
                        endpoint: change.endpoint,
                        previous: change.previous,
                        silence: change.silence,
                    }));
            }
            for (id, e) in &conf.endpoints {
                let silent = now.saturating_duration_since(e.last_activity);
                if e.connected && silent >= self.config.endpoint_timeout {
                    expired.push((conference_id.clone(), id.clone()));
                }
            }
        }
        for (conference, endpoint) in expired {
            self.expire_endpoint(&conference, &endpoint);
            self.outputs
                .push_back(MediaOutput::Event(MediaEvent::EndpointExpired {
                    conference,
                    endpoint,
                }));
        }
    }

    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        self.outputs.pop_front()
    }

    /// The earliest instant `handle_timeout` is due.
    pub fn next_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for conf in self.conferences.values() {
            consider(conf.speaker.next_timeout());
            consider(conf.next_feedback_check());
            for e in conf.endpoints.values() {
                consider(e.rtc_timeout);
                if e.connected {
                    consider(Some(e.last_activity + self.config.endpoint_timeout));
                }
            }
        }
        next
    }
}

/// The conference of a known endpoint.
fn conference_of<'a>(
    conferences: &'a mut HashMap<String, Conference>,
    conference: &str,
    endpoint: &str,
) -> Result<&'a mut Conference, MediaError> {
    let conf = conferences
        .get_mut(conference)
        .ok_or_else(|| MediaError::UnknownConference(conference.to_string()))?;
    if !conf.endpoints.contains_key(endpoint) {
        return Err(MediaError::UnknownEndpoint(endpoint.to_string()));
    }
    Ok(conf)
}

/// The candidate address a datagram reached. str0m pairs by local
/// candidate, but a runtime cannot always tell the address a datagram was
/// sent to (a socket bound to a wildcard or to a private address behind a
/// 1:1 NAT): anything not a candidate is taken as the candidate of the same
/// family and port (else family).
fn local_address(candidates: &[SocketAddr], destination: SocketAddr) -> SocketAddr {
    if candidates.contains(&destination) {
        return destination;
    }
    let family = |c: &&SocketAddr| c.is_ipv4() == destination.is_ipv4();
    candidates
        .iter()
        .filter(family)
        .find(|c| c.port() == destination.port())
        .or_else(|| candidates.iter().find(family))
        .copied()
        .unwrap_or(destination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_map_to_candidates() {
        let public: SocketAddr = "203.0.113.7:10000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::7]:10000".parse().unwrap();
        let candidates = [public, v6];
        let private: SocketAddr = "172.17.0.2:10000".parse().unwrap();
        assert_eq!(local_address(&candidates, public), public);
        assert_eq!(local_address(&candidates, private), public);
        assert_eq!(
            local_address(&candidates, "[::]:10000".parse().unwrap()),
            v6
        );
        assert_eq!(local_address(&[], private), private);
    }
}
