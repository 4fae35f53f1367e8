//! `muc_lobby_rooms` (Jitsi's mod_muc_lobby_rooms), loaded on the main
//! VirtualHost with the options `main_muc` (the conference MUC) and
//! `lobby_muc` (a MUC component for the lobbies), `muc_lobby_whitelist`
//! (domains or bare JIDs that skip the lobby) and
//! `muc_lobby_check_display_name_required` (default true).
//!
//! - When a moderator makes a room members-only (`muc-config-submitted`,
//!   not the focus), the lobby room `<node>@<lobby_muc>` is created (kept
//!   alive, status 104, a `lobby-notify` json message `LOBBY-ENABLED`);
//!   making it open again destroys the lobby, pointing to the main room.
//! - A join to a members-only room (`muc-occupant-pre-join` at -4, before
//!   the members-only check): whitelisted JIDs and those giving the room's
//!   password become members; a join without a display name (`<nick
//!   xmlns='http://jabber.org/protocol/nick'>`) gets `not-acceptable` with
//!   `<displayname-required lobby='true'/>`; a non-member gets
//!   `registration-required` with `<lobbyroom>` (the address to knock at).
//! - Lobby rooms take affiliations from their main room (its owners are
//!   owners there and see who knocks); a moderator approves by making the
//!   knocker a member and inviting them (`LOBBY-ACCESS-GRANTED`), or kicks
//!   them from the lobby (`LOBBY-ACCESS-DENIED`).
//! - An outbound filter on every client session lets lobby presence reach
//!   only moderators (and each knocker their own), and lobby messages only
//!   to or from moderators.
//! - The main host's disco#info names the lobby component (identity
//!   `component`/`lobbyrooms`); its node `lobbyrooms` tells whether a
//!   session's room requires a display name; the main room's roominfo has
//!   `muc#roominfo_lobbyroom`.
//! - Global events `create-lobby-room` and `destroy-lobby-room` (fields
//!   `room`, `reason`, `skip_display_name_check`, `newjid`, `message`) do
//!   the same from other modules; `jitsi-lobby-enabled`/`-disabled` are
//!   fired on the main host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Server, Session};

use super::lobby_overrides::{hook_overrides, set_lobby_enabled};
use super::meeting_id::NS_JITMEET;
use super::util::{TenantMapping, is_focus_nick, is_healthcheck_room, presence_check_status};
use muc::events::{flag, lock, mutable_of, occupant_of, room_of};
use muc::form::{Field, FieldValue};
use muc::room::iq::add_disco_field;
use muc::room::owner::add_status_code;
use muc::util::{NS_MUC, NS_MUC_USER, bare_of, host_of};
use muc::{Actor, Affiliation, AffiliationData, MucService, Room};

pub const DISPLAY_NAME_REQUIRED_FEATURE: &str =
    "http://jitsi.org/protocol/lobbyrooms#displayname_required";
pub const LOBBY_IDENTITY_TYPE: &str = "lobbyrooms";
const NOTIFY_JSON_MESSAGE_TYPE: &str = "lobby-notify";
const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// The module on one main VirtualHost.
pub struct Lobby {
    pub main_muc: String,
    pub lobby_muc: String,
    whitelist: Vec<String>,
    check_display_name_required: bool,
    mapping: Option<TenantMapping>,
    /// Lobby room → its main room (Jitsi's `lobby_room.main_room_jid`).
    main_rooms: Mutex<HashMap<String, String>>,
}

/// The MUC service on `domain`, if loaded.
pub(crate) fn muc_of(server: &Server, domain: &str) -> Option<(Arc<Host>, Arc<MucService>)> {
    let host = server.host(domain)?;
    let service = muc::service_for(&host)?;
    Some((host, service))
}

/// Jitsi's `process_host_module`: runs `f` with the MUC on `domain` now if
/// it is loaded, else once the server has started.
pub(crate) fn when_muc_loaded(
    server: &Arc<Server>,
    domain: &str,
    f: impl Fn(&Arc<Server>, Arc<Host>, Arc<MucService>) + Send + Sync + 'static,
) {
    if let Some((host, service)) = muc_of(server, domain) {
        f(server, host, service);
        return;
    }
    let domain = domain.to_string();
    server.events.hook("server-started", 0, move |event| {
        match muc_of(&event.server, &domain) {
            Some((host, service)) => f(&event.server, host, service),
            None => tracing::error!("no MUC component {domain} loaded"),
        }
        false
    });
}

/// The live room `jid` of a service.
pub(crate) fn live_room(service: &MucService, jid: &str) -> Option<Arc<Room>> {
    match service.get_room(jid) {
        muc::Lookup::Live(room) => Some(room),
        _ => None,
    }
}

impl Lobby {
    fn main_room(&self, server: &Server, lobby_room_jid: &str) -> Option<Arc<Room>> {
        let main = lock(&self.main_rooms).get(lobby_room_jid).cloned()?;
        let (_, service) = muc_of(server, &self.main_muc)?;
        live_room(&service, &main)
    }

    fn lobby_room_of(&self, server: &Server, room: &Room) -> Option<Arc<Room>> {
        let jid = room.data_str("lobbyroom")?;
        let (_, service) = muc_of(server, &self.lobby_muc)?;
        live_room(&service, &jid)
    }

    fn whitelisted(&self, jid: &str) -> bool {
        self.whitelist
            .iter()
            .any(|w| w == host_of(jid) || w == bare_of(jid))
    }

    /// `attach_lobby_room`: creates the lobby room; `false` if it existed.
    fn attach_lobby_room(&self, server: &Server, room: &Arc<Room>) -> bool {
        let Some((_, service)) = muc_of(server, &self.lobby_muc) else {
            return false;
        };
        let jid = format!("{}@{}", room.node(), self.lobby_muc);
        if live_room(&service, &jid).is_some() {
            return false;
        }
        lock(&self.main_rooms).insert(jid.clone(), room.jid.clone());
        let Some(lobby) = service.create_room(&jid, None) else {
            return false;
        };
        // Kept while the lobby is on, even when empty.
        lobby.set_persistent(true);
        tracing::info!(room = %room.jid, "lobby room {jid} created");
        room.set_data_str("lobbyroom", Some(&jid));
        room.save(true);
        true
    }

    /// `destroy_lobby_room`.
    fn destroy_lobby_room(
        &self,
        server: &Arc<Server>,
        room: &Arc<Room>,
        newjid: Option<&str>,
        message: Option<&str>,
    ) {
        let Some(jid) = room.data_str("lobbyroom") else {
            return;
        };
        if let Some(lobby) = self.lobby_room_of(server, room) {
            lobby.set_persistent(false);
            let text = message.unwrap_or("Lobby room closed.");
            if let Err(e) = lobby.destroy(newjid, Some(text), None) {
                tracing::warn!(room = %lobby.jid, "could not destroy the lobby: {e}");
            }
            tracing::info!("lobby room {jid} destroyed");
            set_lobby_enabled(server, &self.main_muc, room, false, true);
        }
        lock(&self.main_rooms).remove(&jid);
        room.set_data_str("lobbyroom", None);
        room.set_data_str("lobby_extra_reason", None);
        room.set_data_bool("lobby_skip_display_name_check", false);
    }

    fn to_virtual(&self, jid: &str) -> String {
        self.mapping
            .as_ref()
            .and_then(|m| m.to_virtual(jid))
            .unwrap_or_else(|| jid.to_string())
    }
}

/// A `lobby-notify` json message from `actor`'s occupant to the room
/// (`broadcast_json_msg`).
fn broadcast_json(
    room: &Arc<Room>,
    actor: &str,
    mut json: serde_json::Map<String, serde_json::Value>,
) {
    json.insert("type".into(), NOTIFY_JSON_MESSAGE_TYPE.into());
    let Some(occupant) = room.get_occupant_by_real_jid(actor) else {
        return;
    };
    let text = serde_json::Value::Object(json).to_string();
    room.broadcast_message(
        Element::new("message", NS_CLIENT)
            .attr("type", "groupchat")
            .attr("from", occupant.nick.as_str())
            .child(Element::new("json-message", NS_JITMEET).text(text)),
    );
}

fn notify_lobby_enabled(room: &Arc<Room>, actor: &str, value: bool) {
    let mut m = serde_json::Map::new();
    m.insert("event".into(), "LOBBY-ENABLED".into());
    m.insert("value".into(), value.into());
    broadcast_json(room, actor, m);
}

fn notify_lobby_access(
    room: &Arc<Room>,
    actor: &str,
    jid: &str,
    name: Option<String>,
    granted: bool,
) {
    let mut m = serde_json::Map::new();
    m.insert("value".into(), jid.into());
    if let Some(n) = name {
        m.insert("name".into(), n.into());
    }
    let event = if granted {
        "LOBBY-ACCESS-GRANTED"
    } else {
        "LOBBY-ACCESS-DENIED"
    };
    m.insert("event".into(), event.into());
    broadcast_json(room, actor, m);
}

fn display_name(presence: Option<&Element>) -> Option<String> {
    presence
        .and_then(|p| p.get_child_text("nick", NS_NICK))
        .filter(|n| !n.is_empty())
}

/// `<presence type='error'>` with `error` (given a `code`) and what follows.
fn join_error(stanza: &Element, error: StanzaError, code: &str, extra: Vec<Element>) -> Element {
    let mut reply = error.reply_to(stanza);
    if let Some(e) = reply.get_child_mut("error", NS_CLIENT) {
        e.set_attr("code", Some(code.to_string()));
        for x in extra {
            e.push_child(x);
        }
    }
    reply
}

/// `muc-occupant-pre-join` on the main MUC (-4).
fn pre_join(lobby: &Lobby, event: &mut Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    let Some(occupant) = occupant_of(event, "occupant") else {
        return false;
    };
    if is_healthcheck_room(&room.jid) || !room.get_members_only() || is_focus_nick(&occupant.nick) {
        return false;
    }
    let Some(stanza) = event.stanza.as_mut() else {
        return false;
    };
    let Some(join) = stanza.get_child("x", NS_MUC) else {
        return false;
    };
    let invitee = stanza.from().unwrap_or_default().to_string();
    let password = join.get_child_text("password", NS_MUC);
    let room_password = room.get_password();
    let whitelisted = lobby.whitelisted(&invitee)
        || (password.is_some() && room_password.is_some() && password == room_password);
    let affiliation = room.get_affiliation(&invitee);
    if whitelisted {
        if matches!(affiliation, None | Some(Affiliation::Member)) {
            if let Err(e) = room.set_affiliation(
                Actor::Room,
                bare_of(&invitee),
                Some(Affiliation::Member),
                None,
                AffiliationData::Keep,
            ) {
                tracing::warn!(room = %room.jid, "could not make {invitee} a member: {e}");
            }
            return false;
        }
    } else if let Some(pw) = &room_password
        && affiliation == Some(Affiliation::Member)
        && password.is_none()
        && let Some(join) = stanza.get_child_mut("x", NS_MUC)
    {
        // Approved from the lobby: no need to know the password.
        join.push_child(Element::new("password", NS_MUC).text(pw.as_str()));
    }
    let stanza = event.stanza().clone();
    let Some(origin) = event.origin.clone() else {
        return false;
    };
    if display_name(Some(&stanza)).is_none() && !room.data_bool("lobby_skip_display_name_check") {
        let required = Element::new("displayname-required", NS_JITMEET).attr("lobby", "true");
        let reply = join_error(
            &stanza,
            StanzaError::new(ErrorType::Modify, "not-acceptable"),
            "406",
            vec![required],
        );
        origin.send(reply.child(Element::new("x", NS_MUC)));
        return true;
    }
    if affiliation.is_none() {
        let lobby_jid = room.data_str("lobbyroom").unwrap_or_default();
        let mut extra = Vec::new();
        if let Some(reason) = room.data_str("lobby_extra_reason") {
            extra.push(Element::new(reason.as_str(), NS_JITMEET));
        }
        extra.push(Element::new("lobbyroom", NS_JITMEET).text(lobby_jid.as_str()));
        let reply = join_error(
            &stanza,
            StanzaError::new(ErrorType::Auth, "registration-required"),
            "407",
            extra,
        )
        // Older clients read it here.
        .child(Element::new("lobbyroom", NS_CLIENT).text(lobby_jid.as_str()))
        .child(Element::new("x", NS_MUC));
        origin.send(reply);
        return true;
    }
    false
}

/// `muc-config-submitted` on the main MUC.
fn config_submitted(lobby: &Lobby, event: &mut Event) -> bool {
    let Some(room) = room_of(event) else {
        return false;
    };
    let actor = event.field_str("actor").unwrap_or_default().to_string();
    if super::util::split(&actor).0 == Some("focus") {
        return false;
    }
    let members_only =
        mutable_of::<HashMap<String, FieldValue>>(event, "fields").is_some_and(|f| {
            matches!(
                lock(&f).get("muc#roomconfig_membersonly"),
                Some(FieldValue::Bool(true))
            )
        });
    let server = event.server.clone();
    if members_only {
        if room.data_bool("disable_lobby") {
            tracing::warn!(room = %room.jid, "lobby is disabled, cannot enable members only");
            return false;
        }
        if lobby.attach_lobby_room(&server, &room) {
            fire_on(&server, &lobby.main_muc, "jitsi-lobby-enabled", &room);
            add_status_code(event, "104");
            notify_lobby_enabled(&room, &actor, true);
            set_lobby_enabled(&server, &lobby.main_muc, &room, true, false);
        }
    } else if room.data_str("lobbyroom").is_some() {
        let newjid = lobby.to_virtual(&room.jid);
        lobby.destroy_lobby_room(&server, &room, Some(&newjid), None);
        fire_on(&server, &lobby.main_muc, "jitsi-lobby-disabled", &room);
        notify_lobby_enabled(&room, &actor, false);
    }
    false
}

fn fire_on(server: &Arc<Server>, host: &str, name: &str, room: &Arc<Room>) {
    if let Some(h) = server.host(host) {
        let mut ev = Event::new(server, name)
            .with_object("room", room.clone())
            .with_field("room_jid", room.jid.as_str());
        server.fire_on_host(&h, name, &mut ev);
    }
}

/// Hooks on the main MUC.
fn hook_main(lobby: &Arc<Lobby>, host: &Host) {
    let l = lobby.clone();
    host.events.hook("muc-config-submitted", 0, move |event| {
        config_submitted(&l, event)
    });
    let l = lobby.clone();
    host.events.hook("muc-room-destroyed", 1, move |event| {
        if let Some(room) = room_of(event) {
            l.destroy_lobby_room(&event.server.clone(), &room, None, None);
        }
        false
    });
    host.events.hook("muc-disco#info", 0, |event| {
        if let Some(room) = room_of(event)
            && room.get_members_only()
            && let Some(jid) = room.data_str("lobbyroom")
        {
            add_disco_field(
                event,
                Field::new("muc#roominfo_lobbyroom", "text-single").label("Lobby room jid"),
                Some(FieldValue::Text(jid)),
            );
        }
        false
    });
    let l = lobby.clone();
    host.events.hook("muc-occupant-pre-join", -4, move |event| {
        pre_join(&l, event)
    });
    let l = lobby.clone();
    host.events.hook("muc-invite", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let stanza = event.stanza();
        let invitee = stanza.to().unwrap_or_default().to_string();
        let from = stanza
            .get_child("x", NS_MUC_USER)
            .and_then(|x| x.get_child("invite", NS_MUC_USER))
            .and_then(|i| i.get_attr("from"))
            .map(str::to_string);
        let server = event.server.clone();
        if let (Some(from), Some(lobby_room)) = (from, l.lobby_room_of(&server, &room))
            && let Some(occupant) = lobby_room.get_occupant_by_real_jid(&invitee)
        {
            let name = display_name(occupant.get_presence(None));
            notify_lobby_access(&room, &from, &occupant.nick, name, true);
        }
        false
    });
}

/// Hooks on the lobby MUC.
fn hook_lobby(lobby: &Arc<Lobby>, server: &Arc<Server>, host: &Host, service: &MucService) {
    let l = lobby.clone();
    let server = Arc::downgrade(server);
    service.set_affiliation_source(Arc::new(move |room: &Room, jid: &str| {
        let Some(server) = server.upgrade() else {
            return Some(None);
        };
        // Moderators of the main room are moderators here.
        Some(
            l.main_room(&server, &room.jid)
                .and_then(|main| main.get_affiliation(jid)),
        )
    }));
    let l = lobby.clone();
    host.events.hook("muc-broadcast-presence", 0, move |event| {
        let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
            return false;
        };
        let kicked = mutable_of::<Element>(event, "x")
            .is_some_and(|x| presence_check_status(Some(&lock(&x)), "307"));
        if kicked && let Some(main) = l.main_room(&event.server.clone(), &room.jid) {
            let actor = event.field_str("actor").unwrap_or_default().to_string();
            let name = display_name(occupant.get_presence(None));
            notify_lobby_access(&main, &actor, &occupant.nick, name, false);
        }
        false
    });
}

/// The lobby's outbound filter (`filter_stanza`): `Some` keeps the stanza.
fn filter_stanza(lobby: &Lobby, server: &Server, stanza: Element) -> Option<Element> {
    let from = stanza.from().unwrap_or_default().to_string();
    let to = stanza.to().unwrap_or_default().to_string();
    // disco#info from the lobby component or a lobby room (its `lobbyrooms`
    // node answers the clients' feature query) always passes.
    if stanza.name() == "iq"
        && stanza
            .get_child("query", muc::util::NS_DISCO_INFO)
            .is_some()
    {
        return Some(stanza);
    }
    let lobby_service = muc_of(server, &lobby.lobby_muc)?.1;
    let Some(lobby_room) = live_room(&lobby_service, bare_of(&from)) else {
        return (stanza.name() == "presence").then_some(stanza);
    };
    let is_owner = |r: &Room, jid: &str| r.get_affiliation(jid) == Some(Affiliation::Owner);
    let from_real = lobby_room.get_occupant_by_nick(&from).and_then(|o| {
        o.jid
            .clone()
            .or_else(|| o.session_jids().last().map(str::to_string))
    });
    match stanza.name() {
        "presence" => {
            let Some(x) = stanza.get_child("x", NS_MUC_USER) else {
                return Some(stanza);
            };
            if presence_check_status(Some(x), "110") || stanza.type_() == Some("unavailable") {
                return Some(stanza);
            }
            let Some(main) = lobby.main_room(server, &lobby_room.jid) else {
                return Some(stanza);
            };
            let item_jid = x
                .get_child("item", NS_MUC_USER)
                .and_then(|i| i.get_attr("jid"))
                .unwrap_or_default();
            if is_owner(&main, &to) && !is_owner(&main, item_jid) {
                return Some(stanza);
            }
            let to_moderator = is_owner(&lobby_room, &to);
            match from_real {
                None => to_moderator.then_some(stanza),
                Some(real) => (to_moderator && !is_owner(&lobby_room, &real)).then_some(stanza),
            }
        }
        "message" => {
            let real = from_real?;
            (is_owner(&lobby_room, &to) || is_owner(&lobby_room, &real)).then_some(stanza)
        }
        _ => None,
    }
}

/// Installs the lobby filter on each client session as it binds.
fn hook_sessions(lobby: &Arc<Lobby>, server: &Arc<Server>) {
    for host in server.hosts() {
        if host.is_component() {
            continue;
        }
        let l = lobby.clone();
        host.events.hook("resource-bind", 0, move |event| {
            let Some(session) = event.origin.clone() else {
                return false;
            };
            install_filter(&l, &event.server, &session);
            false
        });
    }
}

fn install_filter(lobby: &Arc<Lobby>, server: &Arc<Server>, session: &Session) {
    let domain = lobby.lobby_muc.clone();
    let l = lobby.clone();
    let weak = Arc::downgrade(server);
    // After the domain mapper (0).
    session.add_outbound_filter_from(
        -1,
        Arc::new(move |from: &str| host_of(from) == domain),
        Arc::new(move |_, stanza| match weak.upgrade() {
            Some(server) => filter_stanza(&l, &server, stanza),
            None => Some(stanza),
        }),
    );
}

/// The main host's disco#info: the lobby component; and the node
/// `lobbyrooms` for the room a web session is for, answered by the lobby
/// component (where Jitsi's module hooks it and clients ask) and, as lilt
/// always did, by the main host.
fn hook_disco(lobby: &Arc<Lobby>, server: &Arc<Server>, host: &Host) {
    modules::disco::add_identity(
        host,
        "component",
        LOBBY_IDENTITY_TYPE,
        Some(&lobby.lobby_muc),
    );
    hook_lobbyrooms_node(lobby, host);
    if let Some(component) = server.host(&lobby.lobby_muc) {
        hook_lobbyrooms_node(lobby, &component);
    }
}

/// Answers disco#info for the node `lobbyrooms` on `host`.
fn hook_lobbyrooms_node(lobby: &Arc<Lobby>, host: &Host) {
    let l = lobby.clone();
    host.events.hook("host-disco-info-node", 0, move |event| {
        if event.field_str("node") != Some(LOBBY_IDENTITY_TYPE) {
            return false;
        }
        let stanza = event.stanza().clone();
        let mut query =
            Element::new("query", muc::util::NS_DISCO_INFO).attr("node", LOBBY_IDENTITY_TYPE);
        let mut identity_type = LOBBY_IDENTITY_TYPE.to_string();
        let room = event
            .origin
            .as_ref()
            .and_then(|s| super::web_session::web_query_room(s))
            .and_then(|(name, prefix)| {
                let main = event.server.host(&l.main_muc)?;
                let finder = super::web_session::RoomFinder::new(&main, &l.main_muc).ok()?;
                super::web_session::get_room_from_jid(
                    &event.server,
                    &finder.room_jid(&name, &prefix),
                )
            });
        if let Some(room) = &room
            && room.data_bool("disable_lobby")
        {
            identity_type = format!("DISABLED_{LOBBY_IDENTITY_TYPE}");
        }
        query.push_child(
            Element::new("identity", muc::util::NS_DISCO_INFO)
                .attr("category", "component")
                .attr("type", identity_type.as_str())
                .attr("name", l.lobby_muc.as_str()),
        );
        if l.check_display_name_required && room.is_some_and(|r| r.data_str("lobbyroom").is_some())
        {
            query.push_child(
                Element::new("feature", muc::util::NS_DISCO_INFO)
                    .attr("var", DISPLAY_NAME_REQUIRED_FEATURE),
            );
        }
        if let Some(origin) = &event.origin {
            origin.send(stanza.reply().child(query));
        }
        true
    });
}

/// `create-lobby-room` and `destroy-lobby-room` (global events).
fn hook_global(lobby: &Arc<Lobby>, server: &Arc<Server>) {
    let l = lobby.clone();
    server.events.hook("create-lobby-room", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        for occupant in room.each_occupant() {
            if muc::util::affiliation_rank(room.get_affiliation(&occupant.bare_jid)) < 1 {
                let _ = room.set_affiliation(
                    Actor::Room,
                    &occupant.bare_jid,
                    Some(Affiliation::Member),
                    None,
                    AffiliationData::Keep,
                );
            }
        }
        room.set_members_only(true);
        room.set_data_str("lobby_extra_reason", event.field_str("reason"));
        room.set_data_bool(
            "lobby_skip_display_name_check",
            flag(event, "skip_display_name_check"),
        );
        set_lobby_enabled(&event.server.clone(), &l.main_muc, &room, true, false);
        broadcast_104(&room);
        l.attach_lobby_room(&event.server.clone(), &room);
        false
    });
    let l = lobby.clone();
    server.events.hook("destroy-lobby-room", 0, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let newjid = event.field_str("newjid").map(str::to_string);
        let message = event.field_str("message").map(str::to_string);
        l.destroy_lobby_room(
            &event.server.clone(),
            &room,
            newjid.as_deref(),
            message.as_deref(),
        );
        broadcast_104(&room);
        false
    });
}

/// A configuration change notice (status 104) to the room.
fn broadcast_104(room: &Arc<Room>) {
    room.broadcast_message(
        Element::new("message", NS_CLIENT)
            .attr("type", "groupchat")
            .attr("from", room.jid.as_str())
            .child(
                Element::new("x", NS_MUC_USER)
                    .child(Element::new("status", NS_MUC_USER).attr("code", "104")),
            ),
    );
}

/// Loads the module on the main VirtualHost.
pub fn register(
    server: &Arc<Server>,
    host: &Arc<Host>,
) -> Result<(), xmpp_core::config::OptionError> {
    let Some(main_muc) = host.option_str("main_muc").map(str::to_string) else {
        tracing::error!(host = %host.name, "lobby not enabled missing main_muc config");
        return Ok(());
    };
    let Some(lobby_muc) = host.option_str("lobby_muc").map(str::to_string) else {
        tracing::error!(host = %host.name, "lobby not enabled missing lobby_muc config");
        return Ok(());
    };
    let whitelist = match host.option("muc_lobby_whitelist") {
        None => Vec::new(),
        Some(v) => v.as_string_list().ok_or_else(|| {
            host.option_error("muc_lobby_whitelist", "expected a list of strings".into())
        })?,
    };
    let check_display_name_required =
        host.option_bool("muc_lobby_check_display_name_required", true)?;
    let lobby = Arc::new(Lobby {
        mapping: TenantMapping::from_host(host)?,
        main_muc,
        lobby_muc,
        whitelist,
        check_display_name_required,
        main_rooms: Mutex::new(HashMap::new()),
    });
    hook_disco(&lobby, server, host);
    hook_sessions(&lobby, server);
    hook_global(&lobby, server);
    let l = lobby.clone();
    when_muc_loaded(
        server,
        &lobby.lobby_muc.clone(),
        move |server, host, service| {
            hook_lobby(&l, server, &host, &service);
        },
    );
    let l = lobby.clone();
    when_muc_loaded(server, &lobby.main_muc.clone(), move |_, host, service| {
        hook_main(&l, &host);
        hook_overrides(&host, &service);
    });
    Ok(())
}
