//! Hostile input: limits, restricted XML, bad encodings, bad streams.

use super::*;

#[test]
fn oversized_stanza_is_a_policy_violation() {
    let limits = StreamLimits {
        max_stanza_size: 1000,
        ..StreamLimits::default()
    };
    let big = "a".repeat(2000);
    let input = with_header(&format!("<message><body>{big}</body></message>"));
    let (events, r) = parse_with(&limits, &input);
    assert_eq!(events.len(), 1, "only the header");
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
    let (_, r) = parse_chunked(&limits, &input, 13);
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
}

#[test]
fn size_limit_stops_reading_at_the_limit() {
    let limits = StreamLimits {
        max_stanza_size: 1000,
        ..StreamLimits::default()
    };
    let mut s = XmlStream::new(limits.clone());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    let before = s.consumed;
    // One huge read: the parser is handed no more than the limit plus one.
    let mut flood = b"<message><body>".to_vec();
    flood.resize(10 << 20, b'a');
    let e = s.feed(&flood, &mut out).unwrap_err();
    assert_eq!(e.condition, StreamErrorCondition::PolicyViolation);
    assert!(
        s.consumed - before <= 1001,
        "parsed {} bytes",
        s.consumed - before
    );
    // The error sticks.
    assert_eq!(s.feed(b"<presence/>", &mut out).unwrap_err(), e);
}

#[test]
fn a_start_tag_that_never_ends_is_limited_too() {
    let limits = StreamLimits {
        max_stanza_size: 2000,
        ..StreamLimits::default()
    };
    let mut attrs = String::from("<message");
    for i in 0..1000 {
        attrs.push_str(&format!(" a{i}='x'"));
    }
    let (_, r) = parse_chunked(&limits, &with_header(&attrs), 64);
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
    // A single attribute value longer than the limit.
    let (_, r) = parse_with(
        &limits,
        &with_header(&format!("<message a='{}'", "v".repeat(5000))),
    );
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
}

#[test]
fn oversized_header_is_a_policy_violation() {
    let limits = StreamLimits {
        max_stanza_size: 500,
        ..StreamLimits::default()
    };
    let input = format!(
        "<stream:stream xmlns:stream='{NS_STREAMS}' junk='{}'>",
        "j".repeat(600)
    );
    let (events, r) = parse_with(&limits, input.as_bytes());
    assert!(events.is_empty());
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
}

#[test]
fn stanza_at_the_limit_passes_and_limit_applies_per_stanza() {
    let stanza = format!("<message><body>{}</body></message>", "b".repeat(100));
    let limits = StreamLimits {
        max_stanza_size: stanza.len(),
        ..StreamLimits::default()
    };
    let body = stanza.repeat(50);
    let mut s = XmlStream::new(StreamLimits {
        max_stanza_size: 1000,
        ..limits.clone()
    });
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    s.set_limits(limits);
    s.feed(body.as_bytes(), &mut out).unwrap();
    assert_eq!(stanzas(&out).len(), 50);
    let one_more = format!("<message><body>{}</body></message>", "b".repeat(101));
    assert_eq!(
        s.feed(one_more.as_bytes(), &mut out).unwrap_err().condition,
        StreamErrorCondition::PolicyViolation
    );
}

#[test]
fn deep_nesting_is_a_policy_violation() {
    let limits = StreamLimits {
        max_depth: 8,
        ..StreamLimits::default()
    };
    let ok = format!("<iq>{}{}</iq>", "<a>".repeat(7), "</a>".repeat(7));
    let (events, r) = parse_with(&limits, &with_header(&ok));
    r.unwrap();
    assert_eq!(stanzas(&events).len(), 1);
    let deep = format!("<iq>{}", "<a>".repeat(8));
    let (_, r) = parse_with(&limits, &with_header(&deep));
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
    // Default limits against a nesting bomb.
    let (_, r) = parse(&with_header(&"<a>".repeat(100_000)));
    assert_eq!(condition(r), StreamErrorCondition::PolicyViolation);
}

#[test]
fn dtd_is_restricted_xml() {
    let (_, r) = parse(b"<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]><stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(&with_header("<!DOCTYPE x>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(&with_header("<message><!ENTITY x 'y'></message>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
}

#[test]
fn comment_is_restricted_xml() {
    let (_, r) = parse(&with_header("<message><!-- hi --></message>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(b"<!-- before --><stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
}

#[test]
fn processing_instruction_is_restricted_xml() {
    let (_, r) = parse(&with_header("<message><?php echo 1; ?></message>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(&with_header("<?xml-stylesheet href='x'?>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
}

#[test]
fn undeclared_entity_is_restricted_xml() {
    let (_, r) = parse(&with_header("<message><body>&nbsp;</body></message>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(&with_header("<message a='&foo;'/>"));
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
}

#[test]
fn xml_declaration_restrictions() {
    let (_, r) = parse(b"<?xml version='1.1'?><stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(b"<?xml version='1.0' encoding='utf-8' standalone='no'?><stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::RestrictedXml);
    let (_, r) = parse(b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::UnsupportedEncoding);
    let (events, r) = parse(
        b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>\
          <stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    r.unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn invalid_utf8_is_unsupported_encoding() {
    let mut input = with_header("<message><body>");
    input.extend_from_slice(b"caf\xC3(\xFF</body></message>");
    let (_, r) = parse(&input);
    assert_eq!(condition(r), StreamErrorCondition::UnsupportedEncoding);
    let (_, r) = parse_chunked(&StreamLimits::default(), &input, 1);
    assert_eq!(condition(r), StreamErrorCondition::UnsupportedEncoding);
    // In an attribute value, and a UTF-16 stream.
    let mut input = with_header("<message to='");
    input.extend_from_slice(b"\xE2\x82'/>");
    let (_, r) = parse(&input);
    assert_eq!(condition(r), StreamErrorCondition::UnsupportedEncoding);
    let utf16: Vec<u8> = "\u{FEFF}<stream:stream>"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let (_, r) = parse(&utf16);
    assert_eq!(condition(r), StreamErrorCondition::UnsupportedEncoding);
}

#[test]
fn utf8_byte_order_mark_is_skipped() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    input.extend_from_slice(&with_header("<presence/>"));
    let (events, r) = parse_chunked(&StreamLimits::default(), &input, 1);
    r.unwrap();
    assert_eq!(events.len(), 2);
    let (_, r) = parse(b"\xEF\xBB<stream:stream>");
    assert_eq!(condition(r), StreamErrorCondition::NotWellFormed);
}

#[test]
fn bad_xml_is_not_well_formed() {
    for body in [
        "<message></presence>",
        "<message a='1' a='2'/>",
        "<message><x:y/></message>",
        "<message a=1/>",
        "<<",
        "<message>\u{1}</message>",
        "</stream:foo>",
    ] {
        let (_, r) = parse(&with_header(body));
        assert_eq!(condition(r), StreamErrorCondition::NotWellFormed, "{body}");
    }
    let (_, r) = parse(b"hello");
    assert_eq!(condition(r), StreamErrorCondition::NotWellFormed);
}

#[test]
fn bad_stream_namespace_is_invalid_namespace() {
    let (events, r) =
        parse(b"<stream:stream xmlns:stream='http://example.com/streams' xmlns='jabber:client'>");
    assert!(events.is_empty());
    assert_eq!(condition(r), StreamErrorCondition::InvalidNamespace);
    let (_, r) = parse(b"<stream xmlns='jabber:client'>");
    assert_eq!(condition(r), StreamErrorCondition::InvalidNamespace);
    let (_, r) = parse(b"<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>");
    assert_eq!(condition(r), StreamErrorCondition::InvalidNamespace);
    // An HTTP request on the XMPP port.
    let (_, r) = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(condition(r), StreamErrorCondition::NotWellFormed);
}

#[test]
fn eof_outcomes() {
    let mut s = XmlStream::new(StreamLimits::default());
    s.eof().unwrap();

    let mut out = Vec::new();
    let mut s = XmlStream::new(StreamLimits::default());
    s.feed(b"<stream:str", &mut out).unwrap();
    assert_eq!(
        s.eof().unwrap_err().condition,
        StreamErrorCondition::NotWellFormed
    );

    let mut s = XmlStream::new(StreamLimits::default());
    s.feed(&with_header("<presence/>"), &mut out).unwrap();
    let e = s.eof().unwrap_err();
    assert_eq!(e.condition, StreamErrorCondition::NotWellFormed);
    assert!(e.text.as_deref().unwrap_or("").contains("</stream:stream>"));

    let mut s = XmlStream::new(StreamLimits::default());
    s.feed(&with_header("<message><bo"), &mut out).unwrap();
    let e = s.eof().unwrap_err();
    assert!(e.text.as_deref().unwrap_or("").contains("inside a stanza"));

    let mut s = XmlStream::new(StreamLimits::default());
    s.feed(&with_header("<presence/></stream:stream>"), &mut out)
        .unwrap();
    s.eof().unwrap();
}

#[test]
fn bytes_after_close_are_ignored() {
    let mut s = XmlStream::new(StreamLimits::default());
    let mut out = Vec::new();
    let input = with_header("</stream:stream><garbage");
    let used = s.feed_until(&input, &mut out, |_| false).unwrap();
    assert_eq!(used, input.len() - "<garbage".len());
    assert_eq!(out.last(), Some(&StreamEvent::Close));
    s.feed(b"more garbage", &mut out).unwrap();
    assert!(!s.is_open());
}
