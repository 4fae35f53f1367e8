//! VP8 depacketization (RFC 7741): RTP packets of one video stream in,
//! whole frames out.
//!
//! Packets are held in a small reorder buffer by extended sequence number. A
//! frame is the run of packets from one whose descriptor has S=1, PID=0 to
//! the one with the marker bit, all with one RTP timestamp and no sequence
//! gap. A gap that does not fill within [`MAX_WAIT_TICKS`] of RTP time (or
//! [`MAX_PACKETS`] packets) is a loss: the frame is dropped, and so is every
//! frame after it until the next keyframe, so that no frame referring to a
//! lost one reaches the file. [`Vp8Depacketizer::keyframe_needed`] then says
//! to ask the sender for one (RTCP PLI).

use std::collections::BTreeMap;

use crate::rtp::{RtpPacket, Unwrapper};

/// How long (90 kHz ticks) a gap may wait for a late packet: 100 ms.
pub const MAX_WAIT_TICKS: u64 = 9_000;
/// Packets held at most while a gap waits.
pub const MAX_PACKETS: usize = 512;

/// One whole VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8Frame {
    /// Extended RTP timestamp (90 kHz).
    pub timestamp: u64,
    pub keyframe: bool,
    /// Width and height, from a keyframe's header.
    pub size: Option<(u16, u16)>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    #[error("VP8 payload descriptor truncated")]
    Truncated,
}

/// The parts of the payload descriptor that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// S=1 and PID=0: the first packet of a frame.
    pub frame_start: bool,
    /// Length of the descriptor in bytes.
    pub len: usize,
}

/// Parses the VP8 payload descriptor at the start of an RTP payload.
pub fn parse_descriptor(payload: &[u8]) -> Result<Descriptor, Vp8Error> {
    let b0 = *payload.first().ok_or(Vp8Error::Truncated)?;
    let mut len = 1;
    if b0 & 0x80 != 0 {
        let x = *payload.get(1).ok_or(Vp8Error::Truncated)?;
        len += 1;
        if x & 0x80 != 0 {
            let pic = *payload.get(len).ok_or(Vp8Error::Truncated)?;
            len += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            len += 1;
        }
        if x & 0x30 != 0 {
            len += 1;
        }
    }
    if payload.len() <= len {
        return Err(Vp8Error::Truncated);
    }
    Ok(Descriptor {
        frame_start: b0 & 0x10 != 0 && b0 & 0x07 == 0,
        len,
    })
}

/// Is this VP8 frame a keyframe (P bit clear), and if so of what size?
pub fn keyframe_info(frame: &[u8]) -> (bool, Option<(u16, u16)>) {
    let Some(b0) = frame.first() else {
        return (false, None);
    };
    if b0 & 1 != 0 {
        return (false, None);
    }
    let size = match frame.get(3..10) {
        Some([0x9D, 0x01, 0x2A, w0, w1, h0, h1]) => Some((
            u16::from_le_bytes([*w0, *w1]) & 0x3FFF,
            u16::from_le_bytes([*h0, *h1]) & 0x3FFF,
        )),
        _ => None,
    };
    (true, size)
}

#[derive(Debug)]
struct Held {
    timestamp: u64,
    marker: bool,
    start: bool,
    payload: Vec<u8>,
}

/// Reassembles the frames of one VP8 RTP stream.
#[derive(Debug, Default)]
pub struct Vp8Depacketizer {
    seq: Unwrapper,
    ts: Unwrapper,
    held: BTreeMap<u64, Held>,
    next_seq: Option<u64>,
    /// Set after a loss (and at the start): frames are dropped until a
    /// keyframe.
    waiting_keyframe: bool,
    started: bool,
    frames_lost: u64,
}

impl Vp8Depacketizer {
    pub fn new() -> Vp8Depacketizer {
        Vp8Depacketizer::default()
    }

    /// True while frames are being dropped until a keyframe.
    pub fn keyframe_needed(&self) -> bool {
        self.waiting_keyframe || !self.started
    }

    /// Frames dropped because a packet of theirs (or of a frame before them
    /// since the last keyframe) was lost.
    pub fn frames_lost(&self) -> u64 {
        self.frames_lost
    }

    /// Takes one packet; complete frames are then read with
    /// [`Vp8Depacketizer::pop_frame`].
    pub fn push(&mut self, packet: &RtpPacket<'_>) -> Result<(), Vp8Error> {
        let d = parse_descriptor(packet.payload)?;
        let seq = self.seq.unwrap(u32::from(packet.sequence), 16);
        let timestamp = self.ts.unwrap(packet.timestamp, 32);
        if self.next_seq.is_none() {
            self.next_seq = Some(seq);
        }
        if self.next_seq.is_some_and(|n| seq < n) {
            return Ok(()); // too late, or a duplicate of a consumed packet
        }
        self.held.entry(seq).or_insert_with(|| Held {
            timestamp,
            marker: packet.marker,
            start: d.frame_start,
            payload: packet.payload.get(d.len..).unwrap_or_default().to_vec(),
        });
        Ok(())
    }

    /// The next frame fit for the file, if one is complete.
    pub fn pop_frame(&mut self) -> Option<Vp8Frame> {
        loop {
            let next = self.next_seq?;
            match self.try_frame(next) {
                Assembly::Frame(end, frame) => {
                    self.consume_to(end + 1);
                    let (keyframe, size) = keyframe_info(&frame.data);
                    let frame = Vp8Frame {
                        keyframe,
                        size,
                        ..frame
                    };
                    if keyframe {
                        self.waiting_keyframe = false;
                        self.started = true;
                    }
                    if self.waiting_keyframe || !self.started {
                        self.frames_lost += u64::from(self.started);
                        continue;
                    }
                    return Some(frame);
                }
                Assembly::Wait => {
                    if !self.gap_expired(next) {
                        return None;
                    }
                    // Give up on this frame: skip to the next frame start
                    // after it.
                    let skip_to = self
                        .held
                        .range(next + 1..)
                        .find(|(_, h)| h.start)
                        .map(|(s, _)| *s);
                    let Some(skip_to) = skip_to else {
                        // Nothing to resume from: drop what is held (a
                        // broken stream never grows the buffer).
                        let end = self.held.keys().next_back().map_or(next, |s| s + 1);
                        self.consume_to(end);
                        self.loss();
                        return None;
                    };
                    self.consume_to(skip_to);
                    self.loss();
                }
                Assembly::Garbage(end) => {
                    // A frame whose start was lost.
                    self.consume_to(end + 1);
                    self.loss();
                }
            }
        }
    }

    fn loss(&mut self) {
        if self.started {
            self.frames_lost += 1;
            self.waiting_keyframe = true;
        }
    }

    fn consume_to(&mut self, seq: u64) {
        self.held = self.held.split_off(&seq);
        self.next_seq = Some(seq);
    }

    /// Has the gap at `next` waited long enough to call it a loss?
    fn gap_expired(&self, next: u64) -> bool {
        if self.held.len() > MAX_PACKETS {
            return true;
        }
        let first = self
            .held
            .range(next..)
            .next()
            .map(|(_, h)| h.timestamp)
            .unwrap_or(0);
        let last = self.held.values().map(|h| h.timestamp).max().unwrap_or(0);
        last.saturating_sub(first) > MAX_WAIT_TICKS
    }

    fn try_frame(&self, next: u64) -> Assembly {
        let Some(first) = self.held.get(&next) else {
            return Assembly::Wait;
        };
        if !first.start {
            // Find where this fragment run ends (its marker or the next
            // start) to drop it whole.
            let mut end = next;
            for (s, h) in self.held.range(next..) {
                if *s != end || h.start || h.timestamp != first.timestamp {
                    break;
                }
                if h.marker {
                    return Assembly::Garbage(*s);
                }
                end = *s + 1;
            }
            return if end > next {
                Assembly::Garbage(end - 1)
            } else {
                Assembly::Wait
            };
        }
        let mut data = Vec::new();
        for (expect, (s, h)) in (next..).zip(self.held.range(next..)) {
            if *s != expect {
                return Assembly::Wait;
            }
            if h.timestamp != first.timestamp {
                // The marker packet was lost but the run is contiguous: the
                // next frame started, so this one is over.
                return Assembly::Frame(
                    expect - 1,
                    Vp8Frame {
                        timestamp: first.timestamp,
                        keyframe: false,
                        size: None,
                        data,
                    },
                );
            }
            data.extend_from_slice(&h.payload);
            if h.marker {
                return Assembly::Frame(
                    *s,
                    Vp8Frame {
                        timestamp: first.timestamp,
                        keyframe: false,
                        size: None,
                        data,
                    },
                );
            }
        }
        Assembly::Wait
    }
}

enum Assembly {
    /// A whole frame ending at this sequence number.
    Frame(u64, Vp8Frame),
    /// Packets up to this sequence number belong to a frame without start.
    Garbage(u64),
    Wait,
}

/// Splits a VP8 frame into RTP payloads of at most `mtu` bytes, each with a
/// one-byte descriptor (S on the first). For tests and simulated senders.
pub fn packetize(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let chunk = mtu.max(2) - 1;
    frame
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::build;

    /// A fake VP8 frame: keyframe header (P=0, start code, 64x48) or delta.
    fn frame(key: bool, n: u8, len: usize) -> Vec<u8> {
        let mut f = if key {
            vec![0x00, 0, 0, 0x9D, 0x01, 0x2A, 64, 0, 48, 0]
        } else {
            vec![0x01, 0, 0]
        };
        f.resize(len, n);
        f
    }

    /// Packets of frames (frame i is a keyframe when i % gop == 0).
    fn stream(frames: usize, gop: usize, seq0: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut seq = seq0;
        let mut out = Vec::new();
        for i in 0..frames {
            let f = frame(i % gop == 0, i as u8, 2_500);
            let parts = packetize(&f, 1_000);
            let n = parts.len();
            for (j, p) in parts.into_iter().enumerate() {
                let pkt = build(100, j + 1 == n, seq, (i as u32) * 3_000, 9, &p);
                out.push((f.clone(), pkt));
                seq = seq.wrapping_add(1);
            }
        }
        out
    }

    fn feed(d: &mut Vp8Depacketizer, pkts: &[&Vec<u8>]) -> Vec<Vp8Frame> {
        let mut out = Vec::new();
        for p in pkts {
            d.push(&RtpPacket::parse(p).unwrap()).unwrap();
            while let Some(f) = d.pop_frame() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn reassembles_frames_across_the_sequence_wrap_and_reordering() {
        let s = stream(10, 5, 65_530);
        let mut pkts: Vec<&Vec<u8>> = s.iter().map(|(_, p)| p).collect();
        pkts.swap(4, 5);
        pkts.swap(10, 12);
        let mut d = Vp8Depacketizer::new();
        let frames = feed(&mut d, &pkts);
        assert_eq!(frames.len(), 10);
        assert!(frames[0].keyframe && frames[5].keyframe && !frames[1].keyframe);
        assert_eq!(frames[0].size, Some((64, 48)));
        assert_eq!(frames[3].data, frame(false, 3, 2_500));
        assert_eq!(frames[9].timestamp - frames[0].timestamp, 27_000);
        assert_eq!(d.frames_lost(), 0);
    }

    #[test]
    fn a_lost_packet_drops_frames_until_the_next_keyframe() {
        let s = stream(20, 10, 100);
        let pkts: Vec<&Vec<u8>> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 7) // a packet of frame 2
            .map(|(_, (_, p))| p)
            .collect();
        let mut d = Vp8Depacketizer::new();
        let frames = feed(&mut d, &pkts);
        let keys: Vec<bool> = frames.iter().map(|f| f.keyframe).collect();
        // Frames 0, 1, then nothing until keyframe 10, then 10..19.
        assert_eq!(frames.len(), 12, "{keys:?}");
        assert!(frames[2].keyframe);
        assert_eq!(frames[2].timestamp - frames[0].timestamp, 30_000);
        assert_eq!(d.frames_lost(), 8);
        assert!(!d.keyframe_needed());
    }

    #[test]
    fn a_stream_of_fragments_without_starts_does_not_grow_the_buffer() {
        let mut d = Vp8Depacketizer::new();
        let first = build(100, false, 1, 0, 9, &[0x10, 0x00, 1, 2]);
        d.push(&RtpPacket::parse(&first).unwrap()).unwrap();
        // Seq 2 never comes; fragments (no S bit) with growing timestamps.
        for i in 3..2_000u16 {
            let p = build(100, false, i, u32::from(i) * 3_000, 9, &[0x00, 7, 7]);
            d.push(&RtpPacket::parse(&p).unwrap()).unwrap();
            assert!(d.pop_frame().is_none());
            assert!(d.held.len() <= MAX_PACKETS + 1, "{}", d.held.len());
        }
    }

    #[test]
    fn a_stream_joined_mid_frame_starts_at_a_keyframe() {
        let s = stream(12, 5, 7);
        let pkts: Vec<&Vec<u8>> = s.iter().skip(4).map(|(_, p)| p).collect();
        let mut d = Vp8Depacketizer::new();
        assert!(d.keyframe_needed());
        let frames = feed(&mut d, &pkts);
        assert!(frames[0].keyframe);
        assert_eq!(frames.len(), 7);
        assert!(parse_descriptor(&[0x90]).is_err());
        assert_eq!(
            parse_descriptor(&[0x90, 0xE0, 0x81, 0x02, 0x03, 0xAA, 0x00]),
            Ok(Descriptor {
                frame_start: true,
                len: 6
            })
        );
    }
}
