//! RFC 6455 frames, sans-IO: bytes in, checked frames out, with the checks
//! and close codes of Prosody's mod_websocket (`validate_frame`) and its
//! frame buffer limits (`websocket_frame_buffer_limit`,
//! `websocket_frame_fragment_limit`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, BytesMut};
use sha1::{Digest, Sha1};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A received frame (payload unmasked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Why the connection must end: a close code and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

impl Violation {
    /// 1009 (too big) ends the XMPP session with a stream error rather
    /// than dropping the connection, as Prosody does.
    pub fn is_too_large(&self) -> bool {
        self.code == 1009
    }
}

/// The buffered bytes or pieces went over the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferFull;

#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    rsv: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    length: u64,
    header_len: usize,
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader {
    buffer: BytesMut,
    /// Reads buffered since the buffer was last empty.
    pieces: usize,
    buffer_limit: usize,
    fragment_limit: usize,
    max_payload: usize,
}

impl FrameReader {
    /// `max_payload` is the stanza size limit; the others are Prosody's
    /// frame buffer limits.
    pub fn new(max_payload: usize, buffer_limit: usize, fragment_limit: usize) -> FrameReader {
        FrameReader {
            buffer: BytesMut::new(),
            pieces: 0,
            buffer_limit,
            fragment_limit,
            max_payload,
        }
    }

    /// Bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BufferFull> {
        if data.is_empty() {
            return Ok(());
        }
        if self.buffer.len() + data.len() > self.buffer_limit
            || self.pieces + 1 > self.fragment_limit
        {
            return Err(BufferFull);
        }
        self.buffer.extend_from_slice(data);
        self.pieces += 1;
        Ok(())
    }

    /// The next complete, valid frame; `Ok(None)` when more bytes are
    /// needed (a partial frame's header is already checked).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Violation> {
        let Some(header) = parse_header(&self.buffer) else {
            return Ok(None);
        };
        validate_header(&header, self.max_payload)?;
        let total = header.header_len as u64 + header.length;
        if (self.buffer.len() as u64) < total {
            return Ok(None);
        }
        self.buffer.advance(header.header_len);
        let mut payload = self.buffer.split_to(header.length as usize).to_vec();
        if let Some(mask) = header.mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        if self.buffer.is_empty() {
            self.pieces = 0;
            // Give the memory back: idle connections hold nothing.
            self.buffer = BytesMut::new();
        } else {
            self.pieces = 1;
        }
        let frame = Frame {
            fin: header.fin,
            opcode: header.opcode,
            payload,
        };
        validate_frame(&frame)?;
        Ok(Some(frame))
    }

    /// How many more bytes the frame being read needs (at least one).
    pub fn wanted(&self) -> usize {
        match parse_header(&self.buffer) {
            // The length is the peer's (up to 2^64 - 1) and not yet
            // validated here: saturate (found by fuzz/ websocket_frames).
            Some(h) => (h.header_len as u64)
                .saturating_add(h.length)
                .saturating_sub(self.buffer.len() as u64)
                .clamp(1, 64 * 1024) as usize,
            None => 1,
        }
    }
}

fn parse_header(buf: &[u8]) -> Option<Header> {
    let b0 = *buf.first()?;
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (length, mut pos) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let m: [u8; 4] = buf.get(pos..pos + 4)?.try_into().ok()?;
        pos += 4;
        Some(m)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: b0 & 0x70 != 0,
        opcode: b0 & 0x0f,
        mask,
        length,
        header_len: pos,
    })
}

/// What can be said from the header alone.
fn validate_header(h: &Header, max_payload: usize) -> Result<(), Violation> {
    let fail = |code, reason| Err(Violation { code, reason });
    if h.length > max_payload as u64 {
        return fail(1009, "Payload too large");
    }
    if h.rsv {
        return fail(1002, "Reserved bits not zero");
    }
    // RFC 6455 5.1: a server closes the connection on an unmasked frame
    // from a client (with 1002, protocol error, as 7.4.1 names it).
    if h.mask.is_none() {
        return fail(1002, "Unmasked client frame, RFC 6455 5.1");
    }
    if h.opcode >= 0x8 {
        if h.length > 125 {
            return fail(1002, "Payload too large");
        }
        if !h.fin {
            return fail(1002, "Fragmented control frame");
        }
    }
    if (h.opcode > OP_BINARY && h.opcode < OP_CLOSE) || h.opcode > OP_PONG {
        return fail(1002, "Reserved opcode");
    }
    Ok(())
}

/// Prosody's remaining checks on a complete frame.
fn validate_frame(f: &Frame) -> Result<(), Violation> {
    let fail = |code, reason| Err(Violation { code, reason });
    if f.opcode == OP_CLOSE {
        match f.payload.len() {
            0 => {}
            1 => {
                return fail(
                    1002,
                    "Close frame with payload, but too short for status code",
                );
            }
            _ => {
                let code = u16::from_be_bytes([f.payload[0], f.payload[1]]);
                if code < 1000 {
                    return fail(1002, "Closed with invalid status code");
                }
                if ((code > 1003 && code < 1007) || code > 1011) && code < 3000 {
                    return fail(1002, "Closed with reserved status code");
                }
            }
        }
    }
    match f.opcode {
        OP_BINARY => return fail(1003, "Only text frames are supported, RFC 7395 3.2"),
        OP_CLOSE => return fail(1000, "Goodbye"),
        _ => {}
    }
    if !f.fin {
        return fail(
            1003,
            "Continuation frames are not supported, RFC 7395 3.3.3",
        );
    }
    if f.opcode == OP_TEXT && f.payload.first() != Some(&b'<') {
        return fail(1007, "Invalid payload start character, RFC 7395 3.3.3");
    }
    Ok(())
}

/// A server frame (never masked).
pub fn build(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A close frame with a status code and reason.
pub fn build_close(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    // Control frames carry at most 125 bytes.
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    payload.extend_from_slice(reason);
    build(OP_CLOSE, &payload)
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    BASE64.encode(sha.finalize())
}

/// Does a comma-separated header (`Sec-WebSocket-Protocol`) list `token`?
pub fn contains_token(header: &str, token: &str) -> bool {
    header
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    /// A 64-bit length near 2^64 in a header not yet validated: asking how
    /// much to read next overflowed (a panic with overflow checks).
    #[test]
    fn wanted_with_a_huge_length_does_not_overflow() {
        let mut reader = super::FrameReader::new(16 * 1024, 64 * 1024, 64);
        let mut frame = vec![0x82, 0xff];
        frame.extend_from_slice(&[0xff; 8]);
        frame.extend_from_slice(&[0x2d, 0x30, 0xff, 0xff]);
        reader.push(&frame).unwrap();
        assert_eq!(reader.wanted(), 64 * 1024);
        assert!(reader.next_frame().is_err());
    }

    use super::*;

    /// A client frame, masked as clients must.
    fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = build(opcode, payload);
        if !fin {
            f[0] &= 0x7f;
        }
        let header_len = f.len() - payload.len();
        f[1] |= 0x80;
        let mut out = f[..header_len].to_vec();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn reader() -> FrameReader {
        FrameReader::new(1000, 2000, 8)
    }

    #[test]
    fn rfc_6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_arrive_in_pieces() {
        let mut r = reader();
        let bytes = [
            client(true, OP_TEXT, b"<open/>"),
            client(true, OP_PING, b"hi"),
        ]
        .concat();
        for chunk in bytes.chunks(3).take(2) {
            r.push(chunk).unwrap();
            assert_eq!(r.next_frame(), Ok(None));
        }
        r.push(&bytes[6..]).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().payload, b"<open/>");
        let ping = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (ping.opcode, ping.payload.as_slice()),
            (OP_PING, &b"hi"[..])
        );
        assert_eq!(r.next_frame(), Ok(None));
        // Longer payloads use the extended lengths.
        let long = format!("<a>{}</a>", "x".repeat(300));
        r.push(&client(true, OP_TEXT, long.as_bytes())).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().payload, long.as_bytes());
        let f = build(OP_TEXT, &vec![b'x'; 70_000]);
        assert_eq!((f[1], f.len()), (127, 70_010));
    }

    #[test]
    fn prosodys_close_codes() {
        let code = |bytes: Vec<u8>| {
            let mut r = reader();
            r.push(&bytes).unwrap();
            r.next_frame().unwrap_err().code
        };
        assert_eq!(code(client(true, OP_BINARY, b"<a/>")), 1003);
        assert_eq!(code(client(false, OP_TEXT, b"<a")), 1003);
        assert_eq!(code(client(true, OP_TEXT, b"hello")), 1007);
        assert_eq!(code(client(true, OP_TEXT, b"")), 1007);
        assert_eq!(code(client(true, 0x3, b"")), 1002);
        assert_eq!(code(client(false, OP_PING, b"")), 1002);
        assert_eq!(code(client(true, OP_PING, &[0; 126])), 1002);
        assert_eq!(code(client(true, OP_CLOSE, &[3])), 1002);
        assert_eq!(code(client(true, OP_CLOSE, &999u16.to_be_bytes())), 1002);
        assert_eq!(code(client(true, OP_CLOSE, &1005u16.to_be_bytes())), 1002);
        assert_eq!(code(client(true, OP_CLOSE, &1000u16.to_be_bytes())), 1000);
        let mut rsv = client(true, OP_TEXT, b"<a/>");
        rsv[0] |= 0x40;
        assert_eq!(code(rsv), 1002);
        // Unmasked, as only a server may send.
        assert_eq!(code(build(OP_TEXT, b"<open/>")), 1002);
        assert_eq!(code(build(OP_PING, b"")), 1002);
    }

    #[test]
    fn too_large_is_known_from_the_header() {
        let mut r = reader();
        let big = client(true, OP_TEXT, &vec![b'<'; 1001]);
        r.push(&big[..20]).unwrap();
        let v = r.next_frame().unwrap_err();
        assert!(v.is_too_large());
    }

    #[test]
    fn buffer_limits() {
        let mut r = FrameReader::new(100_000, 10, 8);
        assert_eq!(r.push(&[0; 11]), Err(BufferFull));
        let mut r = FrameReader::new(100_000, 1000, 3);
        let f = client(true, OP_TEXT, &[b'<'; 50]);
        for piece in f.chunks(5).take(3) {
            r.push(piece).unwrap();
        }
        assert_eq!(r.push(&f[15..20]), Err(BufferFull));
    }

    #[test]
    fn protocol_tokens() {
        assert!(contains_token("xmpp", "xmpp"));
        assert!(contains_token("chat, XMPP", "xmpp"));
        assert!(!contains_token("xmpp-ng", "xmpp"));
        assert!(!contains_token("", "xmpp"));
    }
}
