//! The sans-IO XML stream: bytes from one direction of an XMPP connection in,
//! stream events out (RFC 6120 §4), on rxml's namespace-resolving parser.
//!
//! [`XmlStream`] is fed whatever the transport read; it returns the stream
//! header, each depth-1 element (stanzas, but also `<starttls/>`, `<auth/>`,
//! `<stream:features/>`, `<stream:error/>`...) as an [`Element`], and the
//! closing tag. It enforces XMPP's restricted XML (rxml refuses DTDs,
//! comments, processing instructions, undeclared entities and anything but
//! UTF-8), a stanza size limit (Prosody's `c2s_stanza_size_limit`, checked
//! as bytes arrive, so no more than the limit is ever buffered) and a
//! nesting depth limit, and maps every violation to its RFC 6120 §4.9.3
//! condition. Whitespace between stanzas (keepalives) is ignored.
//!
//! As Prosody's `util.xmppstream` does, each depth-1 element without an
//! `xml:lang` gets the stream's (`en` unless the header said otherwise).
//!
//! What an idle stream holds is kept small: rxml reserves its longest
//! token up front, so the everyday parser takes tokens of up to 512 bytes
//! and a longer one (an attribute value, say) makes the stream read the
//! stanza again with a parser taking tokens up to the stanza size limit;
//! and between stanzas [`XmlStream::park`] drops the parser, which the
//! next bytes re-make by reading the stream header again.
//!
//! After STARTTLS or SASL success the stream restarts: call
//! [`XmlStream::reset`]. [`XmlStream::feed_until`] stops right after the
//! element that asks for a restart, so the bytes after it can be kept for
//! the new stream (or handed to TLS).

mod errors;
mod header;
#[cfg(test)]
mod tests;

pub use header::{STREAM_CLOSE, StreamHeader, stream_header};

use rxml::error::EndOrError;
use rxml::{AttrMap, Event, Namespace, NcName, Options, Parse, Parser, WithOptions};

use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::stanza::{Element, NS_STREAMS, NS_XML};
use header::HeaderSniffer;

/// Limits on what one stream may make us hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLimits {
    /// Bytes one stanza (or the stream header) may take on the wire
    /// (Prosody's `c2s_stanza_size_limit`).
    pub max_stanza_size: usize,
    /// Element nesting a stanza may have; the stanza itself is depth 1.
    pub max_depth: usize,
}

impl StreamLimits {
    /// Prosody's default `c2s_stanza_size_limit`: 256 KiB.
    pub const DEFAULT_MAX_STANZA_SIZE: usize = 256 * 1024;
    /// Deep enough for any real payload (XHTML-IM, pubsub, Jingle).
    pub const DEFAULT_MAX_DEPTH: usize = 64;
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_stanza_size: Self::DEFAULT_MAX_STANZA_SIZE,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// What a stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer's `<stream:stream>` opening tag.
    Open(StreamHeader),
    /// A complete depth-1 element.
    Stanza(Element),
    /// The peer's `</stream:stream>`.
    Close,
}

/// Longest name, attribute value or reference the everyday parser accepts
/// (text is split, not limited). rxml reserves this much per parser at the
/// first byte and keeps it, so it is small: an idle stream then holds
/// little. A longer token makes the stream re-read the unit it is in with a
/// parser that accepts tokens up to the stanza size limit (see
/// [`XmlStream::upgrade`]), dropped again once that unit is complete.
const SMALL_TOKEN: usize = 512;

/// A UTF-8 byte order mark, allowed before the stream header.
const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug)]
enum Phase {
    /// Waiting for `<stream:stream>`.
    Header,
    Open,
    /// `</stream:stream>` or EOF seen; further bytes are ignored.
    Closed,
    /// An error was returned; it is returned again.
    Failed(StreamError),
}

/// One direction of an XML stream, parsed push-style.
pub struct XmlStream {
    limits: StreamLimits,
    /// `None` before the first byte and while parked
    /// ([`XmlStream::park`]): made (again) when bytes come.
    parser: Option<Box<Parser>>,
    /// The parser accepts tokens up to the stanza size limit (else up to
    /// [`SMALL_TOKEN`]).
    big: bool,
    /// The bytes of the stream header (after any byte order mark, up to the
    /// end of the root's opening tag): a new parser is put where the old
    /// one was between stanzas by feeding it these.
    root: Box<[u8]>,
    /// The bytes of the unit being read (header or stanza) that earlier
    /// feeds gave, kept to re-read the unit with a big parser.
    pending: Vec<u8>,
    /// `consumed` and `accounted` where the unit being read started.
    mark: (usize, usize),
    /// Until the root tag is complete: finds its default namespace.
    sniffer: Option<Box<HeaderSniffer>>,
    phase: Phase,
    /// The open elements of the stanza being read, outermost first.
    stack: Vec<Element>,
    /// The stream's `xml:lang`, given to stanzas without one (kept across
    /// restarts, as Prosody does).
    lang: String,
    /// Bytes the parser consumed since the (re)start.
    consumed: usize,
    /// Bytes of the events the parser emitted since the (re)start.
    accounted: usize,
    /// Bytes of the events of the unit being read (the header or a stanza).
    unit_bytes: usize,
    /// How much of a byte order mark was skipped; `None` once past it.
    bom: Option<usize>,
}

impl std::fmt::Debug for XmlStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlStream")
            .field("limits", &self.limits)
            .field("phase", &self.phase)
            .field("depth", &self.stack.len())
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl XmlStream {
    pub fn new(limits: StreamLimits) -> XmlStream {
        XmlStream {
            parser: None,
            big: false,
            root: Box::default(),
            pending: Vec::new(),
            mark: (0, 0),
            limits,
            sniffer: Some(Box::new(HeaderSniffer::new())),
            phase: Phase::Header,
            stack: Vec::new(),
            lang: "en".to_string(),
            consumed: 0,
            accounted: 0,
            unit_bytes: 0,
            bom: Some(0),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &StreamLimits {
        &self.limits
    }

    /// Changes the limits (Prosody raises the stanza size limit once a
    /// client authenticates). They apply at once.
    pub fn set_limits(&mut self, limits: StreamLimits) {
        self.limits = limits;
    }

    /// Is the stream open (header received, no close, no error)?
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    /// Feeds bytes; events parsed so far are appended to `out` even when an
    /// error is returned. After an error, every call returns it again; after
    /// `</stream:stream>`, bytes are ignored.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        self.feed_until(data, out, |_| false).map(|_| ())
    }

    /// As [`XmlStream::feed`], but stops right after a depth-1 element for
    /// which `stop` returns true (say `<starttls/>`, or a SASL exchange that
    /// may succeed), and after `</stream:stream>`. Returns how many bytes of
    /// `data` were parsed; the rest belongs to whatever follows.
    pub fn feed_until(
        &mut self,
        data: &[u8],
        out: &mut Vec<StreamEvent>,
        mut stop: impl FnMut(&Element) -> bool,
    ) -> Result<usize, StreamError> {
        match &self.phase {
            Phase::Failed(e) => return Err(e.clone()),
            Phase::Closed => return Ok(0),
            Phase::Header | Phase::Open => {}
        }
        let mut pos = 0;
        let mut unit_start = 0;
        loop {
            let error = match self.run(data, &mut pos, &mut unit_start, out, &mut stop) {
                Ok(()) => break,
                Err(RunError::Xml(_)) if self.upgrade() => {
                    // A token longer than the small parser takes (or an
                    // error the big one may see too): read the unit again.
                    let earlier = std::mem::take(&mut self.pending);
                    let (mut p, mut u) = (0, 0);
                    let replayed = self.run(&earlier, &mut p, &mut u, out, &mut stop);
                    self.pending = earlier;
                    match replayed {
                        Ok(()) => {
                            pos = unit_start;
                            continue;
                        }
                        Err(again) => again.into_stream_error(),
                    }
                }
                Err(e) => e.into_stream_error(),
            };
            self.fail(error.clone());
            return Err(error);
        }
        self.keep_unit(&data[unit_start..pos]);
        Ok(pos)
    }

    /// The peer closed the connection (TCP EOF).
    ///
    /// `Ok` when the stream was closed with `</stream:stream>` (or failed
    /// already, or never received a byte). Otherwise the XML document is
    /// incomplete, so `not-well-formed`, with a text saying where it stopped:
    /// RFC 6120 §4.4 closes a stream with its closing tag, and a connection
    /// that ends without one ended uncleanly (which matters to stream
    /// management). Nothing can be sent back on a closed connection; the
    /// error is for the session layer to log and act on.
    pub fn eof(&mut self) -> Result<(), StreamError> {
        let text = match &self.phase {
            Phase::Failed(_) | Phase::Closed => return Ok(()),
            Phase::Header if self.consumed == 0 => None,
            Phase::Header => Some("connection closed inside the stream header"),
            Phase::Open if self.stack.is_empty() => {
                Some("connection closed without </stream:stream>")
            }
            Phase::Open => Some("connection closed inside a stanza"),
        };
        match text {
            None => {
                self.phase = Phase::Closed;
                Ok(())
            }
            Some(text) => {
                let e = StreamError::with_text(Cond::NotWellFormed, text);
                self.fail(e.clone());
                Err(e)
            }
        }
    }

    /// A stream restart (after STARTTLS or SASL success): a fresh parser
    /// expecting a new header. The limits stay.
    pub fn reset(&mut self) {
        self.parser = None;
        self.big = false;
        self.root = Box::default();
        self.pending = Vec::new();
        self.mark = (0, 0);
        self.sniffer = Some(Box::new(HeaderSniffer::new()));
        self.phase = Phase::Header;
        self.stack = Vec::new();
        self.consumed = 0;
        self.accounted = 0;
        self.unit_bytes = 0;
        self.bom = Some(0);
    }

    fn fail(&mut self, e: StreamError) {
        self.phase = Phase::Failed(e);
        self.stack = Vec::new();
        self.sniffer = None;
        self.pending = Vec::new();
    }

    /// Swaps the small parser for a big one put back where the unit being
    /// read started (the stream's start, or the end of the last stanza),
    /// so that the unit can be read again. `false` when the parser is big
    /// already, or the stream is not being read.
    fn upgrade(&mut self) -> bool {
        let limit = self.limits.max_stanza_size.max(1);
        if self.big || limit <= SMALL_TOKEN {
            return false;
        }
        let parser = match self.phase {
            Phase::Header => {
                self.sniffer = Some(Box::new(HeaderSniffer::new()));
                new_parser(limit)
            }
            Phase::Open => match primed_parser(limit, &self.root) {
                Some(parser) => parser,
                None => return false,
            },
            Phase::Closed | Phase::Failed(_) => return false,
        };
        self.parser = Some(Box::new(parser));
        self.big = true;
        (self.consumed, self.accounted) = self.mark;
        self.unit_bytes = 0;
        self.stack.clear();
        true
    }

    /// A unit (the header or a stanza) is complete at `pos` of `data`,
    /// which it started at `unit_start`: the next one starts here, and a
    /// big parser goes back to a small one.
    fn unit_done(&mut self, unit: &[u8], header: bool) {
        if header {
            let mut root = std::mem::take(&mut self.pending);
            root.extend_from_slice(unit);
            self.root = root.into_boxed_slice();
        } else if self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
        self.mark = (self.consumed, self.accounted);
        if self.big
            && let Some(parser) = primed_parser(SMALL_TOKEN, &self.root)
        {
            self.parser = Some(Box::new(parser));
            self.big = false;
        }
    }

    /// Drops the parser while the stream is between stanzas, so that an
    /// idle stream holds no parser state; the next bytes make a new one,
    /// put where this one was by reading the stream header again (which
    /// costs about as much as parsing a short stanza, so a connection task
    /// parks only after a while without input). Also lets go of the
    /// buffer of open elements. Does nothing elsewhere (inside a stanza,
    /// the header, after a token too long for the small parser).
    pub fn park(&mut self) {
        if matches!(self.phase, Phase::Open)
            && self.stack.is_empty()
            && self.pending.is_empty()
            && !self.big
        {
            self.parser = None;
            self.stack = Vec::new();
        }
    }

    /// The parser, made if there is none: at the stream's start, or, when
    /// parked, between two stanzas.
    fn parser(&mut self) -> Result<&mut Parser, StreamError> {
        let parser = match self.parser.take() {
            Some(parser) => parser,
            None if !matches!(self.phase, Phase::Open) => {
                Box::new(new_parser(SMALL_TOKEN.min(self.limits.max_stanza_size)))
            }
            None => primed_parser(SMALL_TOKEN.min(self.limits.max_stanza_size), &self.root)
                .map(Box::new)
                .ok_or_else(|| {
                    StreamError::with_text(
                        Cond::InternalServerError,
                        "the stream header cannot be read again",
                    )
                })?,
        };
        Ok(self.parser.insert(parser))
    }

    /// Keeps the bytes of the unshown rest of a unit for a re-read. Only
    /// whitespace between stanzas (keepalives) is nothing to keep.
    fn keep_unit(&mut self, rest: &[u8]) {
        match self.phase {
            Phase::Closed | Phase::Failed(_) => self.pending = Vec::new(),
            Phase::Open
                if self.stack.is_empty()
                    && self.pending.is_empty()
                    && rest
                        .iter()
                        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) =>
            {
                self.mark = (self.consumed, self.accounted);
            }
            Phase::Header | Phase::Open => self.pending.extend_from_slice(rest),
        }
    }

    /// Bytes of the unit being read so far: its events, plus what the
    /// parser consumed and holds for events not yet emitted.
    fn unit_size(&self) -> usize {
        self.unit_bytes
            .saturating_add(self.consumed.saturating_sub(self.accounted))
    }

    fn run(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        unit_start: &mut usize,
        out: &mut Vec<StreamEvent>,
        stop: &mut dyn FnMut(&Element) -> bool,
    ) -> Result<(), RunError> {
        if self.consumed == 0 {
            self.skip_bom(data, pos)?;
            *unit_start = *pos;
        }
        // The parser may hold events (an empty element's end) after the
        // input is used up: ask until it wants more data.
        while matches!(self.phase, Phase::Header | Phase::Open) {
            // Never hand the parser more than one byte past the limit, so
            // what it buffers stays bounded by the limit.
            let budget = (self.limits.max_stanza_size.saturating_add(1))
                .saturating_sub(self.unit_size())
                .max(1);
            let chunk = &data[*pos..data.len().min(pos.saturating_add(budget))];
            let mut rest = chunk;
            let result = self.parser()?.parse(&mut rest, false);
            let used = chunk.len() - rest.len();
            if let Some(sniffer) = &mut self.sniffer {
                sniffer.feed(&chunk[..used]);
            }
            *pos += used;
            self.consumed += used;
            let wants_data = match result {
                Ok(Some(event)) => {
                    let in_header = matches!(self.phase, Phase::Header);
                    let stanza = self.on_event(event, out)?;
                    if in_header && matches!(self.phase, Phase::Open) {
                        self.unit_done(&data[*unit_start..*pos], true);
                        *unit_start = *pos;
                    }
                    if let Some(stanza) = stanza {
                        self.unit_done(&[], false);
                        *unit_start = *pos;
                        let halt = stop(&stanza);
                        out.push(StreamEvent::Stanza(stanza));
                        if halt {
                            return Ok(());
                        }
                    }
                    false
                }
                Err(EndOrError::NeedMoreData) if used == 0 && !chunk.is_empty() => {
                    // rxml always takes a byte when it needs one; never spin.
                    return Err(RunError::Stream(StreamError::with_text(
                        Cond::InternalServerError,
                        "XML parser made no progress",
                    )));
                }
                // The document ended: only after the root closed, which
                // stops the loop already.
                Ok(None) => return Ok(()),
                Err(EndOrError::NeedMoreData) => true,
                Err(EndOrError::Error(e)) => return Err(RunError::Xml(e)),
            };
            self.check_size()?;
            if wants_data && *pos >= data.len() {
                break;
            }
        }
        Ok(())
    }

    fn check_size(&self) -> Result<(), StreamError> {
        if self.unit_size() <= self.limits.max_stanza_size {
            return Ok(());
        }
        // Prosody's words, for the header too.
        Err(StreamError::with_text(
            Cond::PolicyViolation,
            "XML stanza is too big",
        ))
    }

    /// Skips a UTF-8 byte order mark at the start of a stream, and refuses
    /// a stream that starts as UTF-16 or UTF-32 would. Whitespace before
    /// the header (and around a byte order mark) is skipped too: a client
    /// may send a newline after `</auth>` or `<starttls/>` before the
    /// restarted stream's header, which Prosody accepts (RFC 6120 §5.3.1
    /// and §6.4.6 ask for a restart, not for the header's first byte).
    fn skip_bom(&mut self, data: &[u8], pos: &mut usize) -> Result<(), StreamError> {
        while let Some(matched) = self.bom {
            let Some(&byte) = data.get(*pos) else {
                return Ok(());
            };
            if matched == BOM.len() {
                self.bom = None;
            } else if matched == 0 && matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
                *pos += 1;
            } else if byte == BOM[matched] {
                self.bom = Some(matched + 1);
                *pos += 1;
            } else if matched == 0 && matches!(byte, 0x00 | 0xFE | 0xFF) {
                // UTF-16 or UTF-32, with or without a byte order mark.
                return Err(StreamError::with_text(
                    Cond::UnsupportedEncoding,
                    "the stream is not UTF-8",
                ));
            } else if matched == 0 {
                self.bom = None;
            } else {
                return Err(StreamError::with_text(
                    Cond::NotWellFormed,
                    "stray bytes before the stream header",
                ));
            }
        }
        Ok(())
    }

    /// Takes one parser event; returns a completed depth-1 element.
    fn on_event(
        &mut self,
        event: Event,
        out: &mut Vec<StreamEvent>,
    ) -> Result<Option<Element>, StreamError> {
        let len = event.metrics().len();
        self.accounted += len;
        self.unit_bytes += len;
        self.check_size()?;
        match event {
            Event::XmlDeclaration(..) => Ok(None),
            Event::StartElement(_, (ns, name), attrs) => {
                if matches!(self.phase, Phase::Header) {
                    self.open(&ns, &name, attrs, out)?;
                } else if self.stack.len() >= self.limits.max_depth {
                    return Err(StreamError::with_text(
                        Cond::PolicyViolation,
                        format!(
                            "XML stanza is nested too deeply (limit {} levels)",
                            self.limits.max_depth
                        ),
                    ));
                } else {
                    self.stack.push(Element::with_attrs(
                        name.as_str(),
                        ns.as_str(),
                        convert_attrs(attrs),
                    ));
                }
                Ok(None)
            }
            Event::Text(_, text) => {
                match self.stack.last_mut() {
                    Some(element) => element.append_text(text),
                    // Between stanzas (whitespace keepalives): ignored, as
                    // Prosody does with any character data there.
                    None => self.unit_bytes = 0,
                }
                Ok(None)
            }
            Event::EndElement(_) => {
                let Some(mut element) = self.stack.pop() else {
                    self.phase = Phase::Closed;
                    out.push(StreamEvent::Close);
                    return Ok(None);
                };
                match self.stack.last_mut() {
                    Some(parent) => {
                        parent.push_child(element);
                        Ok(None)
                    }
                    None => {
                        self.unit_bytes = 0;
                        if element.get_attr("xml:lang").is_none() {
                            element.set_attr("xml:lang", Some(self.lang.clone()));
                        }
                        Ok(Some(element))
                    }
                }
            }
        }
    }

    /// The root element: `<stream>` in the streams namespace.
    fn open(
        &mut self,
        ns: &Namespace<'static>,
        name: &NcName,
        attrs: AttrMap,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), StreamError> {
        if ns.as_str() != NS_STREAMS || name.as_str() != "stream" {
            // Prosody answers any other root with invalid-namespace.
            return Err(StreamError::with_text(
                Cond::InvalidNamespace,
                format!("the root element must be <stream xmlns='{NS_STREAMS}'>"),
            ));
        }
        let default_ns = self
            .sniffer
            .take()
            .map(|mut s| s.default_ns())
            .unwrap_or_default();
        let header = StreamHeader::from_attrs(default_ns, convert_attrs(attrs));
        if let Some(lang) = &header.lang {
            self.lang = lang.clone();
        }
        self.phase = Phase::Open;
        self.unit_bytes = 0;
        out.push(StreamEvent::Open(header));
        Ok(())
    }
}

/// How reading a piece of the stream failed.
enum RunError {
    /// The parser's error (a re-read with a big parser may not see it).
    Xml(rxml::Error),
    Stream(StreamError),
}

impl RunError {
    fn into_stream_error(self) -> StreamError {
        match self {
            RunError::Xml(e) => errors::from_rxml(e),
            RunError::Stream(e) => e,
        }
    }
}

impl From<StreamError> for RunError {
    fn from(e: StreamError) -> RunError {
        RunError::Stream(e)
    }
}

/// A parser for a stream's start, taking tokens up to `max_token` bytes.
fn new_parser(max_token: usize) -> Parser {
    let mut parser = Parser::with_options(Options {
        max_token_length: max_token.max(1),
        ..Options::default()
    });
    // Emit text as it comes: whitespace keepalives are then never held.
    parser.set_text_buffering(false);
    parser
}

/// A parser that has read `root` (a stream header), so it stands between
/// two stanzas; `None` if it cannot read it (a token longer than
/// `max_token`).
fn primed_parser(max_token: usize, root: &[u8]) -> Option<Parser> {
    let mut parser = new_parser(max_token);
    let mut rest = root;
    loop {
        match parser.parse(&mut rest, false) {
            Ok(Some(_)) => {}
            Err(EndOrError::NeedMoreData) if rest.is_empty() => return Some(parser),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Attributes named as [`Element`] names them: `local`, `xml:lang`,
/// `{ns}local`.
fn convert_attrs(attrs: AttrMap) -> Vec<(String, String)> {
    attrs
        .into_iter()
        .map(|((ns, local), value)| {
            let name = if ns.is_none() {
                local.as_str().to_string()
            } else if ns.as_str() == NS_XML {
                format!("xml:{}", local.as_str())
            } else {
                format!("{{{}}}{}", ns.as_str(), local.as_str())
            };
            (name, value)
        })
        .collect()
}

/// Reads one element from XML text (a stanza kept in a file, a golden
/// test's expectation): `<x xmlns='...'>...</x>`, parsed with the stream's
/// own limits and XMPP's XML subset, as if it arrived on a client stream
/// (an element without its own `xmlns` is in `jabber:client`).
pub fn parse_element(xml: &str) -> Result<Element, StreamError> {
    let mut stream = XmlStream::new(StreamLimits::default());
    let mut events = Vec::new();
    let text = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{xml}"
    );
    stream.feed(text.as_bytes(), &mut events)?;
    events
        .into_iter()
        .find_map(|e| match e {
            StreamEvent::Stanza(el) => Some(el),
            _ => None,
        })
        .ok_or_else(|| StreamError::with_text(Cond::BadFormat, "no complete element in the text"))
}
