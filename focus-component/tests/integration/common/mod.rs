//! A harness driving the sans-IO `Focus` with stanzas and virtual time, as
//! the server and its peers (clients, bridges) would.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use focus_component::{Focus, FocusOptions};
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

pub const DOMAIN: &str = "example.com";
pub const FOCUS_JID: &str = "focus@auth.example.com/focus1";
pub const ROOM: &str = "room1@conference.example.com";
pub const BREWERY: &str = "jvbbrewery@internal.auth.example.com";

pub const JSON_FEATURES: &[&str] = &[
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:apps:rtp:video",
    "urn:ietf:rfc:4588",
    "http://jitsi.org/json-encoded-sources",
    "http://jitsi.org/tcc",
    "http://jitsi.org/remb",
];

pub const PLAIN_FEATURES: &[&str] = &[
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:apps:rtp:video",
    "urn:ietf:rfc:4588",
    "http://jitsi.org/tcc",
];

pub fn el(xml: &str) -> Element {
    let mut e = parse_element(xml).unwrap_or_else(|e| panic!("bad test XML {xml}: {e:?}"));
    // The stream's default language is not part of the stanza written here.
    e.set_attr("xml:lang", None);
    e
}

pub struct Harness {
    pub focus: Focus,
    pub now: Instant,
    /// Everything the focus sent and the test has not taken yet.
    pub out: Vec<Element>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_options(|_| {})
    }

    pub fn with_options(tweak: impl FnOnce(&mut FocusOptions)) -> Harness {
        let mut options = FocusOptions::new(FOCUS_JID, DOMAIN);
        tweak(&mut options);
        let now = Instant::now();
        let mut h = Harness {
            focus: Focus::new(options, now),
            now,
            out: Vec::new(),
        };
        h.drain();
        h
    }

    fn drain(&mut self) {
        while let Some(s) = self.focus.poll_output() {
            self.out.push(s);
        }
    }

    /// Feeds one stanza; returns what the focus sent in answer.
    pub fn feed(&mut self, xml: &str) -> Vec<Element> {
        self.feed_el(el(xml))
    }

    pub fn feed_el(&mut self, stanza: Element) -> Vec<Element> {
        let before = self.out.len();
        self.focus.handle_stanza(self.now, stanza);
        self.drain();
        self.out[before..].to_vec()
    }

    /// Advances virtual time, running the focus's timers on the way.
    pub fn advance(&mut self, by: Duration) -> Vec<Element> {
        let before = self.out.len();
        let end = self.now + by;
        loop {
            match self.focus.next_timeout() {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    self.focus.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = end;
        self.focus.handle_timeout(self.now);
        self.drain();
        self.out[before..].to_vec()
    }

    /// The last stanza sent matching `pred`.
    pub fn last(&self, pred: impl Fn(&Element) -> bool) -> Option<Element> {
        self.out.iter().rev().find(|e| pred(e)).cloned()
    }

    /// A bridge in the brewery with these stats.
    pub fn bridge(&mut self, nick: &str, stats: &[(&str, &str)]) -> Vec<Element> {
        let stats: String = stats
            .iter()
            .map(|(n, v)| format!("<stat name='{n}' value='{v}'/>"))
            .collect();
        self.feed(&format!(
            "<presence from='{BREWERY}/{nick}' to='{FOCUS_JID}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='jvb@auth.example.com/{nick}'/></x>\
             <stats xmlns='http://jitsi.org/protocol/colibri'>{stats}</stats></presence>"
        ))
    }

    /// A conference IQ through client_proxy, then the focus's self-presence:
    /// returns the focus's answer to the IQ.
    pub fn open_conference(&mut self, room: &str) -> Element {
        self.feed(&format!(
            "<iq type='set' id='conf1' from='focus.{DOMAIN}/user@{DOMAIN}/res' to='{FOCUS_JID}'>\
             <conference xmlns='http://jitsi.org/protocol/focus' room='{room}' machine-uid='m1'/></iq>"
        ));
        let out = self.feed(&format!(
            "<presence from='{room}/focus' to='{FOCUS_JID}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='owner' role='moderator' jid='{FOCUS_JID}'/>\
             <status code='110'/></x></presence>"
        ));
        out.into_iter()
            .find(|e| e.id() == Some("conf1"))
            .expect("the conference IQ answered once the room is joined")
    }

    /// A participant joins and answers disco with `features`; returns the
    /// Colibri2 allocation request the focus sends for it.
    pub fn join(&mut self, nick: &str, features: &[&str]) -> Element {
        let out = self.feed(&format!(
            "<presence from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
             <x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant' jid='{nick}@guest.{DOMAIN}/r'/></x>\
             <stats-id>Stats-{nick}</stats-id></presence>"
        ));
        let disco = out
            .iter()
            .find(|e| {
                e.get_child("query", "http://jabber.org/protocol/disco#info")
                    .is_some()
            })
            .expect("disco#info to the participant")
            .clone();
        let feats: String = features
            .iter()
            .map(|f| format!("<feature var='{f}'/>"))
            .collect();
        let out = self.feed(&format!(
            "<iq type='result' id='{}' from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
             <query xmlns='http://jabber.org/protocol/disco#info'>{feats}</query></iq>",
            disco.id().unwrap()
        ));
        out.into_iter()
            .find(|e| e.get_child("conference-modify", "jitsi:colibri2").is_some())
            .expect("a Colibri2 allocation for the participant")
    }

    /// The bridge answers an allocation (endpoints from the request) with a
    /// transport each and its feedback sources; returns what follows.
    pub fn answer_allocation(&mut self, request: &Element) -> Vec<Element> {
        let to = request.to().unwrap().to_string();
        let cm = request
            .get_child("conference-modify", "jitsi:colibri2")
            .unwrap();
        let endpoints: String = cm
            .children()
            .filter(|c| c.name() == "endpoint")
            .map(|e| {
                let id = e.get_attr("id").unwrap();
                format!(
                    "<endpoint id='{id}'><transport>{}</transport></endpoint>",
                    bridge_transport(&to, id)
                )
            })
            .collect();
        self.feed(&format!(
            "<iq type='result' id='{}' from='{to}' to='{FOCUS_JID}'>\
             <conference-modified xmlns='jitsi:colibri2' meeting-id='{}'>{endpoints}\
             <sources><media-source type='audio' id='jvb-a0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='411' name='jvb-a0'/></media-source>\
             <media-source type='video' id='jvb-v0'><source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='422' name='jvb-v0'/></media-source></sources>\
             </conference-modified></iq>",
            request.id().unwrap(),
            cm.get_attr("meeting-id").unwrap()
        ))
    }

    /// The participant accepts its session with these `<source>`s (audio,
    /// video description children).
    pub fn accept(&mut self, nick: &str, sid: &str, audio: &str, video: &str) -> Vec<Element> {
        self.feed(&format!(
            "<iq type='set' id='acc-{nick}' from='{ROOM}/{nick}' to='{FOCUS_JID}'>\
             <jingle xmlns='urn:xmpp:jingle:1' action='session-accept' sid='{sid}' responder='{nick}@guest.{DOMAIN}/r'>\
             <content creator='initiator' name='audio' senders='both'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'>{audio}</description>{}</content>\
             <content creator='initiator' name='video' senders='both'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'>{video}</description>{}</content>\
             </jingle></iq>",
            client_transport(nick),
            client_transport(nick)
        ))
    }
}

pub fn bridge_transport(bridge: &str, endpoint: &str) -> String {
    let relay = bridge.rsplit('/').next().unwrap_or("jvb");
    format!(
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='u-{relay}' pwd='p-{relay}'>\
         <rtcp-mux/>\
         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='actpass'>AA:BB:CC</fingerprint>\
         <candidate component='1' foundation='1' generation='0' id='c1' ip='127.0.0.1' network='0' port='10000' priority='2130706431' protocol='udp' type='host'/>\
         <web-socket xmlns='http://jitsi.org/protocol/colibri' url='wss://example.com/colibri-ws/{relay}/m/{endpoint}?pwd=x'/>\
         </transport>"
    )
}

pub fn client_transport(nick: &str) -> String {
    format!(
        "<transport xmlns='urn:xmpp:jingle:transports:ice-udp:1' ufrag='cu-{nick}' pwd='cp-{nick}'>\
         <fingerprint xmlns='urn:xmpp:jingle:apps:dtls:0' hash='sha-256' setup='active'>DD:EE</fingerprint></transport>"
    )
}

/// `<source>` lines as a 2021 client sends them (no name, msid parameter).
pub fn src(ssrc: u32, msid: &str) -> String {
    format!(
        "<source xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' ssrc='{ssrc}'><parameter name='msid' value='{msid}'/></source>"
    )
}

pub fn fid(a: u32, b: u32) -> String {
    format!(
        "<ssrc-group xmlns='urn:xmpp:jingle:apps:rtp:ssma:0' semantics='FID'>\
         <source ssrc='{a}'/><source ssrc='{b}'/></ssrc-group>"
    )
}

/// The sid of the session-initiate sent to `nick`.
pub fn offer_to(out: &[Element], nick: &str) -> Option<Element> {
    out.iter()
        .find(|e| {
            e.to() == Some(&format!("{ROOM}/{nick}"))
                && jingle_action(e) == Some("session-initiate".to_string())
        })
        .cloned()
}

pub fn jingle_action(e: &Element) -> Option<String> {
    e.get_child("jingle", "urn:xmpp:jingle:1")
        .and_then(|j| j.get_attr("action"))
        .map(str::to_string)
}

pub fn sid_of(e: &Element) -> String {
    e.get_child("jingle", "urn:xmpp:jingle:1")
        .and_then(|j| j.get_attr("sid"))
        .unwrap()
        .to_string()
}

pub fn error_condition(e: &Element) -> Option<String> {
    let err = e.children().find(|c| c.name() == "error")?;
    err.children()
        .find(|c| c.ns() == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name() != "text")
        .map(|c| c.name().to_string())
}

pub fn error_text(e: &Element) -> Option<String> {
    let err = e.children().find(|c| c.name() == "error")?;
    err.children()
        .find(|c| c.name() == "text")
        .map(|t| t.text_content())
}

/// Element-by-element equality: names, namespaces, attributes (as a set),
/// children in order, text; a `json-message` body compared as JSON.
pub fn assert_same(expected: &Element, actual: &Element) {
    compare(expected, actual, &mut vec![expected.name().to_string()]);
}

fn compare(e: &Element, a: &Element, path: &mut Vec<String>) {
    let at = path.join("/");
    assert_eq!((e.name(), e.ns()), (a.name(), a.ns()), "element at {at}");
    let mut ea: Vec<(&str, &str)> = e.attrs().collect();
    let mut aa: Vec<(&str, &str)> = a.attrs().collect();
    ea.sort();
    aa.sort();
    assert_eq!(ea, aa, "attributes of {at}");
    if e.name() == "json-message" {
        let ej: serde_json::Value = serde_json::from_str(&e.text_content()).unwrap();
        let aj: serde_json::Value = serde_json::from_str(&a.text_content())
            .unwrap_or_else(|_| panic!("json-message at {at} is not JSON"));
        assert_eq!(ej, aj, "json-message at {at}");
        return;
    }
    let ec: Vec<&Element> = e.children().collect();
    let ac: Vec<&Element> = a.children().collect();
    let names = |v: &[&Element]| v.iter().map(|c| c.name().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&ec), names(&ac), "children of {at}");
    if ec.is_empty() {
        assert_eq!(
            e.text_content().trim(),
            a.text_content().trim(),
            "text of {at}"
        );
    }
    for (i, (x, y)) in ec.iter().zip(ac.iter()).enumerate() {
        path.push(format!("{}[{i}]", x.name()));
        compare(x, y, path);
        path.pop();
    }
}
