//! XEP-0115 entity capabilities: the `ver` hash of a disco#info result
//! (sha-1, base64), which mod_disco advertises in stream features.

use base64::Engine as _;
use sha1::{Digest, Sha1};
use xmpp_core::stanza::{Element, NS_XML};

use super::NS_DISCO_INFO;

pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
pub const NS_DATA: &str = "jabber:x:data";
/// The caps node lilt advertises. Prosody's, so that a server swap does not
/// change what clients have cached; the `ver` hash is what identifies the
/// feature set.
pub const CAPS_NODE: &str = "http://prosody.im";

/// The XEP-0115 §5.1 verification string of a `<query xmlns=disco#info/>`.
pub fn verification_string(query: &Element) -> String {
    let mut identities: Vec<String> = query
        .children()
        .filter(|c| c.is("identity", NS_DISCO_INFO))
        .map(|i| {
            let lang = i
                .get_attr("xml:lang")
                .or_else(|| i.get_attr(&format!("{{{NS_XML}}}lang")))
                .unwrap_or_default();
            format!(
                "{}/{}/{}/{}",
                i.get_attr("category").unwrap_or_default(),
                i.get_attr("type").unwrap_or_default(),
                lang,
                i.get_attr("name").unwrap_or_default()
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<&str> = query
        .children()
        .filter(|c| c.is("feature", NS_DISCO_INFO))
        .filter_map(|f| f.get_attr("var"))
        .collect();
    features.sort_unstable();
    let mut forms: Vec<(String, String)> = query
        .children()
        .filter(|c| c.is("x", NS_DATA))
        .filter_map(form_string)
        .collect();
    forms.sort();

    let mut s = String::new();
    for i in identities {
        s.push_str(&i);
        s.push('<');
    }
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    for (_, f) in forms {
        s.push_str(&f);
    }
    s
}

/// A data form's part of the string: FORM_TYPE, then the other fields by
/// `var`, each followed by its sorted values. `None` without a FORM_TYPE.
fn form_string(x: &Element) -> Option<(String, String)> {
    let fields: Vec<&Element> = x.children().filter(|f| f.is("field", NS_DATA)).collect();
    let values = |f: &Element| -> Vec<String> {
        let mut v: Vec<String> = f
            .children()
            .filter(|c| c.is("value", NS_DATA))
            .map(Element::text_content)
            .collect();
        v.sort();
        v
    };
    let form_type = fields
        .iter()
        .find(|f| f.get_attr("var") == Some("FORM_TYPE"))
        .and_then(|f| values(f).into_iter().next())?;
    let mut others: Vec<&Element> = fields
        .into_iter()
        .filter(|f| f.get_attr("var").is_some_and(|v| v != "FORM_TYPE"))
        .collect();
    others.sort_by(|a, b| a.get_attr("var").cmp(&b.get_attr("var")));
    let mut s = format!("{form_type}<");
    for f in others {
        s.push_str(f.get_attr("var").unwrap_or_default());
        s.push('<');
        for v in values(f) {
            s.push_str(&v);
            s.push('<');
        }
    }
    Some((form_type, s))
}

/// The `ver` attribute: base64 of the sha-1 of the verification string.
pub fn hash(query: &Element) -> String {
    let digest = Sha1::digest(verification_string(query).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The `<c/>` stream feature for `query`.
pub fn caps_element(query: &Element) -> Element {
    Element::new("c", NS_CAPS)
        .attr("hash", "sha-1")
        .attr("node", CAPS_NODE)
        .attr("ver", hash(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0115_simple_example() {
        // XEP-0115 §5.2: Exodus 0.9.1.
        let q = Element::new("query", NS_DISCO_INFO)
            .child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("category", "client")
                    .attr("type", "pc")
                    .attr("name", "Exodus 0.9.1"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/disco#info"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/disco#items"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/muc"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/caps"),
            );
        assert_eq!(hash(&q), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    #[test]
    fn xep_0115_complex_example() {
        // XEP-0115 §5.3: Psi 0.11 with an extended form.
        let field = |var: &str, vals: &[&str]| {
            let mut f = Element::new("field", NS_DATA).attr("var", var);
            for v in vals {
                f.push_child(Element::new("value", NS_DATA).text(*v));
            }
            f
        };
        let q = Element::new("query", NS_DISCO_INFO)
            .child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("xml:lang", "en")
                    .attr("category", "client")
                    .attr("name", "Psi 0.11")
                    .attr("type", "pc"),
            )
            .child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("xml:lang", "el")
                    .attr("category", "client")
                    .attr("name", "Ψ 0.11")
                    .attr("type", "pc"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/disco#info"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/disco#items"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/muc"),
            )
            .child(
                Element::new("feature", NS_DISCO_INFO)
                    .attr("var", "http://jabber.org/protocol/caps"),
            )
            .child(
                Element::new("x", NS_DATA)
                    .attr("type", "result")
                    .child(field("FORM_TYPE", &["urn:xmpp:dataforms:softwareinfo"]))
                    .child(field("ip_version", &["ipv4", "ipv6"]))
                    .child(field("os", &["Mac"]))
                    .child(field("os_version", &["10.5.1"]))
                    .child(field("software", &["Psi"]))
                    .child(field("software_version", &["0.11"])),
            );
        assert_eq!(hash(&q), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
    }
}
