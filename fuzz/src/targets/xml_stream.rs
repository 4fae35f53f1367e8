//! `xmpp_core::XmlStream`: bytes in chunks (each part one `feed`), a part
//! starting with `#reset` restarts the stream as after STARTTLS or SASL
//! success; a part starting with `#small` lowers the limits as before
//! authentication. Every stanza produced is serialised and parsed again.

use xmpp_core::stream::{StreamEvent, StreamLimits, XmlStream, parse_element};

pub fn run(data: &[u8]) {
    let mut stream = XmlStream::new(StreamLimits {
        max_stanza_size: 64 * 1024,
        max_depth: 32,
    });
    let mut out = Vec::new();
    for part in crate::parts::split(data) {
        let part = if let Some(rest) = part.strip_prefix(b"#reset") {
            stream.reset();
            rest
        } else if let Some(rest) = part.strip_prefix(b"#small") {
            stream.set_limits(StreamLimits {
                max_stanza_size: 10_000,
                max_depth: 8,
            });
            rest
        } else if let Some(rest) = part.strip_prefix(b"#park") {
            stream.park();
            rest
        } else {
            part
        };
        let failed = stream.feed(part, &mut out).is_err();
        for event in out.drain(..) {
            if let StreamEvent::Stanza(el) = event {
                let xml = el.to_xml();
                let _ = parse_element(&xml);
            }
        }
        if failed {
            break;
        }
    }
    let _ = stream.eof();
}
