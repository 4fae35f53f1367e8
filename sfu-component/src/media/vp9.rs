//! The VP9 RTP payload descriptor (RFC 9628 §4.2), as far as forwarding
//! needs it to drop spatial and temporal layers of an SVC stream: the
//! first byte's I/P/L/F/B/E/V/Z bits, the picture id, the layer indices
//! (TID, U, SID, D; TL0PICIDX in non-flexible mode), the reference
//! indices of flexible mode (skipped), and the scalability structure's
//! resolutions (the height of every spatial layer, sent with key frames).
//!
//! The parser takes bytes a peer sent: short or malformed input gives
//! `None`, never a panic.

/// Most spatial layers a scalability structure describes (N_S is 3 bits).
pub(crate) const MAX_SPATIAL: usize = 8;

/// The descriptor of one VP9 packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Vp9Info {
    /// P: the layer frame is inter-picture predicted.
    pub inter_picture: bool,
    /// F: flexible mode.
    pub flexible: bool,
    /// B: the first packet of a layer frame.
    pub begins_frame: bool,
    /// E: the last packet of a layer frame.
    pub ends_frame: bool,
    pub picture_id: Option<u16>,
    /// Temporal id (0 without layer indices).
    pub tid: u8,
    /// Spatial id (0 without layer indices).
    pub sid: u8,
    /// U: a switching-up point (temporal).
    pub switching_up: bool,
    /// D: the layer frame depends on the spatial layer below.
    pub inter_layer: bool,
    /// Whether the L bit was set (the packet names its layers).
    pub has_layers: bool,
    pub tl0: Option<u8>,
    /// Heights of spatial layers 0.. from a scalability structure with
    /// resolutions (Y=1); `spatial_layers` of them are valid.
    pub heights: Option<[u16; MAX_SPATIAL]>,
    /// N_S + 1 of a scalability structure, 0 without one.
    pub spatial_layers: u8,
}

impl Vp9Info {
    /// The first packet of a picture (the first layer frame of spatial
    /// layer 0).
    pub fn starts_picture(&self) -> bool {
        self.begins_frame && self.sid == 0
    }

    /// The first packet of a key picture: not inter-picture predicted,
    /// spatial layer 0, first packet of its frame.
    pub fn starts_keyframe(&self) -> bool {
        self.starts_picture() && !self.inter_picture
    }

    /// The height of spatial layer `sid` in the scalability structure.
    pub fn height(&self, sid: usize) -> Option<u16> {
        if sid >= usize::from(self.spatial_layers) {
            return None;
        }
        self.heights.and_then(|h| h.get(sid).copied())
    }
}

/// Parses a VP9 RTP payload's descriptor.
pub(crate) fn parse_vp9(payload: &[u8]) -> Option<Vp9Info> {
    let first = *payload.first()?;
    let bit = |mask: u8| first & mask != 0;
    let mut info = Vp9Info {
        inter_picture: bit(0x40),
        flexible: bit(0x10),
        begins_frame: bit(0x08),
        ends_frame: bit(0x04),
        has_layers: bit(0x20),
        ..Vp9Info::default()
    };
    let mut at = 1;
    if bit(0x80) {
        let b = *payload.get(at)?;
        if b & 0x80 != 0 {
            let low = *payload.get(at + 1)?;
            info.picture_id = Some((u16::from(b & 0x7f) << 8) | u16::from(low));
            at += 2;
        } else {
            info.picture_id = Some(u16::from(b & 0x7f));
            at += 1;
        }
    }
    if info.has_layers {
        let b = *payload.get(at)?;
        info.tid = b >> 5;
        info.switching_up = b & 0x10 != 0;
        info.sid = (b >> 1) & 0x07;
        info.inter_layer = b & 0x01 != 0;
        at += 1;
        if !info.flexible {
            info.tl0 = Some(*payload.get(at)?);
            at += 1;
        }
    }
    if info.flexible && info.inter_picture {
        // Up to three P_DIFF bytes, N=1 when another follows.
        for _ in 0..3 {
            let b = *payload.get(at)?;
            at += 1;
            if b & 0x01 == 0 {
                break;
            }
        }
    }
    if bit(0x02) {
        parse_scalability_structure(payload, at, &mut info)?;
    }
    Some(info)
}

/// The scalability structure (RFC 9628 §4.2.1) at `at`.
fn parse_scalability_structure(payload: &[u8], mut at: usize, info: &mut Vp9Info) -> Option<()> {
    let b = *payload.get(at)?;
    at += 1;
    let layers = usize::from(b >> 5) + 1;
    let resolutions = b & 0x10 != 0;
    let groups = b & 0x08 != 0;
    info.spatial_layers = layers as u8;
    if resolutions {
        let mut heights = [0u16; MAX_SPATIAL];
        for h in heights.iter_mut().take(layers) {
            let field = payload.get(at..at + 4)?;
            *h = u16::from_be_bytes([*field.get(2)?, *field.get(3)?]);
            at += 4;
        }
        info.heights = Some(heights);
    }
    if groups {
        let pictures = *payload.get(at)?;
        at += 1;
        for _ in 0..pictures {
            let b = *payload.get(at)?;
            at += 1 + usize::from((b >> 2) & 0x03);
        }
        // The reference differences of the last picture must be there.
        if at > payload.len() {
            return None;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_flexible_key_picture_with_scalability_structure() {
        // I P L F B E V Z = 1 0 1 0 1 0 1 0; 15-bit picture id 0x0102;
        // TID 0, U 0, SID 0, D 0; TL0PICIDX 9; SS: N_S = 2 (3 layers), Y,
        // G; 320x180, 640x360, 1280x720; N_G 1: TID 0, U 0, R 0.
        let p = [
            0xaa, 0x81, 0x02, 0x00, 9, 0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05,
            0x00, 0x02, 0xd0, 1, 0x00, 0xff,
        ];
        let i = parse_vp9(&p).unwrap();
        assert!(i.starts_keyframe() && !i.flexible && !i.ends_frame);
        assert_eq!(i.picture_id, Some(0x102));
        assert_eq!((i.tid, i.sid, i.tl0), (0, 0, Some(9)));
        assert_eq!(i.spatial_layers, 3);
        assert_eq!(
            (i.height(0), i.height(1), i.height(2), i.height(3)),
            (Some(180), Some(360), Some(720), None)
        );
    }

    #[test]
    fn flexible_inter_picture_upper_layer() {
        // I P L F B E = 1 1 1 1 0 1; 7-bit picture id 5; TID 2, U 1,
        // SID 1, D 1; two P_DIFFs (N=1 then N=0).
        let p = [0xf4, 0x05, (2 << 5) | 0x10 | (1 << 1) | 1, 0x03, 0x04, 0xee];
        let i = parse_vp9(&p).unwrap();
        assert!(i.inter_picture && i.flexible && i.ends_frame && !i.begins_frame);
        assert_eq!(i.picture_id, Some(5));
        assert_eq!((i.tid, i.sid, i.tl0), (2, 1, None));
        assert!(i.switching_up && i.inter_layer && !i.starts_picture());
        assert!(i.heights.is_none());
    }

    #[test]
    fn truncated_or_garbage_never_panics() {
        let full = [
            0xaa, 0x81, 0x02, 0x00, 9, 0x58, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05,
            0x00, 0x02, 0xd0, 1, 0x00,
        ];
        for n in 0..full.len() {
            // Every strict prefix that cuts the descriptor is refused.
            assert!(parse_vp9(&full[..n]).is_none(), "{n}");
        }
        for b in 0..=255u8 {
            let _ = parse_vp9(&[b]);
            let _ = parse_vp9(&[b, 0xff, 0xff, 0xff, 0xff]);
            let _ = parse_vp9(&[0xf2, 0x80, b, 0xff, 0xff, 0xff, 0xff, b]);
        }
    }
}
