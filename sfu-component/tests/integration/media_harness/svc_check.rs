//! What a decoder would make of a received VP9 SVC or AV1 stream from the
//! test sender (`svc.rs`): packets reassembled into layer frames by the
//! payload descriptor (VP9) or the dependency descriptor (AV1), and
//! checked for
//!
//! - no sequence-number gap;
//! - complete layer frames (one cut short only by a key frame);
//! - the descriptor's layers matching the frame's body (the bridge did
//!   not mix up descriptors);
//! - every reference of a frame received before it: the frame of the
//!   same layer it predicts from (T0 from the T0 four units back, T1 from
//!   two back, T2 from the one before) and, for a spatial layer above 0,
//!   the layer below in the same temporal unit; so the first frame must be
//!   a key frame and a spatial layer can only be added at a key frame;
//! - the marker bit on the last packet of every temporal unit only;
//! - AV1: frame numbers going forward (by one across a simulcast switch)
//!   and an active decode targets bitmask on every packet.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::Received;
use super::av1::Structure;
use super::svc::{DdBytes, Mode, body_fields};

/// One layer frame as received.
#[derive(Debug, Clone)]
pub struct GotFrame {
    pub layer: u8,
    pub sid: u8,
    pub tid: u8,
    pub key: bool,
    pub unit: u64,
    pub at: Instant,
    pub marker: bool,
    pub frame_number: Option<u16>,
    /// The active decode targets bitmask of its last packet (AV1).
    pub active: Option<u32>,
    /// The template id offset of the structure its first packet carried
    /// (AV1 key frames).
    pub structure_offset: Option<u8>,
    /// A frame before it was cut short (by a switch to a key frame).
    pub after_cut: bool,
}

#[derive(Debug, Default)]
pub struct SvcDecoded {
    pub frames: Vec<GotFrame>,
    pub errors: Vec<String>,
}

impl SvcDecoded {
    /// The highest spatial id of each temporal unit received after `from`,
    /// with its temporal id.
    pub fn units_after(&self, from: Instant) -> Vec<(u8, u8, u8)> {
        let mut out: Vec<(u64, u8, u8, u8)> = Vec::new();
        for f in self.frames.iter().filter(|f| f.at > from) {
            match out.last_mut() {
                Some(last) if last.0 == f.unit && last.1 == f.layer => last.2 = last.2.max(f.sid),
                _ => out.push((f.unit, f.layer, f.sid, f.tid)),
            }
        }
        out.into_iter().map(|(_, l, s, t)| (l, s, t)).collect()
    }
}

/// One packet's descriptor fields.
struct Parsed<'a> {
    start: bool,
    end: bool,
    /// Layers the descriptor names (AV1: from the template, resolved once
    /// the frame's simulcast layer is known).
    sid: Option<u8>,
    tid: Option<u8>,
    template_id: Option<u8>,
    /// AV1: the template id offset of the structure the packet carries.
    offset: Option<u8>,
    frame_number: Option<u16>,
    active: Option<u32>,
    body: &'a [u8],
}

fn parse_vp9(p: &[u8]) -> Option<Parsed<'_>> {
    let first = *p.first()?;
    let layer = *p.get(3)?;
    let at = 5 + if first & 0x02 != 0 { 13 } else { 0 };
    Some(Parsed {
        start: first & 0x08 != 0,
        end: first & 0x04 != 0,
        sid: Some((layer >> 1) & 7),
        tid: Some(layer >> 5),
        template_id: None,
        offset: None,
        frame_number: None,
        active: None,
        body: p.get(at..)?,
    })
}

fn parse_av1<'a>(r: &'a Received, structure: &Structure) -> Option<Parsed<'a>> {
    let dd = r.ext.user_values.get::<DdBytes>()?;
    let read = structure.read(&dd.0)?;
    Some(Parsed {
        start: read.start,
        end: read.end,
        sid: None,
        tid: None,
        template_id: Some(read.template_id),
        offset: read.offset,
        frame_number: Some(read.frame_number),
        active: read.active,
        body: r.payload.get(1..)?,
    })
}

/// Reassembles and checks the packets received on one SSRC (in arrival
/// order).
pub fn check(mode: Mode, packets: &[&Received]) -> SvcDecoded {
    let mut out = SvcDecoded::default();
    let reading = match mode {
        Mode::Av1Simulcast => Structure::l1t3(0),
        _ => Structure::l3t3(),
    };
    let mut previous_seq: Option<u64> = None;
    // The frame being assembled: its first packet's fields and body.
    let mut current: Option<(Parsed, Vec<u8>, Instant)> = None;
    let mut cut = false;
    // AV1: the template id offset of the structure in use and the
    // simulcast layer that sent it, as a receiver's descriptor reader
    // keeps the last structure.
    let mut in_use: Option<(u8, u8)> = None;
    for r in packets {
        if let Some(prev) = previous_seq
            && r.seq != prev + 1
        {
            out.errors.push(format!("seq gap {prev} -> {}", r.seq));
            current = None;
        }
        previous_seq = Some(r.seq);
        let parsed = match mode {
            Mode::Vp9Svc => parse_vp9(&r.payload),
            _ => parse_av1(r, &reading),
        };
        let Some(parsed) = parsed else {
            out.errors.push(format!("no descriptor at seq {}", r.seq));
            continue;
        };
        if mode != Mode::Vp9Svc && parsed.active.is_none() {
            out.errors
                .push(format!("no active decode targets at seq {}", r.seq));
        }
        if r.marker && !parsed.end {
            out.errors
                .push(format!("marker inside a frame at seq {}", r.seq));
        }
        let (end, active) = (parsed.end, parsed.active);
        if parsed.start {
            let key = body_fields(parsed.body).is_some_and(|b| b.3 && b.1 == 0);
            if current.take().is_some() {
                cut = true;
                if !key {
                    out.errors
                        .push(format!("frame without its end before seq {}", r.seq));
                }
            }
            let body = parsed.body.to_vec();
            current = Some((parsed, body, r.at));
        } else if let Some((_, body, _)) = current.as_mut() {
            body.extend_from_slice(parsed.body);
        } else {
            out.errors
                .push(format!("packet of a frame never started at seq {}", r.seq));
            continue;
        }
        if !end {
            continue;
        }
        let Some((first, body, at)) = current.take() else {
            continue;
        };
        let Some((layer, sid, tid, key, unit)) = body_fields(&body) else {
            out.errors
                .push(format!("short frame ending at seq {}", r.seq));
            continue;
        };
        if let Some(offset) = first.offset {
            // Another encoder's structure: its template ids must not be
            // any of the previous structure's (a late packet of the old
            // encoder would be read with the new templates).
            let count = reading.template_count();
            if let Some((old, old_layer)) = in_use
                && old_layer != layer
                && !disjoint(old, offset, count)
            {
                out.errors.push(format!(
                    "layer {layer}'s structure at template id {offset} overlaps layer \
                     {old_layer}'s at {old} (seq {})",
                    r.seq
                ));
            }
            in_use = Some((offset, layer));
        }
        let named = match first.template_id {
            Some(id) => match in_use {
                Some((offset, _)) => {
                    let index = (usize::from(id) + 64 - usize::from(offset)) % 64;
                    let template = reading.template_at(index);
                    if template.is_none() {
                        out.errors.push(format!(
                            "template id {id} is not in the structure at {offset} (seq {})",
                            r.seq
                        ));
                    }
                    template.map(|t| (t.sid, t.tid))
                }
                None => None,
            },
            None => first.sid.zip(first.tid),
        };
        if named != Some((sid, tid)) {
            out.errors.push(format!(
                "descriptor says {named:?}, frame is S{sid}T{tid} (seq {})",
                r.seq
            ));
        }
        out.frames.push(GotFrame {
            layer,
            sid,
            tid,
            key,
            unit,
            at,
            marker: r.marker,
            frame_number: first.frame_number,
            active,
            structure_offset: first.offset,
            after_cut: std::mem::take(&mut cut),
        });
    }
    check_frames(&mut out, mode);
    out
}

/// Whether `count` template ids from `a` and `count` from `b` (modulo
/// 64) have none in common.
fn disjoint(a: u8, b: u8, count: usize) -> bool {
    let apart = |x: u8, y: u8| (usize::from(y) + 64 - usize::from(x)) % 64 >= count;
    apart(a, b) && apart(b, a)
}

fn check_frames(out: &mut SvcDecoded, mode: Mode) {
    let mut decodable: HashSet<(u8, u8, u64)> = HashSet::new();
    let mut key_unit: HashMap<u8, u64> = HashMap::new();
    let mut errors = Vec::new();
    for (i, f) in out.frames.iter().enumerate() {
        if f.key && f.sid == 0 {
            key_unit.insert(f.layer, f.unit);
        }
        let mut refs = Vec::new();
        if f.sid > 0 {
            refs.push((f.layer, f.sid - 1, f.unit));
        }
        if !f.key {
            let back = match f.tid {
                0 => 4,
                1 => 2,
                _ => 1,
            };
            match key_unit.get(&f.layer) {
                Some(k) if f.unit >= k + back => refs.push((f.layer, f.sid, f.unit - back)),
                _ => refs.push((f.layer, f.sid, u64::MAX)),
            }
        }
        let missing: Vec<_> = refs.iter().filter(|r| !decodable.contains(r)).collect();
        if missing.is_empty() {
            decodable.insert((f.layer, f.sid, f.unit));
        } else {
            errors.push(format!(
                "L{} S{}T{} of unit {} lacks {missing:?}",
                f.layer, f.sid, f.tid, f.unit
            ));
        }
        // The marker: on the last frame of a temporal unit only.
        if let Some(next) = out.frames.get(i + 1) {
            let last_of_unit = next.unit != f.unit || next.layer != f.layer;
            if f.marker != last_of_unit {
                errors.push(format!(
                    "marker {} on L{} S{} of unit {}",
                    f.marker, f.layer, f.sid, f.unit
                ));
            }
        }
        if mode != Mode::Vp9Svc
            && let Some(prev) = i.checked_sub(1).and_then(|p| out.frames.get(p))
            && let (Some(a), Some(b)) = (prev.frame_number, f.frame_number)
        {
            let step = b.wrapping_sub(a);
            // Across a simulcast switch by one (two after a frame cut
            // short there, which the receiver saw the start of).
            let switch_step = if f.after_cut { 2 } else { 1 };
            if step == 0 || step >= 0x8000 || (prev.layer != f.layer && step != switch_step) {
                errors.push(format!("frame number {a} -> {b}"));
            }
        }
    }
    out.errors.extend(errors);
}
