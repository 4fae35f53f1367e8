//! `server_contact_info`: Prosody's mod_server_contact_info — XEP-0157
//! contact addresses in the host's disco#info, as a
//! `http://jabber.org/network/serverinfo` result form.
//!
//! Option `contact_info`: a table of address lists by kind (`abuse`,
//! `admin`, `feedback`, `sales`, `security`, `status`, `support`), each
//! becoming the list-multi field `<kind>-addresses`. Without it, `admin`
//! lists `xmpp:` URIs of the `admins` (global and host).

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Jid, Server, Value};

use crate::ModuleError;

pub const NS_DATA: &str = "jabber:x:data";
pub const FORM_TYPE: &str = "http://jabber.org/network/serverinfo";
/// The form's fields, in Prosody's order.
pub const KINDS: [&str; 7] = [
    "abuse", "admin", "feedback", "sales", "security", "status", "support",
];

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let info: Vec<(&str, Vec<String>)> = match host.option("contact_info") {
        Some(Value::Table(t)) => KINDS
            .iter()
            .map(|k| {
                (
                    *k,
                    t.get(k).and_then(Value::as_string_list).unwrap_or_default(),
                )
            })
            .collect(),
        Some(other) => {
            return Err(host
                .option_error(
                    "contact_info",
                    format!("expected a table, got {}", other.type_name()),
                )
                .into());
        }
        None => {
            let mut admins = Vec::new();
            let cfg = host.config();
            let host_admins = cfg.host(&host.name).and_then(|h| h.section.get("admins"));
            for a in [cfg.get_global("admins"), host_admins]
                .into_iter()
                .flatten()
                .filter_map(Value::as_string_list)
                .flatten()
            {
                if let Ok(j) = Jid::parse(&a) {
                    let uri = format!("xmpp:{j}");
                    if !admins.contains(&uri) {
                        admins.push(uri);
                    }
                }
            }
            vec![("admin", admins)]
        }
    };
    crate::disco::add_extension(host, form(&info));
    Ok(())
}

/// The result form: FORM_TYPE, then every kind's field (with its values).
pub fn form(info: &[(&str, Vec<String>)]) -> Element {
    let mut x = Element::new("x", NS_DATA).attr("type", "result").child(
        Element::new("field", NS_DATA)
            .attr("var", "FORM_TYPE")
            .attr("type", "hidden")
            .child(Element::new("value", NS_DATA).text(FORM_TYPE)),
    );
    for kind in KINDS {
        let mut field = Element::new("field", NS_DATA)
            .attr("var", format!("{kind}-addresses"))
            .attr("type", "list-multi");
        for (k, values) in info {
            if *k == kind {
                for v in values {
                    field.push_child(Element::new("value", NS_DATA).text(v.clone()));
                }
            }
        }
        x.push_child(field);
    }
    x
}
