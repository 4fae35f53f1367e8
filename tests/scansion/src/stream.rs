//! Sans-IO reader of an XMPP client stream: bytes in, the stream header,
//! top-level elements (stanzas and nonzas) and the stream end out.

use rxml::{Event, Parse, Parser, XMLNS_XML};

use crate::xml::{Element, NS_CLIENT, Node};

/// The stream namespace.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// Deepest nesting accepted inside one stanza.
const MAX_DEPTH: usize = 128;

/// What the server sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `<stream:stream ...>` with its attributes.
    Open(Vec<(String, String)>),
    /// A complete child of the stream element.
    Element(Element),
    /// `</stream:stream>`.
    Close,
}

/// The server's bytes are not an acceptable XML stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("XML error from the server: {0}")]
    Xml(String),
    #[error("stanza nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("data after the end of the stream")]
    AfterClose,
}

/// Incremental parser of one stream document; replaced on stream restart.
pub struct XmlStream {
    parser: Parser,
    /// Elements being built; `stack[0]` is the current top-level element.
    stack: Vec<Element>,
    opened: bool,
    closed: bool,
}

impl Default for XmlStream {
    fn default() -> Self {
        XmlStream::new()
    }
}

fn attr_key(ns: &str, name: &str) -> String {
    if ns.is_empty() {
        name.to_string()
    } else if ns == XMLNS_XML {
        format!("xml:{name}")
    } else {
        format!("{{{ns}}}{name}")
    }
}

impl XmlStream {
    pub fn new() -> XmlStream {
        XmlStream {
            parser: Parser::new(),
            stack: Vec::new(),
            opened: false,
            closed: false,
        }
    }

    /// Feeds bytes; returns every event they complete.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
        let mut out = Vec::new();
        loop {
            match self.parser.parse(&mut data, false) {
                Ok(Some(ev)) => self.handle(ev, &mut out)?,
                Ok(None) => return Ok(out),
                Err(rxml::error::EndOrError::NeedMoreData) => return Ok(out),
                Err(rxml::error::EndOrError::Error(e)) => {
                    return Err(StreamError::Xml(e.to_string()));
                }
            }
        }
    }

    fn handle(&mut self, ev: Event, out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        match ev {
            Event::XmlDeclaration(..) => {}
            Event::StartElement(_, (ns, name), attrs) => {
                if self.closed {
                    return Err(StreamError::AfterClose);
                }
                let attrs: Vec<(String, String)> = attrs
                    .into_iter()
                    .map(|((ans, aname), value)| (attr_key(ans.as_str(), aname.as_str()), value))
                    .collect();
                if !self.opened {
                    self.opened = true;
                    out.push(StreamEvent::Open(attrs));
                    return Ok(());
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(StreamError::TooDeep);
                }
                let parent_ns = self.stack.last().map_or(NS_CLIENT, |p| p.ns.as_str());
                let mut el = Element::new(name.as_str(), ns.as_str());
                el.declares_ns = ns.as_str() != parent_ns;
                el.attrs = attrs;
                self.stack.push(el);
            }
            Event::Text(_, text) => {
                if let Some(top) = self.stack.last_mut() {
                    match top.children.last_mut() {
                        Some(Node::Text(prev)) => prev.push_str(&text),
                        _ => top.children.push(Node::Text(text)),
                    }
                }
                // Whitespace between stanzas is ignored.
            }
            Event::EndElement(_) => match self.stack.pop() {
                Some(done) => match self.stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(done)),
                    None => out.push(StreamEvent::Element(done)),
                },
                None => {
                    self.closed = true;
                    out.push(StreamEvent::Close);
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yields_header_stanzas_and_close_across_chunk_boundaries() {
        let doc = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' xml:lang='en' version='1.0'><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features><message from='a@b' xml:lang='en'><body>hi &amp; bye</body><x xmlns='urn:x'><y/></x></message></stream:stream>";
        let mut s = XmlStream::new();
        let mut events = Vec::new();
        for chunk in doc.as_bytes().chunks(7) {
            events.extend(s.feed(chunk).unwrap());
        }
        assert_eq!(events.len(), 4, "{events:?}");
        let StreamEvent::Open(attrs) = &events[0] else {
            panic!("{events:?}")
        };
        assert!(attrs.contains(&("id".to_string(), "s1".to_string())));
        assert!(attrs.contains(&("xml:lang".to_string(), "en".to_string())));
        let StreamEvent::Element(features) = &events[1] else {
            panic!()
        };
        assert_eq!(features.name, "features");
        assert_eq!(features.ns, NS_STREAMS);
        assert!(
            features
                .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                .is_some()
        );
        let StreamEvent::Element(msg) = &events[2] else {
            panic!()
        };
        assert_eq!(msg.ns, NS_CLIENT);
        assert!(!msg.declares_ns);
        assert_eq!(msg.attr("xml:lang"), Some("en"));
        assert_eq!(msg.get_child("body", NS_CLIENT).unwrap().text(), "hi & bye");
        let x = msg.get_child("x", "urn:x").unwrap();
        assert!(x.declares_ns);
        assert!(!x.elements().next().unwrap().declares_ns);
        assert_eq!(events[3], StreamEvent::Close);
    }

    #[test]
    fn reports_malformed_xml() {
        let mut s = XmlStream::new();
        let err = s
            .feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><a></b>")
            .unwrap_err();
        assert!(matches!(err, StreamError::Xml(_)));
    }
}
