//! What the bridge says about itself to other XMPP entities: disco#info
//! (identity and the protocols it serves), software version, and pings
//! answered, as any XMPP client such as Videobridge's does.

use xmpp_core::Element;

use crate::colibri2::NS_COLIBRI2;
use crate::stats::NS_HEALTHCHECK;

pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_VERSION: &str = "jabber:iq:version";
pub const NS_PING: &str = "urn:xmpp:ping";

/// The features listed in disco#info.
pub const FEATURES: &[&str] = &[
    NS_DISCO_INFO,
    NS_COLIBRI2,
    NS_HEALTHCHECK,
    NS_VERSION,
    NS_PING,
];

/// The answer to a get IQ this module serves, or `None`.
pub fn answer(iq: &Element, version: &str) -> Option<Element> {
    if iq.type_() != Some("get") {
        return None;
    }
    let child = iq.first_child()?;
    let payload = match (child.name(), child.ns()) {
        ("query", NS_DISCO_INFO) if child.get_attr("node").is_none() => {
            let mut q = Element::new("query", NS_DISCO_INFO).child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("category", "client")
                    .attr("type", "bot")
                    .attr("name", "lilt bridge"),
            );
            for f in FEATURES {
                q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", *f));
            }
            Some(q)
        }
        ("query", NS_VERSION) => Some(
            Element::new("query", NS_VERSION)
                .text_tag("name", "lilt bridge")
                .text_tag("version", version),
        ),
        ("ping", NS_PING) => None,
        _ => return None,
    };
    let mut reply = iq.reply();
    if let Some(p) = payload {
        reply.push_child(p);
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stream::parse_element;

    #[test]
    fn disco_version_ping() {
        let iq = parse_element(
            "<iq xmlns='jabber:client' type='get' id='d' from='focus@auth.d/f'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        )
        .unwrap();
        let r = answer(&iq, "1.0").unwrap();
        assert_eq!(r.type_(), Some("result"));
        let q = r.get_child("query", NS_DISCO_INFO).unwrap();
        assert!(q.children().any(|f| f.get_attr("var") == Some(NS_COLIBRI2)));
        let iq = parse_element(
            "<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .unwrap();
        let r = answer(&iq, "1.0").unwrap();
        assert_eq!((r.type_(), r.first_child()), (Some("result"), None));
        let iq = parse_element(
            "<iq xmlns='jabber:client' type='get' id='v'><query xmlns='jabber:iq:version'/></iq>",
        )
        .unwrap();
        let r = answer(&iq, "1.0").unwrap();
        assert!(r.to_xml().contains("<version>1.0</version>"), "{r}");
        let iq = parse_element(
            "<iq xmlns='jabber:client' type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>",
        )
        .unwrap();
        assert!(answer(&iq, "1.0").is_none());
    }
}
