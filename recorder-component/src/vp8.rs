//! VP8's RTP payload format (RFC 7741) for the [`crate::depacketizer`]:
//! a frame starts at a payload descriptor with S=1 and PID=0, and is the
//! concatenation of its payloads without their descriptors; a keyframe has
//! the P bit clear and its size in its header.

use crate::depacketizer::{Assembled, Depacketizer, PayloadError, PayloadFormat, VideoFrame};

/// A VP8 depacketizer.
pub type Vp8Depacketizer = Depacketizer<Vp8Format>;
/// A whole VP8 frame.
pub type Vp8Frame = VideoFrame;
/// A VP8 payload that does not parse.
pub type Vp8Error = PayloadError;

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

/// VP8 in RTP.
#[derive(Debug, Default)]
pub struct Vp8Format;

impl PayloadFormat for Vp8Format {
    fn starts_frame(payload: &[u8]) -> Result<bool, PayloadError> {
        parse_descriptor(payload).map(|d| d.frame_start)
    }

    fn assemble(&mut self, payloads: &[&[u8]]) -> Option<Assembled> {
        let mut data = Vec::new();
        for p in payloads {
            let d = parse_descriptor(p).ok()?;
            data.extend_from_slice(p.get(d.len..)?);
        }
        let (keyframe, size) = keyframe_info(&data);
        Some(Assembled {
            data,
            keyframe,
            size,
            codec_private: None,
        })
    }
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
    use crate::depacketizer::MAX_PACKETS;
    use crate::rtp::{RtpPacket, build};

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
            assert!(d.held() <= MAX_PACKETS + 1, "{}", d.held());
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
