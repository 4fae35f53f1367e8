//! Split input, stream restarts, and the header we write.

use super::*;
use crate::stanza::{NS_CLIENT, NS_SASL, NS_TLS, Node};

#[test]
fn byte_at_a_time_equals_one_feed() {
    let input = transcript();
    let (whole, r) = parse(&input);
    r.unwrap();
    assert_eq!(whole.len(), 7, "{whole:#?}");
    for n in [1, 2, 3, 5, 17, 64, 1000] {
        let (pieces, r) = parse_chunked(&StreamLimits::default(), &input, n);
        r.unwrap();
        assert_eq!(pieces, whole, "chunks of {n}");
    }
    let msg = stanzas(&whole)[3];
    assert_eq!(
        msg.get_child_text("body", NS_CLIENT).as_deref(),
        Some("<not a tag> & '\"")
    );
    let p = msg
        .get_child("html", "http://jabber.org/protocol/xhtml-im")
        .and_then(|h| h.get_child("body", "http://www.w3.org/1999/xhtml"))
        .and_then(|b| b.get_child("p", "http://www.w3.org/1999/xhtml"))
        .expect("p");
    assert_eq!(p.nodes().len(), 3);
    assert!(matches!(&p.nodes()[0], Node::Text(t) if t == "hi"));
}

#[test]
fn stanza_split_across_feeds() {
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    s.feed(b"<message to='a@b'><bo", &mut out).unwrap();
    assert_eq!(out.len(), 1);
    s.feed(b"dy>caf\xC3", &mut out).unwrap(); // split inside a UTF-8 sequence
    s.feed(b"\xA9</body></mess", &mut out).unwrap();
    assert_eq!(out.len(), 1);
    s.feed(b"age><presence/>", &mut out).unwrap();
    let st = stanzas(&out);
    assert_eq!(st.len(), 2);
    assert_eq!(
        st[0].get_child_text("body", NS_CLIENT).as_deref(),
        Some("caf\u{e9}")
    );
}

#[test]
fn reset_after_sasl_success() {
    // The client's view: the server's stream, restarted after <success/>.
    let server_first = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
        xmlns='jabber:client' id='s1' from='example.com' version='1.0'>\
        <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>\
        <success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    s.feed(server_first.as_bytes(), &mut out).unwrap();
    assert!(matches!(out.last(), Some(StreamEvent::Stanza(e)) if e.is("success", NS_SASL)));
    s.reset();
    out.clear();
    let server_second = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
        xmlns='jabber:client' id='s2' from='example.com' version='1.0'><stream:features/>";
    s.feed(server_second.as_bytes(), &mut out).unwrap();
    let StreamEvent::Open(h) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(h.id.as_deref(), Some("s2"));
    assert!(matches!(&out[1], StreamEvent::Stanza(e) if e.is("features", NS_STREAMS)));
}

#[test]
fn feed_until_keeps_the_bytes_after_a_restart_point() {
    // A client pipelining its new header right behind <auth/>.
    let first =
        with_header("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AA==</auth>");
    let second = C2S_HEADER.replace("xml:lang='fr'", "");
    let mut input = first.clone();
    input.extend_from_slice(second.as_bytes());
    input.extend_from_slice(b"<iq type='get' id='1'/>");
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    let used = s
        .feed_until(&input, &mut out, |e| e.is("auth", NS_SASL))
        .unwrap();
    assert_eq!(used, first.len());
    assert_eq!(out.len(), 2);
    s.reset();
    out.clear();
    s.feed(&input[used..], &mut out).unwrap();
    assert!(matches!(&out[0], StreamEvent::Open(_)));
    let iq = stanzas(&out)[0];
    assert!(iq.is("iq", NS_CLIENT));
    // The first header's xml:lang is kept across the restart, as Prosody does.
    assert_eq!(iq.get_attr("xml:lang"), Some("fr"));

    // STARTTLS: what follows is not XML at all and must not be parsed.
    let mut input = with_header("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    let cut = input.len();
    input.extend_from_slice(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    let used = s
        .feed_until(&input, &mut out, |e| e.is("starttls", NS_TLS))
        .unwrap();
    assert_eq!(used, cut);
}

#[test]
fn stream_header_is_written_as_prosody_does() {
    let h = StreamHeader {
        ns: NS_CLIENT.to_string(),
        to: Some("juliet@example.com".into()),
        from: Some("example.com".into()),
        version: Some("1.0".into()),
        lang: None,
        id: Some("a'b".into()),
        attrs: vec![
            ("xmlns:db".into(), "jabber:server:dialback".into()),
            ("to".into(), "dup".into()),
        ],
    };
    assert_eq!(
        stream_header(&h),
        "<?xml version='1.0'?><stream:stream from='example.com' \
         xmlns:stream='http://etherx.jabber.org/streams' id='a&apos;b' to='juliet@example.com' \
         version='1.0' xmlns='jabber:client' xml:lang='en' xmlns:db='jabber:server:dialback'>"
    );
    // What we write, we parse back.
    let mut bytes = stream_header(&h).into_bytes();
    bytes.extend_from_slice(STREAM_CLOSE.as_bytes());
    let (events, r) = parse(&bytes);
    r.unwrap();
    let StreamEvent::Open(back) = &events[0] else {
        panic!()
    };
    assert_eq!(
        (back.ns.as_str(), back.id.as_deref(), back.to.as_deref()),
        (NS_CLIENT, Some("a'b"), h.to.as_deref())
    );
    assert_eq!(events[1], StreamEvent::Close);
    let bare = stream_header(&StreamHeader {
        version: None,
        ..StreamHeader::default()
    });
    assert_eq!(
        bare,
        format!(
            "<?xml version='1.0'?><stream:stream xmlns:stream='{NS_STREAMS}' id='' xml:lang='en'>"
        )
    );
}

#[test]
fn whitespace_before_a_restarted_header_is_accepted() {
    // A client sending a newline after </auth> (or after the TLS handshake)
    // before its new header, as RFC 6120 allows and Prosody accepts: in the
    // same read as the header, in a read of its own, and byte by byte.
    let header = C2S_HEADER.replace("xml:lang='fr'", "");
    for lead in ["\n", "\r\n", " \t\n  ", "\n\n\n"] {
        let mut input = lead.as_bytes().to_vec();
        input.extend_from_slice(header.as_bytes());
        input.extend_from_slice(b"<iq type='get' id='1'/>");
        for n in [1, lead.len(), input.len()] {
            let mut s = XmlStream::new(StreamLimits::default());
            let mut out = Vec::new();
            s.feed(
                &with_header("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
                &mut out,
            )
            .unwrap();
            s.reset();
            out.clear();
            for piece in input.chunks(n) {
                s.feed(piece, &mut out).unwrap();
            }
            assert!(matches!(&out[0], StreamEvent::Open(_)), "{lead:?} {n}");
            assert!(stanzas(&out)[0].is("iq", NS_CLIENT), "{lead:?} {n}");
        }
    }
    // Before a first header too, with or without a byte order mark after it.
    let mut input = b"\n".to_vec();
    input.extend_from_slice(BOM);
    input.extend_from_slice(header.as_bytes());
    let (events, r) = parse(&input);
    r.unwrap();
    assert!(matches!(&events[0], StreamEvent::Open(_)));
    // Text other than whitespace is still refused.
    let mut input = b"\nx".to_vec();
    input.extend_from_slice(header.as_bytes());
    let (_, r) = parse(&input);
    assert_eq!(condition(r), StreamErrorCondition::NotWellFormed);
}
