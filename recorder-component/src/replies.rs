//! Small answers the recorder gives on its links: XEP-0199 pings, the
//! call session's disco#info (what the focus asks before its Jingle offer)
//! and stanza errors.

use xmpp_core::Element;

use crate::ns;

/// What the recorder's call session can do, as the focus asks before its
/// Jingle offer: audio and video over ICE-UDP/DTLS with BUNDLE and rtcp-mux,
/// RTX (RFC 4588: the focus then offers `rtx` payload types and the
/// senders' FID SSRCs, and the media link NACKs lost video packets as a
/// browser does), sources by name in XML (no `json-encoded-sources`).
pub const CALL_FEATURES: &[&str] = &[
    "urn:xmpp:jingle:1",
    "urn:xmpp:jingle:apps:rtp:1",
    "urn:xmpp:jingle:apps:rtp:audio",
    "urn:xmpp:jingle:apps:rtp:video",
    "urn:xmpp:jingle:transports:ice-udp:1",
    "urn:xmpp:jingle:apps:dtls:0",
    "urn:ietf:rfc:5761",
    "urn:ietf:rfc:5888",
    "urn:ietf:rfc:4588",
    "http://jitsi.org/source-name",
];

pub fn disco_info_reply(iq: &Element) -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO);
    if let Some(node) = iq
        .get_child("query", ns::DISCO_INFO)
        .and_then(|q| q.get_attr("node"))
    {
        q = q.attr("node", node);
    }
    for f in CALL_FEATURES {
        q.push_child(Element::new("feature", ns::DISCO_INFO).attr("var", *f));
    }
    iq.reply().child(q)
}

/// An XEP-0199 ping (the server's or the room's), answered on either link.
pub fn is_ping(iq: &Element) -> bool {
    iq.type_() == Some("get") && iq.get_child("ping", ns::PING).is_some()
}

pub fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

pub fn error_reply(iq: &Element, kind: &str, condition: &str) -> Element {
    let mut r = iq.reply();
    r.set_attr("type", Some("error".into()));
    r.child(
        Element::new("error", ns::CLIENT)
            .attr("type", kind)
            .child(Element::new(condition, ns::STANZAS)),
    )
}
