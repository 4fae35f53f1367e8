//! A small, fast splitter for the server's side of an XMPP stream, made for
//! load generation: it does not build trees, it finds where each top-level
//! element (a child of `<stream:stream>`) begins and ends and hands out its
//! bytes. Inspection helpers then look at the few things a load client needs
//! (an element's name, an attribute of its start tag, the text of a child).
//!
//! Sans-IO: [`Splitter::feed`] takes bytes, [`Splitter::next_event`] returns
//! what is complete so far.

use std::ops::Range;

/// Something the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The `<stream:stream ...>` header.
    Open,
    /// A complete top-level element; the range indexes [`Splitter::bytes`].
    Element(Range<usize>),
    /// `</stream:stream>`.
    Close,
}

/// The stream was not well-formed enough to split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML from the server at byte {offset}: {what}")]
pub struct SplitError {
    pub offset: usize,
    pub what: &'static str,
}

/// Splits an incoming stream into top-level elements.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Where scanning resumes.
    pos: usize,
    /// Element depth: 0 outside the stream, 1 inside it.
    depth: usize,
    /// Start of the top-level element being read.
    start: usize,
    /// Bytes before this index may be dropped at the next feed.
    consumed: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter::default()
    }

    /// Forgets everything (after a stream restart).
    pub fn reset(&mut self) {
        *self = Splitter {
            buf: std::mem::take(&mut self.buf),
            ..Splitter::default()
        };
        self.buf.clear();
    }

    /// The bytes that [`Event::Element`] ranges index, valid until the next
    /// [`Splitter::feed`].
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Adds bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.pos -= self.consumed;
            self.start = self.start.saturating_sub(self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, SplitError> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(lt) = rest.iter().position(|&b| b == b'<') else {
                // Text (whitespace keepalives, or character data inside an
                // element): nothing to do until the next tag.
                self.pos = self.buf.len();
                if self.depth <= 1 {
                    self.consumed = self.pos;
                }
                return Ok(None);
            };
            let at = self.pos + lt;
            let tag = &self.buf[at..];
            if tag.len() < 2 {
                self.pos = at;
                return Ok(None);
            }
            match tag[1] {
                b'?' => match find(tag, b"?>") {
                    Some(end) => self.pos = at + end + 2,
                    None => return self.wait(at),
                },
                b'!' => {
                    let (open, close): (&[u8], &[u8]) = if tag.starts_with(b"<!--") {
                        (b"<!--", b"-->")
                    } else if tag.starts_with(b"<![CDATA[") {
                        (b"<![CDATA[", b"]]>")
                    } else if tag.len() < 9 {
                        return self.wait(at);
                    } else {
                        return Err(SplitError {
                            offset: at,
                            what: "unsupported markup declaration",
                        });
                    };
                    match find(&tag[open.len()..], close) {
                        Some(end) => self.pos = at + open.len() + end + close.len(),
                        None => return self.wait(at),
                    }
                }
                b'/' => {
                    let Some(end) = tag.iter().position(|&b| b == b'>') else {
                        return self.wait(at);
                    };
                    self.pos = at + end + 1;
                    match self.depth {
                        0 => {
                            return Err(SplitError {
                                offset: at,
                                what: "end tag outside the stream",
                            });
                        }
                        1 => {
                            self.depth = 0;
                            self.consumed = self.pos;
                            return Ok(Some(Event::Close));
                        }
                        2 => {
                            self.depth = 1;
                            self.consumed = self.pos;
                            return Ok(Some(Event::Element(self.start..self.pos)));
                        }
                        _ => self.depth -= 1,
                    }
                }
                _ => {
                    let Some(end) = start_tag_end(tag) else {
                        return self.wait(at);
                    };
                    let empty = tag[end - 1] == b'/';
                    self.pos = at + end + 1;
                    match (self.depth, empty) {
                        (0, _) => {
                            self.depth = 1;
                            self.consumed = self.pos;
                            return Ok(Some(Event::Open));
                        }
                        (1, true) => {
                            self.consumed = self.pos;
                            return Ok(Some(Event::Element(at..self.pos)));
                        }
                        (1, false) => {
                            self.start = at;
                            self.depth = 2;
                        }
                        (_, true) => {}
                        (_, false) => self.depth += 1,
                    }
                }
            }
        }
    }

    fn wait(&mut self, at: usize) -> Result<Option<Event>, SplitError> {
        self.pos = at;
        Ok(None)
    }
}

/// Index of the `>` closing a start tag that begins at `tag[0] == '<'`,
/// skipping quoted attribute values.
fn start_tag_end(tag: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in tag.iter().enumerate().skip(1) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The local name of an element (`stream:features` gives `features`).
pub fn name(el: &[u8]) -> &[u8] {
    let end = el
        .iter()
        .skip(1)
        .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .map_or(el.len(), |p| p + 1);
    let qname = &el[1.min(end)..end];
    match qname.iter().position(|&b| b == b':') {
        Some(c) => &qname[c + 1..],
        None => qname,
    }
}

/// An attribute of the element's start tag, still escaped.
pub fn attr<'a>(el: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
    let end = start_tag_end(el)?;
    let tag = &el[..end];
    let mut i = 1;
    // Skip the element name.
    while i < tag.len() && !tag[i].is_ascii_whitespace() {
        i += 1;
    }
    loop {
        while i < tag.len() && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let name_start = i;
        while i < tag.len() && tag[i] != b'=' && !tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let attr_name = &tag[name_start..i];
        while i < tag.len() && (tag[i] == b'=' || tag[i].is_ascii_whitespace()) {
            i += 1;
        }
        let q = *tag.get(i)?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let value_start = i + 1;
        let value_len = tag[value_start..].iter().position(|&b| b == q)?;
        if attr_name == wanted.as_bytes() {
            return Some(&tag[value_start..value_start + value_len]);
        }
        i = value_start + value_len + 1;
    }
}

/// The text of the first descendant named `child` (by local name), still
/// escaped; `Some(b"")` for an empty element.
pub fn child_text<'a>(el: &'a [u8], child: &str) -> Option<&'a [u8]> {
    let inner_start = start_tag_end(el)? + 1;
    let mut from = inner_start;
    while let Some(p) = el[from..].iter().position(|&b| b == b'<') {
        let at = from + p;
        let tag = &el[at..];
        if tag
            .get(1)
            .is_some_and(|&b| b != b'/' && b != b'?' && b != b'!')
            && name(tag) == child.as_bytes()
        {
            let end = start_tag_end(tag)?;
            if tag[end - 1] == b'/' {
                return Some(b"");
            }
            let text_start = at + end + 1;
            let text_len = el[text_start..].iter().position(|&b| b == b'<')?;
            return Some(&el[text_start..text_start + text_len]);
        }
        from = at + 1;
    }
    None
}

/// Whether the element contains a descendant with this local name.
pub fn has_child(el: &[u8], child: &str) -> bool {
    child_text(el, child).is_some()
}

/// The text of every descendant named `child` (e.g. each `<mechanism/>`).
pub fn children_text<'a>(el: &'a [u8], child: &str) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let Some(first) = start_tag_end(el) else {
        return out;
    };
    let mut from = first + 1;
    while let Some(p) = el[from..].iter().position(|&b| b == b'<') {
        let at = from + p;
        let tag = &el[at..];
        from = at + 1;
        if tag
            .get(1)
            .is_none_or(|&b| b == b'/' || b == b'?' || b == b'!')
            || name(tag) != child.as_bytes()
        {
            continue;
        }
        let Some(end) = start_tag_end(tag) else { break };
        if tag[end - 1] == b'/' {
            out.push(&tag[..0]);
            continue;
        }
        let text_start = at + end + 1;
        let Some(len) = el[text_start..].iter().position(|&b| b == b'<') else {
            break;
        };
        out.push(&el[text_start..text_start + len]);
        from = text_start + len;
    }
    out
}

/// Undoes XML's five predefined entities and numeric references.
pub fn unescape(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    if !s.contains('&') {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = &*s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let ch = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ if entity.starts_with("#x") => u32::from_str_radix(&entity[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an attribute value or character data.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
