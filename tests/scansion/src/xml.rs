//! The XML tree the runner works with, and a lenient parser for the stanzas
//! written in `.scs` scripts.
//!
//! Script stanzas are not namespace-well-formed XML: they use the
//! `scansion:` prefix without declaring it, and they may carry stray
//! `xmlns:stream` declarations copied from recordings. The parser here keeps
//! prefixed names verbatim, resolves only the default namespace (`xmlns`),
//! and otherwise accepts what scansion (through LuaExpat) accepts.
//!
//! Attribute names follow the convention of `xmpp-core`'s stanza tree:
//! unprefixed names as they are, `xml:lang` for the XML namespace, `{ns}name`
//! for any other namespace of a received attribute.

use std::fmt::Write as _;

/// The namespace of stanzas on a client stream.
pub const NS_CLIENT: &str = "jabber:client";

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element with its subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name (or the prefixed name as written, for script elements).
    pub name: String,
    /// Resolved namespace.
    pub ns: String,
    /// Whether the element itself carries an `xmlns` declaration (in a
    /// script), or has a namespace other than its parent's (received).
    pub declares_ns: bool,
    /// Attributes in document order, without namespace declarations.
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// Why a script stanza could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("XML at offset {offset}: {reason}")]
pub struct XmlError {
    pub offset: usize,
    pub reason: String,
}

impl Element {
    /// An empty element in namespace `ns`.
    pub fn new(name: &str, ns: &str) -> Element {
        Element {
            name: name.to_string(),
            ns: ns.to_string(),
            declares_ns: false,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder: sets an attribute.
    pub fn with_attr(mut self, name: &str, value: &str) -> Element {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends text.
    pub fn with_text(mut self, text: &str) -> Element {
        self.children.push(Node::Text(text.to_string()));
        self
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self.attrs.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.attrs.push((name.to_string(), value.to_string())),
        }
    }

    /// Child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name && e.ns == ns)
    }

    /// All character data directly inside this element, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Serialises on one line, writing `xmlns` where the namespace differs
    /// from `parent_ns`. Attributes named `scansion:*` or `xmlns:*` are not
    /// written (they only steer matching, or declare unused prefixes).
    pub fn to_xml(&self, parent_ns: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, parent_ns, None, 0);
        out
    }

    /// Serialises indented, one element per line, for reports.
    pub fn to_pretty_xml(&self, parent_ns: &str, indent: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, parent_ns, Some(indent), 0);
        out
    }

    fn write(&self, out: &mut String, parent_ns: &str, indent: Option<&str>, depth: usize) {
        if let Some(unit) = indent {
            for _ in 0..depth {
                out.push_str(unit);
            }
        }
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns || (self.declares_ns && indent.is_some()) {
            let _ = write!(out, " xmlns='{}'", escape_attr(&self.ns));
        }
        for (k, v) in &self.attrs {
            if indent.is_none() && (k.starts_with("scansion:") || k.starts_with("xmlns:")) {
                continue;
            }
            let _ = write!(out, " {}='{}'", attr_name_for_output(k), escape_attr(v));
        }
        let only_text = self.children.iter().all(|c| matches!(c, Node::Text(_)));
        let children: Vec<&Node> = match indent {
            // Indentation between elements would be noise; text stays.
            Some(_) if !only_text => self
                .children
                .iter()
                .filter(|c| !matches!(c, Node::Text(t) if t.trim().is_empty()))
                .collect(),
            _ => self.children.iter().collect(),
        };
        if children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        let nested = indent.is_some() && !only_text;
        for child in children {
            match child {
                Node::Text(t) => {
                    if nested {
                        out.push('\n');
                        for _ in 0..=depth {
                            out.push_str(indent.unwrap_or(""));
                        }
                    }
                    if indent.is_some() {
                        // Keep one element per line in reports.
                        out.push_str(&escape_text(t).replace('\n', "&#10;"));
                    } else {
                        out.push_str(&escape_text(t));
                    }
                }
                Node::Element(e) => {
                    if nested {
                        out.push('\n');
                    }
                    e.write(out, &self.ns, indent, depth + 1);
                }
            }
        }
        if nested {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent.unwrap_or(""));
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// `{ns}name` attribute keys cannot be written as such; they get a generated
/// prefix-less form that is still readable in reports.
fn attr_name_for_output(key: &str) -> String {
    match key.strip_prefix('{') {
        Some(rest) => match rest.split_once('}') {
            Some((_, local)) => local.to_string(),
            None => key.to_string(),
        },
        None => key.to_string(),
    }
}

/// Escapes character data.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value (for either quote kind; whitespace other
/// than spaces as references, so attribute normalisation keeps it).
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses every top-level element of a script block. The namespace of
/// top-level elements without `xmlns` is `default_ns`. Whitespace-only text
/// spanning lines is the script's indentation and is dropped (so it is
/// neither sent nor compared).
pub fn parse_fragment(src: &str, default_ns: &str) -> Result<Vec<Element>, XmlError> {
    let mut p = FragmentParser { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_misc()?;
        if p.pos >= src.len() {
            return Ok(out);
        }
        if !p.rest().starts_with('<') {
            return Err(p.error("text outside of an element"));
        }
        out.push(p.element(default_ns)?);
    }
}

struct FragmentParser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> FragmentParser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn error(&self, reason: &str) -> XmlError {
        XmlError {
            offset: self.pos,
            reason: reason.to_string(),
        }
    }

    /// Skips whitespace, comments and XML declarations between elements.
    fn skip_misc(&mut self) -> Result<(), XmlError> {
        loop {
            let trimmed = self.rest().trim_start();
            self.pos = self.src.len() - trimmed.len();
            if trimmed.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if trimmed.starts_with("<?") {
                self.skip_past("?>")?;
            } else {
                return Ok(());
            }
        }
    }

    fn skip_past(&mut self, end: &str) -> Result<(), XmlError> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(self.error(&format!("missing {end:?}"))),
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn name(&mut self) -> Result<String, XmlError> {
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '=' | '<'))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error("expected a name"));
        }
        let name = self.rest()[..len].to_string();
        self.pos += len;
        Ok(name)
    }

    fn element(&mut self, parent_ns: &str) -> Result<Element, XmlError> {
        self.pos += 1; // '<'
        let name = self.name()?;
        let mut el = Element::new(&name, parent_ns);
        loop {
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok(el);
            }
            if rest.starts_with('>') {
                self.pos += 1;
                break;
            }
            if rest.is_empty() {
                return Err(self.error(&format!("unterminated start tag <{name}>")));
            }
            let key = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(self.error(&format!("attribute {key} has no value")));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = match self.rest().chars().next() {
                Some(q @ ('\'' | '"')) => q,
                _ => return Err(self.error(&format!("attribute {key} value is not quoted"))),
            };
            self.pos += 1;
            let Some(end) = self.rest().find(quote) else {
                return Err(self.error(&format!("attribute {key} value is not terminated")));
            };
            let value = unescape(&self.rest()[..end]).map_err(|r| self.error(&r))?;
            self.pos += end + 1;
            if key == "xmlns" {
                el.ns = value;
                el.declares_ns = true;
            } else if el.attr(&key).is_some() {
                return Err(self.error(&format!("duplicate attribute {key}")));
            } else {
                el.attrs.push((key, value));
            }
        }
        // Content.
        loop {
            let rest = self.rest();
            if rest.is_empty() {
                return Err(self.error(&format!("element <{name}> is not closed")));
            }
            if rest.starts_with("</") {
                self.pos += 2;
                let close = self.name()?;
                if close != name {
                    return Err(self.error(&format!("</{close}> closes <{name}>")));
                }
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(self.error("expected '>'"));
                }
                self.pos += 1;
                return Ok(el);
            }
            if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
                let Some(end) = cdata.find("]]>") else {
                    return Err(self.error("unterminated CDATA section"));
                };
                push_text(&mut el, &cdata[..end]);
                self.pos += "<![CDATA[".len() + end + 3;
            } else if rest.starts_with('<') {
                let child = self.element(&el.ns.clone())?;
                el.children.push(Node::Element(child));
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let raw = &rest[..end];
                if !(raw.trim().is_empty() && raw.contains('\n')) {
                    let text = unescape(raw).map_err(|r| self.error(&r))?;
                    push_text(&mut el, &text);
                }
                self.pos += end;
            }
        }
    }
}

fn push_text(el: &mut Element, text: &str) {
    if let Some(Node::Text(prev)) = el.children.last_mut() {
        prev.push_str(text);
    } else {
        el.children.push(Node::Text(text.to_string()));
    }
}

/// Expands the five predefined entities and character references.
pub fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find(';') else {
            return Err(format!("unterminated entity in {s:?}"));
        };
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                match code.and_then(char::from_u32) {
                    Some(c) => c,
                    None => return Err(format!("unknown entity &{entity};")),
                }
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixed_attributes_and_default_namespace() {
        let els = parse_fragment(
            "\t<iq type='get' xmlns:stream='http://etherx.jabber.org/streams'>\n\t\t<query xmlns='jabber:iq:version' scansion:strict='true'><name>Prosody</name></query>\n\t</iq>\n",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(els.len(), 1);
        let iq = &els[0];
        assert_eq!(iq.ns, NS_CLIENT);
        assert!(!iq.declares_ns);
        assert_eq!(iq.attr("type"), Some("get"));
        let query = iq.elements().next().unwrap();
        assert_eq!(query.ns, "jabber:iq:version");
        assert!(query.declares_ns);
        assert_eq!(query.attr("scansion:strict"), Some("true"));
        let name = query.elements().next().unwrap();
        assert_eq!(name.ns, "jabber:iq:version");
        assert!(!name.declares_ns);
        assert_eq!(name.text(), "Prosody");
    }

    #[test]
    fn expands_entities_and_character_references() {
        let els = parse_fragment(
            "<note a=\"x&amp;y\">line&#10;next &lt;3 &#x41;</note>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(els[0].attr("a"), Some("x&y"));
        assert_eq!(els[0].text(), "line\nnext <3 A");
    }

    #[test]
    fn rejects_broken_xml_with_a_reason() {
        let err = parse_fragment("<a><b></a>", NS_CLIENT).unwrap_err();
        assert!(err.reason.contains("</a> closes <b>"), "{err}");
        assert!(parse_fragment("<a b=c/>", NS_CLIENT).is_err());
        assert!(parse_fragment("<a>", NS_CLIENT).is_err());
        assert!(parse_fragment("text", NS_CLIENT).is_err());
    }

    #[test]
    fn serialises_for_the_wire_without_scansion_attributes() {
        let els = parse_fragment(
            "<message to='a@b' scansion:strict='true' xmlns:stream='s'><body>1 &lt; 2</body><x xmlns='urn:x'/></message>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(
            els[0].to_xml(NS_CLIENT),
            "<message to='a@b'><body>1 &lt; 2</body><x xmlns='urn:x'/></message>"
        );
    }

    #[test]
    fn indentation_is_dropped_but_other_text_kept() {
        let els = parse_fragment(
            "<iq>\n\t<query xmlns='q'>\n\t\t<a> x </a><b> </b>\n\t</query>\n</iq>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(
            els[0].to_xml(NS_CLIENT),
            "<iq><query xmlns='q'><a> x </a><b> </b></query></iq>"
        );
        let note = Element::new("note", NS_CLIENT)
            .with_attr("a", "1\n2")
            .with_text("l1\nl2 & 'q'");
        assert_eq!(
            note.to_xml(NS_CLIENT),
            "<note a='1&#10;2'>l1\nl2 &amp; 'q'</note>"
        );
    }

    #[test]
    fn pretty_output_indents_elements_and_keeps_text_inline() {
        let els = parse_fragment(
            "<iq type='result'>\n  <query xmlns='q'><item>t</item></query>\n</iq>",
            NS_CLIENT,
        )
        .unwrap();
        assert_eq!(
            els[0].to_pretty_xml(NS_CLIENT, "  "),
            "<iq type='result'>\n  <query xmlns='q'>\n    <item>t</item>\n  </query>\n</iq>"
        );
    }
}
