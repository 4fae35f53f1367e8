//! AV1 for one receiver, by its dependency descriptor: of the decode
//! targets the sender's structure describes, the one with the highest
//! layers within the receiver's target is chosen (the lowest when none
//! fits); a frame whose indication for it is "not present" is dropped,
//! each dropped packet shifting the following sequence numbers down as
//! for VP8's temporal drops.
//!
//! Switching to another decode target happens at the start of a frame
//! that is a switch point of the new target (indication "switch") or a key
//! frame; going up a spatial layer only at a key frame, asked of the
//! sender (throttled as layer switches are).
//!
//! Frame numbers are kept (frames refer to earlier ones by difference),
//! only shifted to continue across a switch between simulcast SSRCs.
//! Template ids are shifted likewise at such a switch, so that the new
//! encoder's structure takes the ids after the previous one's, as one
//! encoder numbers a new structure (Videobridge's AV1 projection does the
//! same). The
//! receiver is told which decode targets it can decode from what it gets
//! (the active decode targets bitmask, written into every forwarded
//! descriptor): those whose every frame is forwarded, of the ones the
//! sender has active. The marker bit, set by the sender on the last packet
//! of its top spatial layer, is put on the end of the chosen target's
//! layer frame when upper layers are dropped (as for VP9).

use std::time::Instant;

use super::{Dd, DdRewrite, Incoming, LayerDecision, LayerForwarder, Target};
use crate::media::dependency_descriptor::{self, Dti, FrameInfo, Structure};

impl LayerForwarder {
    /// [`LayerForwarder::on_packet`] for an AV1 SVC packet (all spatial
    /// layers on one SSRC). `spatial` and `temporal` are the layers wanted
    /// (the spatial one among those the sender sends).
    pub(super) fn on_av1_svc_packet(
        &mut self,
        now: Instant,
        packet: &Incoming,
        dd: &Dd,
        spatial: usize,
        temporal: u8,
    ) -> (LayerDecision, Option<usize>) {
        if self.target == Target::Suspended {
            return (LayerDecision::Drop, None);
        }
        if self.current != Some(packet.spatial) {
            if !packet.keyframe {
                return (
                    LayerDecision::Drop,
                    self.keyframe_request(now, packet.spatial),
                );
            }
            self.switch_to(now, packet);
        }
        let sid = u8::try_from(spatial).unwrap_or(u8::MAX);
        let (keep, needs_keyframe) = self.keep_av1_frame(dd, sid, temporal);
        let layer_of = |dt: usize| dd.structure.target_layers.get(dt).map(|l| l.0);
        let request = if needs_keyframe {
            self.keyframe_request(now, packet.spatial)
        } else {
            None
        };
        if !keep {
            self.drop_packet(packet);
            return (LayerDecision::Drop, request);
        }
        let top = self.decode_target.and_then(layer_of);
        let mut decision = self.rewrite(now, packet);
        if let LayerDecision::Forward { marker, .. } = &mut decision {
            *marker = packet.marker || (dd.frame.end_of_frame && Some(dd.frame.spatial) == top);
        }
        (decision, request)
    }

    /// Whether a packet's frame is part of the decode target forwarded,
    /// after switching to the one wanted where the frame allows it; and
    /// whether the switch wanted needs a key frame.
    pub(super) fn keep_av1_frame(&mut self, dd: &Dd, spatial: u8, temporal: u8) -> (bool, bool) {
        let frame = &dd.frame;
        if let Some(active) = frame.active_targets {
            self.sender_targets = active;
        }
        let wanted = choose_decode_target(dd.structure, spatial, temporal);
        let without_keyframe = self
            .decode_target
            .is_some_and(|dt| switchable_without_keyframe(dd.structure, dt, wanted));
        if frame.start_of_frame
            && self.decode_target != Some(wanted)
            && (frame.is_keyframe() || (without_keyframe && frame.dti(wanted) == Dti::Switch))
        {
            self.decode_target = Some(wanted);
        }
        let keep = self
            .decode_target
            .is_some_and(|dt| frame.dti(dt) != Dti::NotPresent);
        (
            keep,
            self.decode_target != Some(wanted) && !without_keyframe,
        )
    }

    /// The descriptor values of a forwarded AV1 packet.
    pub(super) fn av1_rewrite(&mut self, dd: &Dd) -> DdRewrite {
        let frame_number = dd.frame.frame_number.wrapping_add(self.frame_offset);
        let newer = self
            .last_frame_out
            .is_none_or(|last| frame_number.wrapping_sub(last) < 0x8000);
        if newer {
            self.last_frame_out = Some(frame_number);
        }
        let decodable = self
            .decode_target
            .map(|dt| decodable_targets(dd.structure, dt))
            .unwrap_or(0);
        let offset_out = (dd.structure.template_id_offset % TEMPLATE_IDS)
            .wrapping_add(self.template_shift)
            % TEMPLATE_IDS;
        let count = u8::try_from(dd.structure.templates.len()).unwrap_or(TEMPLATE_IDS);
        self.templates_out = Some((self.current.unwrap_or_default(), offset_out, count));
        DdRewrite {
            frame_number,
            active_targets: decodable & self.sender_targets,
            template_shift: self.template_shift,
        }
    }

    /// At a switch to simulcast layer `spatial` whose key frame brings
    /// `structure`: the shift that makes its template ids follow those of
    /// the structure the receiver had, as an encoder numbers a new
    /// structure's templates (after the previous one's, modulo 64). Every
    /// simulcast encoder of a browser starts its templates at the same id,
    /// so without it the receiver would read a late packet of the old
    /// encoder with the new one's templates; with it such a packet names
    /// no template the receiver has and is dropped as bad. Back on the
    /// layer forwarded last (after a pause), the shift stays.
    pub(super) fn av1_template_shift(&self, spatial: usize, structure: &Structure) -> u8 {
        match self.templates_out {
            None => 0,
            Some((layer, _, _)) if layer == spatial => self.template_shift,
            Some((_, offset, count)) => {
                let next = (u16::from(offset) + u16::from(count)) % u16::from(TEMPLATE_IDS);
                let from = u16::from(structure.template_id_offset % TEMPLATE_IDS);
                ((next + u16::from(TEMPLATE_IDS) - from) % u16::from(TEMPLATE_IDS)) as u8
            }
        }
    }
}

/// Template ids are 6 bits.
const TEMPLATE_IDS: u8 = 64;

impl DdRewrite {
    /// The descriptor `raw` (whose parse gave `frame`) as this receiver
    /// gets it: frame number, active decode targets and template ids
    /// rewritten.
    pub(crate) fn apply(&self, raw: &[u8], frame: &FrameInfo) -> Vec<u8> {
        let mut out = dependency_descriptor::rewrite(
            raw,
            frame,
            self.frame_number,
            Some(self.active_targets),
        );
        if self.template_shift != 0 {
            shift_template_ids(&mut out, self.template_shift, frame.has_structure);
        }
        out
    }
}

/// Adds `shift` (modulo 64) to a descriptor's template id (bits 2-7) and,
/// when it carries a structure, to the structure's template id offset (its
/// first 6 bits, at bit 29 after the mandatory and the extended fields'
/// five flags).
pub(crate) fn shift_template_ids(descriptor: &mut [u8], shift: u8, has_structure: bool) {
    let shifted = |v: u32| (v + u32::from(shift)) % u32::from(TEMPLATE_IDS);
    if let Some(id) = read_bits(descriptor, 2, 6) {
        write_bits(descriptor, 2, 6, shifted(id));
    }
    if has_structure && let Some(offset) = read_bits(descriptor, 29, 6) {
        write_bits(descriptor, 29, 6, shifted(offset));
    }
}

/// `n` bits at bit `at` (most significant first), if the data has them.
fn read_bits(data: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for bit in at..at + n {
        let byte = data.get(bit / 8)?;
        v = (v << 1) | u32::from((byte >> (7 - bit % 8)) & 1);
    }
    Some(v)
}

/// Writes the low `n` bits of `value` at bit `at`; bits beyond the data
/// are left out (callers read them first).
fn write_bits(data: &mut [u8], at: usize, n: usize, value: u32) {
    for (i, bit) in (at..at + n).enumerate() {
        let set = (value >> (n - 1 - i)) & 1 == 1;
        if let Some(byte) = data.get_mut(bit / 8) {
            let mask = 0x80u8 >> (bit % 8);
            if set {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }
}

/// The decode target with the highest (spatial, temporal) layers within
/// the given ones; the lowest of all when none is.
pub(crate) fn choose_decode_target(structure: &Structure, spatial: u8, temporal: u8) -> usize {
    let layers = structure.target_layers.iter().copied().enumerate();
    let fitting = layers
        .clone()
        .filter(|(_, (s, t))| *s <= spatial && *t <= temporal)
        .max_by_key(|(i, l)| (*l, std::cmp::Reverse(*i)));
    fitting
        .or_else(|| layers.min_by_key(|(i, l)| (*l, *i)))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Whether a receiver of decode target `from` can go over to `to` at a
/// frame marked a switch point of `to` (as Videobridge judges it): not up a
/// spatial layer (its switch points may refer to frames of that layer the
/// receiver never got), and some template predicting from earlier frames
/// is in `from` and a switch point of `to` (k-SVC's lower layers are not
/// in the upper targets, so going down there waits for a key frame).
pub(crate) fn switchable_without_keyframe(structure: &Structure, from: usize, to: usize) -> bool {
    let layers = |dt: usize| structure.target_layers.get(dt).copied();
    let (Some(from_layers), Some(to_layers)) = (layers(from), layers(to)) else {
        return false;
    };
    let dti = |dtis: u64, dt: usize| if dt < 32 { (dtis >> (2 * dt)) & 3 } else { 0 };
    to_layers.0 <= from_layers.0
        && structure
            .templates
            .iter()
            .any(|t| t.fdiff_count > 0 && dti(t.dtis, from) != 0 && dti(t.dtis, to) == 2)
}

/// The decode targets a receiver of decode target `chosen` can decode:
/// those with no template outside `chosen`.
pub(crate) fn decodable_targets(structure: &Structure, chosen: usize) -> u32 {
    let present = |dtis: u64, dt: usize| dt < 32 && (dtis >> (2 * dt)) & 3 != 0;
    (0..usize::from(structure.decode_targets).min(32))
        .filter(|dt| {
            structure
                .templates
                .iter()
                .all(|t| !present(t.dtis, *dt) || present(t.dtis, chosen))
        })
        .fold(0u32, |mask, dt| mask | (1 << dt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::LayerId;
    use crate::media::dependency_descriptor::{FrameInfo, Template};

    /// Two spatial layers by two temporal layers, decode targets 2S+T; a
    /// frame of (s', t') is in target (s, t) when s' <= s and t' <= t
    /// (`k_svc`: S0 delta frames are not in S1's targets).
    fn l2t2(k_svc: bool) -> Structure {
        let mut templates = Vec::new();
        for (s, t, key) in [(0, 0, true), (0, 0, false), (0, 1, false)] {
            templates.push((s, t, key));
        }
        for (s, t, key) in [(1, 0, true), (1, 0, false), (1, 1, false)] {
            templates.push((s, t, key));
        }
        let templates = templates
            .into_iter()
            .map(|(s, t, key)| {
                let mut dtis = 0u64;
                for dt in 0..4u8 {
                    let (ds, dtl) = (dt / 2, dt % 2);
                    let mut present = s <= ds && t <= dtl;
                    if k_svc && !key && s < ds {
                        present = false;
                    }
                    // Key frames and T0 frames of the target's own layer
                    // are switch points, the rest required.
                    if present {
                        let dti = if key || (t == 0 && s == ds) { 2 } else { 3 };
                        dtis |= dti << (2 * dt);
                    }
                }
                Template {
                    spatial: s,
                    temporal: t,
                    dtis,
                    fdiff_count: u8::from(!key),
                }
            })
            .collect();
        Structure {
            template_id_offset: 0,
            decode_targets: 4,
            templates,
            chains: 0,
            target_layers: vec![(0, 0), (0, 1), (1, 0), (1, 1)],
            resolutions: vec![],
        }
    }

    #[test]
    fn the_decode_target_within_the_layers_wanted() {
        let s = l2t2(false);
        assert_eq!(choose_decode_target(&s, 0, 0), 0);
        assert_eq!(choose_decode_target(&s, 0, 7), 1);
        assert_eq!(choose_decode_target(&s, 1, 0), 2);
        assert_eq!(choose_decode_target(&s, u8::MAX, u8::MAX), 3);
        // Nothing fits: the lowest.
        let mut high = l2t2(false);
        high.target_layers = vec![(1, 1), (2, 0)];
        assert_eq!(choose_decode_target(&high, 0, 0), 0);
        let empty = Structure {
            target_layers: vec![],
            ..l2t2(false)
        };
        assert_eq!(choose_decode_target(&empty, 3, 3), 0);
    }

    #[test]
    fn decodable_targets_are_those_inside_the_chosen_one() {
        let full = l2t2(false);
        assert_eq!(decodable_targets(&full, 3), 0b1111);
        assert_eq!(decodable_targets(&full, 2), 0b0101);
        assert_eq!(decodable_targets(&full, 1), 0b0011);
        assert_eq!(decodable_targets(&full, 0), 0b0001);
        // k-SVC: forwarding S1 leaves out S0's delta frames, so S0's
        // targets are not decodable from it.
        let k = l2t2(true);
        assert_eq!(decodable_targets(&k, 3), 0b1100);
        assert_eq!(decodable_targets(&k, 2), 0b0100);
        // A target index beyond the structure decodes nothing more.
        assert_eq!(decodable_targets(&k, 40) & 0b1100, 0);
    }

    /// Frames of templates `indices` (one packet each) through `f`; what
    /// was forwarded (template index) and the key frame requests.
    fn feed(
        f: &mut LayerForwarder,
        structure: &Structure,
        now: Instant,
        seq: &mut u64,
        indices: &[usize],
    ) -> (Vec<usize>, usize) {
        let (mut forwarded, mut requests) = (Vec::new(), 0);
        for &i in indices {
            let key = structure.templates[i].fdiff_count == 0;
            let frame = FrameInfo::of_template(structure, i, *seq as u16, key && i == 0);
            let payload = [0u8; 4];
            let packet = Incoming {
                spatial: 0,
                seq_no: *seq,
                timestamp: *seq as u32 * 3000,
                payload: &payload,
                keyframe: frame.is_keyframe(),
                vp8: None,
                vp9: None,
                marker: frame.spatial == 1,
                dd: Some(Dd {
                    frame,
                    structure,
                    svc: true,
                }),
            };
            *seq += 1;
            let (decision, request) = f.on_packet(now, &packet, 0b11);
            requests += usize::from(request.is_some());
            if let LayerDecision::Forward { dd, .. } = decision {
                assert!(dd.is_some());
                forwarded.push(i);
            }
        }
        (forwarded, requests)
    }

    #[test]
    fn going_down_waits_for_a_switch_point_the_receiver_can_use() {
        // Templates: 0 S0 key, 1 S0 T0, 2 S0 T1, 3 S1 key, 4 S1 T0, 5 S1 T1.
        for k_svc in [false, true] {
            let s = l2t2(k_svc);
            let now = Instant::now();
            let mut seq = 100;
            let mut f = LayerForwarder::new(Target::Layer(LayerId::new(1, 1)));
            let (got, _) = feed(&mut f, &s, now, &mut seq, &[0, 3, 1, 4, 2, 5]);
            let s0_deltas = if k_svc { vec![] } else { vec![1, 2] };
            let mut want = vec![0, 3];
            want.extend(s0_deltas.iter().filter(|i| **i == 1));
            want.push(4);
            want.extend(s0_deltas.iter().filter(|i| **i == 2));
            want.push(5);
            assert_eq!(got, want, "k-SVC {k_svc}");
            f.set_target(Target::Layer(LayerId::new(0, 1)));
            let later = now + std::time::Duration::from_secs(1);
            let (got, requests) = feed(&mut f, &s, later, &mut seq, &[1, 4, 2, 5]);
            if k_svc {
                // S0's T0 frames are not in S1's targets: the receiver
                // lacks what they refer to. S1 goes on until a key frame.
                assert_eq!((got, requests), (vec![4, 5], 1));
                let (got, _) = feed(&mut f, &s, later, &mut seq, &[0, 3, 1, 4, 2, 5]);
                assert_eq!(got, vec![0, 1, 2]);
            } else {
                assert_eq!((got, requests), (vec![1, 2], 0));
            }
        }
    }
}
