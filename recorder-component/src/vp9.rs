//! VP9's RTP payload format (RFC 9628) for the [`crate::depacketizer`], in
//! flexible and non-flexible mode. A picture starts at a payload whose
//! descriptor has B=1 in its lowest spatial layer; its payloads without
//! descriptors join into layer frames (B to E); a picture of one layer
//! frame is stored as it is, one of several spatial layers as a VP9
//! superframe (the layer frames and an index, what libvpx writes and a
//! decoder shows as one picture). A keyframe is one whose first layer
//! frame's uncompressed header says `KEY_FRAME`; its size is read there.

use crate::bits::BitReader;
use crate::depacketizer::{Assembled, Depacketizer, PayloadError, PayloadFormat};

/// A VP9 depacketizer.
pub type Vp9Depacketizer = Depacketizer<Vp9Format>;

/// What the payload descriptor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Length of the descriptor in bytes.
    pub len: usize,
    /// B: the first packet of a layer frame.
    pub begin: bool,
    /// E: the last packet of a layer frame.
    pub end: bool,
    /// P: inter-picture predicted.
    pub inter: bool,
    /// The spatial layer, when the descriptor has layer indices.
    pub spatial: Option<u8>,
    pub picture_id: Option<u16>,
}

fn byte(p: &[u8], at: usize) -> Result<u8, PayloadError> {
    p.get(at).copied().ok_or(PayloadError::Truncated)
}

/// Parses the VP9 payload descriptor at the start of an RTP payload.
pub fn parse_descriptor(p: &[u8]) -> Result<Descriptor, PayloadError> {
    let b0 = byte(p, 0)?;
    let (i, inter, l, f) = (
        b0 & 0x80 != 0,
        b0 & 0x40 != 0,
        b0 & 0x20 != 0,
        b0 & 0x10 != 0,
    );
    let (begin, end, v) = (b0 & 0x08 != 0, b0 & 0x04 != 0, b0 & 0x02 != 0);
    let mut at = 1;
    let mut picture_id = None;
    if i {
        let m = byte(p, at)?;
        at += 1;
        if m & 0x80 != 0 {
            let lo = byte(p, at)?;
            at += 1;
            picture_id = Some((u16::from(m & 0x7F) << 8) | u16::from(lo));
        } else {
            picture_id = Some(u16::from(m & 0x7F));
        }
    }
    let mut spatial = None;
    if l {
        let layer = byte(p, at)?;
        at += 1;
        spatial = Some((layer >> 1) & 0x07);
        if !f {
            at += 1; // TL0PICIDX
        }
    }
    if inter && f {
        // Up to three reference indices, each with N (another follows).
        for _ in 0..3 {
            let diff = byte(p, at)?;
            at += 1;
            if diff & 1 == 0 {
                break;
            }
        }
    }
    if v {
        let ss = byte(p, at)?;
        at += 1;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            at += 4 * layers; // width and height of each spatial layer
        }
        if ss & 0x08 != 0 {
            let groups = byte(p, at)?;
            at += 1;
            for _ in 0..groups {
                let g = byte(p, at)?;
                at += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    if p.len() <= at {
        return Err(PayloadError::Truncated);
    }
    Ok(Descriptor {
        len: at,
        begin,
        end,
        inter,
        spatial,
        picture_id,
    })
}

/// Whether a VP9 frame is a keyframe, and its size when it is (from its
/// uncompressed header).
pub fn keyframe_info(frame: &[u8]) -> (bool, Option<(u16, u16)>) {
    fn parse(frame: &[u8]) -> Option<(bool, Option<(u16, u16)>)> {
        let mut r = BitReader::new(frame);
        if r.bits(2)? != 2 {
            return None;
        }
        let low = r.bits(1)?;
        let high = r.bits(1)?;
        let profile = (high << 1) | low;
        if profile == 3 {
            r.bits(1)?;
        }
        if r.flag()? {
            return Some((false, None)); // show_existing_frame
        }
        let key = r.bits(1)? == 0;
        if !key {
            return Some((false, None));
        }
        r.bits(2)?; // show_frame, error_resilient_mode
        if r.bits(24)? != 0x49_83_42 {
            return Some((false, None));
        }
        if profile >= 2 {
            r.bits(1)?; // ten_or_twelve_bit
        }
        let color_space = r.bits(3)?;
        if color_space != 7 {
            r.bits(1)?; // color_range
            if profile == 1 || profile == 3 {
                r.bits(3)?; // subsampling_x, subsampling_y, reserved
            }
        } else if profile == 1 || profile == 3 {
            r.bits(1)?;
        }
        let w = r.bits(16)? + 1;
        let h = r.bits(16)? + 1;
        Some((true, Some((w as u16, h as u16))))
    }
    parse(frame).unwrap_or((false, None))
}

/// Joins layer frames into a VP9 superframe (frames, then the index).
pub fn superframe(frames: &[Vec<u8>]) -> Vec<u8> {
    let largest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let mag = match largest {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    };
    let n = frames.len().clamp(1, 8);
    let marker = 0xC0 | (((mag - 1) as u8) << 3) | ((n - 1) as u8);
    let mut out: Vec<u8> = frames.iter().take(n).flatten().copied().collect();
    out.push(marker);
    for f in frames.iter().take(n) {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes()[..mag]);
    }
    out.push(marker);
    out
}

/// VP9 in RTP.
#[derive(Debug, Default)]
pub struct Vp9Format;

impl PayloadFormat for Vp9Format {
    fn starts_frame(payload: &[u8]) -> Result<bool, PayloadError> {
        let d = parse_descriptor(payload)?;
        Ok(d.begin && d.spatial.unwrap_or(0) == 0)
    }

    fn assemble(&mut self, payloads: &[&[u8]]) -> Option<Assembled> {
        let mut layers: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        for p in payloads {
            let d = parse_descriptor(p).ok()?;
            let body = p.get(d.len..)?;
            if d.begin {
                if open {
                    return None; // a layer frame without its end
                }
                layers.push(Vec::new());
                open = true;
            }
            if !open {
                return None;
            }
            layers.last_mut()?.extend_from_slice(body);
            if d.end {
                open = false;
            }
        }
        let first = layers.first()?;
        let (keyframe, mut size) = keyframe_info(first);
        for l in layers.iter().skip(1) {
            if let (_, Some(s)) = keyframe_info(l) {
                size = Some(s);
            }
        }
        let data = if layers.len() == 1 {
            layers.pop()?
        } else {
            superframe(&layers)
        };
        Some(Assembled {
            data,
            keyframe,
            size,
            codec_private: None,
        })
    }
}

/// Splits one VP9 frame (one spatial layer) into RTP payloads of at most
/// `mtu` bytes in non-flexible mode, with a 15-bit picture id and, on a
/// keyframe's first packet, the scalability structure with its size. For
/// tests and simulated senders.
pub fn packetize(frame: &[u8], picture_id: u16, mtu: usize) -> Vec<Vec<u8>> {
    let (key, size) = keyframe_info(frame);
    let chunk = mtu.max(16) - 10;
    let parts: Vec<&[u8]> = frame.chunks(chunk).collect();
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let ss = key && i == 0 && size.is_some();
            let mut b0 = 0x80u8; // I
            if !key {
                b0 |= 0x40; // P
            }
            if i == 0 {
                b0 |= 0x08; // B
            }
            if i + 1 == n {
                b0 |= 0x04; // E
            }
            if ss {
                b0 |= 0x02; // V
            }
            let mut p = vec![
                b0,
                0x80 | ((picture_id >> 8) as u8 & 0x7F),
                picture_id as u8,
            ];
            if let (true, Some((w, h))) = (ss, size) {
                p.push(0x10); // one spatial layer, with its size
                p.extend_from_slice(&w.to_be_bytes());
                p.extend_from_slice(&h.to_be_bytes());
            }
            p.extend_from_slice(c);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpPacket, build};

    /// A keyframe header: profile 0, key, show, sync code, BT.601, 64x48.
    fn keyframe() -> Vec<u8> {
        // 10 (marker) 0 0 (profile) 0 (show_existing) 0 (key) 1 (show) 0 (err)
        // sync 0x49 0x83 0x42, color_space 3 bits 001, color_range 0,
        // width-1 = 63 (16 bits), height-1 = 47 (16 bits).
        let mut bits = String::from("10000010");
        bits += "010010011000001101000010";
        bits += "0010";
        bits += &format!("{:016b}{:016b}", 63, 47);
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let mut out: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        out.resize(2_000, 0x55);
        out
    }

    #[test]
    fn descriptors_of_both_modes() {
        // Non-flexible: I (15-bit id), L (TID 0, SID 1), TL0PICIDX, B.
        let d = parse_descriptor(&[0xA8, 0x81, 0x23, 0x02, 0x07, 0xFF]).unwrap();
        assert_eq!(
            (d.len, d.begin, d.end, d.spatial, d.picture_id),
            (5, true, false, Some(1), Some(0x0123))
        );
        // Flexible: I (7-bit), P, L, F, two P_DIFFs (N set on the first).
        let d = parse_descriptor(&[0xF4, 0x05, 0x00, 0x03, 0x04, 0xAA]).unwrap();
        assert_eq!((d.len, d.end, d.inter, d.spatial), (5, true, true, Some(0)));
        assert!(parse_descriptor(&[0x88]).is_err());
        assert!(parse_descriptor(&[0xA8, 0x81]).is_err());
    }

    #[test]
    fn keyframes_are_found_and_frames_reassembled() {
        let key = keyframe();
        assert_eq!(keyframe_info(&key), (true, Some((64, 48))));
        let mut delta = vec![0x86, 0x00];
        delta.resize(1_500, 7);
        assert_eq!(keyframe_info(&delta), (false, None));
        let mut d = Vp9Depacketizer::new();
        let mut seq = 0u16;
        let mut frames = Vec::new();
        for (i, f) in [&key, &delta, &delta].into_iter().enumerate() {
            let parts = packetize(f, i as u16, 700);
            let n = parts.len();
            for (j, p) in parts.iter().enumerate() {
                let pkt = build(98, j + 1 == n, seq, i as u32 * 3_000, 5, p);
                seq += 1;
                d.push(&RtpPacket::parse(&pkt).unwrap()).unwrap();
                while let Some(f) = d.pop_frame() {
                    frames.push(f);
                }
            }
        }
        assert_eq!(frames.len(), 3);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert_eq!(frames[0].size, Some((64, 48)));
        assert_eq!(frames[0].data, key);
        assert_eq!(frames[2].data, delta);
    }

    #[test]
    fn spatial_layers_make_a_superframe() {
        let a = vec![1u8; 300];
        let b = vec![2u8; 40];
        let s = superframe(&[a.clone(), b.clone()]);
        // Two frames, 2-byte sizes: marker 0b110_01_001.
        assert_eq!(s.len(), 300 + 40 + 2 + 4);
        assert_eq!(s[340], 0xC9);
        assert_eq!(&s[341..343], &300u16.to_le_bytes());
        assert_eq!(*s.last().unwrap(), 0xC9);
        let mut f = Vp9Format;
        // Layer 0 (B, E, SID 0) and layer 1 (B, E, SID 1), non-flexible.
        let p0 = [&[0x2C, 0x00, 0x00][..], &a].concat();
        let p1 = [&[0x2C, 0x02, 0x00][..], &b].concat();
        assert!(Vp9Format::starts_frame(&p0).unwrap());
        assert!(!Vp9Format::starts_frame(&p1).unwrap());
        let out = f.assemble(&[&p0, &p1]).unwrap();
        assert_eq!(out.data, s);
        // A layer frame cut short (no E before the next B) is no frame.
        let cut = [&[0x28, 0x00, 0x00][..], &a].concat();
        assert!(f.assemble(&[&cut, &p1]).is_none());
    }
}
