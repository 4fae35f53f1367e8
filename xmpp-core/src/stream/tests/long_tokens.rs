//! Tokens longer than the everyday parser takes: the unit is read again by
//! a big parser, and the stream goes back to a small one after it.

use super::*;
use crate::stanza::NS_SASL;

/// A stream whose stanzas hold tokens of every size around the small
/// parser's limit, entity and character references among them.
fn long_token_stream(header: &str) -> Vec<u8> {
    let mut body = String::new();
    for n in [
        SMALL_TOKEN - 1,
        SMALL_TOKEN,
        SMALL_TOKEN + 1,
        3 * SMALL_TOKEN,
        20_000,
    ] {
        let value = "v".repeat(n);
        body.push_str(&format!(
            "<message id='m{n}' data='{value}'><body>a &amp; b</body></message>\n"
        ));
        body.push_str(&format!("<iq id='i{n}' x='&lt;{value}&#x263A;'/>"));
        let name = "n".repeat(n);
        body.push_str(&format!("<presence><{name} xmlns='urn:x'/></presence>  "));
    }
    body.push_str("<message id='last'><body>short</body></message></stream:stream>");
    format!("{header}{body}").into_bytes()
}

fn limits() -> StreamLimits {
    StreamLimits {
        max_stanza_size: 64 * 1024,
        ..StreamLimits::default()
    }
}

#[test]
fn long_tokens_parse_however_the_bytes_are_split() {
    let input = long_token_stream(C2S_HEADER);
    let (whole, r) = parse_with(&limits(), &input);
    r.unwrap();
    assert_eq!(stanzas(&whole).len(), 16);
    assert_eq!(whole.last(), Some(&StreamEvent::Close));
    let data = stanzas(&whole)[6].get_attr("data").unwrap();
    assert_eq!(data.len(), SMALL_TOKEN + 1);
    let x = stanzas(&whole)[13].get_attr("x").unwrap();
    assert_eq!(x, format!("<{}\u{263A}", "v".repeat(20_000)));
    assert!(stanzas(&whole)[14].children().count() == 1);
    for n in [1, 7, 100, SMALL_TOKEN - 1, SMALL_TOKEN + 3, 4096] {
        let (events, r) = parse_chunked(&limits(), &input, n);
        r.unwrap();
        assert_eq!(events, whole, "in pieces of {n}");
    }
}

#[test]
fn the_parser_is_small_again_after_a_long_token() {
    let mut s = XmlStream::new(limits());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    assert!(!s.big);
    let long = format!("<message a='{}'>", "v".repeat(2000));
    s.feed(long.as_bytes(), &mut out).unwrap();
    assert!(s.big);
    assert!(!s.pending.is_empty(), "the unshown unit is kept");
    s.feed(b"<body>x</body></message>", &mut out).unwrap();
    assert!(!s.big);
    assert_eq!(s.pending.capacity(), 0);
    // Keepalives between stanzas are not kept.
    s.feed(b" \n ", &mut out).unwrap();
    assert_eq!(s.pending.capacity(), 0);
    s.feed(b"<presence/>", &mut out).unwrap();
    assert_eq!(stanzas(&out).len(), 2);
    assert_eq!(stanzas(&out)[0].get_attr("a").unwrap().len(), 2000);
}

#[test]
fn long_tokens_in_the_header_and_other_prefixes() {
    let id = "i".repeat(3000);
    let header = format!(
        "<?xml version='1.0'?><s:stream xmlns='jabber:client' \
         xmlns:s='http://etherx.jabber.org/streams' xmlns:p='urn:p' id='{id}' version='1.0'>"
    );
    let mut input = header.clone().into_bytes();
    input.extend_from_slice(b"<p:x/><message><p:y a='1'/></message></s:stream>");
    for n in [1, 13, input.len()] {
        let (events, r) = parse_chunked(&limits(), &input, n);
        r.unwrap();
        let StreamEvent::Open(h) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(h.id.as_deref(), Some(id.as_str()));
        assert!(stanzas(&events)[0].is("x", "urn:p"));
        assert_eq!(events.last(), Some(&StreamEvent::Close));
    }
    // The same stream with a long token in a stanza: the re-read starts
    // from a header the small parser cannot take, so the big one stays.
    let mut input = header.into_bytes();
    input.extend_from_slice(format!("<p:x a='{id}'/><p:x/></s:stream>").as_bytes());
    let (events, r) = parse_chunked(&limits(), &input, 100);
    r.unwrap();
    assert_eq!(stanzas(&events).len(), 2);
}

#[test]
fn long_tokens_still_meet_the_limits_and_errors() {
    // Longer than the stanza limit: policy-violation, as before.
    let small = StreamLimits {
        max_stanza_size: 4000,
        ..StreamLimits::default()
    };
    let input = with_header(&format!("<message a='{}'/>", "v".repeat(5000)));
    assert_eq!(
        condition(parse_with(&small, &input).1),
        StreamErrorCondition::PolicyViolation
    );
    assert_eq!(
        condition(parse_chunked(&small, &input, 600).1),
        StreamErrorCondition::PolicyViolation
    );
    // A real error after a long token is reported once the big parser
    // sees it too.
    let input = with_header(&format!("<message a='{}' a='x'/>", "v".repeat(2000)));
    assert_eq!(
        condition(parse_chunked(&limits(), &input, 50).1),
        StreamErrorCondition::NotWellFormed
    );
    let input = with_header(&format!(
        "<message a='{}'>&bogus;</message>",
        "v".repeat(900)
    ));
    assert_eq!(
        condition(parse_with(&limits(), &input).1),
        StreamErrorCondition::RestrictedXml
    );
    // Stanzas before the failing one were given.
    let input = with_header(&format!("<presence/><message a='{}' <", "v".repeat(900)));
    let (events, r) = parse_with(&limits(), &input);
    assert_eq!(condition(r), StreamErrorCondition::NotWellFormed);
    assert_eq!(stanzas(&events).len(), 1);
}

#[test]
fn feed_until_after_a_long_token() {
    let mut input = with_header(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{}'>AA==</auth>",
        "M".repeat(1000)
    ));
    let cut = input.len();
    input.extend_from_slice(C2S_HEADER.as_bytes());
    let mut s = XmlStream::new(limits());
    let mut out = Vec::new();
    let mut used = 0;
    for piece in input[..cut].chunks(300) {
        used += s
            .feed_until(piece, &mut out, |e| e.is("auth", NS_SASL))
            .unwrap();
    }
    assert_eq!(used, cut);
    assert!(stanzas(&out)[0].is("auth", NS_SASL));
}

#[test]
fn a_parked_stream_reads_on_as_before() {
    let input = long_token_stream(C2S_HEADER);
    let (whole, r) = parse_with(&limits(), &input);
    r.unwrap();
    for n in [1, 50, 700] {
        let mut s = XmlStream::new(limits());
        let mut out = Vec::new();
        for piece in input.chunks(n) {
            s.feed(piece, &mut out).unwrap();
            let between = s.is_open() && s.stack.is_empty() && s.pending.is_empty() && !s.big;
            s.park();
            assert_eq!(s.parser.is_none(), between, "parked only between stanzas");
        }
        assert_eq!(out, whole, "in pieces of {n}, parked whenever possible");
    }
    // The stream's xml:lang and a prefixed root survive parking.
    let header = "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' \
        xml:lang='de' version='1.0'>";
    let mut s = XmlStream::new(limits());
    let mut out = Vec::new();
    s.feed(header.as_bytes(), &mut out).unwrap();
    s.park();
    assert!(s.parser.is_none());
    s.feed(b"<message/>", &mut out).unwrap();
    s.park();
    s.feed(b"</s:stream>", &mut out).unwrap();
    assert_eq!(stanzas(&out)[0].get_attr("xml:lang"), Some("de"));
    assert_eq!(out.last(), Some(&StreamEvent::Close));
}

#[test]
#[ignore = "a timing figure: cargo test --release -- --ignored priming_cost"]
fn priming_cost() {
    let root = C2S_HEADER.as_bytes();
    let n = 200_000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(primed_parser(SMALL_TOKEN, root));
    }
    let per = t.elapsed() / n;
    let mut s = XmlStream::new(limits());
    let mut out = Vec::new();
    s.feed(C2S_HEADER.as_bytes(), &mut out).unwrap();
    let msg = b"<message to='a@localhost/r' id='x1' type='chat'><body>hello there, how are you</body></message>";
    let t = std::time::Instant::now();
    for _ in 0..n {
        s.feed(msg, &mut out).unwrap();
        out.clear();
    }
    eprintln!("priming {per:?}, one message {:?}", t.elapsed() / n);
}
