//! Bytes in, events and errors out.

mod fuzz;
mod hostile;
mod long_tokens;
mod restart;

use super::*;
use crate::error::StreamErrorCondition;
use crate::stanza::{NS_CLIENT, NS_SERVER};

const C2S_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='fr'>";

/// Feeds `data` in one go; returns the events and the result.
fn parse_with(limits: &StreamLimits, data: &[u8]) -> (Vec<StreamEvent>, Result<(), StreamError>) {
    let mut s = XmlStream::new(limits.clone());
    let mut out = Vec::new();
    let r = s.feed(data, &mut out);
    (out, r)
}

fn parse(data: &[u8]) -> (Vec<StreamEvent>, Result<(), StreamError>) {
    parse_with(&StreamLimits::default(), data)
}

/// Feeds `data` in pieces of `n` bytes, stopping at the first error.
fn parse_chunked(
    limits: &StreamLimits,
    data: &[u8],
    n: usize,
) -> (Vec<StreamEvent>, Result<(), StreamError>) {
    let mut s = XmlStream::new(limits.clone());
    let mut out = Vec::new();
    for piece in data.chunks(n) {
        if let Err(e) = s.feed(piece, &mut out) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

fn condition(r: Result<(), StreamError>) -> StreamErrorCondition {
    r.expect_err("expected a stream error").condition
}

fn stanzas(events: &[StreamEvent]) -> Vec<&Element> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Stanza(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn with_header(body: &str) -> Vec<u8> {
    format!("{C2S_HEADER}{body}").into_bytes()
}

/// A client's side of a whole negotiation, for splitting tests.
fn transcript() -> Vec<u8> {
    with_header(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
         <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth> \
         <iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r\u{e9}sum\u{e9} \u{1F600}</resource></bind></iq>\
         <message to='x@y' xml:lang='en'><body><![CDATA[<not a tag> & ]]>&apos;&quot;</body>\
         <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='a:b'>hi<br/>there</p></body></html></message>\
         \n\n<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>\
         </stream:stream>",
    )
}

#[test]
fn parses_header_stanzas_and_close() {
    let input = with_header(
        "<message to='a@b' type='chat' id='m1'><body>x &lt; y &amp; &#x263A; &#65;</body>\
         <x xmlns='urn:x' xmlns:p='urn:p' p:k='v' xml:lang='de'><y/>text</x></message>\
         <stream:features/>\
         </stream:stream>",
    );
    let (events, r) = parse(&input);
    r.unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    let StreamEvent::Open(h) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(h.ns, NS_CLIENT);
    assert_eq!(h.to.as_deref(), Some("example.com"));
    assert_eq!(h.from, None);
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("fr"));
    assert_eq!(h.id, None);
    assert_eq!(h.attrs.len(), 3, "{:?}", h.attrs);

    let m = stanzas(&events)[0];
    assert!(m.is("message", NS_CLIENT));
    assert_eq!(m.to(), Some("a@b"));
    assert_eq!(m.type_(), Some("chat"));
    assert_eq!(
        m.get_attr("xml:lang"),
        Some("fr"),
        "stream lang given to the stanza"
    );
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some("x < y & \u{263A} A")
    );
    let x = m.get_child("x", "urn:x").expect("x");
    assert_eq!(x.get_attr("{urn:p}k"), Some("v"));
    assert_eq!(x.get_attr("xml:lang"), Some("de"));
    assert!(x.get_child("y", "urn:x").is_some());
    assert_eq!(x.text_content(), "text");

    let f = stanzas(&events)[1];
    assert!(f.is("features", NS_STREAMS));
    assert_eq!(events[3], StreamEvent::Close);
}

#[test]
fn stanza_keeps_its_own_lang_and_default_is_en() {
    let input = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
        <presence xml:lang='it'/><presence/>";
    let (events, r) = parse(input.as_bytes());
    r.unwrap();
    let s = stanzas(&events);
    assert_eq!(s[0].get_attr("xml:lang"), Some("it"));
    assert_eq!(s[1].get_attr("xml:lang"), Some("en"));
}

#[test]
fn server_header_with_dialback_and_prefixed_default() {
    let input = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server' \
        xmlns:db='jabber:server:dialback' from='a.example' to='b.example' id='s1' version='1.0'>\
        <db:result from='a.example' to='b.example'>key</db:result>";
    let (events, r) = parse(input.as_bytes());
    r.unwrap();
    let StreamEvent::Open(h) = &events[0] else {
        panic!()
    };
    assert_eq!(h.ns, NS_SERVER);
    assert_eq!(h.id.as_deref(), Some("s1"));
    assert_eq!(h.from.as_deref(), Some("a.example"));
    assert!(h.attrs.iter().all(|(k, _)| !k.starts_with("xmlns")));
    let r = stanzas(&events)[0];
    assert!(r.is("result", "jabber:server:dialback"));
    assert_eq!(r.text_content(), "key");
}

#[test]
fn header_without_default_namespace() {
    let (events, r) =
        parse(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq/>");
    r.unwrap();
    let StreamEvent::Open(h) = &events[0] else {
        panic!()
    };
    assert_eq!(h.ns, "");
    assert!(stanzas(&events)[0].is("iq", ""));
}

#[test]
fn whitespace_keepalives_are_ignored() {
    let input = with_header(" \n <presence/>\t \r\n <presence/>   ");
    let (events, r) = parse_chunked(&StreamLimits::default(), &input, 7);
    r.unwrap();
    assert_eq!(events.len(), 3);
    // Far more keepalives than the size limit allows in one stanza.
    let limits = StreamLimits {
        max_stanza_size: 100,
        ..StreamLimits::default()
    };
    let mut s = XmlStream::new(limits.clone());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap_err(); // header alone is over 100 bytes
    let mut s = XmlStream::new(StreamLimits {
        max_stanza_size: 300,
        ..StreamLimits::default()
    });
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    for _ in 0..10_000 {
        s.feed(b" ", &mut out).unwrap();
    }
    s.feed(b"<presence/>", &mut out).unwrap();
    assert!(matches!(out.last(), Some(StreamEvent::Stanza(_))));
    // And in one read.
    s.feed(&vec![b' '; 1 << 20], &mut out).unwrap();
    s.feed(b"<presence/>", &mut out).unwrap();
    assert_eq!(stanzas(&out).len(), 2);
}

#[test]
fn text_outside_stanzas_is_ignored_as_prosody_does() {
    let (events, r) = parse(&with_header("junk<presence/>"));
    r.unwrap();
    assert_eq!(stanzas(&events).len(), 1);
}
