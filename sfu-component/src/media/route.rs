//! Forwarding one RTP packet from its sender to the receivers, and
//! routing keyframe requests back: audio by SSRC to every receiver whose
//! audio subscription includes its source; video through each receiver's
//! `LayerForwarder` (`forward.rs`), after the source's layers were
//! measured (`measure.rs`). The payload is shared, never copied per
//! receiver (str0m's packets hold it in an `Arc`). An AV1 packet's
//! dependency descriptor is parsed once (with the structure its SSRC sent
//! last, kept in the `VideoSource`) and written anew for each receiver
//! (its frame number and active decode targets); a descriptor that cannot
//! be read yet (no structure) holds the packet back and asks for a key
//! frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use media_signalling::MediaKind;
use str0m::Rtc;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, Pt};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};

use super::codec::{parse_vp8, starts_keyframe};
use super::conference::Conference;
use super::dependency_descriptor::{self as dd, RawDescriptor};
use super::forward::{Dd, Incoming, LayerDecision};
use super::stats::Counters;
use super::vp9::parse_vp9;

/// A layer's sender is asked for a keyframe at most this often (a keyframe
/// reaches every receiver anyway).
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(250);

impl Conference {
    /// Asks the sender of layer `ssrc` for a keyframe (throttled); returns
    /// the sender (to be polled).
    pub(super) fn request_layer_keyframe(
        &mut self,
        now: Instant,
        ssrc: u32,
        kind: KeyframeRequestKind,
        counters: &mut Counters,
    ) -> Vec<String> {
        let Some(info) = self.ssrcs.get(&ssrc) else {
            return Vec::new();
        };
        if info.kind != MediaKind::Video {
            return Vec::new();
        }
        let recent = self
            .keyframe_requested
            .get(&ssrc)
            .is_some_and(|at| now.saturating_duration_since(*at) < KEYFRAME_REQUEST_INTERVAL);
        // A sender not connected yet is asked when it connects; one behind
        // a relay is asked through the relay.
        let owner = info.via.clone().unwrap_or_else(|| info.owner.clone());
        let connected = self.endpoints.get(&owner).is_some_and(|e| e.connected);
        if recent || !connected {
            return Vec::new();
        }
        self.keyframe_requested.insert(ssrc, now);
        let Some(rtc) = self.endpoints.get_mut(&owner).and_then(|e| e.rtc.as_mut()) else {
            return Vec::new();
        };
        match rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
            Some(rx) => {
                rx.request_keyframe(kind);
                counters.keyframe_requests += 1;
                vec![owner]
            }
            None => Vec::new(),
        }
    }

    /// The layer SSRC a receiver's keyframe request for `visible` is
    /// about: the layer it gets now, else the one it waits for.
    fn layer_for(&self, receiver: &str, visible: u32) -> Option<u32> {
        let source = self.video.get(&visible)?;
        let forwarded = self.endpoints.get(receiver)?.forwarded.get(&visible)?;
        let now = self.now?;
        // Before anything was sent, as if every layer were.
        let all = (1u32 << source.layers.len().min(31)) - 1;
        let wanted = |mask: u32| forwarded.forwarder.wanted(mask).map(|(s, _)| s);
        let spatial = forwarded
            .forwarder
            .current()
            .or_else(|| wanted(source.meter.active_mask(now)))
            .or_else(|| wanted(all))?;
        // A VP9 SVC source has one SSRC for all its spatial layers.
        source
            .layers
            .get(spatial)
            .or_else(|| source.layers.last())
            .copied()
    }

    /// A receiver asked for a keyframe of receiver-visible `visible`.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        receiver: &str,
        visible: u32,
        kind: KeyframeRequestKind,
        counters: &mut Counters,
    ) -> Vec<String> {
        match self.layer_for(receiver, visible) {
            Some(ssrc) => self.request_layer_keyframe(now, ssrc, kind, counters),
            None => Vec::new(),
        }
    }

    /// A receiver connected: ask for keyframes of the video it will get.
    pub(super) fn request_keyframes_for(
        &mut self,
        now: Instant,
        receiver: &str,
        counters: &mut Counters,
    ) -> Vec<String> {
        if self.endpoints.get(receiver).is_some_and(|e| e.relay) {
            // A relay gets every layer: ask for each.
            let layers: Vec<u32> = self
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
            for ssrc in layers {
                let kind = KeyframeRequestKind::Pli;
                for t in self.request_layer_keyframe(now, ssrc, kind, counters) {
                    if !touched.contains(&t) {
                        touched.push(t);
                    }
                }
            }
            return touched;
        }
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
            let kind = KeyframeRequestKind::Pli;
            for t in self.request_keyframe(now, receiver, ssrc, kind, counters) {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
        }
        touched
    }

    /// Forwards one RTP packet of `sender` to every other connected
    /// endpoint that gets it; returns those written to (and the sender if
    /// a keyframe was requested of it).
    pub(super) fn forward(
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
        // A relayed endpoint's packets arrive on its relay.
        if info.owner != sender && info.via.as_deref() != Some(sender) {
            return Vec::new();
        }
        let relayed = info.via.is_some();
        let Some(endpoint) = self.endpoints.get_mut(sender) else {
            return Vec::new();
        };
        let pt = packet.header.payload_type;
        let codec = endpoint.rtc.as_ref().and_then(|rtc| codec_of(rtc, pt));
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
            self.speaker.on_level(now, &info.owner, level);
        }
        let payload: &[u8] = &packet.payload;
        let mut incoming = None;
        let mut active = 0u32;
        let mut av1 = None;
        if info.kind == MediaKind::Video {
            let vp8 = if codec == Some(Codec::Vp8) {
                parse_vp8(payload)
            } else {
                None
            };
            let Some(source) = self.video.get_mut(&info.visible) else {
                return Vec::new();
            };
            // VP9 on one SSRC: its spatial layers are SIDs (SVC).
            let vp9 = if codec == Some(Codec::Vp9) && source.layers.len() == 1 {
                parse_vp9(payload)
            } else {
                None
            };
            let mut height = vp8.and_then(|v| v.size).map(|(_, h)| u32::from(h));
            let mut spatial = info.spatial;
            let mut tid = vp8.and_then(|v| v.tid);
            if let Some(v) = vp9 {
                for sid in 0..usize::from(v.spatial_layers) {
                    if let Some(h) = v.height(sid) {
                        source.meter.set_height(sid, u32::from(h));
                    }
                }
                spatial = usize::from(v.sid);
                tid = v.has_layers.then_some(v.tid);
                height = None;
            }
            let raw = packet.header.ext_vals.user_values.get::<RawDescriptor>();
            if codec == Some(Codec::Av1)
                && let Some(raw) = raw
            {
                let last = source.dd_structures.get(&ssrc);
                let Ok((frame, new)) = dd::parse(&raw.0, last) else {
                    // Not understood without a structure: wait for a key
                    // frame that sends one.
                    let kind = KeyframeRequestKind::Pli;
                    return self.request_layer_keyframe(now, ssrc, kind, counters);
                };
                if let Some(new) = new {
                    source.dd_structures.insert(ssrc, new);
                }
                let Some(structure) = source.dd_structures.get(&ssrc).cloned() else {
                    return Vec::new();
                };
                let svc = source.layers.len() == 1;
                let resolution = structure.resolutions.get(usize::from(frame.spatial));
                if svc {
                    for (sid, (_, h)) in structure.resolutions.iter().enumerate() {
                        source.meter.set_height(sid, u32::from(*h));
                    }
                    spatial = usize::from(frame.spatial);
                    height = None;
                } else {
                    height = resolution.map(|(_, h)| u32::from(*h));
                }
                tid = Some(frame.temporal);
                av1 = Some((frame, structure, svc, raw.0.clone()));
            }
            source.meter.on_packet(
                now,
                spatial,
                payload.len() + packet.header.header_len,
                packet.header.timestamp,
                tid,
                height,
            );
            active = source.meter.active_mask(now);
            incoming = Some(Incoming {
                spatial: info.spatial,
                seq_no: *packet.seq_no,
                timestamp: packet.header.timestamp,
                payload,
                keyframe: match &av1 {
                    Some((frame, ..)) => frame.is_keyframe(),
                    None => starts_keyframe(codec, payload),
                },
                vp8,
                vp9,
                marker: packet.header.marker,
                dd: av1.as_ref().map(|(frame, structure, svc, _)| Dd {
                    frame: *frame,
                    structure,
                    svc: *svc,
                }),
            });
        }
        if muted {
            return Vec::new();
        }
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..ExtensionValues::default()
        };
        let mut touched = Vec::new();
        let mut keyframes: Vec<usize> = Vec::new();
        for (id, receiver) in self.endpoints.iter_mut() {
            if id == sender || !receiver.connected || !receiver.supports_pt(pt) {
                continue;
            }
            if receiver.relay {
                // Every layer, unchanged, to each relay (never back onto
                // another relay: the focus meshes the bridges); video only
                // of sources the peer's receivers want.
                let unwanted = info.kind == MediaKind::Video
                    && self
                        .relay_wanted
                        .get(id)
                        .is_some_and(|w| !w.contains(&info.source_name));
                if !relayed
                    && !unwanted
                    && forward_to_relay(receiver, ssrc, &info.kind, &packet, pt)
                {
                    touched.push(id.clone());
                }
                continue;
            }
            let subscription = &receiver.audio_subscription;
            let Some(forwarded) = receiver.forwarded.get_mut(&info.visible) else {
                continue;
            };
            let mut ext = ext.clone();
            let (seq_no, timestamp, vp8, marker) = match &incoming {
                Some(incoming) => {
                    let (decision, keyframe) = forwarded.forwarder.on_packet(now, incoming, active);
                    if let Some(layer) = keyframe
                        && !keyframes.contains(&layer)
                    {
                        keyframes.push(layer);
                    }
                    match decision {
                        LayerDecision::Drop => continue,
                        LayerDecision::Forward {
                            seq_no,
                            timestamp,
                            vp8,
                            marker,
                            dd,
                        } => {
                            if let (Some(dd), Some((frame, _, _, raw))) = (dd, &av1) {
                                let bytes = dd.apply(raw, frame);
                                ext.user_values.set(RawDescriptor(Arc::from(bytes)));
                            }
                            (seq_no, timestamp, vp8, marker)
                        }
                    }
                }
                None => {
                    if !subscription.includes(&info.source_name) {
                        continue;
                    }
                    let seq_no = *packet.seq_no;
                    let base = *forwarded.roc_base.get_or_insert(seq_no >> 16);
                    (
                        seq_no.saturating_sub(base << 16),
                        packet.header.timestamp,
                        None,
                        packet.header.marker,
                    )
                }
            };
            let Some(rtc) = receiver.rtc.as_mut() else {
                continue;
            };
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx(&Ssrc::from(info.visible)) else {
                continue;
            };
            let mut write = RtpWrite::new(
                pt,
                SeqNo::from(seq_no),
                timestamp,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(marker)
            .ext_vals(ext)
            // Resent on NACK only with an rtx SSRC to resend on (str0m
            // needs one once the receiver negotiated rtx).
            .nackable(info.kind == MediaKind::Video && forwarded.rtx.is_some());
            if let Some(patch) = vp8 {
                write = write.vp8_patch(patch);
            }
            tx.write_rtp(write);
            touched.push(id.clone());
        }
        let layers: Vec<u32> = self
            .video
            .get(&info.visible)
            .map(|v| {
                keyframes
                    .iter()
                    .filter_map(|l| v.layers.get(*l).copied())
                    .collect()
            })
            .unwrap_or_default();
        for layer in layers {
            let kind = KeyframeRequestKind::Pli;
            for t in self.request_layer_keyframe(now, layer, kind, counters) {
                if !touched.contains(&t) {
                    touched.push(t);
                }
            }
        }
        touched
    }
}

/// Writes a local sender's packet unchanged (SSRC, sequence number,
/// timestamp) to a relay; whether it was written.
fn forward_to_relay(
    relay: &mut super::endpoint::Endpoint,
    ssrc: u32,
    kind: &MediaKind,
    packet: &RtpPacket,
    pt: Pt,
) -> bool {
    let Some(forwarded) = relay.forwarded.get_mut(&ssrc) else {
        return false;
    };
    let seq_no = *packet.seq_no;
    let base = *forwarded.roc_base.get_or_insert(seq_no >> 16);
    let nackable = *kind == MediaKind::Video && forwarded.rtx.is_some();
    let Some(rtc) = relay.rtc.as_mut() else {
        return false;
    };
    let mut api = rtc.direct_api();
    let Some(tx) = api.stream_tx(&Ssrc::from(ssrc)) else {
        return false;
    };
    let ext = ExtensionValues {
        audio_level: packet.header.ext_vals.audio_level,
        voice_activity: packet.header.ext_vals.voice_activity,
        video_orientation: packet.header.ext_vals.video_orientation,
        user_values: packet.header.ext_vals.user_values.clone(),
        ..ExtensionValues::default()
    };
    let write = RtpWrite::new(
        pt,
        SeqNo::from(seq_no.saturating_sub(base << 16)),
        packet.header.timestamp,
        packet.timestamp,
        packet.payload.clone(),
    )
    .marker(packet.header.marker)
    .ext_vals(ext)
    .nackable(nackable);
    tx.write_rtp(write);
    true
}

/// The codec a payload type of an `Rtc` carries.
fn codec_of(rtc: &Rtc, pt: Pt) -> Option<Codec> {
    rtc.codec_config()
        .params()
        .iter()
        .find(|p| p.pt() == pt)
        .map(|p| p.spec().codec)
}
