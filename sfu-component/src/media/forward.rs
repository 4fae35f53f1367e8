//! Simulcast forwarding until the simulcast issue lands: of a sender's
//! `SIM` group (SSRCs lowest layer first, as Jitsi signals them) the bridge
//! forwards one layer, the highest the sender is actually sending, rewritten
//! onto the receiver-visible SSRC (the group's FIRST SSRC, as Videobridge
//! does). Receivers then see one continuous stream:
//!
//! - sequence numbers and RTP timestamps continue across a layer switch
//!   (offsets fixed at the switch; the timestamp advances by the wallclock
//!   time since the last forwarded packet);
//! - VP8 picture ids and TL0PICIDX continue too (patched by str0m's
//!   `RtpWrite::vp8_patch` at serialization);
//! - a switch happens only on a keyframe of the new layer (VP8: the first
//!   packet of a key frame); until then the old layer keeps flowing and the
//!   caller is asked to request a keyframe of the new layer. Codecs the
//!   bridge cannot inspect switch at once.

use std::time::{Duration, Instant};

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

/// A layer that sent nothing for this long is considered stopped.
const LAYER_ACTIVE: Duration = Duration::from_millis(1000);
/// Keyframe requests for a pending switch are not repeated more often.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// What to do with one packet of a simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDecision {
    Drop,
    /// Forward on the receiver-visible SSRC with these header values.
    Forward {
        seq_no: u64,
        timestamp: u32,
        vp8: Option<Vp8Patch>,
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

/// Layer choice and header rewriting of one simulcast source.
#[derive(Debug, Clone)]
pub(crate) struct SimulcastForwarder {
    /// The `SIM` group, lowest layer first.
    layers: Vec<u32>,
    last_seen: Vec<Option<Instant>>,
    current: Option<usize>,
    seq_offset: u64,
    ts_offset: u32,
    picture_id_offset: u16,
    tl0_offset: u8,
    last_out: Option<LastOut>,
    last_keyframe_request: Option<Instant>,
}

impl SimulcastForwarder {
    pub fn new(layers: Vec<u32>) -> SimulcastForwarder {
        let count = layers.len();
        SimulcastForwarder {
            layers,
            last_seen: vec![None; count],
            current: None,
            seq_offset: 0,
            ts_offset: 0,
            picture_id_offset: 0,
            tl0_offset: 0,
            last_out: None,
            last_keyframe_request: None,
        }
    }

    /// The `SIM` group, lowest layer first.
    pub fn layers(&self) -> &[u32] {
        &self.layers
    }

    /// The SSRC currently forwarded, if any.
    pub fn current_ssrc(&self) -> Option<u32> {
        self.current.and_then(|i| self.layers.get(i).copied())
    }

    /// The layer that should be forwarded: the highest one sending.
    fn target(&self, now: Instant) -> Option<usize> {
        self.last_seen
            .iter()
            .enumerate()
            .rev()
            .find(|(_, seen)| seen.is_some_and(|t| now.saturating_duration_since(t) < LAYER_ACTIVE))
            .map(|(i, _)| i)
    }

    /// Decides about one packet of layer `ssrc`. The second value is an
    /// SSRC whose sender should be asked for a keyframe.
    pub fn on_packet(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq_no: u64,
        timestamp: u32,
        payload: &[u8],
        is_vp8: bool,
    ) -> (LayerDecision, Option<u32>) {
        let Some(index) = self.layers.iter().position(|s| *s == ssrc) else {
            return (LayerDecision::Drop, None);
        };
        if let Some(seen) = self.last_seen.get_mut(index) {
            *seen = Some(now);
        }
        let target = self.target(now);
        if self.current != Some(index) {
            let switch = target == Some(index) && (!is_vp8 || starts_vp8_keyframe(payload));
            if !switch {
                return (LayerDecision::Drop, self.keyframe_request(now, target));
            }
            self.switch_to(now, index, seq_no, timestamp, payload, is_vp8);
            self.last_keyframe_request = None;
        }
        let keyframe_for = if target != self.current {
            self.keyframe_request(now, target)
        } else {
            None
        };
        (
            self.rewrite(now, seq_no, timestamp, payload, is_vp8),
            keyframe_for,
        )
    }

    /// The layer to ask a keyframe of for a pending switch (throttled).
    fn keyframe_request(&mut self, now: Instant, target: Option<usize>) -> Option<u32> {
        let target = target?;
        if target == self.current.unwrap_or(usize::MAX) {
            return None;
        }
        let due = self
            .last_keyframe_request
            .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_REQUEST_INTERVAL);
        if !due {
            return None;
        }
        self.last_keyframe_request = Some(now);
        self.layers.get(target).copied()
    }

    fn switch_to(
        &mut self,
        now: Instant,
        index: usize,
        seq_no: u64,
        timestamp: u32,
        payload: &[u8],
        is_vp8: bool,
    ) {
        self.current = Some(index);
        let ids = if is_vp8 { vp8_ids(payload) } else { None };
        match self.last_out {
            None => {
                self.seq_offset = 0;
                self.ts_offset = 0;
                self.picture_id_offset = 0;
                self.tl0_offset = 0;
            }
            Some(last) => {
                let out_seq = last.seq_no.wrapping_add(1);
                self.seq_offset = out_seq.wrapping_sub(seq_no);
                let elapsed = now.saturating_duration_since(last.at).as_millis() as u32;
                let out_ts = last
                    .timestamp
                    .wrapping_add(elapsed.saturating_mul(90).max(1));
                self.ts_offset = out_ts.wrapping_sub(timestamp);
                if let (Some(ids), Some(last_pid)) = (ids, last.picture_id)
                    && let Some(pid) = ids.picture_id
                {
                    let out_pid = last_pid.wrapping_add(1);
                    self.picture_id_offset = out_pid.wrapping_sub(pid);
                }
                if let (Some(ids), Some(last_tl0)) = (ids, last.tl0)
                    && let Some(tl0) = ids.tl0
                {
                    self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
                }
            }
        }
    }

    fn rewrite(
        &mut self,
        now: Instant,
        seq_no: u64,
        timestamp: u32,
        payload: &[u8],
        is_vp8: bool,
    ) -> LayerDecision {
        let out_seq = seq_no.wrapping_add(self.seq_offset);
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        let mut patch = None;
        let mut out_pid = None;
        let mut out_tl0 = None;
        if is_vp8
            && let (Some(ids), Ok(descriptor)) = (vp8_ids(payload), Vp8Descriptor::parse(payload))
        {
            let mut builder = descriptor.patch();
            if let Some(pid) = ids.picture_id {
                let mask = if ids.picture_id_15_bit { 0x7fff } else { 0x7f };
                let value = pid.wrapping_add(self.picture_id_offset) & mask;
                builder = builder.picture_id(value);
                out_pid = Some(value);
            }
            if let Some(tl0) = ids.tl0 {
                let value = tl0.wrapping_add(self.tl0_offset);
                builder = builder.tl0_pic_idx(value);
                out_tl0 = Some(value);
            }
            patch = builder.build().ok();
        }
        let previous = self.last_out;
        let newer = previous.is_none_or(|p| out_seq > p.seq_no);
        if newer {
            self.last_out = Some(LastOut {
                seq_no: out_seq,
                timestamp: out_ts,
                picture_id: out_pid.or(previous.and_then(|p| p.picture_id)),
                tl0: out_tl0.or(previous.and_then(|p| p.tl0)),
                at: now,
            });
        }
        LayerDecision::Forward {
            seq_no: out_seq,
            timestamp: out_ts,
            vp8: patch,
        }
    }
}

/// The VP8 payload descriptor fields the rewriting needs (RFC 7741 §4.2).
#[derive(Debug, Clone, Copy)]
struct Vp8Ids {
    picture_id: Option<u16>,
    picture_id_15_bit: bool,
    tl0: Option<u8>,
}

fn vp8_ids(payload: &[u8]) -> Option<Vp8Ids> {
    let first = *payload.first()?;
    let mut ids = Vp8Ids {
        picture_id: None,
        picture_id_15_bit: false,
        tl0: None,
    };
    if first & 0x80 == 0 {
        return Some(ids);
    }
    let ext = *payload.get(1)?;
    let mut at = 2;
    if ext & 0x80 != 0 {
        let b = *payload.get(at)?;
        if b & 0x80 != 0 {
            let low = *payload.get(at + 1)?;
            ids.picture_id = Some((u16::from(b & 0x7f) << 8) | u16::from(low));
            ids.picture_id_15_bit = true;
            at += 2;
        } else {
            ids.picture_id = Some(u16::from(b));
            at += 1;
        }
    }
    if ext & 0x40 != 0 {
        ids.tl0 = Some(*payload.get(at)?);
    }
    Some(ids)
}

/// Whether a VP8 payload is the first packet of a key frame.
pub(crate) fn starts_vp8_keyframe(payload: &[u8]) -> bool {
    Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload: X=1, S=1, partition 0; I, L and T set; 15-bit
    /// picture id.
    fn vp8(picture_id: u16, tl0: u8, key: bool) -> Vec<u8> {
        let header = if key { 0x00 } else { 0x01 };
        vec![
            0x90,
            0xe0,
            0x80 | (picture_id >> 8) as u8,
            picture_id as u8,
            tl0,
            0x00,
            header,
            0,
            0,
            0x9d,
            0x01,
            0x2a,
            0,
            0,
            0,
            0,
        ]
    }

    #[test]
    fn switches_at_keyframe_with_continuous_numbers() {
        let start = Instant::now();
        let mut f = SimulcastForwarder::new(vec![10, 20, 30]);
        // Only layer 0 so far: forwarded as is.
        let (d, _) = f.on_packet(start, 10, 100, 1000, &vp8(5, 1, true), true);
        assert!(matches!(
            d,
            LayerDecision::Forward {
                seq_no: 100,
                timestamp: 1000,
                ..
            }
        ));
        // Layer 2 appears with a delta frame: dropped, keyframe asked.
        let t = start + Duration::from_millis(10);
        let (d, kf) = f.on_packet(t, 30, 5000, 77_000, &vp8(900, 40, false), true);
        assert_eq!(d, LayerDecision::Drop);
        assert_eq!(kf, Some(30));
        // Its keyframe switches; numbers continue.
        let t = start + Duration::from_millis(40);
        let (d, _) = f.on_packet(t, 30, 5001, 80_000, &vp8(901, 41, true), true);
        let LayerDecision::Forward {
            seq_no,
            timestamp,
            vp8: patch,
        } = d
        else {
            panic!("not forwarded");
        };
        assert_eq!(seq_no, 101);
        assert_eq!(timestamp, 1000 + 40 * 90);
        assert!(patch.is_some());
        assert_eq!(f.current_ssrc(), Some(30));
        // The old layer is now dropped.
        let (d, _) = f.on_packet(t, 10, 101, 1100, &vp8(6, 1, false), true);
        assert_eq!(d, LayerDecision::Drop);
    }

    #[test]
    fn garbage_payload_never_panics() {
        let now = Instant::now();
        let mut f = SimulcastForwarder::new(vec![1, 2]);
        for p in [
            &[][..],
            &[0x80][..],
            &[0x90, 0x80][..],
            &[0x90, 0xff, 0x80][..],
        ] {
            let _ = f.on_packet(now, 2, 1, 1, p, true);
            let _ = vp8_ids(p);
        }
    }
}
