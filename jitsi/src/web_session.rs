//! What Jitsi's components share (end_conference, av_moderation_component,
//! polls_component, speakerstats_component, room_metadata_component,
//! filesharing_component, muc_size, lobby and breakout rooms): the room a
//! web session was opened for (`mod_jitsi_session`'s `jitsi_web_query_room`
//! / `jitsi_web_query_prefix`, from the `?room=` and `?prefix=` of the BOSH
//! or WebSocket URL), finding that room (`get_room_by_name_and_subdomain`,
//! `get_room_from_jid`), json-messages (`<json-message
//! xmlns='http://jitsi.org/jitmeet'>`) and the component's announcement on
//! the main VirtualHost (`jitsi-add-identity`).

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server, Session, Value};

use super::meeting_id::NS_JITMEET;
use super::util::TenantMapping;
use muc::occupant::Occupant;
use muc::room::Room;

/// The session field mod_jitsi_session sets from `?room=`.
pub const WEB_QUERY_ROOM: &str = "jitsi_web_query_room";
/// The session field mod_jitsi_session sets from `?prefix=` (the tenant).
pub const WEB_QUERY_PREFIX: &str = "jitsi_web_query_prefix";

/// Prosody's `util.http.urlencode`: every byte but ASCII letters, digits
/// and `-._~` as `%xx` (lower-case hex).
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The room name and tenant prefix a session was opened for: the session
/// fields when an auth provider set them (mod_auth_token does), else the
/// `room` and `prefix` query parameters of its BOSH/WebSocket request, as
/// mod_jitsi_session reads them (the prefix is `""` when absent). `None`
/// for a session without a room (e.g. plain TCP).
pub fn web_query_room(session: &Session) -> Option<(String, String)> {
    let from_attributes = {
        let state = session.state();
        let room = state
            .attributes
            .get(WEB_QUERY_ROOM)
            .and_then(Value::as_str)
            .map(str::to_string);
        let prefix = state
            .attributes
            .get(WEB_QUERY_PREFIX)
            .and_then(Value::as_str)
            .map(str::to_string);
        room.map(|r| (r, prefix.unwrap_or_default()))
    };
    if from_attributes.is_some() {
        return from_attributes;
    }
    let transport = session.transport.as_ref()?;
    let room = transport.query_param("room")?;
    let prefix = transport
        .query_param("prefix")
        .map(|p| urlencode(&p))
        .unwrap_or_default();
    Some((urlencode(&room), prefix))
}

/// The live room with this JID (a full JID names its room), on whichever
/// local MUC serves its domain (Jitsi's `get_room_from_jid`).
pub fn get_room_from_jid(server: &Server, room_jid: &str) -> Option<Arc<Room>> {
    let room_jid = Jid::parse(room_jid).ok()?.to_bare();
    let host = server.host(room_jid.domain())?;
    let service = muc::service_for(&host)?;
    match service.get_room(&room_jid.to_string()) {
        muc::Lookup::Live(room) => Some(room),
        _ => None,
    }
}

/// Where a component finds rooms by name: the conference MUC domain
/// (`muc_mapper_domain`, else `<muc_mapper_domain_prefix>.<base>`, else the
/// component's `muc_component`) and the base domain.
#[derive(Debug, Clone)]
pub struct RoomFinder {
    pub muc_domain: String,
    pub base: Option<String>,
    pub mapping: Option<TenantMapping>,
}

impl RoomFinder {
    pub fn new(
        host: &Host,
        muc_component: &str,
    ) -> Result<RoomFinder, xmpp_core::config::OptionError> {
        let mapping = TenantMapping::from_host(host)?;
        Ok(RoomFinder {
            muc_domain: mapping
                .as_ref()
                .map_or_else(|| muc_component.to_string(), |m| m.muc_domain.clone()),
            base: mapping.as_ref().map(|m| m.base.clone()),
            mapping,
        })
    }

    /// The room's JID for a name and tenant (`get_room_by_name_and_subdomain`:
    /// a tenant other than `""` and the base domain makes `[tenant]name`).
    pub fn room_jid(&self, name: &str, subdomain: &str) -> String {
        if !subdomain.is_empty() && Some(subdomain) != self.base.as_deref() {
            format!("[{subdomain}]{name}@{}", self.muc_domain)
        } else {
            format!("{name}@{}", self.muc_domain)
        }
    }

    /// The room a session was opened for, if live.
    pub fn room_of_session(&self, server: &Server, session: &Session) -> Option<Arc<Room>> {
        let (name, prefix) = web_query_room(session)?;
        get_room_from_jid(server, &self.room_jid(&name, &prefix))
    }

    /// The room a session was opened for, when `from` (the sender's real
    /// JID) is a moderator there — what the moderator-only commands
    /// (`<end_conference/>`, `<av_moderation/>`) require; each refusal is
    /// logged as Jitsi's modules log it, prefixed with the module's name.
    pub fn room_of_moderator(
        &self,
        server: &Server,
        session: &Session,
        from: &str,
        module: &str,
    ) -> Option<(Arc<Room>, Occupant)> {
        let Some(room) = self.room_of_session(server, session) else {
            tracing::warn!("{module}: no room found for the session of {from:?}");
            return None;
        };
        let Some(occupant) = room.get_occupant_by_real_jid(from) else {
            tracing::warn!(room = %room.jid, "{module}: No occupant {from} found");
            return None;
        };
        if occupant.role != Some(muc::util::Role::Moderator) {
            tracing::warn!(room = %room.jid, "{module}: Occupant {from} is not moderator and not allowed this operation");
            return None;
        }
        Some((room, occupant))
    }

    /// Client view to room view (`room_jid_match_rewrite`).
    pub fn to_real(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_real(jid))
            .unwrap_or_else(|| jid.to_string())
    }

    /// Room view to client view (`internal_room_jid_match_rewrite`).
    pub fn to_virtual(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_virtual(jid))
            .unwrap_or_else(|| jid.to_string())
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

/// The child `name` of a stanza in the stanza's own namespace (Lua's
/// `stanza:get_child(name)` without a namespace), as lib-jitsi-meet sends
/// `<av_moderation/>` and `<end_conference/>`.
pub fn command_child<'a>(stanza: &'a Element, name: &str) -> Option<&'a Element> {
    stanza
        .children()
        .find(|c| c.name() == name && (c.ns() == stanza.ns() || c.ns().is_empty()))
}

/// The required `muc_component` option of a component.
pub fn muc_component(host: &Host) -> Option<String> {
    let found = host.option_str("muc_component").map(str::to_string);
    if found.is_none() {
        tracing::error!(host = %host.name, "No muc_component specified. No muc to operate on!");
    }
    found
}

/// `process_host_module(main_virtual_host, ...)` firing `jitsi-add-identity`
/// there: now, and again once the server has started (the VirtualHost may
/// load features_identity after this component).
pub fn announce_identity(server: &Arc<Server>, main_host: &str, name: &str, component: &str) {
    let fire = {
        let (main_host, name, component) = (
            main_host.to_string(),
            name.to_string(),
            component.to_string(),
        );
        move |server: &Arc<Server>| {
            if let Some(host) = server.host(&main_host) {
                let mut ev = Event::new(server, "jitsi-add-identity")
                    .with_field("name", name.as_str())
                    .with_field("host", component.as_str());
                server.fire_on_host(&host, "jitsi-add-identity", &mut ev);
            }
        }
    };
    fire(server);
    server.events.hook("server-started", 0, move |event| {
        fire(&event.server);
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_as_prosody() {
        assert_eq!(urlencode("standup"), "standup");
        assert_eq!(urlencode("a b/ü"), "a%20b%2f%c3%bc");
        assert_eq!(urlencode("x-y_z.~"), "x-y_z.~");
    }

    #[test]
    fn room_jids_by_name_and_tenant() {
        let finder = RoomFinder {
            muc_domain: "muc.meet.jitsi".into(),
            base: Some("meet.jitsi".into()),
            mapping: Some(TenantMapping::new("muc", "meet.jitsi", None)),
        };
        assert_eq!(finder.room_jid("r", ""), "r@muc.meet.jitsi");
        assert_eq!(finder.room_jid("r", "meet.jitsi"), "r@muc.meet.jitsi");
        assert_eq!(finder.room_jid("r", "acme"), "[acme]r@muc.meet.jitsi");
        assert_eq!(
            finder.to_real("r@muc.acme.meet.jitsi/n"),
            "[acme]r@muc.meet.jitsi/n"
        );
        assert_eq!(
            finder.to_virtual("[acme]r@muc.meet.jitsi/n"),
            "r@muc.acme.meet.jitsi/n"
        );
        assert_eq!(
            finder.to_virtual("r@muc.meet.jitsi/n"),
            "r@muc.meet.jitsi/n"
        );
    }

    #[test]
    fn json_message_shape() {
        let m = json_message("c.example", "u@example/r", "{}", Some("r@muc.example"));
        assert_eq!(
            m.get_child("json-message", NS_JITMEET)
                .and_then(|j| j.get_attr("room")),
            Some("r@muc.example")
        );
        assert_eq!(
            m.get_child("json-message", NS_JITMEET)
                .map(Element::text_content),
            Some("{}".to_string())
        );
    }

    #[test]
    fn commands_in_the_stanza_namespace() {
        let m = Element::new("message", "jabber:client")
            .child(Element::new("av_moderation", "jabber:client").attr("enable", "true"));
        assert!(command_child(&m, "av_moderation").is_some());
        let other = Element::new("message", "jabber:client")
            .child(Element::new("av_moderation", "urn:other"));
        assert!(command_child(&other, "av_moderation").is_none());
    }
}
