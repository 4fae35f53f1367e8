//! Parsing a BOSH request body or a WebSocket frame into elements with the
//! same sans-IO [`XmlStream`] TCP streams use, so the same restricted XML,
//! size and depth limits and error conditions apply on every transport.
//!
//! The bytes are read as the content of a stream whose default namespace
//! is `jabber:client` (as Prosody's mod_websocket reads frames into a c2s
//! stream); each top-level element is returned.

use xmpp_core::stanza::{Element, NS_CLIENT, NS_STREAMS};
use xmpp_core::stream::{StreamEvent, StreamLimits, XmlStream};
use xmpp_core::{StreamError, StreamErrorCondition};

/// Parses `data` as a sequence of complete top-level elements. An XML
/// declaration at the start is allowed; anything incomplete, malformed or
/// over `limits` is an error with its RFC 6120 condition.
pub fn parse_elements(data: &[u8], limits: &StreamLimits) -> Result<Vec<Element>, StreamError> {
    let mut xml = XmlStream::new(limits.clone());
    let mut events = Vec::new();
    let opening = format!("<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>");
    xml.feed(opening.as_bytes(), &mut events)?;
    xml.feed(skip_declaration(data)?, &mut events)?;
    xml.feed(b"</stream:stream>", &mut events)?;
    let mut elements = Vec::new();
    let mut closed = false;
    for event in events {
        match event {
            StreamEvent::Open(_) => {}
            StreamEvent::Stanza(e) if !closed => elements.push(e),
            StreamEvent::Stanza(_) => {}
            StreamEvent::Close => closed = true,
        }
    }
    if !closed {
        return Err(StreamError::with_text(
            StreamErrorCondition::NotWellFormed,
            "incomplete XML",
        ));
    }
    Ok(elements)
}

/// Parses `data` as exactly one element.
pub fn parse_element(data: &[u8], limits: &StreamLimits) -> Result<Element, StreamError> {
    let mut elements = parse_elements(data, limits)?;
    match (elements.pop(), elements.is_empty()) {
        (Some(e), true) => Ok(e),
        (None, _) => Err(StreamError::with_text(
            StreamErrorCondition::NotWellFormed,
            "no XML element",
        )),
        (Some(_), false) => Err(StreamError::with_text(
            StreamErrorCondition::NotWellFormed,
            "more than one XML element",
        )),
    }
}

/// Skips a leading byte order mark, whitespace and `<?xml ...?>`
/// declaration, which may only start a document.
fn skip_declaration(data: &[u8]) -> Result<&[u8], StreamError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    let rest = &data[start..];
    if !rest.starts_with(b"<?xml") {
        return Ok(data);
    }
    match rest.windows(2).position(|w| w == b"?>") {
        Some(end) => {
            let decl = &rest[..end];
            // Only what XmlStream would accept: version 1.0, UTF-8.
            let text = String::from_utf8_lossy(decl).to_ascii_lowercase();
            if text.contains("encoding") && !text.contains("utf-8") {
                return Err(StreamError::with_text(
                    StreamErrorCondition::UnsupportedEncoding,
                    "only UTF-8 is allowed",
                ));
            }
            Ok(&rest[end + 2..])
        }
        None => Err(StreamError::with_text(
            StreamErrorCondition::NotWellFormed,
            "unterminated XML declaration",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(size: usize) -> StreamLimits {
        StreamLimits {
            max_stanza_size: size,
            max_depth: 8,
        }
    }

    #[test]
    fn one_element_in_the_client_namespace() {
        let e = parse_element(
            b"<message to='a@b'><body>hi</body></message>",
            &limits(1024),
        )
        .unwrap();
        assert_eq!((e.name(), e.ns()), ("message", NS_CLIENT));
        assert_eq!(e.get_child_text("body", NS_CLIENT).as_deref(), Some("hi"));
        let e = parse_element(
            b"<?xml version='1.0' encoding='utf-8'?>\n<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='x'/>",
            &limits(1024),
        )
        .unwrap();
        assert_eq!(e.name(), "open");
        assert_eq!(e.get_attr("to"), Some("x"));
    }

    #[test]
    fn bad_xml_is_refused() {
        let cond = |d: &[u8], size| parse_elements(d, &limits(size)).unwrap_err().condition;
        assert_eq!(
            cond(b"<message><body>", 1024),
            StreamErrorCondition::NotWellFormed
        );
        assert_eq!(cond(b"<a></b>", 1024), StreamErrorCondition::NotWellFormed);
        assert_eq!(
            cond(b"<!DOCTYPE x><a/>", 1024),
            StreamErrorCondition::RestrictedXml
        );
        assert_eq!(
            cond(b"<a><!-- c --></a>", 1024),
            StreamErrorCondition::RestrictedXml
        );
        let big = format!("<a>{}</a>", "x".repeat(2000));
        assert_eq!(
            cond(big.as_bytes(), 1024),
            StreamErrorCondition::PolicyViolation
        );
        let deep = "<a>".repeat(20) + &"</a>".repeat(20);
        assert_eq!(
            cond(deep.as_bytes(), 1024),
            StreamErrorCondition::PolicyViolation
        );
        assert_eq!(
            cond(b"<?xml version='1.0' encoding='latin1'?><a/>", 1024),
            StreamErrorCondition::UnsupportedEncoding
        );
        assert!(parse_element(b"", &limits(1024)).is_err());
        assert!(parse_element(b"<a/><b/>", &limits(1024)).is_err());
        // Closing the stream early does not smuggle elements in.
        assert!(parse_element(b"</stream:stream><a/>", &limits(1024)).is_err());
    }
}
