//! The `<body/>` wrapper of XEP-0124: what a request's body says, and the
//! bodies lilt answers with, written as Prosody's mod_bosh writes them.

use std::time::Duration;

use xmpp_core::stanza::{Element, NS_CLIENT, NS_STREAMS, escape};

/// `http://jabber.org/protocol/httpbind`
pub const NS_BOSH: &str = "http://jabber.org/protocol/httpbind";
/// `urn:xmpp:xbosh` (XEP-0206: `xmpp:version`, `xmpp:restart`)
pub const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// Requests a session may have open at once (Prosody's fixed value).
pub const REQUESTS: u32 = 2;
/// Requests lilt holds at once (Prosody's fixed value).
pub const HOLD: usize = 1;

/// The attributes of a request's `<body/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyAttrs {
    pub sid: Option<String>,
    /// `None` when absent or not a number.
    pub rid: Option<u64>,
    pub to: Option<String>,
    pub from: Option<String>,
    /// As sent; validated when a session is created.
    pub wait: Option<String>,
    pub ver: Option<String>,
    pub lang: Option<String>,
    /// `type='terminate'`
    pub terminate: bool,
    /// `xmpp:restart='true'`
    pub restart: bool,
    /// `pause='N'` (XEP-0124 §12), seconds.
    pub pause: Option<u64>,
}

impl BodyAttrs {
    /// Reads a request body; `None` when it is not a `<body/>` in the
    /// httpbind namespace.
    pub fn from_element(body: &Element) -> Option<BodyAttrs> {
        if body.name() != "body" || body.ns() != NS_BOSH {
            return None;
        }
        let get = |name: &str| body.get_attr(name).map(str::to_string);
        Some(BodyAttrs {
            sid: get("sid"),
            rid: body.get_attr("rid").and_then(|r| r.trim().parse().ok()),
            to: get("to"),
            from: get("from"),
            wait: get("wait"),
            ver: get("ver"),
            lang: get("xml:lang"),
            terminate: body.get_attr("type") == Some("terminate"),
            restart: body.get_attr(&format!("{{{NS_XBOSH}}}restart")) == Some("true"),
            pause: body.get_attr("pause").and_then(|p| p.trim().parse().ok()),
        })
    }
}

/// The attributes of a body that could not be parsed whole, read from its
/// opening tag alone (when that much is well-formed).
pub fn sniff_attrs(data: &[u8]) -> Option<BodyAttrs> {
    let text = std::str::from_utf8(data).ok()?;
    let start = text.find("<body")?;
    let end = start + text[start..].find('>')?;
    let tag = text[start..end].trim_end_matches('/');
    let element = crate::fragment::parse_element(
        format!("{tag}/>").as_bytes(),
        &xmpp_core::stream::StreamLimits::default(),
    )
    .ok()?;
    BodyAttrs::from_element(&element)
}

/// The stanzas a request carries. Children in the httpbind namespace
/// (written without their own `xmlns`) are `jabber:client` stanzas, as
/// Prosody takes them; each gets the body's `xml:lang` (else `en`) unless
/// it has its own.
pub fn stanzas(body: Element, lang: Option<&str>) -> Vec<Element> {
    body.children()
        .cloned()
        .map(|mut e| {
            to_client_ns(&mut e);
            if e.get_attr("xml:lang").is_none() {
                e.set_attr("xml:lang", Some(lang.unwrap_or("en").to_string()));
            }
            e
        })
        .collect()
}

fn to_client_ns(e: &mut Element) {
    if e.ns() == NS_BOSH {
        e.set_ns(NS_CLIENT);
    }
    for child in e.children_mut() {
        to_client_ns(child);
    }
}

/// What the first response of a session announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    pub host: String,
    pub wait: Duration,
    pub inactivity: Duration,
    pub polling: Duration,
    pub max_pause: Duration,
}

/// The opening tag of a response body.
pub fn open_tag(sid: &str, terminate: bool, creation: Option<&Creation>) -> String {
    let mut s = format!(
        "<body xmlns='{NS_BOSH}' xmlns:stream='{NS_STREAMS}' sid='{}'",
        escape(sid)
    );
    if terminate {
        s.push_str(" type='terminate'");
    }
    if let Some(c) = creation {
        s.push_str(&format!(
            " requests='{REQUESTS}' hold='{HOLD}' inactivity='{}' polling='{}' wait='{}' maxpause='{}' authid='{}' secure='true' ver='1.6' from='{}' xmlns:xmpp='{NS_XBOSH}' xmpp:version='1.0'",
            c.inactivity.as_secs(),
            c.polling.as_secs(),
            c.wait.as_secs(),
            c.max_pause.as_secs(),
            escape(sid),
            escape(&c.host),
        ));
    }
    s.push('>');
    s
}

/// A session-ending body with a BOSH error condition (`bad-request`,
/// `improper-addressing`, `item-not-found`, `policy-violation`, ...).
pub fn terminate(condition: &str) -> String {
    format!(
        "<body xmlns='{NS_BOSH}' type='terminate' xmlns:stream='{NS_STREAMS}' condition='{condition}'/>"
    )
}

/// Prosody answers an unknown `sid` with this body (no `xmlns:stream`).
pub fn unknown_sid() -> String {
    format!("<body xmlns='{NS_BOSH}' type='terminate' condition='item-not-found'/>")
}

/// The body that ends a session: plain, or carrying the stream error
/// (`condition='remote-stream-error'`, XEP-0206 §7) already serialised
/// with the `stream:` prefix.
pub fn closing(stream_error: Option<&str>) -> String {
    match stream_error {
        None => format!("<body xmlns='{NS_BOSH}' type='terminate' xmlns:stream='{NS_STREAMS}'/>"),
        Some(error) => format!(
            "<body xmlns='{NS_BOSH}' type='terminate' xmlns:stream='{NS_STREAMS}' condition='remote-stream-error'>{error}</body>"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fragment::parse_element;
    use xmpp_core::stream::StreamLimits;

    fn body(xml: &str) -> Element {
        parse_element(xml.as_bytes(), &StreamLimits::default()).unwrap()
    }

    #[test]
    fn request_attributes() {
        let b = body(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='4711' to='localhost' wait='60' hold='1' ver='1.6' xml:lang='de' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>",
        );
        let a = BodyAttrs::from_element(&b).unwrap();
        assert_eq!(a.rid, Some(4711));
        assert_eq!(a.to.as_deref(), Some("localhost"));
        assert_eq!(a.wait.as_deref(), Some("60"));
        assert_eq!(a.lang.as_deref(), Some("de"));
        assert!(a.sid.is_none() && !a.restart && !a.terminate);
        let b = body(
            "<body xmlns='http://jabber.org/protocol/httpbind' sid='s' rid='x' type='terminate' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh' pause='30'/>",
        );
        let a = BodyAttrs::from_element(&b).unwrap();
        assert_eq!(
            (a.rid, a.terminate, a.restart, a.pause),
            (None, true, true, Some(30))
        );
        assert!(BodyAttrs::from_element(&body("<body/>")).is_none());
    }

    #[test]
    fn sid_of_a_broken_body() {
        let ns = "xmlns='http://jabber.org/protocol/httpbind'";
        let a = sniff_attrs(
            format!("<body {ns} sid='abc' rid='2'><message><body>x</message></body>").as_bytes(),
        )
        .unwrap();
        assert_eq!((a.sid.as_deref(), a.rid), (Some("abc"), Some(2)));
        let sid = |d: &[u8]| sniff_attrs(d).and_then(|a| a.sid);
        assert_eq!(
            sid(format!("<?xml version='1.0'?><body {ns} sid='s'/>").as_bytes()).as_deref(),
            Some("s")
        );
        assert_eq!(sid(b"<body sid='abc'>"), None, "not httpbind");
        assert_eq!(sid(format!("<body {ns} sid='abc").as_bytes()), None);
    }

    #[test]
    fn children_become_client_stanzas() {
        let b = body(
            "<body xmlns='http://jabber.org/protocol/httpbind' xml:lang='fr'><message to='a@b'><body>hi</body></message><iq xmlns='jabber:client' type='get' xml:lang='de'/></body>",
        );
        let s = stanzas(b, Some("fr"));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].ns(), NS_CLIENT);
        assert_eq!(
            s[0].get_child_text("body", NS_CLIENT).as_deref(),
            Some("hi")
        );
        assert_eq!(s[0].get_attr("xml:lang"), Some("fr"));
        assert_eq!(s[1].get_attr("xml:lang"), Some("de"));
    }

    #[test]
    fn response_bodies_parse() {
        let c = Creation {
            host: "localhost".into(),
            wait: Duration::from_secs(60),
            inactivity: Duration::from_secs(60),
            polling: Duration::from_secs(5),
            max_pause: Duration::from_secs(300),
        };
        for xml in [
            format!("{}</body>", open_tag("abc", false, Some(&c))),
            format!("{}<stream:features/></body>", open_tag("abc", true, None)),
            terminate("item-not-found"),
            unknown_sid(),
            closing(None),
            closing(Some(
                "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            )),
        ] {
            let e = body(&xml);
            assert_eq!((e.name(), e.ns()), ("body", NS_BOSH), "{xml}");
        }
        let e = body(&format!("{}</body>", open_tag("abc", false, Some(&c))));
        assert_eq!(e.get_attr("requests"), Some("2"));
        assert_eq!(e.get_attr("hold"), Some("1"));
        assert_eq!(e.get_attr(&format!("{{{NS_XBOSH}}}version")), Some("1.0"));
    }
}
