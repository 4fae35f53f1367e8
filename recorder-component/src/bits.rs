//! A most-significant-bit-first reader of the bit fields in VP9 and AV1
//! headers, and AV1's LEB128 sizes.

/// Reads bits from a byte slice; reading past its end gives `None`.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, pos: 0 }
    }

    /// The next `n` bits (at most 32) as a number.
    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v: u32 = 0;
        for _ in 0..n.min(32) {
            let byte = self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(v)
    }

    pub fn flag(&mut self) -> Option<bool> {
        self.bits(1).map(|b| b == 1)
    }

    /// AV1's uvlc(): leading zeros, then that many bits.
    pub fn uvlc(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros >= 32 {
                return Some(u32::MAX);
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
}

/// Reads a LEB128 number (at most 8 bytes); returns it and its length.
pub fn read_leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let b = *data.get(i)?;
        value |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Appends `value` as LEB128.
pub fn write_leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let b = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_leb128() {
        let mut r = BitReader::new(&[0b1010_0000, 0xFF]);
        assert_eq!(r.bits(3), Some(0b101));
        assert_eq!(r.bits(5), Some(0));
        assert_eq!(r.bits(8), Some(0xFF));
        assert_eq!(r.bits(1), None);
        let mut v = Vec::new();
        write_leb128(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        assert_eq!(read_leb128(&v), Some((300, 2)));
        assert_eq!(read_leb128(&[0x80]), None);
        // uvlc: 0b00101 -> two zeros, then "01" -> 3 + 1 = 4.
        assert_eq!(BitReader::new(&[0b0010_1000]).uvlc(), Some(4));
    }
}
