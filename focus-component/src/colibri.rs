//! Colibri2 with the bridge: allocation requests and their answers.
//!
//! An endpoint is created with `<conference-modify meeting-id name
//! [create='true']>` holding `<endpoint id create='true' stats-id>` with its
//! `<media type>`s (the offer's payload types and header extensions),
//! `<transport ice-controlling='true'/>`, its sources once known and
//! `<capability name='source-names'/>`. The bridge answers
//! `<conference-modified>` with each endpoint's ICE-UDP transport (bridge
//! channel URL included) and its own feedback sources. Updates carry the
//! participant's transport and the full set of its sources; leaving is
//! `<endpoint id expire='true'/>`, the last one out expires the conference.

use std::collections::BTreeMap;

use media_signalling::Source;
use xmpp_core::Element;

use crate::codecs::{self, OfferOptions};
use crate::ns;
use media_signalling::xml::{
    colibri2_media_source_element, header_extension_element, parse_colibri2_sources,
    payload_type_element,
};

pub fn conference_modify(
    to: &str,
    id: &str,
    meeting_id: &str,
    name: &str,
    create: bool,
    endpoints: Vec<Element>,
) -> Element {
    // As Jicofo: the conference's name only with `create`.
    let mut cm = Element::new("conference-modify", ns::COLIBRI2).attr("meeting-id", meeting_id);
    if create {
        cm = cm.attr("name", name).attr("create", "true");
    }
    for e in endpoints {
        cm.push_child(e);
    }
    Element::new("iq", ns::CLIENT)
        .attr("to", to)
        .attr("type", "set")
        .attr("id", id)
        .child(cm)
}

pub(crate) fn media(options: OfferOptions) -> Vec<Element> {
    codecs::media_descriptions(options)
        .iter()
        .map(|md| {
            let mut m = Element::new("media", ns::COLIBRI2).attr("type", md.kind.as_str());
            for pt in &md.payload_types {
                m.push_child(payload_type_element(pt));
            }
            for ext in &md.header_extensions {
                m.push_child(header_extension_element(ext));
            }
            m.push_child(Element::new("extmap-allow-mixed", ns::JINGLE_HDREXT));
            m
        })
        .collect()
}

fn force_mute(audio: bool, video: bool) -> Element {
    Element::new("force-mute", ns::COLIBRI2)
        .attr("audio", audio.to_string())
        .attr("video", video.to_string())
}

/// `<endpoint create='true'>` for a participant being invited.
pub fn endpoint_create(
    id: &str,
    stats_id: Option<&str>,
    options: OfferOptions,
    sources: &[Source],
    muted: (bool, bool),
) -> Element {
    let mut e = Element::new("endpoint", ns::COLIBRI2)
        .attr("id", id)
        .attr("create", "true")
        .attr_opt("stats-id", stats_id);
    for m in media(options) {
        e.push_child(m);
    }
    e.push_child(Element::new("transport", ns::COLIBRI2).attr("ice-controlling", "true"));
    if !sources.is_empty() {
        e.push_child(sources_element(sources));
    }
    e.push_child(Element::new("capability", ns::COLIBRI2).attr("name", "source-names"));
    if muted.0 || muted.1 {
        e.push_child(force_mute(muted.0, muted.1));
    }
    e
}

/// An update of an existing endpoint: its transport and/or all its sources.
pub fn endpoint_update(
    id: &str,
    stats_id: Option<&str>,
    transport: Option<&Element>,
    sources: Option<&[Source]>,
) -> Element {
    let mut e = Element::new("endpoint", ns::COLIBRI2)
        .attr("id", id)
        .attr_opt("stats-id", stats_id);
    if let Some(t) = transport {
        e.push_child(Element::new("transport", ns::COLIBRI2).child(t.clone()));
    }
    if let Some(s) = sources {
        e.push_child(sources_element(s));
    }
    e
}

/// An endpoint's `<sources>`: one `<media-source>` per source.
pub(crate) fn sources_element(sources: &[Source]) -> Element {
    let mut e = Element::new("sources", ns::COLIBRI2);
    for s in sources {
        e.push_child(colibri2_media_source_element(s));
    }
    e
}

/// Force-mute (or release) an endpoint at the bridge.
pub fn endpoint_force_mute(id: &str, audio: bool, video: bool) -> Element {
    Element::new("endpoint", ns::COLIBRI2)
        .attr("id", id)
        .child(force_mute(audio, video))
}

pub fn endpoint_expire(id: &str) -> Element {
    Element::new("endpoint", ns::COLIBRI2)
        .attr("id", id)
        .attr("expire", "true")
}

pub fn conference_expire(to: &str, id: &str, meeting_id: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .attr("to", to)
        .attr("type", "set")
        .attr("id", id)
        .child(
            Element::new("conference-modify", ns::COLIBRI2)
                .attr("meeting-id", meeting_id)
                .attr("expire", "true"),
        )
}

/// What the bridge answered to an allocation.
#[derive(Debug, Default)]
pub struct Answer {
    /// Each endpoint's ICE-UDP `<transport>` (the inner element).
    pub transports: BTreeMap<String, Element>,
    pub feedback_sources: Vec<Source>,
}

/// Reads a `<conference-modified>` (or the emulated bridge's
/// `<conference-modify-ack>`) result.
pub fn parse_answer(iq: &Element) -> Answer {
    let mut answer = Answer::default();
    let Some(cm) = iq
        .children()
        .find(|c| c.ns() == ns::COLIBRI2 && c.name().starts_with("conference-modif"))
    else {
        return answer;
    };
    for ep in cm.children().filter(|c| c.name() == "endpoint") {
        let Some(id) = ep.get_attr("id") else {
            continue;
        };
        let transport = ep
            .children()
            .find(|c| c.name() == "transport")
            .and_then(|t| t.get_child("transport", ns::JINGLE_ICE_UDP));
        if let Some(t) = transport {
            answer.transports.insert(id.to_string(), t.clone());
        }
    }
    if let Some(s) = cm.children().find(|c| c.name() == "sources") {
        answer.feedback_sources = parse_colibri2_sources(s).unwrap_or_default();
    }
    answer
}

/// The endpoint a Colibri2 error names as unknown to the bridge
/// (`<colibri2-error reason='unknown-endpoint'/>` with `<endpoint id>`):
/// only that participant needs inviting again.
pub fn unknown_endpoint(error_iq: &Element) -> Option<String> {
    let error = error_iq.children().find(|c| c.name() == "error")?;
    let reason = error
        .children()
        .find(|c| c.name() == "colibri2-error")
        .and_then(|c| c.get_attr("reason"))?;
    if reason != "unknown-endpoint" {
        return None;
    }
    error
        .children()
        .find(|c| c.name() == "endpoint")
        .and_then(|e| e.get_attr("id"))
        .map(str::to_string)
}

/// The health-check IQ Jicofo sends each bridge every 10 s.
pub fn health_check(to: &str, id: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .attr("to", to)
        .attr("type", "get")
        .attr("id", id)
        .child(Element::new("healthcheck", ns::HEALTHCHECK))
}
