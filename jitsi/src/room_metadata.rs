//! `room_metadata_component` (Jitsi's mod_room_metadata_component), loaded
//! as a component:
//!
//! ```lua
//! Component "metadata.meet.example.com" "room_metadata_component"
//!     muc_component = "conference.meet.example.com"
//!     breakout_rooms_component = "breakout.meet.example.com"
//! ```
//!
//! Every room of those MUCs has a JSON object of metadata (Jitsi's
//! `room.jitsiMetadata`, not saved). Clients set a key with
//! `<message to='metadata.…'><room_metadata xmlns='http://jitsi.org/jitmeet'
//! room='room@conference.…'>{"key":…,"data":…}</room_metadata></message>`:
//!
//! - the sender's session must come from a page naming a room (the
//!   BOSH/WebSocket URL's `room`, Jitsi's `jitsi_web_query_room`) and be an
//!   occupant of the room named by `room`;
//! - `jitsi-metadata-allow-moderation` is fired on the main VirtualHost
//!   (`muc_mapper_domain_base`) with `room`, `actor` (the occupant), `key`,
//!   `data` and the session as origin: a handler returning `true` decides —
//!   it sets the field `result` to `false` to refuse, or to the data to
//!   store instead (Lua's return value); otherwise only moderators may;
//! - keys in `room_metadata_blocked_keys` (Jitsi's list by default) are
//!   refused;
//! - a changed value is stored, the whole metadata is sent to every
//!   occupant as the json-message `{"type":"room_metadata","metadata":{…}}`
//!   from the component (with `room` = the room's address as the tenant's
//!   clients know it), and `jitsi-metadata-updated` is fired on the MUC.
//!
//! Admins (the focus) get the metadata with the room's `participants` and
//! `moderators` (`_data`). A newly joining user gets the metadata once,
//! just before its self-presence (Jitsi does it in a session filter; here
//! at the end of `muc-occupant-pre-join`). Other modules change metadata
//! with [`set_metadata`] (or change [`metadata`] and fire
//! `room-metadata-changed` on the MUC host), which broadcasts it. A
//! moderator's presence carrying the legacy `<startmuted/>` sets
//! `startMuted`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};
use xmpp_core::{Event, Host, Server, Value};

use super::components::{ComponentConfig, ComponentError};
use super::meeting_id::{NS_JITMEET, json_to_value};
use super::util::{is_admin, is_healthcheck_room};
use super::web_session::{announce_identity, get_room_from_jid, json_message, web_query_room};
use muc::Role;
use muc::events::{lock, occupant_of, room_of};
use muc::room::Room;
use muc::util::bare_of;

const NS_START_MUTED: &str = "http://jitsi.org/jitmeet/start-muted";

/// Keys clients may not set (`room_metadata_blocked_keys`' default).
pub const DEFAULT_BLOCKED_KEYS: &[&str] = &[
    "allownersEnabled",
    "asyncTranscription",
    "conferencePresetsServiceEnabled",
    "dialinEnabled",
    "moderators",
    "participants",
    "participantsSoftLimit",
    "services",
    "transcriberType",
    "transcription",
    "visitorsEnabled",
];

#[derive(Default)]
struct RoomMetadata {
    metadata: Map<String, Json>,
    /// Bare JIDs that got the metadata on joining.
    sent_initial: HashSet<String>,
}

/// The metadata of a MUC host's rooms (its extension slot).
#[derive(Default)]
struct Store(Mutex<HashMap<String, RoomMetadata>>);

/// The metadata component a MUC host reports to.
#[derive(Default)]
struct Component(Mutex<Option<(String, Arc<ComponentConfig>)>>);

/// A copy of a room's metadata (`None` when it keeps none).
pub fn metadata(muc: &Host, room_jid: &str) -> Option<Map<String, Json>> {
    lock(&muc.extension::<Store>().0)
        .get(room_jid)
        .map(|m| m.metadata.clone())
}

/// Sets a key of a room's metadata from the server side and broadcasts
/// (Jitsi modules change `room.jitsiMetadata` and fire
/// `room-metadata-changed`).
pub fn set_metadata(
    server: &Arc<Server>,
    muc: &Arc<Host>,
    room: &Arc<Room>,
    key: &str,
    data: Json,
) {
    lock(&muc.extension::<Store>().0)
        .entry(room.jid.clone())
        .or_default()
        .metadata
        .insert(key.to_string(), data);
    let mut ev = Event::new(server, "room-metadata-changed")
        .with_object("room", room.clone())
        .with_field("room_jid", room.jid.as_str());
    server.fire_on_host(muc, "room-metadata-changed", &mut ev);
}

/// What a room's occupant is sent: the metadata, and for admins the
/// participants and moderators.
pub fn metadata_json(
    metadata: &Map<String, Json>,
    admin_extra: Option<(Option<Json>, Json)>,
) -> String {
    let mut metadata = metadata.clone();
    if let Some((participants, moderators)) = admin_extra {
        if let Some(p) = participants {
            metadata.insert("participants".into(), p);
        }
        metadata.insert("moderators".into(), moderators);
    }
    json!({ "type": "room_metadata", "metadata": metadata }).to_string()
}

fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => json!(b),
        Value::Integer(i) => json!(i),
        Value::Number(n) => json!(n),
        Value::String(s) => json!(s),
        Value::Table(t) if t.map.is_empty() => {
            Json::Array(t.seq.iter().map(value_to_json).collect())
        }
        Value::Table(t) => Json::Object(
            t.map
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ComponentError> {
    let config = Arc::new(ComponentConfig::read("room_metadata_component", host)?);
    let Some(muc_name) = config.muc_component.clone() else {
        return Ok(());
    };
    if config.domain_base.is_none() {
        tracing::warn!(host = %host.name, "no muc_mapper_domain_base option set");
        return Ok(());
    }
    let blocked: HashSet<String> = match host.option("room_metadata_blocked_keys") {
        Some(_) => host
            .option_list("room_metadata_blocked_keys")
            .into_iter()
            .collect(),
        None => DEFAULT_BLOCKED_KEYS.iter().map(|k| k.to_string()).collect(),
    };
    tracing::info!(host = %host.name, "starting room metadata for {muc_name}");
    let component = host.clone();
    let c = config.clone();
    host.events.hook("message/host", 0, move |event| {
        on_message(&component, &c, &blocked, event)
    });
    if let Some(base) = config.domain_base.as_deref() {
        announce_identity(server, base, "room_metadata", &host.name);
    }
    let mucs = [
        Some(muc_name),
        host.option_str("breakout_rooms_component")
            .map(str::to_string),
    ];
    for (i, name) in mucs.into_iter().flatten().enumerate() {
        match server.host(&name) {
            Some(muc) => hook_muc(host, &config, &muc, i == 0),
            None => tracing::info!(host = %host.name, "no muc component found: {name}"),
        }
    }
    Ok(())
}

fn hook_muc(component: &Arc<Host>, config: &Arc<ComponentConfig>, muc: &Arc<Host>, main: bool) {
    *lock(&muc.extension::<Component>().0) = Some((component.name.clone(), config.clone()));
    let store = muc.extension::<Store>();
    let s = store.clone();
    muc.events.hook("muc-room-created", -1, move |event| {
        if let Some(room) = room_of(event)
            && !is_healthcheck_room(&room.jid)
        {
            lock(&s.0).entry(room.jid.clone()).or_default();
        }
        false
    });
    let s = store.clone();
    muc.events.hook("muc-room-destroyed", -1, move |event| {
        if let Some(room) = room_of(event) {
            lock(&s.0).remove(&room.jid);
        }
        false
    });
    let c = component.clone();
    muc.events.hook("room-metadata-changed", 0, move |event| {
        if let Some(room) = room_of(event) {
            broadcast(&event.server, &c, &room);
        }
        false
    });
    if !main {
        return;
    }
    let s = store.clone();
    let c = component.clone();
    muc.events
        .hook("muc-occupant-pre-join", -100, move |event| {
            initial_metadata(&c, &s, event);
            false
        });
    let s = store.clone();
    muc.events.hook("muc-occupant-left", 0, move |event| {
        if let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant"))
            && let Some(m) = lock(&s.0).get_mut(&room.jid)
        {
            m.sent_initial.remove(&occupant.bare_jid);
        }
        false
    });
    let h = muc.clone();
    muc.events.hook("muc-broadcast-presence", 0, move |event| {
        start_muted(&h, &store, event);
        false
    });
}

/// The legacy `<startmuted audio video/>` of a moderator becomes
/// `startMuted` metadata.
fn start_muted(muc: &Arc<Host>, store: &Store, event: &Event) {
    let (Some(room), Some(occupant), Some(stanza)) = (
        room_of(event),
        occupant_of(event, "occupant"),
        event.stanza.as_ref(),
    ) else {
        return;
    };
    if is_healthcheck_room(&room.jid) || occupant.role != Some(Role::Moderator) {
        return;
    }
    let Some(el) = stanza.get_child("startmuted", NS_START_MUTED) else {
        return;
    };
    let audio = el.get_attr("audio") == Some("true");
    let video = el.get_attr("video") == Some("true");
    {
        let mut rooms = lock(&store.0);
        let m = rooms.entry(room.jid.clone()).or_default();
        let current = m.metadata.get("startMuted");
        let old = |k: &str| current.and_then(|c| c.get(k)).and_then(Json::as_bool);
        if old("audio") == Some(audio) && old("video") == Some(video) {
            return;
        }
        let mut sm = current
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        sm.insert("audio".into(), json!(audio));
        sm.insert("video".into(), json!(video));
        m.metadata.insert("startMuted".into(), Json::Object(sm));
    }
    let mut ev = Event::new(&event.server, "room-metadata-changed")
        .with_object("room", room.clone())
        .with_field("room_jid", room.jid.as_str());
    event
        .server
        .fire_on_host(muc, "room-metadata-changed", &mut ev);
}

/// Sends the metadata to every occupant.
fn broadcast(server: &Arc<Server>, component: &Arc<Host>, room: &Arc<Room>) {
    for occupant in room.each_occupant() {
        send_metadata(server, component, room, &occupant);
    }
}

fn send_metadata(
    server: &Arc<Server>,
    component: &Arc<Host>,
    room: &Arc<Room>,
    occupant: &muc::occupant::Occupant,
) {
    let Some(to) = occupant.jid.clone() else {
        return;
    };
    let Some(ctx) = room.service().and_then(|s| s.ctx()) else {
        return;
    };
    let metadata = metadata(&ctx.host, &room.jid).unwrap_or_default();
    let extra = is_admin(component, &occupant.bare_jid).then(|| {
        let list = |k: &str| room.data_value(k).map(|v| value_to_json(&v));
        let moderators = match list("moderators") {
            Some(Json::Array(a)) => Json::Array(a),
            _ => json!([]),
        };
        (list("participants"), moderators)
    });
    let config = lock(&ctx.host.extension::<Component>().0).clone();
    let address = config.map_or_else(|| room.jid.clone(), |(_, c)| c.internal_rewrite(&room.jid));
    let body = metadata_json(&metadata, extra);
    server.send_from_host(
        component,
        json_message(&component.name, &to, &body, Some(&address)),
    );
}

/// The metadata, once per user, before the self-presence of its join.
fn initial_metadata(component: &Arc<Host>, store: &Store, event: &Event) {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return;
    };
    if is_healthcheck_room(&room.jid) {
        return;
    }
    let real = event
        .stanza
        .as_ref()
        .and_then(|s| s.from())
        .unwrap_or_default()
        .to_string();
    let bare = bare_of(&real).to_string();
    {
        let mut rooms = lock(&store.0);
        let Some(m) = rooms.get_mut(&room.jid) else {
            return;
        };
        if !m.sent_initial.insert(bare) {
            return;
        }
    }
    let mut o = (*occupant).clone();
    o.jid = Some(real);
    send_metadata(&event.server, component, &room, &o);
}

fn on_message(
    component: &Arc<Host>,
    config: &ComponentConfig,
    blocked: &HashSet<String>,
    event: &mut Event,
) -> bool {
    let (Some(stanza), Some(session)) = (event.stanza.as_ref(), event.origin.clone()) else {
        return false;
    };
    if stanza.type_() == Some("error") {
        return false;
    }
    if web_query_room(&session).is_none() {
        return false;
    }
    let Some(message) = stanza.get_child("room_metadata", NS_JITMEET) else {
        return true;
    };
    let text = message.text_content();
    let Some(address) = message.get_attr("room").filter(|_| !text.is_empty()) else {
        return true;
    };
    let Some(room) = get_room_from_jid(&event.server, &config.rewrite(address)) else {
        tracing::warn!(host = %component.name, "no room found for {address}");
        return false;
    };
    let from = stanza.from().unwrap_or_default().to_string();
    let Some(occupant) = room.get_occupant_by_real_jid(&from) else {
        tracing::warn!(room = %room.jid, "no occupant {from} found");
        return false;
    };
    let parsed: Json = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!("invalid JSON message: {text} error:{e}");
            return false;
        }
    };
    let Some(key) = parsed.get("key").and_then(Json::as_str).map(str::to_string) else {
        tracing::error!("invalid JSON payload, key is not a string: {text}");
        return true;
    };
    let mut data = match parsed.get("data") {
        None | Some(Json::Null) => {
            tracing::error!("invalid JSON payload, key or data are missing: {text}");
            return false;
        }
        Some(d) => d.clone(),
    };
    // Other modules may decide (Lua: the event's return value).
    let decided = config
        .domain_base
        .as_deref()
        .and_then(|b| event.server.host(b))
        .and_then(|main| {
            let mut ev = Event::new(&event.server, "jitsi-metadata-allow-moderation")
                .with_origin(&session)
                .with_object("room", room.clone())
                .with_object("actor", Arc::new(occupant.clone()))
                .with_field("key", key.as_str());
            if let Some(v) = json_to_value(&data) {
                ev.fields.insert("data".into(), v);
            }
            event
                .server
                .fire_on_host(&main, "jitsi-metadata-allow-moderation", &mut ev)
                .then(|| ev.fields.get("result").cloned())
        });
    match decided {
        Some(Some(Value::Bool(false))) => {
            tracing::warn!(room = %room.jid, "occupant {from} features do not allow this operation({key})");
            return false;
        }
        Some(Some(v)) => data = value_to_json(&v),
        Some(None) | None => {
            if occupant.role != Some(Role::Moderator) {
                tracing::warn!(room = %room.jid, "occupant {from} is not moderator and not allowed this operation({key})");
                return false;
            }
        }
    }
    if blocked.contains(&key) {
        tracing::warn!(room = %room.jid, "occupant {from} attempted to set blocked metadata key {key:?}");
        return false;
    }
    let Some(ctx) = room.service().and_then(|s| s.ctx()) else {
        return false;
    };
    let changed = {
        let store = ctx.host.extension::<Store>();
        let mut rooms = lock(&store.0);
        let m = rooms.entry(room.jid.clone()).or_default();
        if m.metadata.get(&key) == Some(&data) {
            false
        } else {
            m.metadata.insert(key.clone(), data);
            true
        }
    };
    if changed {
        tracing::info!(room = %room.jid, "metadata key {key:?} updated by {from}");
        broadcast(&event.server, component, &room);
        let mut ev = ctx
            .room_event("jitsi-metadata-updated", &room)
            .with_object("actor", Arc::new(occupant))
            .with_field("key", key.as_str());
        ctx.fire("jitsi-metadata-updated", &mut ev);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_occupants_and_admins_get() {
        let mut m = Map::new();
        m.insert("whiteboard".into(), json!({"state": 1}));
        let plain: Json = serde_json::from_str(&metadata_json(&m, None)).expect("json");
        assert_eq!(
            plain,
            json!({"type": "room_metadata", "metadata": {"whiteboard": {"state": 1}}})
        );
        let admin: Json =
            serde_json::from_str(&metadata_json(&m, Some((None, json!([]))))).expect("json");
        assert_eq!(admin["metadata"]["moderators"], json!([]));
        assert!(admin["metadata"].get("participants").is_none());
    }

    #[test]
    fn lua_values_become_json() {
        let mut t = xmpp_core::Table::new();
        t.insert("a", Value::Integer(1));
        assert_eq!(value_to_json(&Value::Table(t)), json!({"a": 1}));
        let mut s = xmpp_core::Table::new();
        s.seq = vec![Value::str("x"), Value::Bool(true)];
        assert_eq!(value_to_json(&Value::Table(s)), json!(["x", true]));
    }
}
