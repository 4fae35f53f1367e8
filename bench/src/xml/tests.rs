use super::*;

fn events(s: &mut Splitter) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(ev) = s.next_event().expect("well-formed") {
        out.push(match ev {
            Event::Open => "open".to_string(),
            Event::Close => "close".to_string(),
            Event::Element(r) => String::from_utf8_lossy(&s.bytes()[r]).into_owned(),
        });
    }
    out
}

const STREAM: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='x' from='localhost' version='1.0'>\
    <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features> \
    <message from='a@localhost/r' to='b@localhost' type='chat' id='m&apos;1'><body>t=42 &lt;hi&gt;</body></message>\
    <presence/><!-- note --><iq type='result' id='x>y'/></stream:stream>";

#[test]
fn splits_in_one_piece() {
    let mut s = Splitter::new();
    s.feed(STREAM.as_bytes());
    let got = events(&mut s);
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got[0], "open");
    assert!(got[1].starts_with("<stream:features>") && got[1].ends_with("</stream:features>"));
    assert!(got[2].starts_with("<message") && got[2].ends_with("</message>"));
    assert_eq!(got[3], "<presence/>");
    assert_eq!(got[4], "<iq type='result' id='x>y'/>");
    assert_eq!(got[5], "close");
}

#[test]
fn splits_byte_by_byte() {
    let mut s = Splitter::new();
    let mut got = Vec::new();
    for b in STREAM.as_bytes() {
        s.feed(std::slice::from_ref(b));
        got.extend(events(&mut s));
    }
    let mut whole = Splitter::new();
    whole.feed(STREAM.as_bytes());
    assert_eq!(got, events(&mut whole));
}

#[test]
fn inspects_elements() {
    let mut s = Splitter::new();
    s.feed(STREAM.as_bytes());
    let mut els = Vec::new();
    while let Some(ev) = s.next_event().expect("ok") {
        if let Event::Element(r) = ev {
            els.push(s.bytes()[r].to_vec());
        }
    }
    assert_eq!(name(&els[0]), b"features");
    assert_eq!(
        children_text(&els[0], "mechanism"),
        vec![&b"SCRAM-SHA-1"[..], &b"PLAIN"[..]]
    );
    assert!(has_child(&els[0], "mechanisms"));
    assert!(!has_child(&els[0], "bind"));
    assert_eq!(name(&els[1]), b"message");
    assert_eq!(attr(&els[1], "type"), Some(&b"chat"[..]));
    assert_eq!(unescape(attr(&els[1], "id").expect("id")), "m'1");
    assert_eq!(attr(&els[1], "nothere"), None);
    assert_eq!(
        unescape(child_text(&els[1], "body").expect("body")),
        "t=42 <hi>"
    );
    assert_eq!(name(&els[2]), b"presence");
    assert_eq!(attr(&els[3], "id"), Some(&b"x>y"[..]));
}

#[test]
fn restart_after_reset() {
    let mut s = Splitter::new();
    s.feed(b"<stream:stream><a/>");
    assert_eq!(events(&mut s), vec!["open", "<a/>"]);
    s.reset();
    s.feed(b"<stream:stream version='1.0'><b>x</b>");
    assert_eq!(events(&mut s), vec!["open", "<b>x</b>"]);
}

#[test]
fn rejects_stray_end_tag() {
    let mut s = Splitter::new();
    s.feed(b"</oops>");
    assert!(s.next_event().is_err());
}

#[test]
fn escapes() {
    assert_eq!(escape("a<'&\">"), "a&lt;&apos;&amp;&quot;&gt;");
    assert_eq!(unescape(b"&#65;&#x42;&bogus;"), "AB&bogus;");
}
