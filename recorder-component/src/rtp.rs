//! RTP packets as the recorder needs them (RFC 3550): the fixed header,
//! CSRCs, the header extension and padding skipped, the payload kept; and
//! sequence numbers and timestamps extended past their wrap.

/// One parsed RTP packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet too short")]
    Short,
    #[error("not RTP version 2")]
    Version,
    #[error("RTP padding longer than the payload")]
    Padding,
}

impl<'a> RtpPacket<'a> {
    /// Parses a packet; any length or field a peer controls is checked.
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        let b0 = *data.first().ok_or(RtpError::Short)?;
        if b0 >> 6 != 2 {
            return Err(RtpError::Version);
        }
        if data.len() < 12 {
            return Err(RtpError::Short);
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc = usize::from(b0 & 0x0F);
        let b1 = data[1];
        let mut at = 12 + 4 * csrc;
        if extension {
            let ext = data.get(at..at + 4).ok_or(RtpError::Short)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            at += 4 + 4 * words;
        }
        let mut end = data.len();
        if padding {
            let pad = usize::from(*data.last().ok_or(RtpError::Short)?);
            if pad == 0 || end < at + pad {
                return Err(RtpError::Padding);
            }
            end -= pad;
        }
        let payload = data.get(at..end).ok_or(RtpError::Short)?;
        Ok(RtpPacket {
            payload_type: b1 & 0x7F,
            marker: b1 & 0x80 != 0,
            sequence: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload,
        })
    }
}

/// Builds an RTP packet (tests, and the simulated senders of the bench).
pub fn build(
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(payload_type & 0x7F | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&sequence.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Extends a wrapping counter (16-bit sequence numbers, 32-bit timestamps)
/// to 64 bits, taking each value as the nearest one to the last.
#[derive(Debug, Clone, Default)]
pub struct Unwrapper {
    last: Option<u64>,
}

impl Unwrapper {
    /// `bits` is 16 or 32.
    pub fn unwrap(&mut self, value: u32, bits: u32) -> u64 {
        let modulus = 1u64 << bits;
        let value = u64::from(value) & (modulus - 1);
        let ext = match self.last {
            None => value + modulus, // room to go back before the first value
            Some(last) => {
                let base = last & !(modulus - 1);
                let candidates = [base.wrapping_sub(modulus), base, base + modulus];
                candidates
                    .iter()
                    .map(|b| b.wrapping_add(value))
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(value)
            }
        };
        self.last = Some(match self.last {
            Some(l) if l > ext => l,
            _ => ext,
        });
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut p = vec![
            0xB1, 0xE0, 0x12, 0x34, 0, 0, 0x03, 0xE8, 0xDE, 0xAD, 0xBE, 0xEF,
        ];
        p.extend_from_slice(&[0, 0, 0, 1]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0]); // one-byte ext
        p.extend_from_slice(b"hello");
        p.extend_from_slice(&[0, 0, 3]);
        let r = RtpPacket::parse(&p).unwrap();
        assert_eq!(r.payload, b"hello");
        assert!(r.marker);
        assert_eq!(r.payload_type, 96);
        assert_eq!(r.sequence, 0x1234);
        assert_eq!(r.timestamp, 1000);
        assert_eq!(r.ssrc, 0xDEAD_BEEF);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::Short));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version));
        let mut p = build(96, false, 1, 1, 1, b"x");
        p[0] |= 0x20;
        *p.last_mut().unwrap() = 200;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::Padding));
        let mut p = build(96, false, 1, 1, 1, b"");
        p[0] |= 0x10;
        assert_eq!(RtpPacket::parse(&p), Err(RtpError::Short));
    }

    #[test]
    fn unwraps_sequence_numbers_both_ways() {
        let mut u = Unwrapper::default();
        let a = u.unwrap(65534, 16);
        let b = u.unwrap(65535, 16);
        let c = u.unwrap(1, 16);
        let d = u.unwrap(65533, 16); // late packet from before the wrap
        assert_eq!(b, a + 1);
        assert_eq!(c, a + 3);
        assert_eq!(d, a - 1);
    }
}

/// Is this datagram RTCP rather than RTP (RFC 5761: packet types 192-223
/// in the second byte)?
pub fn is_rtcp(data: &[u8]) -> bool {
    data.get(1).is_some_and(|pt| (192..=223).contains(pt))
}

/// The SSRC of an RTP packet (bytes 8..12).
pub fn ssrc_of(data: &[u8]) -> Option<u32> {
    let b = data.get(8..12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// An RTCP Picture Loss Indication (RFC 4585, PT 206 FMT 1) from
/// `sender_ssrc` about `media_ssrc`: "send a keyframe".
pub fn pli(sender_ssrc: u32, media_ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 206, 0, 2];
    p.extend_from_slice(&sender_ssrc.to_be_bytes());
    p.extend_from_slice(&media_ssrc.to_be_bytes());
    p
}

/// The sender info of the first RTCP sender report (PT 200) in a compound
/// packet: (SSRC, NTP timestamp, RTP timestamp).
pub fn sender_report(data: &[u8]) -> Option<(u32, u64, u32)> {
    let mut at = 0usize;
    while let Some(h) = data.get(at..at + 4) {
        if h[0] >> 6 != 2 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        if h[1] == 200 {
            let b = data.get(at + 4..at + 20)?;
            let ssrc = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let ntp = u64::from_be_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]);
            let rtp = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
            return Some((ssrc, ntp, rtp));
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod sr_tests {
    #[test]
    fn finds_the_sender_report_in_a_compound_packet() {
        let mut p = vec![0x80, 201, 0, 1, 0, 0, 0, 9]; // empty RR
        p.extend_from_slice(&[0x80, 200, 0, 6, 0, 0, 0, 7]);
        p.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        assert_eq!(
            super::sender_report(&p),
            Some((7, 0x1122_3344_5566_7788, 1234))
        );
        assert_eq!(super::sender_report(&p[..20]), None);
        assert!(super::is_rtcp(&p));
        assert!(!super::is_rtcp(&super::build(100, true, 1, 1, 5, b"x")));
        assert_eq!(
            super::ssrc_of(&super::build(100, true, 1, 1, 5, b"x")),
            Some(5)
        );
        assert_eq!(super::pli(1, 2), [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
}
