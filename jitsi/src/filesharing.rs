//! `filesharing_component` (Jitsi's mod_filesharing_component), loaded as a
//! component:
//!
//! ```lua
//! Component "filesharing.meet.example.com" "filesharing_component"
//!     muc_component = "conference.meet.example.com"
//! ```
//!
//! The room's list of shared files (the files themselves live elsewhere:
//! Jitsi's client uploads them to a file-sharing service and only reports
//! them here). A client whose session comes from a page naming a room
//! (the BOSH/WebSocket URL's `room` and `prefix`) and who is an occupant of
//! that room sends to the component:
//!
//! - `<file-sharing xmlns='http://jitsi.org/jitmeet' type='add'>{json with
//!   fileId…}</file-sharing>`: the file is recorded with the sender as its
//!   author (`authorParticipantId` = its nickname, `authorParticipantJid`,
//!   `authorParticipantName` from its presence's `<nick/>` or
//!   `anonymous`, `conferenceFullName`), and every other occupant but
//!   admins gets `{"type":"file-sharing","event":"add","file":{…}}`;
//! - `<file-sharing type='remove' fileId='…'/>`: forgotten, and the others
//!   get `{"type":"file-sharing","event":"remove","fileId":…}`;
//!
//! Only users allowed the `file-upload` feature may (a token's
//! `context.features`, else the room's owners): others get
//! `auth/forbidden`. An occupant joining a room with files gets
//! `{"type":"file-sharing","event":"list","files":{id: file}}`. The
//! component needs `muc_mapper_domain_base` and is announced as the
//! `file-sharing` identity there; `jitsi-filesharing-add`/`-remove`/
//! `-updated` are fired on that host as in Jitsi.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};
use xmpp_core::error::StanzaError;
use xmpp_core::{ErrorType, Event, Host, Server};

use super::components::{ComponentConfig, ComponentError};
use super::meeting_id::NS_JITMEET;
use super::util::is_admin;
use super::web_session::{RoomFinder, announce_identity, json_message, web_query_room};
use muc::Affiliation;
use muc::events::{lock, occupant_of, room_of};
use muc::room::Room;

pub const IDENTITY_TYPE: &str = "file-sharing";
const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// The shared files of every room, by room JID then file id.
#[derive(Default)]
struct Files(Mutex<HashMap<String, BTreeMap<String, Json>>>);

/// The files shared in a room, as the component `component` knows them.
pub fn shared_files(component: &Host, room_jid: &str) -> BTreeMap<String, Json> {
    lock(&component.extension::<Files>().0)
        .get(room_jid)
        .cloned()
        .unwrap_or_default()
}

/// The json-message payloads.
pub fn add_json(file: &Json) -> String {
    json!({ "type": IDENTITY_TYPE, "event": "add", "file": file }).to_string()
}
pub fn remove_json(id: &str) -> String {
    json!({ "type": IDENTITY_TYPE, "event": "remove", "fileId": id }).to_string()
}
pub fn list_json(files: &BTreeMap<String, Json>) -> String {
    let files: Map<String, Json> = files.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({ "type": IDENTITY_TYPE, "event": "list", "files": files }).to_string()
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ComponentError> {
    let config = Arc::new(ComponentConfig::read("filesharing_component", host)?);
    let Some(muc_name) = config.muc_component.clone() else {
        return Ok(());
    };
    if config.domain_base.is_none() {
        tracing::warn!(host = %host.name, "no 'muc_mapper_domain_base' option set, disabling file sharing component");
        return Ok(());
    }
    let component = host.clone();
    let c = config.clone();
    host.events.hook("message/host", 0, move |event| {
        on_message(&component, &c, event)
    });
    if let Some(base) = config.domain_base.as_deref() {
        announce_identity(server, base, IDENTITY_TYPE, &host.name);
    }
    let Some(muc) = server.host(&muc_name) else {
        tracing::info!(host = %host.name, "no muc component found: {muc_name}");
        return Ok(());
    };
    let c = host.clone();
    muc.events.hook("muc-occupant-joined", -10, move |event| {
        occupant_joined(&c, event);
        false
    });
    let files = host.extension::<Files>();
    muc.events.hook("muc-room-destroyed", -1, move |event| {
        if let Some(room) = room_of(event) {
            lock(&files.0).remove(&room.jid);
        }
        false
    });
    Ok(())
}

fn occupant_joined(component: &Arc<Host>, event: &Event) {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return;
    };
    if is_admin(component, &occupant.bare_jid) {
        return;
    }
    let files = shared_files(component, &room.jid);
    let Some(to) = occupant.jid.as_deref().filter(|_| !files.is_empty()) else {
        return;
    };
    let stanza = json_message(&component.name, to, &list_json(&files), None);
    event.server.send_from_host(component, stanza);
}

/// Sends `json` to every occupant but admins and `actor` (an occupant JID).
fn notify_others(
    server: &Arc<Server>,
    component: &Arc<Host>,
    room: &Room,
    actor: &str,
    json: &str,
) {
    for o in room.each_occupant() {
        if is_admin(component, &o.bare_jid) || o.nick == actor {
            continue;
        }
        if let Some(to) = &o.jid {
            server.send_from_host(component, json_message(&component.name, to, json, None));
        }
    }
}

fn fire_on_base(
    server: &Arc<Server>,
    config: &ComponentConfig,
    name: &str,
    room: &Arc<Room>,
    extra: &[(&str, &str)],
) {
    let Some(base) = config.domain_base.as_deref().and_then(|b| server.host(b)) else {
        return;
    };
    let mut ev = Event::new(server, name)
        .with_object("room", room.clone())
        .with_field("room_jid", room.jid.as_str());
    for (k, v) in extra {
        ev = ev.with_field(k, *v);
    }
    server.fire_on_host(&base, name, &mut ev);
}

fn on_message(component: &Arc<Host>, config: &ComponentConfig, event: &mut Event) -> bool {
    let (Some(stanza), Some(session)) = (event.stanza.clone(), event.origin.clone()) else {
        return false;
    };
    if stanza.type_() == Some("error") {
        return false;
    }
    let Some((room_name, prefix)) = web_query_room(&session) else {
        return false;
    };
    let Some(message) = stanza.get_child(IDENTITY_TYPE, NS_JITMEET) else {
        return false;
    };
    let muc = config.muc_component.as_deref().unwrap_or_default();
    let room = RoomFinder::new(component, muc)
        .ok()
        .and_then(|finder| finder.room_of_session(&event.server, &session));
    let Some(room) = room else {
        tracing::warn!(host = %component.name, "no room found for {prefix}/{room_name}");
        return false;
    };
    let from = stanza.from().unwrap_or_default().to_string();
    let Some(occupant) = room.get_occupant_by_real_jid(&from) else {
        tracing::warn!(room = %room.jid, "no occupant {from} found");
        return false;
    };
    let is_owner = room.get_affiliation(&from) == Some(Affiliation::Owner);
    let allowed = {
        let state = session.state();
        auth_feature_allowed(&state.attributes, "file-upload", is_owner)
    };
    if !allowed {
        session.send(StanzaError::new(ErrorType::Auth, "forbidden").reply_to(&stanza));
        return true;
    }
    let files = component.extension::<Files>();
    match message.get_attr("type") {
        Some("add") => {
            let mut file = match serde_json::from_str::<Json>(&message.text_content()) {
                Ok(Json::Object(o)) => o,
                Ok(_) | Err(_) => {
                    tracing::error!("error decoding data: {}", stanza.to_xml());
                    return false;
                }
            };
            let Some(id) = file.get("fileId").and_then(|v| match v {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                _ => None,
            }) else {
                tracing::error!("error missing required field: {}", stanza.to_xml());
                return false;
            };
            file.insert("authorParticipantId".into(), json!(occupant.nickname()));
            file.insert("authorParticipantJid".into(), json!(from));
            let name = occupant
                .get_presence(None)
                .and_then(|p| p.get_child_text("nick", NS_NICK))
                .unwrap_or_else(|| "anonymous".to_string());
            file.insert("authorParticipantName".into(), json!(name));
            file.insert(
                "conferenceFullName".into(),
                json!(config.internal_rewrite(&room.jid)),
            );
            let file = Json::Object(file);
            lock(&files.0)
                .entry(room.jid.clone())
                .or_default()
                .insert(id.clone(), file.clone());
            notify_others(
                &event.server,
                component,
                &room,
                &occupant.nick,
                &add_json(&file),
            );
            fire_on_base(
                &event.server,
                config,
                "jitsi-filesharing-add",
                &room,
                &[("id", &id), ("actor", &occupant.nick)],
            );
            fire_on_base(
                &event.server,
                config,
                "jitsi-filesharing-updated",
                &room,
                &[],
            );
            true
        }
        Some("remove") => {
            let Some(id) = message.get_attr("fileId").map(str::to_string) else {
                tracing::error!("error missing required field: {}", stanza.to_xml());
                return true;
            };
            let had = lock(&files.0)
                .get_mut(&room.jid)
                .map(|f| f.remove(&id).is_some());
            if had.is_some() {
                notify_others(
                    &event.server,
                    component,
                    &room,
                    &occupant.nick,
                    &remove_json(&id),
                );
            }
            fire_on_base(
                &event.server,
                config,
                "jitsi-filesharing-remove",
                &room,
                &[("id", &id), ("actor", &occupant.nick)],
            );
            fire_on_base(
                &event.server,
                config,
                "jitsi-filesharing-updated",
                &room,
                &[],
            );
            true
        }
        _ => false,
    }
}

/// Jitsi's `is_feature_allowed(feature, session.jitsi_meet_context_features,
/// is_moderator)`: the token's features decide when it has any, else
/// moderators (here: owners) may.
fn auth_feature_allowed(attributes: &xmpp_core::Table, feature: &str, is_moderator: bool) -> bool {
    match attributes.get("jitsi_meet_context_features") {
        None => is_moderator,
        Some(features) => match features.get(feature) {
            Some(xmpp_core::Value::Bool(b)) => *b,
            Some(xmpp_core::Value::String(s)) => s == "true",
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::{Table, Value};

    #[test]
    fn payloads() {
        let file = json!({"fileId": "f1", "fileName": "a.txt"});
        let add: Json = serde_json::from_str(&add_json(&file)).expect("json");
        assert_eq!(
            add,
            json!({"type": "file-sharing", "event": "add", "file": file})
        );
        let rm: Json = serde_json::from_str(&remove_json("f1")).expect("json");
        assert_eq!(rm["fileId"], "f1");
        let mut files = BTreeMap::new();
        files.insert("f1".to_string(), file.clone());
        let list: Json = serde_json::from_str(&list_json(&files)).expect("json");
        assert_eq!(list["files"]["f1"], file);
    }

    #[test]
    fn feature_check() {
        let none = Table::new();
        assert!(auth_feature_allowed(&none, "file-upload", true));
        assert!(!auth_feature_allowed(&none, "file-upload", false));
        let mut features = Table::new();
        features.insert("file-upload", Value::str("true"));
        let mut with = Table::new();
        with.insert("jitsi_meet_context_features", Value::Table(features));
        assert!(auth_feature_allowed(&with, "file-upload", false));
        let mut other = Table::new();
        other.insert("jitsi_meet_context_features", Value::Table(Table::new()));
        assert!(!auth_feature_allowed(&other, "file-upload", true));
    }
}
