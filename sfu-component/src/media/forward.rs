//! What one receiver gets of one video source: a [`LayerForwarder`] per
//! (receiver, source) picks packets of the layer allocation chose for that
//! receiver and rewrites them onto the receiver-visible SSRC (the first of
//! the `SIM` group, as Videobridge does), so the receiver sees one
//! continuous stream:
//!
//! - spatial layers (`SIM` SSRCs) switch only at a key frame of the layer
//!   switched to, up or down (simulcast layers are independent streams: a
//!   decoder cannot continue on another one before its key frame); the
//!   caller is asked to request that key frame, at most every 300 ms;
//!   until it comes the old layer keeps flowing;
//! - temporal layers (VP8 TID) above the target are dropped frame by frame;
//!   a new temporal limit takes effect at the next TID 0 frame;
//! - sequence numbers continue by one across switches and dropped frames
//!   (each dropped packet shifts the following ones down; late packets
//!   find the shift of their time in a short history), RTP timestamps
//!   continue across switches (advanced by the wallclock time since the
//!   last forwarded packet), VP8 picture ids continue by one per forwarded
//!   frame and TL0PICIDX by one per TID 0 frame (patched by str0m's
//!   `RtpWrite::vp8_patch` at serialization, the payload is not copied);
//! - the first packet forwarded gets the sequence number's low 16 bits, so
//!   the receiver's SRTP starts at roll-over counter 0.
//!
//! VP9 sent as one SSRC with spatial layers (SVC) goes through
//! `forward_svc.rs`: its SIDs above the target are dropped like temporal
//! layers, on the same sequence-number shifts. AV1 with the dependency
//! descriptor goes through `forward_av1.rs`: one decode target is chosen
//! and frames not part of it are dropped, the same way (SVC on one SSRC,
//! and the temporal layers of each simulcast SSRC).
//!
//! Without a target from allocation ([`Target::Top`]) the highest active
//! layer is forwarded with every temporal layer.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

use super::codec::Vp8Info;
use super::dependency_descriptor::{FrameInfo, Structure};
use super::layers::LayerId;
use super::vp9::Vp9Info;

/// Keyframe requests for a pending switch are not repeated more often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// Sequence-number shifts remembered for late (reordered or repaired)
/// packets.
const HISTORY: usize = 64;

/// What allocation wants forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The highest active spatial layer, every temporal layer (until
    /// allocation decides).
    Top,
    Layer(LayerId),
    Suspended,
}

/// One incoming packet as the forwarder sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    /// Index of its SSRC in the `SIM` group (0 without simulcast).
    pub spatial: usize,
    pub seq_no: u64,
    pub timestamp: u32,
    pub payload: &'a [u8],
    /// Whether it starts a key frame (any codec).
    pub keyframe: bool,
    /// Its VP8 descriptor, for VP8.
    pub vp8: Option<Vp8Info>,
    /// Its VP9 descriptor, for a VP9 source sent as one SSRC (SVC: its
    /// spatial layers are SIDs, not `SIM` SSRCs).
    pub vp9: Option<Vp9Info>,
    /// The RTP marker bit.
    pub marker: bool,
    /// Its AV1 dependency descriptor (with the structure it refers to).
    pub dd: Option<Dd<'a>>,
}

/// An AV1 packet's dependency descriptor as the forwarder sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dd<'a> {
    pub frame: FrameInfo,
    pub structure: &'a Structure,
    /// The source sends its spatial layers on one SSRC (SVC), not as
    /// simulcast SSRCs.
    pub svc: bool,
}

/// How to write a forwarded packet's dependency descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DdRewrite {
    pub frame_number: u16,
    /// The decode targets the receiver can decode from what it gets.
    pub active_targets: u32,
    /// Added (modulo 64) to the template id and to an attached structure's
    /// template id offset (continuous across simulcast switches:
    /// `forward_av1.rs`).
    pub template_shift: u8,
}

/// What to do with one packet for one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDecision {
    Drop,
    /// Forward on the receiver-visible SSRC with these header values.
    Forward {
        seq_no: u64,
        timestamp: u32,
        vp8: Option<Vp8Patch>,
        /// The marker bit to send (set on the last packet kept of a VP9
        /// superframe whose upper spatial layers are dropped).
        marker: bool,
        /// The dependency descriptor to write, for AV1.
        dd: Option<DdRewrite>,
    },
}

/// The output values of the last forwarded packet.
#[derive(Debug, Clone, Copy)]
struct LastOut {
    seq_no: u64,
    timestamp: u32,
    picture_id: Option<u16>,
    tl0: Option<u8>,
    at: Instant,
}

/// Offsets valid from an incoming sequence number on.
#[derive(Debug, Clone, Copy)]
struct Shift {
    from_seq: u64,
    seq_offset: u64,
    picture_id_offset: u16,
}

/// Layer choice and header rewriting of one source for one receiver.
#[derive(Debug, Clone)]
pub(crate) struct LayerForwarder {
    target: Target,
    current: Option<usize>,
    temporal_limit: u8,
    /// VP9 SVC: the highest spatial id forwarded.
    sid_limit: u8,
    /// AV1: the decode target forwarded.
    decode_target: Option<usize>,
    /// AV1: the decode targets the sender says are active.
    sender_targets: u32,
    /// AV1: added to frame numbers (continuous across simulcast switches).
    frame_offset: u16,
    last_frame_out: Option<u16>,
    /// AV1: added to template ids (modulo 64) since the last switch.
    template_shift: u8,
    /// AV1: the simulcast layer of the last forwarded packet, the template
    /// id offset (as the receiver sees it) and template count of the
    /// structure it referred to.
    templates_out: Option<(usize, u8, u8)>,
    ts_offset: u32,
    tl0_offset: u8,
    shifts: VecDeque<Shift>,
    highest_in: Option<u64>,
    last_dropped_picture: Option<u16>,
    last_out: Option<LastOut>,
    last_keyframe_request: Option<Instant>,
}

impl Default for LayerForwarder {
    fn default() -> LayerForwarder {
        LayerForwarder::new(Target::Top)
    }
}

impl LayerForwarder {
    pub fn new(target: Target) -> LayerForwarder {
        LayerForwarder {
            target,
            current: None,
            temporal_limit: u8::MAX,
            sid_limit: u8::MAX,
            decode_target: None,
            sender_targets: u32::MAX,
            frame_offset: 0,
            last_frame_out: None,
            template_shift: 0,
            templates_out: None,
            ts_offset: 0,
            tl0_offset: 0,
            shifts: VecDeque::new(),
            highest_in: None,
            last_dropped_picture: None,
            last_out: None,
            last_keyframe_request: None,
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// A new target; a switch it needs happens at the next key frame.
    pub fn set_target(&mut self, target: Target) {
        if target != self.target {
            self.target = target;
            self.last_keyframe_request = None;
        }
    }

    /// The spatial layer forwarded now, if any.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// The spatial layer and temporal limit wanted, given the active
    /// spatial layers (bit set).
    pub fn wanted(&self, active: u32) -> Option<(usize, u8)> {
        let highest_at_most = |max: usize| (0..=max.min(31)).rev().find(|i| active & (1 << i) != 0);
        match self.target {
            Target::Suspended => None,
            Target::Top => highest_at_most(31).map(|s| (s, u8::MAX)),
            Target::Layer(l) => highest_at_most(usize::from(l.spatial))
                .or_else(|| (0..32).find(|i| active & (1 << i) != 0))
                .map(|s| (s, l.temporal)),
        }
    }

    /// Decides about one packet. The second value is a spatial layer whose
    /// key frame should be requested from the sender.
    pub fn on_packet(
        &mut self,
        now: Instant,
        packet: &Incoming,
        active: u32,
    ) -> (LayerDecision, Option<usize>) {
        let Some((spatial, temporal)) = self.wanted(active) else {
            self.current = None;
            return (LayerDecision::Drop, None);
        };
        if let Some(vp9) = packet.vp9 {
            return self.on_svc_packet(now, packet, &vp9);
        }
        if let Some(dd) = packet.dd
            && dd.svc
        {
            return self.on_av1_svc_packet(now, packet, &dd, spatial, temporal);
        }
        if self.current != Some(packet.spatial) {
            if spatial != packet.spatial || !packet.keyframe {
                let request = if self.current != Some(spatial) {
                    self.keyframe_request(now, spatial)
                } else {
                    None
                };
                return (LayerDecision::Drop, request);
            }
            self.switch_to(now, packet);
            self.temporal_limit = temporal;
        }
        let mut request = if self.current != Some(spatial) {
            self.keyframe_request(now, spatial)
        } else {
            None
        };
        if let Some(vp8) = packet.vp8
            && let Some(tid) = vp8.tid
        {
            if vp8.starts_frame && tid == 0 {
                self.temporal_limit = temporal;
            }
            if tid > self.temporal_limit {
                self.drop_packet(packet);
                return (LayerDecision::Drop, request);
            }
        }
        if let Some(dd) = packet.dd {
            // A simulcast SSRC's temporal layers.
            let (keep, needs_keyframe) = self.keep_av1_frame(&dd, u8::MAX, temporal);
            if needs_keyframe && request.is_none() {
                request = self.keyframe_request(now, packet.spatial);
            }
            if !keep {
                self.drop_packet(packet);
                return (LayerDecision::Drop, request);
            }
        }
        (self.rewrite(now, packet), request)
    }

    /// The layer to ask a keyframe of (throttled).
    fn keyframe_request(&mut self, now: Instant, spatial: usize) -> Option<usize> {
        let due = self
            .last_keyframe_request
            .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_REQUEST_INTERVAL);
        if !due {
            return None;
        }
        self.last_keyframe_request = Some(now);
        Some(spatial)
    }

    fn switch_to(&mut self, now: Instant, packet: &Incoming) {
        self.current = Some(packet.spatial);
        self.last_keyframe_request = None;
        self.highest_in = None;
        self.last_dropped_picture = None;
        self.decode_target = None;
        self.frame_offset = match (self.last_frame_out, packet.dd) {
            (Some(last), Some(dd)) => last.wrapping_add(1).wrapping_sub(dd.frame.frame_number),
            _ => 0,
        };
        self.template_shift = packet.dd.map_or(0, |dd| {
            self.av1_template_shift(packet.spatial, dd.structure)
        });
        let picture_id = packet.vp8.and_then(|v| v.picture_id);
        let tl0 = packet.vp8.and_then(|v| v.tl0);
        let (seq_offset, picture_id_offset) = match self.last_out {
            None => {
                self.ts_offset = 0;
                self.tl0_offset = 0;
                // Low 16 bits: the receiver's SRTP starts at ROC 0.
                ((packet.seq_no & !0xffff).wrapping_neg(), 0)
            }
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at).as_millis();
                let ticks = u32::try_from(elapsed.saturating_mul(90))
                    .unwrap_or(u32::MAX)
                    .max(1);
                let out_ts = last.timestamp.wrapping_add(ticks);
                self.ts_offset = out_ts.wrapping_sub(packet.timestamp);
                if let (Some(last_tl0), Some(tl0)) = (last.tl0, tl0) {
                    self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
                }
                let pid_offset = match (last.picture_id, picture_id) {
                    (Some(last_pid), Some(pid)) => last_pid.wrapping_add(1).wrapping_sub(pid),
                    _ => 0,
                };
                (
                    last.seq_no.wrapping_add(1).wrapping_sub(packet.seq_no),
                    pid_offset,
                )
            }
        };
        self.shifts.clear();
        self.shifts.push_back(Shift {
            from_seq: packet.seq_no,
            seq_offset,
            picture_id_offset,
        });
    }

    /// A packet of the current layer is not forwarded: later ones move
    /// down by one (and by one picture id per dropped frame).
    fn drop_packet(&mut self, packet: &Incoming) {
        if self.highest_in.is_some_and(|h| packet.seq_no <= h) {
            // Late: its slot was already given away (rare; the receiver
            // sees a gap there).
            return;
        }
        self.highest_in = Some(packet.seq_no);
        let Some(last) = self.shifts.back().copied() else {
            return;
        };
        let mut picture_id_offset = last.picture_id_offset;
        if let Some(pid) = packet.vp8.and_then(|v| v.picture_id)
            && self.last_dropped_picture != Some(pid)
        {
            self.last_dropped_picture = Some(pid);
            picture_id_offset = picture_id_offset.wrapping_sub(1);
        }
        let shift = Shift {
            from_seq: packet.seq_no.wrapping_add(1),
            seq_offset: last.seq_offset.wrapping_sub(1),
            picture_id_offset,
        };
        // The packet before was dropped too (the same frame, mostly): one
        // entry covers both, so the history holds one per dropped run.
        if last.from_seq == packet.seq_no
            && self.shifts.len() > 1
            && let Some(back) = self.shifts.back_mut()
        {
            *back = shift;
            return;
        }
        self.shifts.push_back(shift);
        while self.shifts.len() > HISTORY {
            self.shifts.pop_front();
        }
    }

    fn rewrite(&mut self, now: Instant, packet: &Incoming) -> LayerDecision {
        let Some(shift) = self
            .shifts
            .iter()
            .rev()
            .find(|s| s.from_seq <= packet.seq_no)
            .copied()
        else {
            // Older than anything remembered for this layer.
            return LayerDecision::Drop;
        };
        if self.highest_in.is_none_or(|h| packet.seq_no > h) {
            self.highest_in = Some(packet.seq_no);
        }
        let out_seq = packet.seq_no.wrapping_add(shift.seq_offset);
        if out_seq >= 1 << 48 {
            return LayerDecision::Drop;
        }
        let out_ts = packet.timestamp.wrapping_add(self.ts_offset);
        let mut patch = None;
        let mut out_pid = None;
        let mut out_tl0 = None;
        if let Some(vp8) = packet.vp8 {
            let mask = if vp8.picture_id_15_bit { 0x7fff } else { 0x7f };
            out_pid = vp8
                .picture_id
                .map(|pid| pid.wrapping_add(shift.picture_id_offset) & mask);
            out_tl0 = vp8.tl0.map(|tl0| tl0.wrapping_add(self.tl0_offset));
            if (out_pid != vp8.picture_id || out_tl0 != vp8.tl0)
                && let Ok(descriptor) = Vp8Descriptor::parse(packet.payload)
            {
                let mut builder = descriptor.patch();
                if let Some(pid) = out_pid {
                    builder = builder.picture_id(pid);
                }
                if let Some(tl0) = out_tl0 {
                    builder = builder.tl0_pic_idx(tl0);
                }
                patch = builder.build().ok();
            }
        }
        let previous = self.last_out;
        if previous.is_none_or(|p| out_seq > p.seq_no) {
            self.last_out = Some(LastOut {
                seq_no: out_seq,
                timestamp: out_ts,
                picture_id: out_pid.or(previous.and_then(|p| p.picture_id)),
                tl0: out_tl0.or(previous.and_then(|p| p.tl0)),
                at: now,
            });
        }
        let dd = packet.dd.map(|dd| self.av1_rewrite(&dd));
        LayerDecision::Forward {
            seq_no: out_seq,
            timestamp: out_ts,
            vp8: patch,
            marker: packet.marker,
            dd,
        }
    }
}

#[path = "forward_svc.rs"]
mod svc;

#[path = "forward_av1.rs"]
mod av1;

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
