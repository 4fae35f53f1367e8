//! What the forwarding needs to know of a video payload without decoding
//! it: where frames and key frames start (for every codec the bridge
//! carries), and for VP8 the payload descriptor's picture id, TL0PICIDX and
//! temporal id (RFC 7741 §4.2) and a key frame's size (RFC 6386 §9.1).
//! Every parser takes bytes a peer sent: short or malformed input gives
//! `None`/`false`, never a panic.

use str0m::format::Codec;

/// The VP8 payload descriptor of one packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Vp8Info {
    /// S=1 and partition index 0: the first packet of a frame.
    pub starts_frame: bool,
    /// The first packet of a key frame.
    pub starts_keyframe: bool,
    pub picture_id: Option<u16>,
    /// Whether the picture id is the 15-bit form.
    pub picture_id_15_bit: bool,
    pub tl0: Option<u8>,
    /// Temporal layer id (`None` without the T bit: one temporal layer).
    pub tid: Option<u8>,
    /// Width and height of a key frame (only on its first packet).
    pub size: Option<(u16, u16)>,
}

/// Parses a VP8 RTP payload's descriptor.
pub(crate) fn parse_vp8(payload: &[u8]) -> Option<Vp8Info> {
    let first = *payload.first()?;
    let mut info = Vp8Info {
        starts_frame: first & 0x10 != 0 && first & 0x07 == 0,
        ..Vp8Info::default()
    };
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let b = *payload.get(at)?;
            if b & 0x80 != 0 {
                let low = *payload.get(at + 1)?;
                info.picture_id = Some((u16::from(b & 0x7f) << 8) | u16::from(low));
                info.picture_id_15_bit = true;
                at += 2;
            } else {
                info.picture_id = Some(u16::from(b & 0x7f));
                at += 1;
            }
        }
        if ext & 0x40 != 0 {
            info.tl0 = Some(*payload.get(at)?);
            at += 1;
        }
        if ext & 0x30 != 0 {
            let b = *payload.get(at)?;
            if ext & 0x20 != 0 {
                info.tid = Some(b >> 6);
            }
            at += 1;
        }
    }
    let header = payload.get(at..)?;
    let tag = *header.first()?;
    if info.starts_frame && tag & 0x01 == 0 {
        info.starts_keyframe = true;
        // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and
        // height, little endian, each with 2 bits of scaling above.
        if header.get(3..6) == Some(&[0x9d, 0x01, 0x2a][..])
            && let Some(dims) = header.get(6..10)
        {
            let width = u16::from_le_bytes([dims[0], dims[1]]) & 0x3fff;
            let height = u16::from_le_bytes([dims[2], dims[3]]) & 0x3fff;
            info.size = Some((width, height));
        }
    }
    Some(info)
}

/// Whether a packet starts a key frame (a point where a receiver can start
/// decoding). Codecs the bridge does not know are taken as always
/// starting one, so that switching never stalls on them.
pub(crate) fn starts_keyframe(codec: Option<Codec>, payload: &[u8]) -> bool {
    match codec {
        Some(Codec::Vp8) => parse_vp8(payload).is_some_and(|i| i.starts_keyframe),
        Some(Codec::Vp9) => vp9_starts_keyframe(payload),
        Some(Codec::H264) => h264_starts_keyframe(payload),
        Some(Codec::Av1) => av1_starts_keyframe(payload),
        _ => true,
    }
}

/// VP9 (RFC 9628): B=1 (start of a frame), P=0 (not inter predicted),
/// spatial layer 0.
fn vp9_starts_keyframe(payload: &[u8]) -> bool {
    super::vp9::parse_vp9(payload).is_some_and(|i| i.starts_keyframe())
}

/// H264 (RFC 6184): an IDR slice or SPS, alone, first in a STAP-A, or at
/// the start of an FU-A.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(first) = payload.first() else {
        return false;
    };
    let key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    match first & 0x1f {
        24 => payload.get(3).is_some_and(|b| key(b & 0x1f)),
        28 => payload
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && key(b & 0x1f)),
        t => key(t),
    }
}

/// AV1 (the AV1 RTP specification): N=1 marks the first packet of a coded
/// video sequence, which starts with a key frame.
fn av1_starts_keyframe(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_descriptor_and_keyframe_size() {
        // X, S; I L T; 15-bit pid 0x0123; tl0 7; tid 2 (Y=1); key frame
        // 640x360.
        let p = [
            0x90, 0xe0, 0x81, 0x23, 7, 0xa0, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
        ];
        let i = parse_vp8(&p).unwrap();
        assert!(i.starts_frame && i.starts_keyframe);
        assert_eq!(i.picture_id, Some(0x123));
        assert!(i.picture_id_15_bit);
        assert_eq!(i.tl0, Some(7));
        assert_eq!(i.tid, Some(2));
        assert_eq!(i.size, Some((640, 360)));
        // A delta frame: no size.
        let mut d = p;
        d[6] = 0x11;
        let i = parse_vp8(&d).unwrap();
        assert!(i.starts_frame && !i.starts_keyframe && i.size.is_none());
        // Not the first packet.
        let mut c = p;
        c[0] = 0x80;
        assert!(!parse_vp8(&c).unwrap().starts_frame);
    }

    #[test]
    fn other_codecs_keyframes() {
        assert!(starts_keyframe(Some(Codec::H264), &[0x65, 0]));
        assert!(starts_keyframe(Some(Codec::H264), &[0x78, 0, 4, 0x67]));
        assert!(starts_keyframe(Some(Codec::H264), &[0x7c, 0x85]));
        assert!(!starts_keyframe(Some(Codec::H264), &[0x41, 0]));
        assert!(starts_keyframe(Some(Codec::Vp9), &[0x08]));
        assert!(!starts_keyframe(Some(Codec::Vp9), &[0x48]));
        assert!(starts_keyframe(Some(Codec::Av1), &[0x18]));
        assert!(!starts_keyframe(Some(Codec::Av1), &[0x10]));
    }

    #[test]
    fn garbage_never_panics() {
        for p in [
            &[][..],
            &[0x80][..],
            &[0x90, 0xff][..],
            &[0x90, 0xff, 0x80][..],
            &[0x90, 0xe0, 0x81, 0x23, 7, 0xa0, 0x10][..],
            &[0xa8][..],
            &[0x7c][..],
            &[0x78, 0][..],
        ] {
            let _ = parse_vp8(p);
            for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1] {
                let _ = starts_keyframe(Some(c), p);
            }
        }
    }
}
