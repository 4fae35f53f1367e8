//! WebSocket framing (`bosh_websocket::websocket::frames::FrameReader`):
//! each part is one read from the socket; every frame's payload that is
//! text is parsed as the XMPP framing element it should carry.

use bosh_websocket::fragment::parse_element;
use bosh_websocket::websocket::frames::FrameReader;
use xmpp_core::stream::StreamLimits;

pub fn run(data: &[u8]) {
    let limits = StreamLimits {
        max_stanza_size: 16 * 1024,
        max_depth: 16,
    };
    let mut reader = FrameReader::new(16 * 1024, 64 * 1024, 64);
    for part in crate::parts::split(data) {
        if reader.push(part).is_err() {
            return;
        }
        let _ = reader.wanted();
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => {
                    if frame.opcode == 1 {
                        let _ = parse_element(&frame.payload, &limits);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
