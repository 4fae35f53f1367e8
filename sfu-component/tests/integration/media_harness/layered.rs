//! Realistic VP8 simulcast for the media tests: what a client sends in
//! layered mode (three resolutions with correct key frame headers, temporal
//! layers 0,2,1,2 with TL0PICIDX, frames split into packets), and a
//! receiver-side VP8 depacketizer that checks what a decoder would: no
//! sequence-number gap, complete frames (except one cut short by a key
//! frame, which a decoder drops), a key frame first and at every
//! layer switch, picture ids by one per frame, TL0PICIDX by one per TID 0
//! frame (so a frame of a higher temporal layer never outlives the lower
//! one it depends on).

use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::{RtpWrite, Ssrc};

use super::client::{Client, Received};

/// Bytes per frame of each layer (30 fps: about 50 kbit/s, 150 kbit/s and
/// 400 kbit/s with headers; key frames are three times larger).
pub const FRAME_BYTES: [usize; 3] = [150, 500, 1500];
/// Width and height of each layer's key frames.
pub const SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// Largest VP8 payload per packet.
const MTU_PAYLOAD: usize = 1100;
/// Temporal ids by frame index.
const TIDS: [u8; 4] = [0, 2, 1, 2];

impl Client {
    /// Sends one frame of `layer` (one or more packets).
    pub fn send_layered_frame(&mut self, now: Instant, layer: usize) {
        let ssrc = self.ssrcs.video[layer];
        let frame = self.frames_sent[layer];
        self.frames_sent[layer] += 1;
        let key = std::mem::replace(&mut self.keyframe_due[layer], false);
        if key {
            self.keyframes_sent.push((layer, frame, now));
        }
        // A key frame restarts the temporal pattern.
        let tid = if key { 0 } else { TIDS[(frame % 4) as usize] };
        if tid == 0 {
            self.tl0[layer] = self.tl0[layer].wrapping_add(1);
        }
        let tl0 = self.tl0[layer];
        let pid = self.picture_id[layer];
        self.picture_id[layer] = (pid + 1) & 0x7fff;
        let (w, h) = SIZES[layer.min(2)];
        let size = FRAME_BYTES[layer.min(2)] * if key { 3 } else { 1 };
        // The VP8 payload: frame tag, key frame start code and size, then
        // the layer and frame number, then filler.
        let mut body = vec![if key { 0x10 } else { 0x11 }, 0, 0];
        if key {
            body.extend_from_slice(&[0x9d, 0x01, 0x2a]);
            body.extend_from_slice(&w.to_le_bytes());
            body.extend_from_slice(&h.to_le_bytes());
        }
        body.push(layer as u8);
        body.extend_from_slice(&frame.to_be_bytes());
        body.resize(size.max(body.len()), 0xab);
        let chunks: Vec<&[u8]> = body.chunks(MTU_PAYLOAD).collect();
        let ts = (frame as u32)
            .wrapping_mul(3000)
            .wrapping_add(7_000 * layer as u32);
        for (i, chunk) in chunks.iter().enumerate() {
            let first = i == 0;
            let mut payload = vec![
                if first { 0x90 } else { 0x80 },
                0xe0,
                0x80 | (pid >> 8) as u8,
                pid as u8,
                tl0,
                (tid << 6) | if tid > 0 { 0x20 } else { 0 },
            ];
            payload.extend_from_slice(chunk);
            let seq = self.video_seq[layer];
            self.video_seq[layer] += 1;
            if let Some(tx) = self.rtc.direct_api().stream_tx(&Ssrc::from(ssrc)) {
                tx.write_rtp(
                    RtpWrite::new(Pt::new_with_value(100), seq.into(), ts, now, payload)
                        .marker(i + 1 == chunks.len())
                        .nackable(true),
                );
            }
        }
    }
}

/// One frame as a receiver reassembled it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub picture_id: u16,
    pub tl0: u8,
    pub tid: u8,
    pub key: bool,
    /// Key frame height.
    pub height: Option<u16>,
    /// The layer the sender sent it on (from the payload).
    pub layer: u8,
    /// The sender's frame number on that layer (from the payload).
    pub number: u64,
    pub at: Instant,
}

/// What a VP8 decoder would make of one received stream.
#[derive(Debug, Default)]
pub struct Decoded {
    pub frames: Vec<Frame>,
    /// Everything a decoder would stumble on.
    pub errors: Vec<String>,
}

/// Depacketizes the packets received on one SSRC (in arrival order, as
/// str0m delivers them) and checks them.
pub fn decode(packets: &[&Received]) -> Decoded {
    let mut out = Decoded::default();
    let mut current: Option<(Frame, Vec<u8>)> = None;
    let mut previous_seq: Option<u64> = None;
    // The frame before the next complete one was cut short (its picture
    // id is then skipped).
    let mut cut_short = false;
    for p in packets {
        if let Some(prev) = previous_seq
            && p.seq != prev + 1
        {
            out.errors.push(format!("seq gap {prev} -> {}", p.seq));
            current = None;
        }
        previous_seq = Some(p.seq);
        let d = &p.payload;
        if d.len() < 7 || d[1] != 0xe0 {
            out.errors.push(format!("bad descriptor at seq {}", p.seq));
            continue;
        }
        let start = d[0] & 0x10 != 0;
        let body = &d[6..];
        if start {
            let key = body[0] & 0x01 == 0;
            // A frame cut short by a switch at a key frame of another layer
            // is discarded by the decoder; anything else is an error.
            if current.take().is_some() {
                if key {
                    cut_short = true;
                } else {
                    out.errors
                        .push(format!("frame without marker before seq {}", p.seq));
                }
            }
            let frame = Frame {
                picture_id: (u16::from(d[2] & 0x7f) << 8) | u16::from(d[3]),
                tl0: d[4],
                tid: d[5] >> 6,
                key,
                height: None,
                layer: 0,
                number: 0,
                at: p.at,
            };
            current = Some((frame, body.to_vec()));
        } else if let Some((_, data)) = current.as_mut() {
            data.extend_from_slice(body);
        } else {
            // The middle of a frame whose start we never got.
            continue;
        }
        if p.marker
            && let Some((mut frame, data)) = current.take()
        {
            let at = if frame.key {
                if data.get(3..6) == Some(&[0x9d, 0x01, 0x2a][..]) && data.len() >= 11 {
                    frame.height = Some(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
                }
                10
            } else {
                3
            };
            frame.layer = data.get(at).copied().unwrap_or(u8::MAX);
            if let Some(number) = data.get(at + 1..at + 9).and_then(|n| n.try_into().ok()) {
                frame.number = u64::from_be_bytes(number);
            }
            check_frame(&mut out, &frame, std::mem::take(&mut cut_short));
            out.frames.push(frame);
        }
    }
    out
}

fn check_frame(out: &mut Decoded, frame: &Frame, after_cut: bool) {
    let Some(prev) = out.frames.last() else {
        if !frame.key {
            out.errors.push("first frame is not a key frame".into());
        }
        return;
    };
    if frame.layer != prev.layer && !frame.key {
        out.errors.push(format!(
            "layer {} -> {} without a key frame (picture {})",
            prev.layer, frame.layer, frame.picture_id
        ));
    }
    if after_cut {
        // A key frame after a dropped partial frame: a decoder restarts.
        return;
    }
    if frame.picture_id != (prev.picture_id + 1) & 0x7fff {
        out.errors.push(format!(
            "picture id {} -> {}",
            prev.picture_id, frame.picture_id
        ));
    }
    let expected_tl0 = if frame.tid == 0 {
        prev.tl0.wrapping_add(1)
    } else {
        prev.tl0
    };
    if frame.tl0 != expected_tl0 {
        out.errors.push(format!(
            "TL0PICIDX {} -> {} (tid {})",
            prev.tl0, frame.tl0, frame.tid
        ));
    }
}
