//! `features_identity` (Jitsi's mod_features_identity), on the main
//! VirtualHost: components announce themselves to clients by firing
//! `jitsi-add-identity` on this host with the fields `name` (the identity
//! type, e.g. `speakerstats`) and `host` (the component's address); each
//! becomes a `<identity category='component' type=name name=host/>` in the
//! host's disco#info.

use std::sync::{Arc, Mutex};

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Server};

use modules::ModuleError;
use modules::disco::NS_DISCO_INFO;

/// The identities added so far: (type, name).
#[derive(Default)]
struct Identities(Mutex<Vec<(String, String)>>);

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let identities = host.extension::<Identities>();
    let added = identities.clone();
    let name = host.name.clone();
    host.events.hook("jitsi-add-identity", 0, move |event| {
        let type_ = event.field_str("name").unwrap_or_default().to_string();
        let at = event.field_str("host").unwrap_or_default().to_string();
        tracing::info!("adding identity {type_} for host {at} on {name}");
        let mut list = added.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.contains(&(type_.clone(), at.clone())) {
            list.push((type_, at));
        }
        false
    });
    host.events.hook("host-disco-info", 0, move |event| {
        let list = identities
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(q) = event
            .stanza
            .as_mut()
            .and_then(|iq| iq.get_child_mut("query", NS_DISCO_INFO))
        {
            for (type_, at) in list {
                q.push_child(
                    Element::new("identity", NS_DISCO_INFO)
                        .attr("category", "component")
                        .attr("type", type_)
                        .attr("name", at),
                );
            }
        }
        false
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::Event;

    #[test]
    fn a_fired_identity_is_in_disco_info() {
        let server = Server::for_tests();
        let host = server.host("localhost").expect("test host");
        load(&server, &host).expect("loads");
        let mut ev = Event::new(&server, "jitsi-add-identity")
            .with_field("name", "speakerstats")
            .with_field("host", "speakerstats.localhost");
        server.fire_on_host(&host, "jitsi-add-identity", &mut ev);
        let info = modules::disco::server_disco_info(&server, &host);
        let found = info.children().any(|c| {
            c.name() == "identity"
                && c.get_attr("category") == Some("component")
                && c.get_attr("type") == Some("speakerstats")
                && c.get_attr("name") == Some("speakerstats.localhost")
        });
        assert!(found, "{}", info.to_xml());
    }
}
