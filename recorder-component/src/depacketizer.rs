//! Video depacketization common to VP8, VP9 and AV1: RTP packets of one
//! video stream in, whole frames (pictures, temporal units) out, copied as
//! the sender encoded them. What differs per codec — where a frame starts
//! and how its payloads join into the bytes a WebM block holds — is a
//! [`PayloadFormat`] ([`crate::vp8`], [`crate::vp9`], [`crate::av1`]).
//!
//! Packets are held in a small reorder buffer by extended sequence number.
//! A frame is the run of packets from one that starts a frame to the one
//! with the marker bit, all with one RTP timestamp and no sequence gap. A
//! gap that does not fill within [`MAX_WAIT_TICKS`] of RTP time (or
//! [`MAX_PACKETS`] packets) is a loss: the frame is dropped, and so is
//! every frame after it until the next keyframe, so that no frame
//! referring to a lost one reaches the file. [`Depacketizer::keyframe_needed`]
//! then says to ask the sender for one (RTCP PLI).

use std::collections::BTreeMap;

use crate::rtp::{RtpPacket, Unwrapper};

/// How long (90 kHz ticks) a gap may wait for a late packet or its
/// retransmission (a NACK and the RTX answer: a round trip or two): 300 ms.
/// A recording is not live, so waiting costs only a few frames of memory.
pub const MAX_WAIT_TICKS: u64 = 27_000;
/// Packets held at most while a gap waits.
pub const MAX_PACKETS: usize = 512;

/// A payload that cannot be a packet of this codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload descriptor truncated")]
    Truncated,
    #[error("payload malformed")]
    Malformed,
}

/// One whole video frame, as the file stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Extended RTP timestamp (90 kHz).
    pub timestamp: u64,
    pub keyframe: bool,
    /// Width and height, from a keyframe's header.
    pub size: Option<(u16, u16)>,
    pub data: Vec<u8>,
    /// What the track's CodecPrivate should hold, from a keyframe (AV1's
    /// `av1C` with its sequence header); none for VP8 and VP9.
    pub codec_private: Option<Vec<u8>>,
}

/// A frame's bytes as a codec joins them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assembled {
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub size: Option<(u16, u16)>,
    pub codec_private: Option<Vec<u8>>,
}

/// What one codec's RTP payload format says.
pub trait PayloadFormat: Default {
    /// Whether this payload (descriptor included) starts a frame; an error
    /// if it cannot be a payload of this format.
    fn starts_frame(payload: &[u8]) -> Result<bool, PayloadError>;
    /// Joins the payloads of one frame (in order, descriptors included);
    /// `None` when they do not make a frame.
    fn assemble(&mut self, payloads: &[&[u8]]) -> Option<Assembled>;
}

#[derive(Debug)]
struct Held {
    timestamp: u64,
    marker: bool,
    start: bool,
    payload: Vec<u8>,
}

/// Reassembles the frames of one RTP stream of format `F`.
#[derive(Debug, Default)]
pub struct Depacketizer<F: PayloadFormat> {
    format: F,
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

enum Assembly {
    /// A whole frame's packets: first and last sequence numbers.
    Frame(u64, u64),
    /// Packets up to this sequence number belong to a frame without start.
    Garbage(u64),
    Wait,
}

impl<F: PayloadFormat> Depacketizer<F> {
    pub fn new() -> Depacketizer<F> {
        Depacketizer::default()
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

    /// Packets held now (waiting for a gap or a frame's end).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes one packet; complete frames are then read with
    /// [`Depacketizer::pop_frame`].
    pub fn push(&mut self, packet: &RtpPacket<'_>) -> Result<(), PayloadError> {
        let start = F::starts_frame(packet.payload)?;
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
            start,
            payload: packet.payload.to_vec(),
        });
        Ok(())
    }

    /// The next frame fit for the file, if one is complete.
    pub fn pop_frame(&mut self) -> Option<VideoFrame> {
        loop {
            let next = self.next_seq?;
            match self.try_frame(next) {
                Assembly::Frame(first, last) => {
                    let timestamp = self.held.get(&first).map(|h| h.timestamp).unwrap_or(0);
                    let parts: Vec<&[u8]> = self
                        .held
                        .range(first..=last)
                        .map(|(_, h)| h.payload.as_slice())
                        .collect();
                    let assembled = self.format.assemble(&parts);
                    self.consume_to(last + 1);
                    let Some(a) = assembled else {
                        self.loss();
                        continue;
                    };
                    if a.keyframe {
                        self.waiting_keyframe = false;
                        self.started = true;
                    }
                    if self.waiting_keyframe || !self.started {
                        self.frames_lost += u64::from(self.started);
                        continue;
                    }
                    return Some(VideoFrame {
                        timestamp,
                        keyframe: a.keyframe,
                        size: a.size,
                        data: a.data,
                        codec_private: a.codec_private,
                    });
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
        for (expect, (s, h)) in (next..).zip(self.held.range(next..)) {
            if *s != expect {
                return Assembly::Wait;
            }
            if h.timestamp != first.timestamp {
                // The marker packet was lost but the run is contiguous: the
                // next frame started, so this one is over.
                return Assembly::Frame(next, expect - 1);
            }
            if h.marker {
                return Assembly::Frame(next, *s);
            }
        }
        Assembly::Wait
    }
}

/// A video depacketizer for whichever codec a stream carries.
#[derive(Debug)]
pub enum VideoDepacketizer {
    Vp8(Depacketizer<crate::vp8::Vp8Format>),
    Vp9(Depacketizer<crate::vp9::Vp9Format>),
    Av1(Depacketizer<crate::av1::Av1Format>),
}

impl VideoDepacketizer {
    pub fn new(codec: crate::webm::VideoCodec) -> VideoDepacketizer {
        use crate::webm::VideoCodec as C;
        match codec {
            C::Vp8 => VideoDepacketizer::Vp8(Depacketizer::new()),
            C::Vp9 => VideoDepacketizer::Vp9(Depacketizer::new()),
            C::Av1 => VideoDepacketizer::Av1(Depacketizer::new()),
        }
    }

    pub fn codec(&self) -> crate::webm::VideoCodec {
        use crate::webm::VideoCodec as C;
        match self {
            VideoDepacketizer::Vp8(_) => C::Vp8,
            VideoDepacketizer::Vp9(_) => C::Vp9,
            VideoDepacketizer::Av1(_) => C::Av1,
        }
    }

    pub fn push(&mut self, packet: &RtpPacket<'_>) -> Result<(), PayloadError> {
        match self {
            VideoDepacketizer::Vp8(d) => d.push(packet),
            VideoDepacketizer::Vp9(d) => d.push(packet),
            VideoDepacketizer::Av1(d) => d.push(packet),
        }
    }

    pub fn pop_frame(&mut self) -> Option<VideoFrame> {
        match self {
            VideoDepacketizer::Vp8(d) => d.pop_frame(),
            VideoDepacketizer::Vp9(d) => d.pop_frame(),
            VideoDepacketizer::Av1(d) => d.pop_frame(),
        }
    }

    pub fn keyframe_needed(&self) -> bool {
        match self {
            VideoDepacketizer::Vp8(d) => d.keyframe_needed(),
            VideoDepacketizer::Vp9(d) => d.keyframe_needed(),
            VideoDepacketizer::Av1(d) => d.keyframe_needed(),
        }
    }

    pub fn frames_lost(&self) -> u64 {
        match self {
            VideoDepacketizer::Vp8(d) => d.frames_lost(),
            VideoDepacketizer::Vp9(d) => d.frames_lost(),
            VideoDepacketizer::Av1(d) => d.frames_lost(),
        }
    }
}
