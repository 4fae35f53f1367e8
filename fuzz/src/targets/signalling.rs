//! Jingle and Colibri2 payloads (`media_signalling::xml`, `json`, and the
//! bridge's `sfu_component::colibri2::parse_conference_modify`): the input
//! is parsed as XML and every element in it is read by the parser for its
//! name, as the focus and the bridge read what a peer sent.

use media_signalling::MediaKind;
use media_signalling::json::parse_json_sources;
use media_signalling::xml::{
    parse_candidate, parse_colibri2_media, parse_colibri2_sources, parse_header_extension,
    parse_jingle_description, parse_jingle_sources, parse_payload_type, parse_transport,
};
use sfu_component::colibri2::parse_conference_modify;
use xmpp_core::Element;
use xmpp_core::stream::parse_element;

fn visit(el: &Element, depth: usize) {
    match el.name() {
        "conference-modify" => {
            let _ = parse_conference_modify(el);
        }
        "media" => {
            let _ = parse_colibri2_media(el);
        }
        "description" => {
            let _ = parse_jingle_description(el);
            let _ = parse_jingle_sources(el, MediaKind::Audio);
            let _ = parse_jingle_sources(el, MediaKind::Video);
        }
        "transport" => {
            let _ = parse_transport(el);
        }
        "candidate" => {
            let _ = parse_candidate(el);
        }
        "sources" => {
            let _ = parse_colibri2_sources(el);
        }
        "payload-type" => {
            let _ = parse_payload_type(el);
        }
        "rtp-hdrext" => {
            let _ = parse_header_extension(el);
        }
        "json-message" => {
            let _ = parse_json_sources(&el.text_content());
        }
        _ => {}
    }
    if depth < 32 {
        for child in el.children() {
            visit(child, depth + 1);
        }
    }
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(el) = parse_element(text) {
        visit(&el, 0);
    } else {
        let _ = parse_json_sources(text);
    }
}
