//! AV1's RTP payload format (the AOM "RTP Payload Format for AV1") for the
//! [`crate::depacketizer`]: each payload is an aggregation header (Z: the
//! first OBU element continues the previous packet's last; Y: the last
//! continues in the next; W: how many elements, 0 meaning each has a
//! LEB128 length; N: a new coded video sequence) and OBU elements. A
//! temporal unit's packets are reassembled into whole OBUs, temporal
//! delimiters and tile lists dropped, and each OBU written with its size
//! field, as Matroska's AV1 mapping stores a block ("low overhead bitstream
//! format"). A keyframe is a temporal unit with a sequence header and a
//! frame whose header says `KEY_FRAME`; from its sequence header comes the
//! track's CodecPrivate (`av1C`) and the largest frame size.

use crate::bits::{BitReader, read_leb128, write_leb128};
use crate::depacketizer::{Assembled, Depacketizer, PayloadError, PayloadFormat};

/// An AV1 depacketizer.
pub type Av1Depacketizer = Depacketizer<Av1Format>;

pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
pub const OBU_FRAME_HEADER: u8 = 3;
pub const OBU_FRAME: u8 = 6;
pub const OBU_TILE_LIST: u8 = 8;

/// The OBU elements of one payload, and its Z and Y bits.
fn elements(payload: &[u8]) -> Option<(bool, bool, Vec<&[u8]>)> {
    let agg = *payload.first()?;
    let (z, y, w) = (agg & 0x80 != 0, agg & 0x40 != 0, (agg >> 4) & 0x03);
    let mut rest = payload.get(1..)?;
    let mut out = Vec::new();
    let mut k = 0;
    while !rest.is_empty() {
        k += 1;
        let last_without_length = w != 0 && k == w;
        let len = if last_without_length {
            rest.len()
        } else {
            let (len, n) = read_leb128(rest)?;
            rest = rest.get(n..)?;
            usize::try_from(len).ok()?
        };
        out.push(rest.get(..len)?);
        rest = rest.get(len..)?;
        if last_without_length {
            break;
        }
    }
    Some((z, y, out))
}

/// One OBU's type, its header bytes (with the size flag cleared) and its
/// payload.
fn split_obu(obu: &[u8]) -> Option<(u8, Vec<u8>, &[u8])> {
    let h = *obu.first()?;
    if h & 0x80 != 0 {
        return None; // forbidden bit
    }
    let kind = (h >> 3) & 0x0F;
    let ext = h & 0x04 != 0;
    let mut header = vec![h & !0x02];
    let mut at = 1;
    if ext {
        header.push(*obu.get(1)?);
        at = 2;
    }
    let payload = if h & 0x02 != 0 {
        let (size, n) = read_leb128(obu.get(at..)?)?;
        let start = at + n;
        obu.get(start..start.checked_add(usize::try_from(size).ok()?)?)?
    } else {
        obu.get(at..)?
    };
    Some((kind, header, payload))
}

/// What a sequence header says that the file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceHeader {
    pub profile: u8,
    pub level: u8,
    pub tier: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub reduced_still_picture_header: bool,
    pub max_size: (u32, u32),
}

/// Parses a sequence header OBU's payload (AV1 spec 5.5).
pub fn parse_sequence_header(p: &[u8]) -> Option<SequenceHeader> {
    let mut r = BitReader::new(p);
    let profile = r.bits(3)? as u8;
    r.bits(1)?; // still_picture
    let reduced = r.flag()?;
    let (mut level, mut tier) = (0u8, 0u8);
    let mut decoder_model_info = false;
    let mut buffer_delay_length = 0;
    if reduced {
        level = r.bits(5)? as u8;
    } else {
        if r.flag()? {
            // timing_info
            r.bits(32)?;
            r.bits(32)?;
            if r.flag()? {
                r.uvlc()?;
            }
            decoder_model_info = r.flag()?;
            if decoder_model_info {
                buffer_delay_length = r.bits(5)? + 1;
                r.bits(32)?;
                r.bits(10)?; // buffer_removal_time_length, frame_presentation_time_length
            }
        }
        let initial_display_delay = r.flag()?;
        let points = r.bits(5)? + 1;
        for i in 0..points {
            r.bits(12)?; // operating_point_idc
            let l = r.bits(5)? as u8;
            let t = if l > 7 { r.bits(1)? as u8 } else { 0 };
            if i == 0 {
                (level, tier) = (l, t);
            }
            if decoder_model_info && r.flag()? {
                r.bits(buffer_delay_length)?;
                r.bits(buffer_delay_length)?;
                r.bits(1)?;
            }
            if initial_display_delay && r.flag()? {
                r.bits(4)?;
            }
        }
    }
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let w = r.bits(wbits)? + 1;
    let h = r.bits(hbits)? + 1;
    if !reduced && r.flag()? {
        r.bits(7)?; // delta_frame_id_length, additional_frame_id_length
    }
    r.bits(3)?; // 128x128 superblock, filter intra, intra edge filter
    if !reduced {
        r.bits(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.flag()?;
        if order_hint {
            r.bits(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content = if r.flag()? { 2 } else { r.bits(1)? };
        if force_screen_content > 0 && !r.flag()? {
            r.bits(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.bits(3)?;
        }
    }
    r.bits(3)?; // superres, cdef, restoration
    // color_config
    let high_bitdepth = r.flag()?;
    let twelve_bit = profile == 2 && high_bitdepth && r.flag()?;
    let monochrome = profile != 1 && r.flag()?;
    let (mut cp, mut tc, mut mc) = (2, 2, 2);
    if r.flag()? {
        cp = r.bits(8)?;
        tc = r.bits(8)?;
        mc = r.bits(8)?;
    }
    let (mut sx, mut sy, mut csp) = (true, true, 0u8);
    if monochrome {
        r.bits(1)?;
    } else if cp == 1 && tc == 13 && mc == 0 {
        (sx, sy) = (false, false);
    } else {
        r.bits(1)?; // color_range
        match profile {
            0 => {}
            1 => (sx, sy) = (false, false),
            _ => {
                if twelve_bit {
                    sx = r.flag()?;
                    sy = sx && r.flag()?;
                } else {
                    (sx, sy) = (true, false);
                }
            }
        }
        if sx && sy {
            csp = r.bits(2)? as u8;
        }
    }
    Some(SequenceHeader {
        profile,
        level,
        tier,
        high_bitdepth,
        twelve_bit,
        monochrome,
        subsampling_x: sx,
        subsampling_y: sy,
        chroma_sample_position: csp,
        reduced_still_picture_header: reduced,
        max_size: (w, h),
    })
}

/// The `av1C` box (AV1-ISOBMFF 2.3.3) Matroska keeps as CodecPrivate: the
/// sequence header's fields and the sequence header OBU itself.
pub fn av1c(seq: &SequenceHeader, sequence_header_obu: &[u8]) -> Vec<u8> {
    let b = |v: bool, shift: u8| u8::from(v) << shift;
    let mut out = vec![
        0x81,
        (seq.profile << 5) | (seq.level & 0x1F),
        b(seq.tier == 1, 7)
            | b(seq.high_bitdepth, 6)
            | b(seq.twelve_bit, 5)
            | b(seq.monochrome, 4)
            | b(seq.subsampling_x, 3)
            | b(seq.subsampling_y, 2)
            | (seq.chroma_sample_position & 0x03),
        0,
    ];
    out.extend_from_slice(sequence_header_obu);
    out
}

/// Is a frame (or frame header) OBU's payload a key frame?
fn is_key_frame(payload: &[u8], reduced_still_picture_header: bool) -> bool {
    if reduced_still_picture_header {
        return true;
    }
    let mut r = BitReader::new(payload);
    matches!((r.flag(), r.bits(2)), (Some(false), Some(0)))
}

/// AV1 in RTP.
#[derive(Debug, Default)]
pub struct Av1Format;

impl PayloadFormat for Av1Format {
    fn starts_frame(payload: &[u8]) -> Result<bool, PayloadError> {
        let agg = payload.first().ok_or(PayloadError::Truncated)?;
        Ok(agg & 0x80 == 0)
    }

    fn assemble(&mut self, payloads: &[&[u8]]) -> Option<Assembled> {
        let mut obus: Vec<Vec<u8>> = Vec::new();
        let mut partial: Option<Vec<u8>> = None;
        for p in payloads {
            let (z, y, elems) = elements(p)?;
            let n = elems.len();
            for (i, e) in elems.into_iter().enumerate() {
                let mut cur = if i == 0 && z {
                    let mut c = partial.take()?;
                    c.extend_from_slice(e);
                    c
                } else {
                    if partial.is_some() {
                        return None; // a continuation that never came
                    }
                    e.to_vec()
                };
                if i + 1 == n && y {
                    partial = Some(std::mem::take(&mut cur));
                } else {
                    obus.push(cur);
                }
            }
        }
        if partial.is_some() {
            return None;
        }
        let mut data = Vec::new();
        let mut seq = None;
        let mut key = None;
        for obu in &obus {
            let (kind, header, payload) = split_obu(obu)?;
            if kind == OBU_TEMPORAL_DELIMITER || kind == OBU_TILE_LIST {
                continue;
            }
            let start = data.len();
            data.extend_from_slice(&header);
            if let Some(h) = data.get_mut(start) {
                *h |= 0x02; // has_size_field
            }
            write_leb128(&mut data, payload.len() as u64);
            data.extend_from_slice(payload);
            if kind == OBU_SEQUENCE_HEADER && seq.is_none() {
                let parsed = parse_sequence_header(payload)?;
                seq = Some((parsed, data.get(start..)?.to_vec()));
            }
            if (kind == OBU_FRAME || kind == OBU_FRAME_HEADER) && key.is_none() {
                let reduced = seq
                    .as_ref()
                    .is_some_and(|(s, _)| s.reduced_still_picture_header);
                key = Some(is_key_frame(payload, reduced));
            }
        }
        if data.is_empty() {
            return None;
        }
        let keyframe = seq.is_some() && key == Some(true);
        let (size, codec_private) = match (&seq, keyframe) {
            (Some((s, obu)), true) => (
                Some((
                    u16::try_from(s.max_size.0).unwrap_or(u16::MAX),
                    u16::try_from(s.max_size.1).unwrap_or(u16::MAX),
                )),
                Some(av1c(s, obu)),
            ),
            _ => (None, None),
        };
        Some(Assembled {
            data,
            keyframe,
            size,
            codec_private,
        })
    }
}

/// Splits one temporal unit (OBUs with size fields, as an IVF or OBU file
/// holds them) into RTP payloads of at most `mtu` bytes: temporal
/// delimiters dropped, each OBU without its size field as an element with
/// a LEB128 length (W=0), fragmented across packets with Y and Z, N set on
/// a unit with a sequence header. For tests and simulated senders.
pub fn packetize(temporal_unit: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let mut obus: Vec<Vec<u8>> = Vec::new();
    let mut rest = temporal_unit;
    while !rest.is_empty() {
        let Some(h) = rest.first().copied() else {
            break;
        };
        let hl = if h & 0x04 != 0 { 2 } else { 1 };
        let Some((size, n)) = rest.get(hl..).and_then(read_leb128) else {
            break;
        };
        let end = hl + n + size as usize;
        let Some(obu) = rest.get(..end) else {
            break;
        };
        if let Some((kind, header, payload)) = split_obu(obu)
            && kind != OBU_TEMPORAL_DELIMITER
        {
            obus.push([header.as_slice(), payload].concat());
        }
        rest = rest.get(end..).unwrap_or_default();
    }
    let new_sequence = obus.iter().any(|o| {
        o.first()
            .is_some_and(|h| (h >> 3) & 0x0F == OBU_SEQUENCE_HEADER)
    });
    let room = mtu.max(16);
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut current = vec![0u8];
    for obu in &obus {
        let mut left: &[u8] = obu;
        while !left.is_empty() {
            // Room for a length (up to 3 bytes) and some bytes; if not, the
            // OBU starts in the next packet (fragments always end one).
            if current.len() + 4 > room {
                packets.push(std::mem::replace(&mut current, vec![0]));
            }
            let take = left.len().min(room - current.len() - 3);
            write_leb128(&mut current, take as u64);
            let (now, later) = left.split_at(take);
            current.extend_from_slice(now);
            left = later;
            if !left.is_empty() {
                current[0] |= 0x40;
                packets.push(std::mem::replace(&mut current, vec![0x80]));
            }
        }
    }
    if current.len() > 1 || packets.is_empty() {
        packets.push(current);
    }
    if new_sequence && let Some(first) = packets.first_mut() {
        first[0] |= 0x08;
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::{RtpPacket, build};

    /// A reduced-still-picture sequence header (profile 0, level 8,
    /// 64x48, 8-bit 4:2:0) as an OBU with its size field.
    fn sequence_header_obu() -> Vec<u8> {
        // seq_profile 000, still 1, reduced 1, level 01000,
        // wbits-1 0101, hbits-1 0101, w-1 (6 bits) 111111, h-1 101111,
        // 3 flags 000, superres/cdef/restoration 000,
        // high_bitdepth 0, mono 0, color_desc 0, color_range 0, csp 00,
        // separate_uv_delta_q 0, then trailing bits.
        let mut bits = String::from("00011");
        bits += "01000";
        bits += "0101";
        bits += "0101";
        bits += "111111";
        bits += "101111";
        bits += "000000";
        bits += "0000000";
        bits.push('1');
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        let payload: Vec<u8> = (0..bits.len() / 8)
            .map(|i| u8::from_str_radix(&bits[i * 8..i * 8 + 8], 2).unwrap())
            .collect();
        let mut obu = vec![(OBU_SEQUENCE_HEADER << 3) | 0x02];
        write_leb128(&mut obu, payload.len() as u64);
        obu.extend_from_slice(&payload);
        obu
    }

    fn obu(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut o = vec![(kind << 3) | 0x02];
        write_leb128(&mut o, payload.len() as u64);
        o.extend_from_slice(payload);
        o
    }

    #[test]
    fn a_temporal_unit_goes_through_rtp_and_back() {
        let seq = sequence_header_obu();
        let s = parse_sequence_header(&seq[2..]).unwrap();
        assert_eq!(s.max_size, (64, 48));
        assert_eq!((s.profile, s.level), (0, 8));
        assert!(s.reduced_still_picture_header);
        let frame: Vec<u8> = (0..3_000u32).map(|i| (i % 251) as u8).collect();
        let tu = [
            obu(OBU_TEMPORAL_DELIMITER, &[]),
            seq.clone(),
            obu(OBU_FRAME, &frame),
        ]
        .concat();
        let packets = packetize(&tu, 1_000);
        assert!(packets.len() >= 4, "{}", packets.len());
        assert_eq!(packets[0][0] & 0x88, 0x08, "N on the first, no Z");
        assert!(packets[1][0] & 0x80 != 0, "Z: the frame continues");
        let mut d = Av1Depacketizer::new();
        let n = packets.len();
        for (i, p) in packets.iter().enumerate() {
            let pkt = build(45, i + 1 == n, 100 + i as u16, 9_000, 7, p);
            d.push(&RtpPacket::parse(&pkt).unwrap()).unwrap();
        }
        let f = d.pop_frame().unwrap();
        assert!(f.keyframe);
        assert_eq!(f.size, Some((64, 48)));
        // The block: the sequence header and the frame, with size fields,
        // no temporal delimiter.
        assert_eq!(f.data, [seq.clone(), obu(OBU_FRAME, &frame)].concat());
        let c = f.codec_private.unwrap();
        assert_eq!(&c[..4], &[0x81, 0x08, 0x0C, 0x00]);
        assert_eq!(&c[4..], &seq[..]);
    }

    #[test]
    fn elements_with_and_without_lengths() {
        // W=2: the first element has a length, the last runs to the end.
        let p = [0x20, 0x02, 0xAA, 0xBB, 0xCC, 0xDD];
        let (z, y, e) = elements(&p).unwrap();
        assert!(!z && !y);
        assert_eq!(e, vec![&[0xAA, 0xBB][..], &[0xCC, 0xDD][..]]);
        // A length past the end is no payload.
        assert!(elements(&[0x00, 0x05, 0x01]).is_none());
        // A unit whose continuation never came is no frame.
        let mut f = Av1Format;
        assert!(f.assemble(&[&[0x40, 0x02, 0x30, 0x01]]).is_none());
    }
}
