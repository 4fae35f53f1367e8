//! `muc_breakout_rooms` (Jitsi's mod_muc_breakout_rooms), loaded on the main
//! VirtualHost with `main_muc` (the conference MUC) and `breakout_rooms_muc`
//! (default `breakout.<host>`, a MUC component for the breakout rooms).
//!
//! - The main host's disco#info names the component (identity
//!   `component`/`breakout_rooms`; node `breakout_rooms` adds the rename
//!   feature for a web session).
//! - A moderator of the room its web session is for (`?room=`, occupant of
//!   the main room or one of its breakout rooms) sends to the component
//!   `<message><breakout_rooms type='features/breakout-rooms/add'
//!   subject='...'/></message>` (also `remove` and `rename` with
//!   `breakoutRoomJid`, `move-to-room` with `participantJid` and `roomJid`,
//!   which is passed on to the participant as a json message).
//! - Breakout rooms are `<uuid>@<breakout_rooms_muc>`, listed with their
//!   names in the main room's data (`breakout_rooms`); only listed ones can
//!   be created; they take affiliations from the main room.
//! - Every join and leave in the main room or its breakout rooms sends
//!   everyone (the focus excepted), at most every 0.3 s, the json message
//!   `{type: 'breakout_rooms', event: 'features/breakout-rooms/update',
//!   roomCounter, rooms: {id: {id, jid, name, isMainRoom?, participants:
//!   {occupant JID: {jid, role, displayName}}}}}` from the component.
//! - Destroying the main room destroys its breakout rooms, pointing to it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value as Json, json};
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server, Value, config::OptionError};

use super::breakout_lifecycle::{
    CloseTimers, SwitchingCache, hook_breakout_host, hook_main_host, load_room_destroy,
};
use super::lobby_rooms::{live_room, muc_of, when_muc_loaded};
use super::util::{TenantMapping, is_healthcheck_room, split};
use muc::events::{lock, occupant_of, room_of};
use muc::form::{Field, FieldValue};
use muc::room::iq::add_disco_field;
use muc::room::owner::add_config_field;
use muc::util::{NS_DISCO_INFO, host_of};
use muc::{Role, Room};

pub const BREAKOUT_ROOMS_IDENTITY_TYPE: &str = "breakout_rooms";
pub const RENAME_FEATURE: &str = "http://jitsi.org/protocol/breakout_rooms#rename";
const BROADCAST_ROOMS_INTERVAL: Duration = Duration::from_millis(300);
const ADD: &str = "features/breakout-rooms/add";
const MOVE_TO_ROOM: &str = "features/breakout-rooms/move-to-room";
const REMOVE: &str = "features/breakout-rooms/remove";
const RENAME: &str = "features/breakout-rooms/rename";
const UPDATE: &str = "features/breakout-rooms/update";

/// The module on one main VirtualHost.
pub struct Breakout {
    pub main_muc: String,
    pub breakout_muc: String,
    mapping: Option<TenantMapping>,
    /// Breakout room → main room.
    main_rooms: Mutex<HashMap<String, String>>,
    /// Main rooms with an update on its way.
    pending: Mutex<HashSet<String>>,
    /// Occupants moving between the rooms of a conference.
    pub(super) switching: SwitchingCache,
    /// Conferences closing because everyone left.
    pub(super) close_timers: CloseTimers,
    /// Client hosts whose `resource-unbind` clears switching state.
    pub(super) unbind_hooked: Mutex<HashSet<String>>,
}

impl Breakout {
    fn main_room_jid(&self, room_jid: &str) -> Option<String> {
        if host_of(room_jid) == self.main_muc {
            return Some(room_jid.to_string());
        }
        lock(&self.main_rooms).get(room_jid).cloned()
    }

    pub(super) fn main_room(&self, server: &Server, room_jid: &str) -> Option<Arc<Room>> {
        let jid = self.main_room_jid(room_jid)?;
        live_room(&muc_of(server, &self.main_muc)?.1, &jid)
    }

    pub(super) fn breakout_room(&self, server: &Server, jid: &str) -> Option<Arc<Room>> {
        live_room(&muc_of(server, &self.breakout_muc)?.1, jid)
    }

    /// The JIDs of a main room's breakout rooms.
    pub(super) fn breakout_jids(&self, main: &Room) -> Vec<String> {
        breakout_list(main)
            .into_iter()
            .map(|(jid, _)| jid)
            .collect()
    }

    fn to_virtual(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_virtual(jid))
            .unwrap_or_else(|| jid.to_string())
    }

    fn send_json(&self, server: &Arc<Server>, to: &str, json: &str) {
        let stanza = super::web_session::json_message(&self.breakout_muc, to, json, None);
        match server.host(&self.breakout_muc) {
            Some(host) => server.post_stanza(&host.local_session, stanza, false),
            None => tracing::warn!("no host {} to send from", self.breakout_muc),
        }
    }

    /// The rooms and their participants (`get_participants` for each).
    fn update_json(&self, server: &Server, main: &Room) -> String {
        let participants = |room: &Room| -> Map<String, Json> {
            let mut out = Map::new();
            for o in room.each_occupant() {
                let Some(jid) = o.jid.clone() else { continue };
                if split(&jid).0 == Some("focus") {
                    continue;
                }
                let role = o.role.map(|r| muc::util::role_name(Some(r)));
                out.insert(
                    self.to_virtual(&o.nick),
                    json!({
                        "jid": jid,
                        "role": role,
                        "displayName": o.get_presence(None)
                            .and_then(|p| p.get_child_text("nick", "http://jabber.org/protocol/nick")),
                    }),
                );
            }
            out
        };
        let real_jid = self.to_virtual(&main.jid);
        let real_node = split(&real_jid).0.unwrap_or_default().to_string();
        let mut rooms = Map::new();
        rooms.insert(
            real_node.clone(),
            json!({
                "isMainRoom": true,
                "id": real_node,
                "jid": real_jid,
                "name": main.get_subject().1,
                "participants": participants(main),
            }),
        );
        for (jid, subject) in breakout_list(main) {
            let node = split(&jid).0.unwrap_or_default().to_string();
            let people = self
                .breakout_room(server, &jid)
                .map(|r| participants(&r))
                .unwrap_or_default();
            rooms.insert(
                node.clone(),
                json!({ "id": node, "jid": jid, "name": subject, "participants": people }),
            );
        }
        json!({
            "type": BREAKOUT_ROOMS_IDENTITY_TYPE,
            "event": UPDATE,
            "roomCounter": main.data_value("breakout_rooms_counter").and_then(|v| v.as_i64()),
            "rooms": rooms,
        })
        .to_string()
    }

    /// Sends the room list to everyone now (`broadcast_breakout_rooms`'s timer).
    fn broadcast_now(&self, server: &Arc<Server>, main_jid: &str) {
        lock(&self.pending).remove(main_jid);
        let Some(main) = self.main_room(server, main_jid) else {
            return;
        };
        let json = self.update_json(server, &main);
        let mut rooms = vec![main.clone()];
        rooms.extend(
            breakout_list(&main)
                .into_iter()
                .filter_map(|(jid, _)| self.breakout_room(server, &jid)),
        );
        for room in rooms {
            for o in room.each_occupant() {
                if let Some(jid) = o.jid.as_deref()
                    && split(jid).0 != Some("focus")
                {
                    self.send_json(server, jid, &json);
                }
            }
        }
    }

    /// `broadcast_breakout_rooms`: at most every 0.3 s per main room.
    fn broadcast(self: &Arc<Self>, server: &Arc<Server>, room_jid: &str) {
        let Some(main_jid) = self.main_room_jid(room_jid) else {
            return;
        };
        if !lock(&self.pending).insert(main_jid.clone()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.broadcast_now(server, &main_jid);
            return;
        };
        let (me, server) = (self.clone(), server.clone());
        runtime.spawn(async move {
            tokio::time::sleep(BROADCAST_ROOMS_INTERVAL).await;
            me.broadcast_now(&server, &main_jid);
        });
    }

    fn create(self: &Arc<Self>, server: &Arc<Server>, main: &Arc<Room>, subject: &str) {
        let jid = format!("{}@{}", uuid_v4(), self.breakout_muc);
        let mut list = main
            .data_value("breakout_rooms")
            .and_then(|v| v.as_table().cloned())
            .unwrap_or_default();
        list.insert(jid.clone(), Value::str(subject));
        let counter = main
            .data_value("breakout_rooms_counter")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        main.set_data_value("breakout_rooms", Some(Value::Table(list)));
        main.set_data_value("breakout_rooms_counter", Some(Value::Integer(counter + 1)));
        main.set_data_bool("breakout_rooms_active", true);
        // Kept while everyone is in breakout rooms.
        main.set_persistent(true);
        main.save(true);
        lock(&self.main_rooms).insert(jid, main.jid.clone());
        self.broadcast(server, &main.jid);
    }

    fn destroy(
        self: &Arc<Self>,
        server: &Arc<Server>,
        main: &Arc<Room>,
        jid: &str,
        message: Option<&str>,
    ) {
        if jid == main.jid || self.main_room_jid(jid).as_deref() != Some(main.jid.as_str()) {
            return;
        }
        if let Some(room) = self.breakout_room(server, jid) {
            let text = message.unwrap_or("Breakout room removed.");
            if let Err(e) = room.destroy(Some(&self.to_virtual(&main.jid)), Some(text), None) {
                tracing::warn!(room = %jid, "could not destroy the breakout room: {e}");
            }
        }
        if let Some(Value::Table(mut list)) = main.data_value("breakout_rooms") {
            list.map.remove(jid);
            main.set_data_value("breakout_rooms", Some(Value::Table(list)));
        }
        main.save(true);
        lock(&self.main_rooms).remove(jid);
        self.broadcast(server, &main.jid);
    }

    fn rename(self: &Arc<Self>, server: &Arc<Server>, main: &Arc<Room>, jid: &str, name: &str) {
        let Some(Value::Table(mut list)) = main.data_value("breakout_rooms") else {
            return;
        };
        if list.get(jid).is_none() {
            return;
        }
        list.insert(jid, Value::str(name));
        main.set_data_value("breakout_rooms", Some(Value::Table(list)));
        if let Some(room) = self.breakout_room(server, jid) {
            room.set_subject(&room.jid.clone(), Some(name));
        }
        main.save(true);
        self.broadcast(server, &main.jid);
    }
}

/// A random UUID (version 4) as text (Prosody's `util.uuid.generate`).
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// (jid, name) of a main room's breakout rooms.
fn breakout_list(main: &Room) -> Vec<(String, String)> {
    main.data_value("breakout_rooms")
        .and_then(|v| v.as_table().cloned())
        .map(|t| {
            t.map
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `message/host` on the component: the moderators' requests.
fn on_message(b: &Arc<Breakout>, event: &mut Event) -> bool {
    let stanza = event.stanza().clone();
    if stanza.type_() == Some("error") {
        return false;
    }
    let Some(request) = super::web_session::command_child(&stanza, BREAKOUT_ROOMS_IDENTITY_TYPE)
    else {
        return false;
    };
    let server = event.server.clone();
    let Some(session) = event.origin.clone() else {
        return false;
    };
    let Some(finder) = server
        .host(&b.main_muc)
        .and_then(|h| super::web_session::RoomFinder::new(&h, &b.main_muc).ok())
    else {
        return false;
    };
    let Some(room) = finder.room_of_session(&server, &session) else {
        tracing::warn!(
            "no room found for the breakout rooms request of {:?}",
            stanza.from()
        );
        return false;
    };
    let from = stanza.from().unwrap_or_default();
    let occupant = room.get_occupant_by_real_jid(from).or_else(|| {
        breakout_list(&room)
            .into_iter()
            .filter_map(|(jid, _)| b.breakout_room(&server, &jid))
            .find_map(|r| r.get_occupant_by_real_jid(from))
    });
    if occupant.and_then(|o| o.role) != Some(Role::Moderator) {
        tracing::warn!(room = %room.jid, "{from} is not a moderator, no breakout rooms request");
        return false;
    }
    let attr = |name: &str| request.get_attr(name).unwrap_or_default().to_string();
    match request.get_attr("type") {
        Some(ADD) => b.create(&server, &room, &attr("subject")),
        Some(REMOVE) => b.destroy(&server, &room, &attr("breakoutRoomJid"), None),
        Some(RENAME) => b.rename(&server, &room, &attr("breakoutRoomJid"), &attr("subject")),
        Some(MOVE_TO_ROOM) => {
            let target = attr("roomJid");
            let listed = breakout_list(&room).iter().any(|(j, _)| *j == target);
            if !listed && target != b.to_virtual(&room.jid) {
                tracing::warn!(room = %room.jid, "invalid breakout room {target}");
                return false;
            }
            let json = json!({
                "type": BREAKOUT_ROOMS_IDENTITY_TYPE,
                "event": MOVE_TO_ROOM,
                "roomJid": target,
            })
            .to_string();
            b.send_json(&server, &attr("participantJid"), &json);
        }
        _ => return false,
    }
    true
}

/// Hooks on both MUCs: joins and leaves update everyone.
fn hook_occupants(b: &Arc<Breakout>, host: &Host) {
    for name in ["muc-occupant-joined", "muc-occupant-left"] {
        let b = b.clone();
        host.events.hook(name, 0, move |event| {
            let Some(room) = room_of(event) else {
                return false;
            };
            if is_healthcheck_room(&room.jid) {
                return false;
            }
            let server = event.server.clone();
            let occupant = occupant_of(event, "occupant");
            let is_focus = occupant
                .as_ref()
                .and_then(|o| o.jid.clone())
                .is_some_and(|j| split(&j).0 == Some("focus"));
            let Some(main) = b.main_room(&server, &room.jid) else {
                return false;
            };
            if main.data_bool("breakout_rooms_active") && !is_focus {
                b.broadcast(&server, &main.jid);
            }
            if name == "muc-occupant-joined" {
                if let Some(o) = &occupant {
                    b.occupant_joined(&main, &o.nick);
                }
            } else {
                b.occupant_left(&server, &main);
            }
            false
        });
    }
}

fn hook_breakout(b: &Arc<Breakout>, server: &Arc<Server>, host: &Host, service: &muc::MucService) {
    let me = b.clone();
    host.events
        .hook("message/host", 0, move |event| on_message(&me, event));
    hook_occupants(b, host);
    hook_breakout_host(b, host);
    let me = b.clone();
    host.events.hook("muc-room-pre-create", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let server = event.server.clone();
        let name = me.main_room(&server, &room.jid).and_then(|main| {
            breakout_list(&main)
                .into_iter()
                .find(|(j, _)| *j == room.jid)
        });
        match name {
            Some((_, subject)) => {
                room.set_subject(&room.jid.clone(), Some(&subject));
                false
            }
            None => {
                tracing::debug!(room = %room.jid, "invalid breakout room will not be created");
                if let Some(origin) = event.origin.clone() {
                    origin.send(
                        xmpp_core::error::StanzaError::item_not_found()
                            .with_text("Breakout room is invalid.")
                            .reply_to(event.stanza()),
                    );
                }
                true
            }
        }
    });
    let me = b.clone();
    host.events.hook("muc-disco#info", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let main_jid = me.main_room_jid(&room.jid).unwrap_or_default();
        add_disco_field(
            event,
            Field::new("muc#roominfo_isbreakout", "boolean").label("Is this a breakout room?"),
            Some(FieldValue::Bool(true)),
        );
        add_disco_field(
            event,
            Field::new("muc#roominfo_breakout_main_room", "text-single")
                .label("The main room associated with this breakout room"),
            Some(FieldValue::Text(me.to_virtual(&main_jid))),
        );
        if let Some(main) = me.main_room(&event.server.clone(), &room.jid)
            && main.get_members_only()
            && let Some(lobby) = main.data_str("lobbyroom")
        {
            add_disco_field(
                event,
                Field::new("muc#roominfo_lobbyroom", "text-single").label("Lobby room jid"),
                Some(FieldValue::Text(lobby)),
            );
        }
        false
    });
    let me = b.clone();
    host.events.hook("muc-config-form", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let main_jid = me.main_room_jid(&room.jid).unwrap_or_default();
        add_config_field(
            event,
            Field::new("muc#roominfo_isbreakout", "boolean")
                .label("Is this a breakout room?")
                .value(Some(FieldValue::Bool(true))),
        );
        add_config_field(
            event,
            Field::new("muc#roominfo_breakout_main_room", "text-single")
                .label("The main room associated with this breakout room")
                .value(Some(FieldValue::Text(me.to_virtual(&main_jid)))),
        );
        false
    });
    let me = b.clone();
    let weak = Arc::downgrade(server);
    service.set_affiliation_source(Arc::new(move |room: &Room, jid: &str| {
        let server = weak.upgrade()?;
        // Moderators of the main room are moderators here.
        Some(
            me.main_room(&server, &room.jid)
                .and_then(|m| m.get_affiliation(jid)),
        )
    }));
    // A breakout room is members-only (lobby) when its main room is.
    let me = b.clone();
    let weak = Arc::downgrade(server);
    service.set_members_only_source(Arc::new(move |room: &Room| {
        let server = weak.upgrade()?;
        match me.main_room(&server, &room.jid) {
            Some(main) => Some(main.get_members_only()),
            None => {
                tracing::error!(room = %room.jid, "No main room!");
                Some(false)
            }
        }
    }));
}

fn hook_main(b: &Arc<Breakout>, host: &Host) {
    hook_occupants(b, host);
    hook_main_host(b, host);
    let me = b.clone();
    host.events.hook("muc-room-destroyed", 1, move |event| {
        let Some(main) = room_of(event) else {
            return false;
        };
        if is_healthcheck_room(&main.jid) {
            return false;
        }
        let server = event.server.clone();
        me.close_timers.stop(&main.jid);
        let reason = event.field_str("reason").map(str::to_string);
        for (jid, _) in breakout_list(&main) {
            me.destroy(&server, &main, &jid, reason.as_deref());
        }
        false
    });
}

/// Loads the module on the main VirtualHost.
pub fn register(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), OptionError> {
    let Some(main_muc) = host.option_str("main_muc").map(str::to_string) else {
        tracing::error!(host = %host.name, "breakout rooms not enabled missing main_muc config");
        return Ok(());
    };
    let breakout_muc = host
        .option_str("breakout_rooms_muc")
        .map_or_else(|| format!("breakout.{}", host.name), str::to_string);
    let b = Arc::new(Breakout {
        mapping: TenantMapping::from_host(host)?,
        main_muc,
        breakout_muc,
        main_rooms: Mutex::new(HashMap::new()),
        pending: Mutex::new(HashSet::new()),
        switching: SwitchingCache::default(),
        close_timers: CloseTimers::default(),
        unbind_hooked: Mutex::new(HashSet::new()),
    });
    // Jitsi's `module:depends('room_destroy')`.
    load_room_destroy(server);
    modules::disco::add_identity(
        host,
        "component",
        BREAKOUT_ROOMS_IDENTITY_TYPE,
        Some(&b.breakout_muc),
    );
    // The node `breakout_rooms` (its `rename` feature), answered by the
    // breakout component, which current lib-jitsi-meet asks (Jitsi's module
    // hooks it there), and by the main host as before.
    hook_breakout_node(host);
    if let Some(component) = server.host(&b.breakout_muc) {
        hook_breakout_node(&component);
    }
    let me = b.clone();
    when_muc_loaded(
        server,
        &b.breakout_muc.clone(),
        move |server, host, service| {
            hook_breakout(&me, server, &host, &service);
        },
    );
    let me = b.clone();
    when_muc_loaded(server, &b.main_muc.clone(), move |server, host, _| {
        hook_main(&me, &host);
        super::breakout_lifecycle::hook_global(&me, server);
    });
    Ok(())
}

/// Answers disco#info for the node `breakout_rooms` on `host`.
fn hook_breakout_node(host: &Host) {
    host.events.hook("host-disco-info-node", 0, |event| {
        if event.field_str("node") != Some(BREAKOUT_ROOMS_IDENTITY_TYPE) {
            return false;
        }
        let stanza = event.stanza().clone();
        let mut query =
            Element::new("query", NS_DISCO_INFO).attr("node", BREAKOUT_ROOMS_IDENTITY_TYPE);
        if let Some(origin) = &event.origin {
            if super::web_session::web_query_room(origin).is_some() {
                query
                    .push_child(Element::new("feature", NS_DISCO_INFO).attr("var", RENAME_FEATURE));
            }
            origin.send(stanza.reply().child(query));
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let a = uuid_v4();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'));
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, uuid_v4());
    }
}
