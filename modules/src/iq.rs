//! `iq`: Prosody's mod_iq, which turns the router's generic IQ events into
//! per-payload events:
//!
//! - `iq/full`: delivered to that resource; if it is gone, a get/set gets
//!   `service-unavailable` (results and errors are dropped);
//! - `iq/bare`, `iq/self`, `iq/host`: a get/set with payload `<name
//!   xmlns='ns'/>` fires `iq/<kind>/<ns>:<name>`, then, if no handler took
//!   it, `iq-<type>/<kind>/<ns>:<name>` (e.g.
//!   `iq-get/host/jabber:iq:version:query`, `iq-set/self/jabber:iq:roster:query`);
//!   a result or error fires `iq-<type>/<kind>/<id>` (e.g. `iq-result/bare/ping1`).
//!
//! An IQ to the sender's own account is `iq/self` first; when nothing handles
//! it the router goes on with `iq/bare` (so account handlers see both).
//! Whatever no handler takes gets the router's `service-unavailable`.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::{Event, Host, HostKind, Jid, Server};

use crate::ModuleError;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    if host.kind == HostKind::VirtualHost {
        host.events.hook("iq/full", 0, |event| {
            let Some(origin) = event.origin.clone() else {
                return false;
            };
            let server = event.server.clone();
            let stanza = event.stanza().clone();
            let delivered = stanza
                .to()
                .and_then(|t| Jid::parse(t).ok())
                .and_then(|to| server.sessions.get_full(&to))
                .is_some_and(|s| s.send(stanza.clone()));
            if !delivered && matches!(stanza.type_(), Some("get") | Some("set")) {
                server.reply_error(&origin, &stanza, StanzaError::service_unavailable());
            }
            true
        });
    }
    for kind in ["bare", "self", "host"] {
        host.events
            .hook(&format!("iq/{kind}"), 0, move |event| dispatch(event, kind));
    }
    Ok(())
}

/// The event names an IQ is offered under, in order (Prosody's scheme).
pub fn event_names(kind: &str, stanza: &xmpp_core::Element) -> Vec<String> {
    let t = stanza.type_().unwrap_or_default();
    match t {
        "get" | "set" => match stanza.first_child() {
            Some(child) => {
                let payload = format!("{}:{}", child.ns(), child.name());
                vec![
                    format!("iq/{kind}/{payload}"),
                    format!("iq-{t}/{kind}/{payload}"),
                ]
            }
            None => Vec::new(),
        },
        _ => vec![format!("iq-{t}/{kind}/{}", stanza.id().unwrap_or_default())],
    }
}

fn dispatch(event: &mut Event, kind: &str) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let server = event.server.clone();
    let names = event_names(kind, event.stanza());
    for name in names {
        if server.fire_on_host(&host, &name, event) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::Element;
    use xmpp_core::stanza::NS_CLIENT;

    #[test]
    fn names_follow_prosody() {
        let get = Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "1")
            .child(Element::new("query", "jabber:iq:version"));
        assert_eq!(
            event_names("host", &get),
            [
                "iq/host/jabber:iq:version:query",
                "iq-get/host/jabber:iq:version:query"
            ]
        );
        let res = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr("id", "p1");
        assert_eq!(event_names("bare", &res), ["iq-result/bare/p1"]);
        let err = Element::new("iq", NS_CLIENT)
            .attr("type", "error")
            .attr("id", "p2");
        assert_eq!(event_names("self", &err), ["iq-error/self/p2"]);
    }
}
