//! XML elements and stanzas: a tree that keeps every attribute and child it was
//! given, like Prosody's `util.stanza`.
//!
//! An [`Element`] has a namespace (resolved, never a prefix), a local name, its
//! attributes in document order and its children. Attribute names are plain for
//! unnamespaced attributes, `xml:lang` for the XML namespace, and `{ns}name` for
//! any other namespace. Serialisation writes `xmlns` only where the namespace
//! differs from the parent's.

pub mod preserialize;

use std::fmt::Write as _;

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_SERVER: &str = "jabber:server";
pub const NS_COMPONENT: &str = "jabber:component:accept";
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// A child of an element: another element or character data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// One XML element with its whole subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Element {
    /// A new empty element `<name xmlns='ns'/>`.
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// An element with these attributes, in this order, taken as they are:
    /// the caller (a parser) guarantees the names are unique. Unlike
    /// repeated [`Element::attr`], this does not search per attribute.
    pub fn with_attrs(
        name: impl Into<String>,
        ns: impl Into<String>,
        attrs: Vec<(String, String)>,
    ) -> Element {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs,
            children: Vec::new(),
        }
    }

    /// Builder: sets an attribute.
    pub fn attr(mut self, name: &str, value: impl Into<String>) -> Element {
        self.set_attr(name, Some(value.into()));
        self
    }

    /// Builder: sets an attribute when the value is present.
    pub fn attr_opt(mut self, name: &str, value: Option<impl Into<String>>) -> Element {
        if let Some(v) = value {
            self.set_attr(name, Some(v.into()));
        }
        self
    }

    /// Builder: appends a child element.
    pub fn child(mut self, child: Element) -> Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends text.
    pub fn text(mut self, text: impl Into<String>) -> Element {
        self.append_text(text);
        self
    }

    /// Builder: `<name>text</name>` in this element's namespace.
    pub fn text_tag(self, name: &str, text: impl Into<String>) -> Element {
        let ns = self.ns.clone();
        self.child(Element::new(name, ns).text(text))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn ns(&self) -> &str {
        &self.ns
    }
    /// Is this `<name xmlns='ns'>`?
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }
    pub fn set_ns(&mut self, ns: impl Into<String>) {
        self.ns = ns.into();
    }

    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Sets (Some) or removes (None) an attribute, keeping its position.
    pub fn set_attr(&mut self, name: &str, value: Option<String>) {
        match (self.attrs.iter().position(|(k, _)| k == name), value) {
            (Some(i), Some(v)) => self.attrs[i].1 = v,
            (Some(i), None) => {
                self.attrs.remove(i);
            }
            (None, Some(v)) => self.attrs.push((name.to_string(), v)),
            (None, None) => {}
        }
    }
    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }
    pub fn nodes_mut(&mut self) -> &mut Vec<Node> {
        &mut self.children
    }
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }
    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }
    /// The first child with this name and namespace (Prosody's `get_child`).
    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }
    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children_mut().find(|c| c.is(name, ns))
    }
    /// The first child element whatever its name (Prosody's `tags[1]`).
    pub fn first_child(&self) -> Option<&Element> {
        self.children().next()
    }
    /// Text of the first child with this name and namespace.
    pub fn get_child_text(&self, name: &str, ns: &str) -> Option<String> {
        self.get_child(name, ns).map(Element::text_content)
    }
    pub fn push_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }
    pub fn append_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if let Some(Node::Text(t)) = self.children.last_mut() {
            t.push_str(&text);
        } else if !text.is_empty() {
            self.children.push(Node::Text(text));
        }
    }
    /// Removes the children that match `pred` (Prosody's `maptags` returning nil).
    pub fn remove_children(&mut self, mut pred: impl FnMut(&Element) -> bool) {
        self.children
            .retain(|n| !matches!(n, Node::Element(e) if pred(e)));
    }
    /// All character data directly inside this element.
    pub fn text_content(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    // -- stanza helpers ----------------------------------------------------

    pub fn id(&self) -> Option<&str> {
        self.get_attr("id")
    }
    pub fn to(&self) -> Option<&str> {
        self.get_attr("to")
    }
    pub fn from(&self) -> Option<&str> {
        self.get_attr("from")
    }
    /// The `type` attribute.
    pub fn type_(&self) -> Option<&str> {
        self.get_attr("type")
    }
    /// Is this a `message`, `presence` or `iq` in a stanza namespace?
    pub fn is_stanza(&self) -> bool {
        matches!(self.name.as_str(), "message" | "presence" | "iq")
            && matches!(self.ns.as_str(), NS_CLIENT | NS_SERVER | NS_COMPONENT)
    }

    /// A reply skeleton: same name and namespace, `to`/`from` swapped, same id
    /// (Prosody's `st.reply`). IQs get `type='result'`.
    pub fn reply(&self) -> Element {
        let mut r = Element::new(self.name.clone(), self.ns.clone())
            .attr_opt("id", self.id())
            .attr_opt("to", self.from())
            .attr_opt("from", self.to());
        if self.name == "iq" {
            r.set_attr("type", Some("result".into()));
        } else if let Some(t) = self.type_() {
            r.set_attr("type", Some(t.into()));
        }
        r
    }

    /// About the bytes this element takes serialised (names, attributes,
    /// text and the markup around them, escaping not counted): what an
    /// outbound queue accounts it as, without serialising it.
    pub fn approx_size(&self) -> usize {
        let mut size = 2 * self.name.len() + self.ns.len() + 16;
        for (k, v) in &self.attrs {
            size += k.len() + v.len() + 4;
        }
        for n in &self.children {
            size += match n {
                Node::Element(e) => e.approx_size(),
                Node::Text(t) => t.len(),
            };
        }
        size
    }

    /// Serialises the element and its subtree, declaring `xmlns` against
    /// `parent_ns` (the namespace in scope where it is written).
    pub fn to_xml_in(&self, parent_ns: &str) -> String {
        let mut out = String::new();
        self.write_xml(&mut out, parent_ns);
        out
    }

    /// Serialises as a top-level stanza on a `jabber:client` stream.
    pub fn to_xml(&self) -> String {
        self.to_xml_in(NS_CLIENT)
    }

    fn write_xml(&self, out: &mut String, parent_ns: &str) {
        out.push('<');
        out.push_str(&self.name);
        if self.ns != parent_ns {
            out.push_str(" xmlns='");
            escape_into(out, &self.ns);
            out.push('\'');
        }
        let mut extra_prefix = 0;
        for (k, v) in &self.attrs {
            out.push(' ');
            if let Some(rest) = k.strip_prefix('{') {
                // {ns}local: declare a prefix on this element.
                if let Some((ans, local)) = rest.split_once('}') {
                    let _ = write!(out, "xmlns:ns{extra_prefix}='");
                    escape_into(out, ans);
                    let _ = write!(out, "' ns{extra_prefix}:{local}");
                    extra_prefix += 1;
                } else {
                    out.push_str(k);
                }
            } else {
                out.push_str(k);
            }
            out.push_str("='");
            escape_into(out, v);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for n in &self.children {
            match n {
                Node::Element(e) => e.write_xml(out, &self.ns),
                Node::Text(t) => escape_into(out, t),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_xml_in(""))
    }
}

/// Escapes text or an attribute value for XML (`& < > ' "`).
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Escapes a string for XML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_inherited_namespaces() {
        let e = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "a'1")
            .child(Element::new("query", "jabber:iq:version").text_tag("name", "x<y"));
        assert_eq!(
            e.to_xml(),
            "<iq type='get' id='a&apos;1'><query xmlns='jabber:iq:version'><name>x&lt;y</name></query></iq>"
        );
    }

    #[test]
    fn reply_swaps_addresses() {
        let e = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "1")
            .attr("from", "a@b/c")
            .attr("to", "b");
        let r = e.reply();
        assert_eq!(r.to(), Some("a@b/c"));
        assert_eq!(r.from(), Some("b"));
        assert_eq!(r.type_(), Some("result"));
    }

    #[test]
    fn namespaced_attributes_get_a_prefix() {
        let e = Element::new("x", "urn:a")
            .attr("{urn:b}k", "v")
            .attr("xml:lang", "en");
        assert_eq!(
            e.to_xml_in("urn:a"),
            "<x xmlns:ns0='urn:b' ns0:k='v' xml:lang='en'/>"
        );
    }
}
