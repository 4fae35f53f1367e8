//! One conference: its endpoints, who owns which SSRC, and the forwarding
//! between them.
//!
//! Every signalled source of an endpoint is a `StreamRx` on that endpoint's
//! `Rtc` and a `StreamTx` (same SSRC, the sender's FID SSRC as rtx, a
//! synthetic rid) on the `Rtc` of every other endpoint, so str0m answers a
//! receiver's NACKs from that stream's cache with RTX. An RTP packet from a
//! sender is written to each other connected endpoint's `StreamTx`; a
//! keyframe request from a receiver goes back to the sender's `StreamRx`.
//! Simulcast sources are forwarded through `forward.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use media_signalling::{MediaKind, Source};
use str0m::media::KeyframeRequestKind;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Event, Output, Rtc};

use super::endpoint::Endpoint;
use super::forward::{LayerDecision, SimulcastForwarder};
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
    pub simulcast: bool,
}

/// One conference.
#[derive(Default)]
pub(crate) struct Conference {
    pub id: String,
    pub endpoints: HashMap<String, Endpoint>,
    pub ssrcs: HashMap<u32, SsrcInfo>,
    simulcast: HashMap<u32, SimulcastForwarder>,
    /// When each visible video SSRC's sender was last asked for a keyframe.
    keyframe_requested: HashMap<u32, Instant>,
    pub speaker: DominantSpeaker,
}

/// Keyframe requests of receivers for one stream are passed to its sender
/// at most this often (a keyframe reaches every receiver anyway).
const KEYFRAME_REQUEST_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

impl Conference {
    pub fn new(id: &str) -> Conference {
        Conference {
            id: id.to_string(),
            ..Conference::default()
        }
    }

    /// Replaces an endpoint's sources, refusing SSRCs of other endpoints.
    pub fn set_sources(&mut self, endpoint: &str, sources: &[Source]) -> Result<(), MediaError> {
        if !self.endpoints.contains_key(endpoint) {
            return Err(MediaError::UnknownEndpoint(endpoint.to_string()));
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
        for source in sources {
            let sim: Option<&Vec<u32>> = source
                .groups
                .iter()
                .find(|g| g.semantics == "SIM" && g.ssrcs.len() > 1)
                .map(|g| &g.ssrcs);
            for ssrc in source.primary_ssrcs() {
                let visible = sim.and_then(|g| g.first().copied()).unwrap_or(ssrc);
                self.ssrcs.insert(
                    ssrc,
                    SsrcInfo {
                        owner: endpoint.to_string(),
                        kind: source.kind,
                        visible,
                        simulcast: sim.is_some(),
                    },
                );
            }
            if let Some(layers) = sim
                && let Some(first) = layers.first()
                && self
                    .simulcast
                    .get(first)
                    .is_none_or(|f| f.layers() != layers)
            {
                self.simulcast
                    .insert(*first, SimulcastForwarder::new(layers.clone()));
            }
        }
        let ssrcs = &self.ssrcs;
        self.simulcast
            .retain(|visible, _| ssrcs.contains_key(visible));
        if let Some(e) = self.endpoints.get_mut(endpoint) {
            e.sources = sources.to_vec();
        }
        self.declare_all_streams();
        Ok(())
    }

    /// The active layers of every video source (see `layers.rs`).
    pub fn source_layers(&self) -> Vec<super::SourceLayers> {
        Vec::new()
    }

    /// A receiver's forwarding targets; returns the endpoints to poll.
    pub fn set_forwarding(
        &mut self,
        _receiver: &str,
        _targets: Vec<super::ForwardingTarget>,
        _now: Instant,
        _counters: &mut Counters,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Removes an endpoint and everything it sent.
    pub fn remove_endpoint(&mut self, endpoint: &str) -> Option<Endpoint> {
        let removed = self.endpoints.remove(endpoint)?;
        self.ssrcs.retain(|_, info| info.owner != endpoint);
        let ssrcs = &self.ssrcs;
        self.simulcast
            .retain(|visible, _| ssrcs.contains_key(visible));
        self.keyframe_requested
            .retain(|visible, _| ssrcs.contains_key(visible));
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
        loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    endpoint.rtc_timeout = Some(t);
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    let contents: Vec<u8> = t.contents.into();
                    counters.sent(now, contents.len());
                    if rtp_ssrc(&contents).is_some_and(|s| endpoint.rtx_ssrcs.contains(&s)) {
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
                    e.last_activity = now;
                }
                outputs.push_back(MediaOutput::Event(MediaEvent::EndpointConnected {
                    conference: self.id.clone(),
                    endpoint: id.to_string(),
                }));
                self.request_keyframes_for(now, id, counters)
            }
            Event::RtpPacket(packet) => self.forward(now, id, packet, counters),
            Event::KeyframeRequest(request) => {
                let ssrc = self
                    .endpoints
                    .get(id)
                    .and_then(|e| request.rid.and_then(|rid| e.rid_to_ssrc.get(&rid)).copied());
                match ssrc {
                    Some(ssrc) => self.request_keyframe(now, ssrc, request.kind, counters),
                    None => Vec::new(),
                }
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

    /// Asks the sender of receiver-visible `ssrc` for a keyframe; returns
    /// the sender (to be polled).
    fn request_keyframe(
        &mut self,
        now: Instant,
        visible: u32,
        kind: KeyframeRequestKind,
        counters: &mut Counters,
    ) -> Vec<String> {
        let Some(info) = self.ssrcs.get(&visible) else {
            return Vec::new();
        };
        if info.kind != MediaKind::Video {
            return Vec::new();
        }
        let recent = self
            .keyframe_requested
            .get(&visible)
            .is_some_and(|at| now.saturating_duration_since(*at) < KEYFRAME_REQUEST_INTERVAL);
        if recent {
            return Vec::new();
        }
        self.keyframe_requested.insert(visible, now);
        let owner = info.owner.clone();
        let layers: Vec<u32> = match self.simulcast.get(&visible) {
            Some(f) => f.current_ssrc().into_iter().collect(),
            None => vec![visible],
        };
        let Some(rtc) = self.endpoints.get_mut(&owner).and_then(|e| e.rtc.as_mut()) else {
            return Vec::new();
        };
        for layer in layers {
            if let Some(rx) = rtc.direct_api().stream_rx(&Ssrc::from(layer)) {
                rx.request_keyframe(kind);
                counters.keyframe_requests += 1;
            }
        }
        vec![owner]
    }

    /// A receiver connected: ask for keyframes of the video it will get.
    fn request_keyframes_for(
        &mut self,
        now: Instant,
        receiver: &str,
        counters: &mut Counters,
    ) -> Vec<String> {
        let visible: Vec<u32> = self
            .endpoints
            .get(receiver)
            .map(|e| {
                e.forwarded
                    .iter()
                    .filter(|(_, f)| f.kind == MediaKind::Video)
                    .map(|(s, _)| *s)
                    .collect()
            })
            .unwrap_or_default();
        let mut touched = Vec::new();
        for ssrc in visible {
            for t in self.request_keyframe(now, ssrc, KeyframeRequestKind::Pli, counters) {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
        }
        touched
    }

    /// Forwards one RTP packet of `sender` to every other connected
    /// endpoint; returns those written to.
    fn forward(
        &mut self,
        now: Instant,
        sender: &str,
        packet: RtpPacket,
        counters: &mut Counters,
    ) -> Vec<String> {
        let ssrc: u32 = *packet.header.ssrc;
        let Some(info) = self.ssrcs.get(&ssrc).cloned() else {
            return Vec::new();
        };
        if info.owner != sender {
            return Vec::new();
        }
        let Some(endpoint) = self.endpoints.get_mut(sender) else {
            return Vec::new();
        };
        let muted = match info.kind {
            MediaKind::Audio => {
                endpoint.last_audio_received = Some(now);
                endpoint.mute_audio
            }
            MediaKind::Video => {
                endpoint.last_video_received = Some(now);
                endpoint.mute_video
            }
        };
        if info.kind == MediaKind::Audio
            && let Some(level) = packet.header.ext_vals.audio_level
        {
            self.speaker.on_level(now, sender, level);
        }
        if muted {
            return Vec::new();
        }
        let pt = packet.header.payload_type;
        let mut seq_no = *packet.seq_no;
        let mut timestamp = packet.header.timestamp;
        let mut vp8 = None;
        let mut touched = Vec::new();
        if info.simulcast {
            let is_vp8 = self
                .endpoints
                .get(sender)
                .and_then(|e| e.rtc.as_ref())
                .is_some_and(|rtc| is_vp8_pt(rtc, pt));
            let Some(forwarder) = self.simulcast.get_mut(&info.visible) else {
                return Vec::new();
            };
            let (decision, keyframe) =
                forwarder.on_packet(now, ssrc, seq_no, timestamp, &packet.payload, is_vp8);
            if let Some(layer) = keyframe {
                let rx = self
                    .endpoints
                    .get_mut(sender)
                    .and_then(|e| e.rtc.as_mut())
                    .and_then(|rtc| {
                        rtc.direct_api()
                            .stream_rx(&Ssrc::from(layer))
                            .map(|rx| rx.request_keyframe(KeyframeRequestKind::Pli))
                    });
                if rx.is_some() {
                    counters.keyframe_requests += 1;
                    touched.push(sender.to_string());
                }
            }
            match decision {
                LayerDecision::Drop => return touched,
                LayerDecision::Forward {
                    seq_no: s,
                    timestamp: t,
                    vp8: patch,
                } => {
                    seq_no = s;
                    timestamp = t;
                    vp8 = patch;
                }
            }
        }
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..ExtensionValues::default()
        };
        for (id, receiver) in self.endpoints.iter_mut() {
            if id == sender || !receiver.connected || !receiver.supports_pt(pt) {
                continue;
            }
            let Some(forwarded) = receiver.forwarded.get_mut(&info.visible) else {
                continue;
            };
            let base = *forwarded.roc_base.get_or_insert(seq_no >> 16);
            let out_seq = seq_no.saturating_sub(base << 16);
            let Some(rtc) = receiver.rtc.as_mut() else {
                continue;
            };
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx(&Ssrc::from(info.visible)) else {
                continue;
            };
            let mut write = RtpWrite::new(
                pt,
                SeqNo::from(out_seq),
                timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(ext.clone())
            .nackable(info.kind == MediaKind::Video);
            if let Some(patch) = vp8 {
                write = write.vp8_patch(patch);
            }
            tx.write_rtp(write);
            touched.push(id.clone());
        }
        touched
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

fn is_vp8_pt(rtc: &Rtc, pt: str0m::media::Pt) -> bool {
    rtc.codec_config()
        .params()
        .iter()
        .any(|p| p.pt() == pt && p.spec().codec == str0m::format::Codec::Vp8)
}
