//! One conference: its endpoints, who owns which SSRC, and the forwarding
//! between them.
//!
//! Every signalled source of an endpoint is a `StreamRx` on that endpoint's
//! `Rtc` and a `StreamTx` (same SSRC, the sender's FID SSRC as rtx, a
//! synthetic rid) on the `Rtc` of every other endpoint, so str0m answers a
//! receiver's NACKs from that stream's cache with RTX. An RTP packet from a
//! sender is written to each other connected endpoint's `StreamTx`; a
//! keyframe request from a receiver goes back to the sender's `StreamRx`.
//! Video goes through a `LayerForwarder` per receiver (`forward.rs`), which
//! picks the layer allocation chose for that receiver; each source's layers
//! are measured on the way in (`measure.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use media_signalling::{MediaKind, Source};
use str0m::media::KeyframeRequestKind;
use str0m::{Event, Output};

use super::endpoint::Endpoint;
use super::layers::source_name;
use super::measure::SourceMeter;
use super::speaker::DominantSpeaker;
use super::stats::Counters;
use super::{MediaError, MediaEvent, MediaOutput};

/// How an SSRC signalled by the focus is forwarded.
#[derive(Debug, Clone)]
pub(crate) struct SsrcInfo {
    pub owner: String,
    pub kind: MediaKind,
    /// The SSRC receivers see (the first of a `SIM` group, else itself).
    pub visible: u32,
    /// Its index in the `SIM` group (0 without simulcast).
    pub spatial: usize,
    /// The source's name (see `layers.rs`).
    pub source_name: String,
    /// For a relayed endpoint's SSRC: the relay (its key in `endpoints`)
    /// whose `Rtc` carries it.
    pub via: Option<String>,
}

/// A video source of the conference, keyed by its receiver-visible SSRC.
#[derive(Debug, Clone)]
pub(crate) struct VideoSource {
    pub owner: String,
    pub name: String,
    /// Its layers' SSRCs, lowest first (one without simulcast).
    pub layers: Vec<u32>,
    pub meter: SourceMeter,
    /// The AV1 dependency descriptor structure each layer SSRC sent last.
    pub dd_structures: HashMap<u32, std::sync::Arc<super::dependency_descriptor::Structure>>,
}

/// One conference.
#[derive(Default)]
pub(crate) struct Conference {
    pub id: String,
    pub endpoints: HashMap<String, Endpoint>,
    pub ssrcs: HashMap<u32, SsrcInfo>,
    pub video: HashMap<u32, VideoSource>,
    /// When each video layer's SSRC was last asked for a keyframe.
    pub keyframe_requested: HashMap<u32, Instant>,
    pub speaker: DominantSpeaker,
    /// The latest time the core was given (to judge what is active).
    pub now: Option<Instant>,
    /// Layer reporting and bandwidth estimation state (`feedback.rs`).
    pub feedback: super::feedback::Feedback,
    /// Endpoints of peer bridges: id → (relay key, their sources).
    pub relayed: HashMap<String, (String, Vec<Source>)>,
    /// The video sources each relay's peer asked for (`AddReceiver`), by
    /// relay key; a relay without an entry gets every source.
    pub relay_wanted: HashMap<String, HashSet<String>>,
}

/// How stale the time an `Rtc` was last given may be when it is polled.
const RTC_CLOCK_RESOLUTION: std::time::Duration = std::time::Duration::from_millis(1);

/// Due timeouts handled in one poll of an `Rtc` at most (the rest waits
/// for the next turn).
const MAX_SPINS: usize = 256;

impl Conference {
    pub fn new(id: &str) -> Conference {
        Conference {
            id: id.to_string(),
            ..Conference::default()
        }
    }

    /// Replaces an endpoint's sources, refusing SSRCs of other endpoints.
    pub fn set_sources(&mut self, endpoint: &str, sources: &[Source]) -> Result<(), MediaError> {
        self.apply_sources(endpoint, None, sources)
    }

    /// Replaces the sources of `endpoint`, a local endpoint (`via` None)
    /// or one behind the relay `via`.
    pub(super) fn apply_sources(
        &mut self,
        endpoint: &str,
        via: Option<&str>,
        sources: &[Source],
    ) -> Result<(), MediaError> {
        let carrier = via.unwrap_or(endpoint);
        if !self.endpoints.contains_key(carrier) {
            return Err(MediaError::UnknownEndpoint(carrier.to_string()));
        }
        let mut seen = HashSet::new();
        for source in sources {
            for group in &source.groups {
                if let Some(s) = group.ssrcs.iter().find(|s| !source.ssrcs.contains(s)) {
                    return Err(MediaError::InvalidSources(format!(
                        "group {} names ssrc {s} that is not in source {}",
                        group.semantics, source.name
                    )));
                }
            }
            for ssrc in &source.ssrcs {
                if *ssrc == 0 || !seen.insert(*ssrc) {
                    return Err(MediaError::InvalidSources(format!(
                        "ssrc {ssrc} is zero or listed twice"
                    )));
                }
                if let Some(info) = self.ssrcs.get(ssrc)
                    && info.owner != endpoint
                {
                    return Err(MediaError::SsrcConflict {
                        ssrc: *ssrc,
                        owner: info.owner.clone(),
                    });
                }
            }
        }
        self.ssrcs.retain(|_, info| info.owner != endpoint);
        let now = self
            .now
            .or_else(|| self.endpoints.get(carrier).map(|e| e.last_activity));
        let mut counts = (0usize, 0usize);
        for source in sources {
            let index = match source.kind {
                MediaKind::Audio => &mut counts.0,
                MediaKind::Video => &mut counts.1,
            };
            let name = source_name(endpoint, source, *index);
            *index += 1;
            let sim: Option<&Vec<u32>> = source
                .groups
                .iter()
                .find(|g| g.semantics == "SIM" && g.ssrcs.len() > 1)
                .map(|g| &g.ssrcs);
            let primary = source.primary_ssrcs();
            for (spatial, ssrc) in primary.iter().enumerate() {
                let visible = sim.and_then(|g| g.first().copied()).unwrap_or(*ssrc);
                self.ssrcs.insert(
                    *ssrc,
                    SsrcInfo {
                        owner: endpoint.to_string(),
                        kind: source.kind,
                        visible,
                        spatial: if sim.is_some() { spatial } else { 0 },
                        source_name: name.clone(),
                        via: via.map(str::to_string),
                    },
                );
            }
            if source.kind != MediaKind::Video {
                continue;
            }
            let groups: Vec<Vec<u32>> = match sim {
                Some(layers) => vec![layers.clone()],
                None => primary.iter().map(|s| vec![*s]).collect(),
            };
            for layers in groups {
                let Some(first) = layers.first().copied() else {
                    continue;
                };
                let same = self
                    .video
                    .get(&first)
                    .is_some_and(|v| v.layers == layers && v.name == name);
                if !same && let Some(now) = now {
                    self.video.insert(
                        first,
                        VideoSource {
                            owner: endpoint.to_string(),
                            name: name.clone(),
                            meter: SourceMeter::new(now, layers.len()),
                            layers,
                            dd_structures: HashMap::new(),
                        },
                    );
                }
            }
        }
        let ssrcs = &self.ssrcs;
        self.video.retain(|visible, _| ssrcs.contains_key(visible));
        match via {
            None => {
                if let Some(e) = self.endpoints.get_mut(endpoint) {
                    e.sources = sources.to_vec();
                }
            }
            Some(relay) => {
                self.relayed
                    .insert(endpoint.to_string(), (relay.to_string(), sources.to_vec()));
                self.refresh_relay_sources(relay);
            }
        }
        self.declare_all_streams();
        Ok(())
    }

    /// Removes an endpoint and everything it sent.
    pub fn remove_endpoint(&mut self, endpoint: &str) -> Option<Endpoint> {
        let removed = self.endpoints.remove(endpoint)?;
        self.ssrcs
            .retain(|_, info| info.owner != endpoint && info.via.as_deref() != Some(endpoint));
        let behind: Vec<String> = self
            .relayed
            .iter()
            .filter(|(_, (relay, _))| relay == endpoint)
            .map(|(id, _)| id.clone())
            .collect();
        for id in behind {
            self.relayed.remove(&id);
            self.speaker.remove(&id);
        }
        let ssrcs = &self.ssrcs;
        self.video.retain(|visible, _| ssrcs.contains_key(visible));
        self.keyframe_requested
            .retain(|ssrc, _| ssrcs.contains_key(ssrc));
        self.speaker.remove(endpoint);
        self.declare_all_streams();
        Some(removed)
    }

    /// Polls one endpoint's `Rtc` until it waits, handling its events (which
    /// may write to other endpoints); every endpoint written to is polled in
    /// turn.
    pub fn drive(
        &mut self,
        now: Instant,
        first: &str,
        outputs: &mut VecDeque<MediaOutput>,
        counters: &mut Counters,
    ) {
        self.now = Some(self.now.map_or(now, |n| n.max(now)));
        let mut pending: VecDeque<String> = VecDeque::from([first.to_string()]);
        let mut queued: HashSet<String> = HashSet::from([first.to_string()]);
        // Each poll may write to others, which may answer (e.g. a keyframe
        // request back); the guard bounds a pathological ping-pong.
        let mut guard = 0usize;
        while let Some(id) = pending.pop_front() {
            queued.remove(&id);
            guard += 1;
            if guard > 4 * self.endpoints.len() + 16 {
                // Left for the next timeout.
                if let Some(e) = self.endpoints.get_mut(&id) {
                    e.rtc_timeout = Some(now);
                }
                for rest in &pending {
                    if let Some(e) = self.endpoints.get_mut(rest) {
                        e.rtc_timeout = Some(now);
                    }
                }
                break;
            }
            let events = self.poll_endpoint(now, &id, outputs, counters);
            for event in events {
                for t in self.handle_event(now, &id, event, outputs, counters) {
                    if queued.insert(t.clone()) {
                        pending.push_back(t);
                    }
                }
            }
        }
    }

    fn poll_endpoint(
        &mut self,
        now: Instant,
        id: &str,
        outputs: &mut VecDeque<MediaOutput>,
        counters: &mut Counters,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(endpoint) = self.endpoints.get_mut(id) else {
            return events;
        };
        let Some(rtc) = endpoint.rtc.as_mut() else {
            return events;
        };
        // Packets written to it from other endpoints are sent now: str0m
        // stamps them (TWCC send times, pacing) with the last time it was
        // given, so it must have this one (to a millisecond: a busy bridge
        // forwards many packets per millisecond, and a timeout costs).
        if endpoint
            .rtc_now
            .is_none_or(|t| now.saturating_duration_since(t) >= RTC_CLOCK_RESOLUTION)
        {
            endpoint.rtc_now = Some(now);
            if let Err(e) = rtc.handle_input(str0m::Input::Timeout(now)) {
                tracing::debug!(endpoint = id, "rtc timeout: {e}");
            }
        }
        let mut spins = 0;
        loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    // Due already (str0m's pacer wants a timeout after each
                    // packet it releases): give it at once, so a paced
                    // burst goes out in this turn, not one packet per turn.
                    if t <= now && spins < MAX_SPINS {
                        spins += 1;
                        if rtc.handle_input(str0m::Input::Timeout(now)).is_ok() {
                            continue;
                        }
                    }
                    endpoint.rtc_timeout = Some(t);
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let contents: Vec<u8> = t.contents.into();
                    counters.sent(now, contents.len());
                    // Padding for bandwidth probing goes on rtx SSRCs too,
                    // with the P bit set; retransmissions have none.
                    let padding = contents.first().is_some_and(|b| b & 0x20 != 0);
                    if !padding
                        && rtp_ssrc(&contents).is_some_and(|s| endpoint.rtx_ssrcs.contains(&s))
                    {
                        counters.retransmissions_sent += 1;
                    }
                    outputs.push_back(MediaOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents,
                    });
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(endpoint = id, "rtc error: {e}");
                    endpoint.rtc_timeout = Some(now + std::time::Duration::from_millis(100));
                    break;
                }
            }
        }
        events
    }

    /// Handles one event of endpoint `id`; returns the endpoints written to.
    fn handle_event(
        &mut self,
        now: Instant,
        id: &str,
        event: Event,
        outputs: &mut VecDeque<MediaOutput>,
        counters: &mut Counters,
    ) -> Vec<String> {
        match event {
            Event::Connected => {
                if let Some(e) = self.endpoints.get_mut(id) {
                    e.connected = true;
                    e.connected_at = Some(now);
                    e.last_activity = now;
                }
                outputs.push_back(MediaOutput::Event(MediaEvent::EndpointConnected {
                    conference: self.id.clone(),
                    endpoint: id.to_string(),
                }));
                let mut touched = self.request_keyframes_for(now, id, counters);
                // Receivers that connected before it may be waiting for a
                // key frame of what it sends (or, for a relay, what the
                // endpoints behind it send).
                let ssrcs = &self.ssrcs;
                let own: Vec<u32> = self
                    .video
                    .iter()
                    .filter(|(visible, v)| {
                        v.owner == id
                            || ssrcs
                                .get(visible)
                                .is_some_and(|i| i.via.as_deref() == Some(id))
                    })
                    .flat_map(|(_, v)| v.layers.iter().copied())
                    .collect();
                for ssrc in own {
                    let kind = KeyframeRequestKind::Pli;
                    for t in self.request_layer_keyframe(now, ssrc, kind, counters) {
                        if !touched.contains(&t) {
                            touched.push(t);
                        }
                    }
                }
                touched
            }
            Event::RtpPacket(packet) => self.forward(now, id, packet, counters),
            Event::KeyframeRequest(request) => {
                let endpoint = self.endpoints.get(id);
                let relay = endpoint.is_some_and(|e| e.relay);
                let ssrc = endpoint
                    .and_then(|e| request.rid.and_then(|rid| e.rid_to_ssrc.get(&rid)).copied());
                match ssrc {
                    // A relay gets every layer on its own SSRC.
                    Some(ssrc) if relay => {
                        self.request_layer_keyframe(now, ssrc, request.kind, counters)
                    }
                    Some(ssrc) => self.request_keyframe(now, id, ssrc, request.kind, counters),
                    None => Vec::new(),
                }
            }
            Event::PeerStats(stats) => {
                self.on_peer_stats(now, id, &stats, outputs);
                Vec::new()
            }
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc { estimate, .. }) => {
                self.on_bandwidth_estimate(now, id, estimate.as_u64(), outputs);
                Vec::new()
            }
            Event::MediaEgressStats(s) => {
                if let Some(e) = self.endpoints.get_mut(id) {
                    let entry = e.egress_counters.entry((s.mid, s.rid)).or_insert((0, 0));
                    counters.nacks_received += s.nacks.saturating_sub(entry.0);
                    *entry = (s.nacks.max(entry.0), entry.1);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

/// The SSRC of an (S)RTP datagram; `None` for RTCP and anything else (the
/// RTP header stays in the clear under SRTP).
fn rtp_ssrc(datagram: &[u8]) -> Option<u32> {
    let first = *datagram.first()?;
    let second = *datagram.get(1)?;
    if first >> 6 != 2 || (192..=223).contains(&second) {
        return None;
    }
    let bytes: [u8; 4] = datagram.get(8..12)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}
