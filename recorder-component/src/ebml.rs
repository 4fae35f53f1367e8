//! EBML, the binary XML that Matroska and WebM are written in: element IDs,
//! variable-length sizes and the few value types a WebM file uses.
//!
//! IDs are written as they appear in the Matroska specification (their
//! length marker is part of the number). Sizes are written in the shortest
//! form, or as the 8-byte "unknown" size for elements still being written.

/// The 8-byte size meaning "unknown" (live streams, unfinished segments).
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Appends an element ID (1 to 4 bytes, marker included).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a size as the shortest EBML variable-length integer. The all-ones
/// value of each length is reserved, so a size is moved to the next length
/// when it would collide with it.
pub fn write_size(out: &mut Vec<u8>, size: u64) {
    let mut len = 1usize;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    write_size_with_len(out, size, len);
}

/// Appends a size in exactly `len` bytes (1..=8), for places patched later.
pub fn write_size_with_len(out: &mut Vec<u8>, size: u64, len: usize) {
    let len = len.clamp(1, 8);
    let marked = size | (1u64 << (7 * len));
    let bytes = marked.to_be_bytes();
    out.extend_from_slice(&bytes[8 - len..]);
}

/// Appends an unsigned integer element in its shortest big-endian form.
pub fn write_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    write_id(out, id);
    write_size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends an 8-byte float element.
pub fn write_float(out: &mut Vec<u8>, id: u32, value: f64) {
    write_id(out, id);
    write_size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends a string (or binary) element.
pub fn write_bytes(out: &mut Vec<u8>, id: u32, value: &[u8]) {
    write_id(out, id);
    write_size(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a master element holding `body`, already encoded.
pub fn write_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    write_bytes(out, id, body);
}

/// Appends a Void element taking exactly `total` bytes (at least 2).
pub fn write_void(out: &mut Vec<u8>, total: usize) {
    let total = total.max(2);
    // One ID byte, then a size long enough for the rest.
    let size_len = if total - 1 <= 127 { 1 } else { 8 };
    let body = total.saturating_sub(1 + size_len);
    write_id(out, crate::webm::ids::VOID);
    write_size_with_len(out, body as u64, size_len);
    out.resize(out.len() + body, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shortest_and_avoid_reserved_values() {
        let mut v = Vec::new();
        write_size(&mut v, 5);
        assert_eq!(v, [0x85]);
        v.clear();
        write_size(&mut v, 127);
        assert_eq!(v, [0x40, 0x7F]);
        v.clear();
        write_size(&mut v, 300);
        assert_eq!(v, [0x41, 0x2C]);
    }

    #[test]
    fn ids_keep_their_marker() {
        let mut v = Vec::new();
        write_id(&mut v, 0x1A45_DFA3);
        write_id(&mut v, 0xA3);
        write_id(&mut v, 0x4489);
        assert_eq!(v, [0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x44, 0x89]);
    }

    #[test]
    fn uint_and_void_lengths() {
        let mut v = Vec::new();
        write_uint(&mut v, 0xD7, 1);
        assert_eq!(v, [0xD7, 0x81, 0x01]);
        v.clear();
        write_uint(&mut v, 0xE7, 0);
        assert_eq!(v, [0xE7, 0x81, 0x00]);
        for total in [2usize, 11, 100, 128, 129, 300] {
            v.clear();
            write_void(&mut v, total);
            assert_eq!(v.len(), total, "void of {total}");
        }
    }
}
