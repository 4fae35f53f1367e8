//! What a client stream sends, one unit at a time, before a transport frames
//! it: over TCP as bytes of one long XML document, over BOSH inside
//! `<body/>` wrappers, over WebSocket one element per text frame with
//! `<open/>` and `<close/>` (RFC 7395).
//!
//! A [`super::negotiation::C2sStream`] on TCP writes [`Frame::to_tcp`] as
//! [`super::negotiation::Action::Write`]; one told its transport
//! ([`super::negotiation::C2sStream::set_transport`]) hands the frames
//! themselves out as [`super::negotiation::Action::Frame`].

use crate::stanza::Element;
use crate::stream::{STREAM_CLOSE, StreamHeader, stream_header};

use super::negotiation::stream_element_xml;

/// One unit of a client stream's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Our stream header (TCP: `<stream:stream>`; WebSocket: `<open/>`;
    /// BOSH: nothing, the session's `<body/>` attributes say it).
    Open(StreamHeader),
    /// A top-level element: a stanza, `<stream:features/>`,
    /// `<stream:error/>`, a SASL or TLS element.
    Element(Element),
    /// Our end of the stream (TCP: `</stream:stream>`; WebSocket:
    /// `<close/>`; BOSH: a `type='terminate'` body).
    Close,
}

impl Frame {
    /// The bytes TCP writes for this frame: the XML declaration and
    /// `<stream:stream>` opening tag, the element (elements of the streams
    /// namespace with the `stream:` prefix), or `</stream:stream>`.
    pub fn to_tcp(&self) -> String {
        match self {
            Frame::Open(h) => stream_header(h),
            Frame::Element(e) => stream_element_xml(e),
            Frame::Close => STREAM_CLOSE.to_string(),
        }
    }
}
