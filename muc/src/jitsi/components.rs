//! What Jitsi's MUC components share (`speakerstats_component`,
//! `room_metadata_component`, `filesharing_component`): a component host
//! with `muc_component` naming the conference MUC it acts on, room lookups
//! by the addresses clients use (`get_room_from_jid(room_jid_match_rewrite(
//! jid))`), and the session fields Jitsi's `mod_jitsi_session` sets from
//! the BOSH/WebSocket URL (`jitsi_web_query_room`, `jitsi_web_query_prefix`).

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Jid, Server, Session, Value};

use super::meeting_id::NS_JITMEET;
use super::util::TenantMapping;
use crate::Lookup;
use crate::room::Room;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{module} on {host}: should be loaded as a component")]
    NotComponent { module: &'static str, host: String },
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
}

/// The options every such component reads.
pub struct ComponentConfig {
    /// `muc_component`: the conference MUC (`None`: the module logs an
    /// error and does nothing, as Jitsi's).
    pub muc_component: Option<String>,
    /// `muc_mapper_domain_base`: the main VirtualHost.
    pub domain_base: Option<String>,
    /// The tenant mapping, when `muc_mapper_domain_base` is set.
    pub mapping: Option<TenantMapping>,
}

impl ComponentConfig {
    pub fn read(module: &'static str, host: &Arc<Host>) -> Result<ComponentConfig, ComponentError> {
        if !host.is_component() {
            return Err(ComponentError::NotComponent {
                module,
                host: host.name.clone(),
            });
        }
        let muc_component = host.option_str("muc_component").map(str::to_string);
        if muc_component.is_none() {
            tracing::error!(host = %host.name, "{module}: no muc_component specified, no muc to operate on!");
        }
        Ok(ComponentConfig {
            muc_component,
            domain_base: host
                .option_str("muc_mapper_domain_base")
                .map(str::to_string),
            mapping: TenantMapping::from_host(host)?,
        })
    }

    /// `room_jid_match_rewrite`: a tenant's virtual room address to the
    /// real one; other addresses as they are.
    pub fn rewrite(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_real(jid))
            .unwrap_or_else(|| jid.to_string())
    }

    /// `internal_room_jid_match_rewrite`: a real room address to the one
    /// the tenant's clients know.
    pub fn internal_rewrite(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_virtual(jid))
            .unwrap_or_else(|| jid.to_string())
    }
}

/// A live room by its (real) address, on whichever MUC host serves it
/// (Jitsi's `get_room_from_jid`).
pub fn get_room_from_jid(server: &Server, jid: &str) -> Option<Arc<Room>> {
    let jid = Jid::parse(jid).ok()?.to_bare();
    let host = server.host(jid.domain())?;
    match crate::service_for(&host)?.get_room(&jid.to_string()) {
        Lookup::Live(room) => Some(room),
        _ => None,
    }
}

/// The room named by a session's URL (Jitsi's
/// `get_room_by_name_and_subdomain(room, prefix)`) on `muc_domain`.
pub fn get_room_by_name_and_subdomain(
    server: &Server,
    muc_domain: &str,
    room: &str,
    subdomain: &str,
) -> Option<Arc<Room>> {
    let jid = if subdomain.is_empty() {
        format!("{room}@{muc_domain}")
    } else {
        format!("[{subdomain}]{room}@{muc_domain}")
    };
    get_room_from_jid(server, &jid)
}

/// A session field Jitsi's modules read (`session.<name>`): the
/// attribute when an auth provider left it, else what `mod_jitsi_session`
/// would have taken from the BOSH/WebSocket URL (`room`, `prefix`).
pub fn session_field(session: &Session, name: &str) -> Option<String> {
    if let Some(v) = session.state().attributes.get(name).and_then(Value::as_str) {
        return Some(v.to_string());
    }
    let transport = session.transport.as_ref().filter(|t| t.query.is_some())?;
    match name {
        "jitsi_web_query_room" => transport.query_param("room"),
        "jitsi_web_query_prefix" => Some(transport.query_param("prefix").unwrap_or_default()),
        _ => None,
    }
}

/// `<message from=component to=jid><json-message xmlns=jitmeet>json</…></message>`,
/// with the `room` attribute when given.
pub fn json_message(from: &str, to: &str, json: &str, room: Option<&str>) -> Element {
    let mut payload = Element::new("json-message", NS_JITMEET);
    if let Some(room) = room {
        payload.set_attr("room", Some(room.to_string()));
    }
    Element::new("message", xmpp_core::stanza::NS_CLIENT)
        .attr("from", from)
        .attr("to", to)
        .child(payload.text(json))
}

/// Announces a component to clients (`jitsi-add-identity` on the main
/// VirtualHost, which `features_identity` turns into a disco identity):
/// now, and again once every host is loaded (`server-started`), as
/// Prosody's `process_host_module` waits for a host loaded later.
pub fn add_identity(server: &Arc<Server>, domain_base: Option<&str>, name: &str, component: &str) {
    let Some(base) = domain_base.map(str::to_string) else {
        return;
    };
    let fire = {
        let (name, component) = (name.to_string(), component.to_string());
        move |server: &Arc<Server>| {
            if let Some(host) = server.host(&base) {
                let mut ev = xmpp_core::Event::new(server, "jitsi-add-identity")
                    .with_field("name", name.as_str())
                    .with_field("host", component.as_str());
                server.fire_on_host(&host, "jitsi-add-identity", &mut ev);
            }
        }
    };
    fire(server);
    server.events.hook("server-started", 0, move |event| {
        fire(&event.server.clone());
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_message_shape() {
        let m = json_message("c.example", "u@example/r", "{}", Some("r@muc.example"));
        let xml = m.to_xml();
        assert!(xml.contains("json-message"), "{xml}");
        assert_eq!(
            m.get_child("json-message", NS_JITMEET)
                .and_then(|j| j.get_attr("room")),
            Some("r@muc.example")
        );
    }
}
