//! The stream header: what a peer's `<stream:stream>` said, and the one lilt
//! writes.

use rxml::{Parse, RawEvent, RawParser};

use crate::stanza::{NS_STREAMS, escape_into};

/// The closing tag of an XML stream.
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// The attributes of a `<stream:stream>` opening tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// The default namespace declared on the header (`jabber:client`,
    /// `jabber:server`, `jabber:component:accept`), empty when none is.
    pub ns: String,
    pub to: Option<String>,
    pub from: Option<String>,
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    pub id: Option<String>,
    /// When parsed: every attribute of the header (the ones above included),
    /// named as on [`crate::stanza::Element`] (`local`, `xml:lang`,
    /// `{ns}local`); namespace declarations are not attributes. When
    /// written by [`stream_header`]: extra attributes written as given after
    /// the ones above (e.g. `xmlns:db` on a server-to-server stream).
    pub attrs: Vec<(String, String)>,
}

impl StreamHeader {
    /// The header described by a parsed root element's attributes.
    pub(super) fn from_attrs(ns: String, attrs: Vec<(String, String)>) -> StreamHeader {
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        StreamHeader {
            ns,
            to: get("to"),
            from: get("from"),
            version: get("version"),
            lang: get("xml:lang"),
            id: get("id"),
            attrs,
        }
    }
}

/// The attributes [`stream_header`] writes itself; the same names in
/// `attrs` are skipped.
const WRITTEN: &[&str] = &[
    "xmlns",
    "xmlns:stream",
    "xml:lang",
    "id",
    "from",
    "to",
    "version",
];

/// The XML declaration and opening tag lilt sends, as Prosody's
/// `session:open_stream` does: `<?xml version='1.0'?>` then
/// `<stream:stream>` with `from`, `xmlns:stream`, `id` (empty unless given,
/// as Prosody), `to`, `version` (omitted when `None`, for pre-1.0 peers), the
/// default namespace, `xml:lang` (`en` unless given) and `attrs`, in the
/// order Prosody 0.12 writes them.
pub fn stream_header(header: &StreamHeader) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?><stream:stream");
    if let Some(from) = &header.from {
        write_attr(&mut out, "from", from);
    }
    write_attr(&mut out, "xmlns:stream", NS_STREAMS);
    write_attr(&mut out, "id", header.id.as_deref().unwrap_or(""));
    if let Some(to) = &header.to {
        write_attr(&mut out, "to", to);
    }
    if let Some(version) = &header.version {
        write_attr(&mut out, "version", version);
    }
    if !header.ns.is_empty() {
        write_attr(&mut out, "xmlns", &header.ns);
    }
    write_attr(&mut out, "xml:lang", header.lang.as_deref().unwrap_or("en"));
    let mut prefixes = 0;
    for (name, value) in &header.attrs {
        if WRITTEN.contains(&name.as_str()) {
            continue;
        }
        match name.strip_prefix('{').and_then(|rest| rest.split_once('}')) {
            Some((ns, local)) => {
                let prefix = format!("ns{prefixes}");
                prefixes += 1;
                write_attr(&mut out, &format!("xmlns:{prefix}"), ns);
                write_attr(&mut out, &format!("{prefix}:{local}"), value);
            }
            None => write_attr(&mut out, name, value),
        }
    }
    out.push('>');
    out
}

fn write_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    escape_into(out, value);
    out.push('\'');
}

/// Finds the default namespace declared on the root element.
///
/// rxml's namespace-resolving parser does not report namespace
/// declarations, so the bytes up to the end of the root's opening tag also
/// go through a raw parser, which does. It is dropped once the root tag is
/// complete. Its errors are ignored: the resolving parser, which sees the
/// same bytes, reports them.
pub(super) struct HeaderSniffer {
    raw: RawParser,
    default_ns: Option<String>,
    done: bool,
}

impl HeaderSniffer {
    pub(super) fn new() -> HeaderSniffer {
        HeaderSniffer {
            raw: RawParser::new(),
            default_ns: None,
            done: false,
        }
    }

    /// Feeds the bytes the resolving parser consumed.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !self.done {
            match self.raw.parse(&mut bytes, false) {
                Ok(Some(RawEvent::Attribute(_, (None, name), value)))
                    if name.as_str() == "xmlns" =>
                {
                    self.default_ns = Some(value);
                }
                Ok(Some(RawEvent::ElementHeadClose(_))) => self.done = true,
                Ok(Some(_)) => {}
                Err(rxml::error::EndOrError::NeedMoreData) => break,
                Ok(None) | Err(_) => self.done = true,
            }
        }
    }

    /// The default namespace declared on the root, empty when none was.
    pub(super) fn default_ns(&mut self) -> String {
        self.default_ns.take().unwrap_or_default()
    }
}
