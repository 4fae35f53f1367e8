//! `muc_meeting_id` (Jitsi's mod_muc_meeting_id), on the conference MUC:
//!
//! - every new room gets a meeting id (`_data.meetingId`, a UUID), shown
//!   as `muc#roominfo_meetingId` in the room's disco#info and in the
//!   configuration form Jicofo reads; only admins (the focus) may change it;
//! - submissions of `muc#roomconfig_moderatedroom` and
//!   `muc#roomconfig_presencebroadcast` are ignored;
//! - an occupant kicked (status 307) loses its affiliation;
//! - the pre-join queue: until the focus has joined a room
//!   (`_data.jicofo_lock`), other joins are held (up to 500) and replayed
//!   when it does (the `jicofo-unlock-room` event);
//! - the session's `user_region` is added to the join presence as
//!   `<jitsi_participant_region/>`;
//! - `<nick xmlns='http://jabber.org/protocol/nick'/>` is removed from
//!   groupchat messages (no forged display names);
//! - groupchat messages without a body carrying a
//!   `<json-message xmlns='http://jitsi.org/jitmeet'/>` are decoded once and
//!   fired as `jitsi-endpoint-message-received` (or
//!   `jitsi-transcript-received` for final transcripts); invalid JSON is
//!   dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Session, SessionKind, Table, Value};

use super::util::{
    extract_subdomain, is_admin, is_focus_nick, is_healthcheck_room, presence_check_status,
};
use muc::events::{lock, occupant_of, room_of};
use muc::features::{on_disco, on_form};
use muc::form::{Field, FieldValue};
use muc::room::iq::add_disco_field;
use muc::room::owner::submitted_value;
use muc::room::{Actor, AffiliationData, Room};
use muc::util::{NS_MUC_USER, uuid};

pub const NS_JITMEET: &str = "http://jitsi.org/jitmeet";
const NS_NICK: &str = "http://jabber.org/protocol/nick";
/// Joins held per room before the focus is in.
pub const QUEUE_MAX_SIZE: usize = 500;

/// A join held until the focus arrives.
struct Held {
    origin: Arc<Session>,
    stanza: Element,
}

/// The pre-join queues of the component's rooms.
#[derive(Default)]
struct Queues(Mutex<HashMap<String, VecDeque<Held>>>);

fn meeting_id_field(room: &Room) -> Field {
    Field::new("muc#roominfo_meetingId", "text-single")
        .label("The meeting unique id.")
        .value(Some(FieldValue::Text(
            room.data_str("meetingId").unwrap_or_default(),
        )))
}

/// Is the session that sent a held join still connected (Lua's
/// `origin.conn`)?
pub fn still_connected(event_server: &xmpp_core::Server, origin: &Arc<Session>) -> bool {
    if origin.kind != SessionKind::C2s {
        return true;
    }
    origin
        .full_jid()
        .and_then(|j: Jid| event_server.sessions.get_full(&j))
        .is_some_and(|s| Arc::ptr_eq(&s, origin))
}

pub fn register(host: &Arc<Host>) {
    let ev = &host.events;
    ev.hook("muc-room-created", 0, |event| {
        if let Some(room) = room_of(event)
            && !is_healthcheck_room(&room.jid)
        {
            let id = uuid();
            tracing::debug!(room = %room.jid, "created meetingId {id}");
            room.set_data_str("meetingId", Some(&id));
        }
        false
    });
    on_disco(host, |room, event| {
        let field = meeting_id_field(room);
        let value = field.value.clone();
        add_disco_field(event, field, value);
    });
    on_form(host, 90 - 3, |room, _| Some(meeting_id_field(room)));
    for field in [
        "muc#roomconfig_moderatedroom",
        "muc#roomconfig_presencebroadcast",
    ] {
        ev.hook(&format!("muc-config-submitted/{field}"), 99, |_| true);
    }
    let h = host.clone();
    ev.hook(
        "muc-config-submitted/muc#roominfo_meetingId",
        99,
        move |event| {
            let actor = event.field_str("actor").unwrap_or_default();
            if !is_admin(&h, actor) {
                return true;
            }
            if let Some(room) = room_of(event) {
                let value = submitted_value(event)
                    .and_then(Value::as_str)
                    .map(str::to_string);
                room.set_data_str("meetingId", value.as_deref());
            }
            false
        },
    );
    ev.hook("muc-broadcast-presence", 0, |event| {
        let kicked = event
            .stanza
            .as_ref()
            .is_some_and(|s| presence_check_status(s.get_child("x", NS_MUC_USER), "307"))
            || muc::events::mutable_of::<Element>(event, "x")
                .is_some_and(|x| presence_check_status(Some(&lock(&x)), "307"));
        if kicked
            && let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant"))
        {
            let actor = event.field_str("actor").map(str::to_string);
            let actor = actor.as_deref().map_or(Actor::Room, Actor::Jid);
            if let Err(e) = room.set_affiliation(
                actor,
                &occupant.bare_jid,
                None,
                None,
                AffiliationData::Keep,
            ) {
                tracing::debug!(room = %room.jid, "clearing the affiliation of a kicked occupant: {e:?}");
            }
        }
        false
    });

    let h = host.clone();
    ev.hook("muc-occupant-pre-join", 8, move |event| pre_join(&h, event));
    let h = host.clone();
    ev.hook("jicofo-unlock-room", 0, move |event| {
        if let Some(room) = room_of(event) {
            unlock(&h, event, &room);
        }
        false
    });
    ev.hook("muc-room-destroyed", 0, |event| {
        if let (Some(room), Some(host)) = (room_of(event), event.host.clone()) {
            lock(&host.extension::<Queues>().0).remove(&room.jid);
        }
        false
    });
    ev.hook("muc-occupant-groupchat", 45, |event| {
        if let Some(s) = event.stanza.as_mut() {
            s.remove_children(|c| c.is("nick", NS_NICK));
        }
        false
    });
    let h = host.clone();
    ev.hook("message/bare", 0, move |event| json_message(&h, event));
}

fn pre_join(host: &Arc<Host>, event: &mut Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    let occupant = occupant_of(event, "occupant");
    let health = is_healthcheck_room(&room.jid);
    let bare = occupant
        .as_ref()
        .map(|o| o.bare_jid.clone())
        .unwrap_or_default();
    if !health && !is_admin(host, &bare) {
        add_region(event);
    }
    if health || room.data_value("jicofo_lock") == Some(Value::Bool(false)) {
        return false;
    }
    let nick = occupant
        .as_ref()
        .map(|o| o.nick.as_str())
        .unwrap_or_default();
    if is_focus_nick(nick) {
        let mut unlock = Event::new(&event.server, "jicofo-unlock-room")
            .with_object("room", room.clone())
            .with_field("room_jid", room.jid.as_str());
        event
            .server
            .fire_on_host(host, "jicofo-unlock-room", &mut unlock);
        return false;
    }
    room.set_data_value("jicofo_lock", Some(Value::Bool(true)));
    let (Some(origin), Some(stanza)) = (event.origin.clone(), event.stanza.clone()) else {
        return true;
    };
    let queues = host.extension::<Queues>();
    let mut queues = lock(&queues.0);
    let queue = queues.entry(room.jid.clone()).or_default();
    if queue.len() >= QUEUE_MAX_SIZE {
        tracing::error!(room = %room.jid, "error enqueuing occupant event for {nick}");
        return true;
    }
    tracing::debug!(room = %room.jid, "occupant pushed to prejoin queue {nick}");
    queue.push_back(Held { origin, stanza });
    true
}

/// `handle_jicofo_unlock`: the held joins are handled now, in order.
fn unlock(host: &Arc<Host>, event: &Event, room: &Arc<Room>) {
    room.set_data_value("jicofo_lock", Some(Value::Bool(false)));
    let held = lock(&host.extension::<Queues>().0).remove(&room.jid);
    let (Some(held), Some(ctx)) = (held, room.ctx()) else {
        return;
    };
    for h in held {
        if still_connected(&event.server, &h.origin) {
            tracing::debug!(room = %room.jid, "occupant processed from queue {:?}", h.stanza.to());
            room.handle_normal_presence(&ctx, &h.origin, h.stanza);
        }
    }
}

fn add_region(event: &mut Event) {
    let region = event.origin.as_ref().and_then(|o| {
        o.state()
            .attributes
            .get("user_region")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let (Some(region), Some(stanza)) = (region, event.stanza.as_mut()) else {
        return;
    };
    if stanza
        .children()
        .any(|c| c.name() == "jitsi_participant_region")
    {
        return;
    }
    let ns = stanza.ns().to_string();
    stanza.push_child(Element::new("jitsi_participant_region", ns).text(region));
}

/// JSON as a Lua-shaped value (arrays in `seq`, objects in `map`).
/// `null` is `None` (Lua's `nil`: absent from tables).
pub fn json_to_value(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::str(s.clone()),
        serde_json::Value::Array(a) => {
            let mut t = Table::new();
            t.seq = a.iter().filter_map(json_to_value).collect();
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let mut t = Table::new();
            for (k, v) in o {
                if let Some(v) = json_to_value(v) {
                    t.insert(k.clone(), v);
                }
            }
            Value::Table(t)
        }
    })
}

/// Endpoint messages (`message/bare` on the component): decoded once and
/// fired for the modules that want them.
fn json_message(host: &Arc<Host>, event: &mut Event) -> bool {
    let Some(stanza) = event.stanza.as_ref() else {
        return false;
    };
    if stanza.type_() != Some("groupchat") || stanza.children().any(|c| c.name() == "body") {
        return false;
    }
    let Some(raw) = stanza.get_child_text("json-message", NS_JITMEET) else {
        return false;
    };
    let to = stanza.to().unwrap_or_default().to_string();
    let from = stanza.from().unwrap_or_default().to_string();
    let Some(room) = muc::service_for(host).and_then(|s| match s.get_room(&to) {
        muc::Lookup::Live(r) => Some(r),
        _ => None,
    }) else {
        tracing::warn!("no room found for {to}");
        return false;
    };
    let Some(occupant) = room.get_occupant_by_real_jid(&from) else {
        tracing::error!(room = %room.jid, "occupant sending msg {from} was not found");
        return false;
    };
    if raw.contains("\"is_interim\":true") {
        return false;
    }
    let message: serde_json::Value = match serde_json::from_str(&raw) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("error decoding data error:{e} sender: {from} to:{to}");
            return true;
        }
    };
    let Some(mut message) = json_to_value(&message) else {
        return false;
    };
    let name = if let Value::Table(t) = &mut message
        && t.get("transcript").is_some()
    {
        if t.get("is_interim").and_then(Value::as_bool) == Some(true) {
            return false;
        }
        let text = t
            .get("transcript")
            .and_then(|v| v.as_table())
            .and_then(|tr| tr.seq.first())
            .and_then(|first| first.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if text.is_empty() {
            return false;
        }
        let user_id = t
            .get("participant")
            .and_then(|p| p.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(who) = room.get_occupant_by_nick(&format!("{}/{user_id}", room.jid))
            && let Some(jid) = who.jid
        {
            t.insert("jid", Value::str(jid));
        }
        if let Some(id) = room.data_str("meetingId") {
            t.insert("session_id", Value::str(id));
        }
        let fqn = match extract_subdomain(room.node()) {
            Some((tenant, name)) => format!("{tenant}/{name}"),
            None => room.node().to_string(),
        };
        t.insert("fqn", Value::str(fqn));
        "jitsi-transcript-received"
    } else {
        "jitsi-endpoint-message-received"
    };
    let key = if name == "jitsi-transcript-received" {
        "transcription"
    } else {
        "message"
    };
    let mut fired = Event::new(&event.server, name)
        .with_object("room", room.clone())
        .with_object("occupant", Arc::new(occupant))
        .with_field("room_jid", room.jid.as_str())
        .with_field("raw_message", raw.as_str())
        .with_stanza(stanza.clone());
    fired.fields.insert(key.to_string(), message);
    fired.origin = event.origin.clone();
    event.server.fire_on_host(host, name, &mut fired)
}
