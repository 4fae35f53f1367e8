//! The Jingle the focus sends to a participant, in Jicofo's layout.
//!
//! `session-initiate`: contents
//! `audio` then `video` (no `data`: SCTP is off), each
//! `<content creator='initiator' name senders='both'>` holding the
//! `<description media>` (payload types, `rtp-hdrext`s,
//! `<extmap-allow-mixed/>`, `<rtcp-mux/>`, audio with `maxptime='60'`, and the sources
//! when not sent as JSON) followed by a copy of the bridge's ICE-UDP
//! transport (`<rtcp-mux/>`, fingerprint with `setup='actpass'`,
//! candidates, `<web-socket url>`). After the contents: the BUNDLE
//! `<group>`, `<startmuted>` when the room starts muted,
//! `<bridge-session id region>` and, for clients advertising
//! json-encoded-sources, `<json-message>{"sources":{...}}</json-message>`.
//! Sources are the bridge's (owner `jvb`) and every other participant's.

use std::collections::BTreeMap;

use media_signalling::{MediaKind, Source};
use xmpp_core::Element;

use crate::codecs::{self, OfferOptions};
use crate::ns;
use media_signalling::json::compact_sources;
use media_signalling::xml::{
    header_extension_element, jingle_source_elements, payload_type_element,
};

/// What a session-initiate is made of.
pub struct Offer<'a> {
    pub to: &'a str,
    pub id: &'a str,
    /// The focus's own full JID (`focus@auth.D/resource`).
    pub initiator: &'a str,
    pub sid: &'a str,
    pub options: OfferOptions,
    pub bridge_transport: &'a Element,
    /// Sources by owner: endpoint ids and `jvb`.
    pub sources: &'a BTreeMap<String, Vec<Source>>,
    /// The room's bare JID (the `ssrc-info` owner is `room/endpoint`).
    pub room: &'a str,
    pub json_sources: bool,
    /// `(audio, video)` start muted.
    pub start_muted: Option<(bool, bool)>,
    pub bridge_session_id: &'a str,
    pub region: Option<&'a str>,
}

/// The IQ skeleton of a Jingle request to a participant.
pub fn jingle_iq(to: &str, id: &str, action: &str, initiator: &str, sid: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .attr("to", to)
        .attr("type", "set")
        .attr("id", id)
        .child(
            Element::new("jingle", ns::JINGLE)
                .attr("action", action)
                .attr("initiator", initiator)
                .attr("sid", sid),
        )
}

fn jingle_mut(iq: &mut Element) -> Option<&mut Element> {
    iq.get_child_mut("jingle", ns::JINGLE)
}

/// The bridge's transport as offered: a copy with `<rtcp-mux/>` and the
/// fingerprint's `setup='actpass'`.
pub fn offered_transport(bridge_transport: &Element) -> Element {
    let mut t = bridge_transport.clone();
    if t.get_child("rtcp-mux", ns::JINGLE_ICE_UDP).is_none() {
        let mut with_mux = Element::with_attrs(
            t.name().to_string(),
            t.ns().to_string(),
            t.attrs()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        with_mux.push_child(Element::new("rtcp-mux", ns::JINGLE_ICE_UDP));
        for c in t.children() {
            with_mux.push_child(c.clone());
        }
        t = with_mux;
    }
    for c in t.children_mut() {
        if c.is("fingerprint", ns::JINGLE_DTLS) {
            c.set_attr("setup", Some("actpass".into()));
        }
    }
    t
}

fn owner_jid(room: &str, owner: &str) -> String {
    if owner == "jvb" {
        "jvb".to_string()
    } else {
        format!("{room}/{owner}")
    }
}

fn description(kind: MediaKind, options: OfferOptions) -> Element {
    let [audio, video] = codecs::media_descriptions(options);
    let md = if kind == MediaKind::Audio {
        audio
    } else {
        video
    };
    let mut d = Element::new("description", ns::JINGLE_RTP).attr("media", kind.as_str());
    if kind == MediaKind::Audio {
        d = d.attr("maxptime", "60");
    }
    for pt in &md.payload_types {
        d.push_child(payload_type_element(pt));
    }
    for ext in &md.header_extensions {
        d.push_child(header_extension_element(ext));
    }
    d.push_child(Element::new("extmap-allow-mixed", ns::JINGLE_HDREXT));
    // lib-jitsi-meet writes `a=rtcp-mux` from the description's element
    // (BUNDLE needs it), not from the transport's.
    d.push_child(Element::new("rtcp-mux", ns::JINGLE_RTP));
    d
}

fn add_owner_sources(
    desc: &mut Element,
    kind: MediaKind,
    sources: &BTreeMap<String, Vec<Source>>,
    room: &str,
) {
    for (owner, list) in sources {
        let of_kind: Vec<Source> = list.iter().filter(|s| s.kind == kind).cloned().collect();
        for e in jingle_source_elements(&of_kind, Some(&owner_jid(room, owner))) {
            desc.push_child(e);
        }
    }
}

/// `<json-message xmlns='http://jitsi.org/jitmeet'>{"sources":{...}}`.
pub fn json_sources_message(sources: &BTreeMap<String, Vec<Source>>) -> Element {
    let owners: Vec<(&str, &[Source])> = sources
        .iter()
        .map(|(o, l)| (o.as_str(), l.as_slice()))
        .collect();
    let compact = compact_sources(&owners);
    let body = serde_json::json!({ "sources": compact });
    Element::new("json-message", ns::JITMEET).text(body.to_string())
}

/// The session-initiate with the full offer.
pub fn offer(o: &Offer<'_>) -> Element {
    let mut iq = jingle_iq(o.to, o.id, "session-initiate", o.initiator, o.sid);
    let transport = offered_transport(o.bridge_transport);
    let mut children = Vec::new();
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let mut desc = description(kind, o.options);
        if !o.json_sources {
            add_owner_sources(&mut desc, kind, o.sources, o.room);
        }
        children.push(
            Element::new("content", ns::JINGLE)
                .attr("creator", "initiator")
                .attr("name", kind.as_str())
                .attr("senders", "both")
                .child(desc)
                .child(transport.clone()),
        );
    }
    children.push(
        Element::new("group", ns::JINGLE_GROUPING)
            .attr("semantics", "BUNDLE")
            .child(Element::new("content", ns::JINGLE_GROUPING).attr("name", "audio"))
            .child(Element::new("content", ns::JINGLE_GROUPING).attr("name", "video")),
    );
    if let Some((audio, video)) = o.start_muted {
        children.push(
            Element::new("startmuted", ns::JITMEET)
                .attr("audio", audio.to_string())
                .attr("video", video.to_string()),
        );
    }
    children.push(
        Element::new("bridge-session", ns::FOCUS)
            .attr("id", o.bridge_session_id)
            .attr_opt("region", o.region),
    );
    if o.json_sources {
        children.push(json_sources_message(o.sources));
    }
    if let Some(j) = jingle_mut(&mut iq) {
        for c in children {
            j.push_child(c);
        }
    }
    iq
}

/// A source-add or source-remove (`iq`: its [`jingle_iq`] skeleton)
/// carrying `sources` by owner: JSON when the client takes it, else one
/// content per media type.
pub fn source_change(
    mut iq: Element,
    sources: &BTreeMap<String, Vec<Source>>,
    room: &str,
    json: bool,
) -> Element {
    let mut children = Vec::new();
    if json {
        children.push(json_sources_message(sources));
    } else {
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if !sources.values().flatten().any(|s| s.kind == kind) {
                continue;
            }
            let mut desc = Element::new("description", ns::JINGLE_RTP).attr("media", kind.as_str());
            add_owner_sources(&mut desc, kind, sources, room);
            children.push(
                Element::new("content", ns::JINGLE)
                    .attr("name", kind.as_str())
                    .child(desc),
            );
        }
    }
    if let Some(j) = jingle_mut(&mut iq) {
        for c in children {
            j.push_child(c);
        }
    }
    iq
}

/// session-terminate with a reason (`gone`, `success`, ...).
pub fn session_terminate(
    to: &str,
    id: &str,
    initiator: &str,
    sid: &str,
    reason: &str,
    text: Option<&str>,
) -> Element {
    let mut iq = jingle_iq(to, id, "session-terminate", initiator, sid);
    let mut r = Element::new("reason", ns::JINGLE).child(Element::new(reason, ns::JINGLE));
    if let Some(t) = text {
        r.push_child(Element::new("text", ns::JINGLE).text(t));
    }
    if let Some(j) = jingle_mut(&mut iq) {
        j.push_child(r);
    }
    iq
}
