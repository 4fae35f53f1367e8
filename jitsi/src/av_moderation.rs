//! `av_moderation_component` (Jitsi's mod_av_moderation_component), loaded
//! as a component that acts on the conference MUC named by `muc_component`:
//!
//! ```lua
//! Component "avmoderation.meet.jitsi" "av_moderation_component"
//!     muc_component = "muc.meet.jitsi"
//! ```
//!
//! Moderators' clients send `<message to='avmoderation.…'><av_moderation
//! mediaType='audio|video|desktop' …/></message>` (the room is the one the
//! session was opened for, `?room=`), with one of:
//!
//! - `enable='true'`: A/V moderation starts for that media type; the
//!   whitelist starts with the room's moderators (not the focus), by their
//!   occupant JIDs as clients see them. Everyone gets `{"type":
//!   "av_moderation", "enabled": true, "room", "actor", "mediaType"}`, and
//!   moderators then get the whitelists (`{"type", "room", "whitelists":
//!   {media: [jids]}, "mediaType"}`). `enable='false'` stops it (everyone
//!   gets `"enabled": false`).
//! - `jidToWhitelist='<occupant jid>'`: the occupant may unmute; moderators
//!   get the new whitelists and the occupant `{"approved": true,
//!   "mediaType", "room", "type"}`. Without moderation on, the occupant gets
//!   `{"approved": true, "from": <moderator's occupant jid>, …}` only (and,
//!   as in Jitsi, the message is then left unhandled).
//! - `jidToBlacklist='<occupant jid>'`: removed from the whitelist;
//!   moderators get the whitelists with `"removed": true`.
//!
//! Messages go from the component to each occupant's real JID as
//! `<json-message xmlns='http://jitsi.org/jitmeet'>`. Occupants joining a
//! moderated room are told what is moderated (and moderators among them
//! make every moderator get the whitelists again); an occupant made owner
//! joins the whitelists. A room whose `_data.av_can_unmute` is `false`
//! starts moderated for all media when its first moderator joins.
//! Non-moderators' commands are ignored (left unhandled). Needs
//! `muc_mapper_domain_base` (the main VirtualHost, where the component is
//! announced with `jitsi-add-identity`).
//!
//! While a media type is moderated, the room metadata's `startMuted` has
//! it `true` (room_metadata_component; Jicofo mutes newcomers), and the
//! value it had comes back when moderation stops.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};
use xmpp_core::{Event, Host, Server, Value, config::OptionError};

use super::util::{is_admin, is_focus_nick, is_healthcheck_room};
use super::web_session::{
    RoomFinder, announce_identity, command_child, json_message, muc_component,
};
use muc::events::{lock, occupant_of, room_of};
use muc::room::Room;
use muc::util::Role;

pub const MEDIA_TYPES: [&str; 3] = ["audio", "video", "desktop"];

/// A room's moderation (Jitsi's `room.av_moderation` and
/// `room.av_moderation_actors`): a media type is moderated while it has a
/// whitelist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Moderation {
    pub whitelists: BTreeMap<String, Vec<String>>,
    /// Who enabled each media type (their occupant JID in the room).
    pub actors: BTreeMap<String, String>,
}

impl Moderation {
    fn enabled(&self) -> impl Iterator<Item = &'static str> + '_ {
        MEDIA_TYPES
            .into_iter()
            .filter(|m| self.whitelists.contains_key(*m))
    }
}

/// `{"type":"av_moderation","enabled",…}` for everyone.
pub fn enable_message(enabled: bool, room: &str, actor: &str, media: &str) -> String {
    json!({
        "type": "av_moderation",
        "enabled": enabled,
        "room": room,
        "actor": actor,
        "mediaType": media,
    })
    .to_string()
}

/// The whitelist change for moderators (with the whitelists, empty ones
/// left out) and for the occupant concerned (without them; `approved`
/// unless removed).
pub fn whitelist_messages(
    moderation: &Moderation,
    room: &str,
    media: Option<&str>,
    removed: bool,
) -> (String, String) {
    let mut body = Map::new();
    body.insert("type".into(), json!("av_moderation"));
    body.insert("room".into(), json!(room));
    if removed {
        body.insert("removed".into(), json!(true));
    }
    if let Some(m) = media {
        body.insert("mediaType".into(), json!(m));
    }
    let mut participant = body.clone();
    let lists: Map<String, Json> = moderation
        .whitelists
        .iter()
        .filter(|(_, l)| !l.is_empty())
        .map(|(m, l)| (m.clone(), json!(l)))
        .collect();
    body.insert("whitelists".into(), Json::Object(lists));
    if !removed {
        participant.insert("approved".into(), json!(true));
    }
    (
        Json::Object(body).to_string(),
        Json::Object(participant).to_string(),
    )
}

/// A moderator asks an occupant to unmute while nothing is moderated.
pub fn approved_message(room: &str, from: &str, media: &str) -> String {
    json!({
        "type": "av_moderation",
        "room": room,
        "approved": true,
        "mediaType": media,
        "from": from,
    })
    .to_string()
}

/// The component: its address, how it finds rooms, the rooms' moderation.
struct AvModeration {
    component: String,
    finder: RoomFinder,
    rooms: Mutex<HashMap<String, Moderation>>,
    /// `startMuted` values before moderation (`av_moderation_startMuted_restore`).
    restore: Mutex<HashMap<String, Map<String, Json>>>,
}

impl AvModeration {
    /// Sets `startMuted[media]` in the room metadata: `true` when starting
    /// (keeping the old value), the old value back when stopping.
    fn start_muted(&self, server: &Arc<Server>, room: &Arc<Room>, media: &str, starting: bool) {
        let Some(muc) = server.host(muc::util::host_of(&room.jid)) else {
            return;
        };
        let mut start_muted = super::room_metadata::metadata(&muc, &room.jid)
            .and_then(|m| m.get("startMuted").and_then(Json::as_object).cloned())
            .unwrap_or_default();
        let mut restore = lock(&self.restore);
        let kept = restore.entry(room.jid.clone()).or_default();
        if starting {
            match start_muted.get(media) {
                Some(v) => kept.insert(media.to_string(), v.clone()),
                None => kept.remove(media),
            };
            start_muted.insert(media.to_string(), json!(true));
        } else {
            match kept.get(media) {
                Some(v) => start_muted.insert(media.to_string(), v.clone()),
                None => start_muted.remove(media),
            };
        }
        drop(restore);
        super::room_metadata::set_metadata(
            server,
            &muc,
            room,
            "startMuted",
            Json::Object(start_muted),
        );
    }

    fn get(&self, room: &Room) -> Option<Moderation> {
        lock(&self.rooms).get(&room.jid).cloned()
    }

    fn send(&self, server: &Arc<Server>, to: &str, json: &str) {
        let Some(host) = server.host(&self.component) else {
            return;
        };
        server.send_from_host(&host, json_message(&self.component, to, json, None));
    }

    /// `notify_occupants_enable`: to `to`, or to every occupant.
    fn notify_enable(
        &self,
        server: &Arc<Server>,
        to: Option<&str>,
        enabled: bool,
        room: &Room,
        actor: &str,
        media: &str,
    ) {
        let msg = enable_message(
            enabled,
            &self.finder.to_virtual(&room.jid),
            &self.finder.to_virtual(actor),
            media,
        );
        match to {
            Some(jid) => self.send(server, jid, &msg),
            None => {
                for occupant in room.each_occupant() {
                    if let Some(jid) = &occupant.jid {
                        self.send(server, jid, &msg);
                    }
                }
            }
        }
    }

    /// `notify_whitelist_change`: every moderator when `moderators`, and
    /// the occupant whose real JID is `jid`.
    fn notify_whitelist(
        &self,
        server: &Arc<Server>,
        jid: Option<&str>,
        moderators: bool,
        room: &Room,
        media: Option<&str>,
        removed: bool,
    ) {
        let moderation = self.get(room).unwrap_or_default();
        let (for_moderators, for_participant) = whitelist_messages(
            &moderation,
            &self.finder.to_virtual(&room.jid),
            media,
            removed,
        );
        for occupant in room.each_occupant() {
            let Some(real) = occupant.jid.as_deref() else {
                continue;
            };
            let moderator = occupant.role == Some(Role::Moderator);
            if moderators && moderator {
                self.send(server, real, &for_moderators);
            } else if Some(real) == jid {
                let msg = if moderator {
                    &for_moderators
                } else {
                    &for_participant
                };
                self.send(server, real, msg);
            }
        }
    }

    /// `start_av_moderation`: the whitelist starts with the moderators.
    fn start(&self, room: &Room, media: &str, actor_nick: &str) {
        let moderators: Vec<String> = room
            .each_occupant()
            .into_iter()
            .filter(|o| o.role == Some(Role::Moderator) && !is_focus_nick(&o.nick))
            .map(|o| self.finder.to_virtual(&o.nick))
            .collect();
        let mut rooms = lock(&self.rooms);
        let m = rooms.entry(room.jid.clone()).or_default();
        m.whitelists.insert(media.to_string(), moderators);
        m.actors.insert(media.to_string(), actor_nick.to_string());
    }
}

pub fn register(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), OptionError> {
    let Some(muc) = muc_component(host) else {
        return Ok(());
    };
    let Some(main_host) = host
        .option_str("muc_mapper_domain_base")
        .map(str::to_string)
    else {
        tracing::warn!(host = %host.name, "No \"muc_mapper_domain_base\" option set, disabling AV moderation.");
        return Ok(());
    };
    tracing::info!(host = %host.name, "Starting av_moderation for {muc}");
    let av = Arc::new(AvModeration {
        component: host.name.clone(),
        finder: RoomFinder::new(host, &muc)?,
        rooms: Mutex::new(HashMap::new()),
        restore: Mutex::new(HashMap::new()),
    });
    let a = av.clone();
    host.events
        .hook("message/host", 0, move |event| on_message(event, &a));
    if let Some(muc_host) = server.host(&muc) {
        let (a, h) = (av.clone(), muc_host.clone());
        muc_host
            .events
            .hook("muc-occupant-joined", -2, move |event| {
                occupant_joined(event, &a, &h);
                false
            });
        let (a, h) = (av.clone(), muc_host.clone());
        muc_host
            .events
            .hook("muc-set-affiliation", -1, move |event| {
                affiliation_changed(event, &a, &h);
                false
            });
        let a = av.clone();
        muc_host.events.hook("muc-room-destroyed", 0, move |event| {
            if let Some(room) = room_of(event) {
                lock(&a.rooms).remove(&room.jid);
                lock(&a.restore).remove(&room.jid);
            }
            false
        });
    } else {
        tracing::warn!(host = %host.name, "muc_component {muc} is not a host of this server");
    }
    announce_identity(server, &main_host, "av_moderation", &host.name);
    Ok(())
}

fn on_message(event: &mut Event, av: &AvModeration) -> bool {
    let (Some(stanza), Some(origin)) = (event.stanza.as_ref(), event.origin.clone()) else {
        return false;
    };
    if stanza.type_() == Some("error") {
        return false;
    }
    let Some(command) = command_child(stanza, "av_moderation") else {
        return false;
    };
    let server = event.server.clone();
    let from = stanza.from().unwrap_or_default();
    let Some((room, occupant)) =
        av.finder
            .room_of_moderator(&server, &origin, from, "av_moderation")
    else {
        return false;
    };
    let Some(media) = command.get_attr("mediaType") else {
        tracing::warn!(room = %room.jid, "Missing mediaType");
        return false;
    };
    if !MEDIA_TYPES.contains(&media) {
        tracing::warn!(room = %room.jid, "Wrong mediaType {media}");
        return false;
    }
    if let Some(enable) = command.get_attr("enable") {
        let enabled = enable == "true";
        let current = av.get(&room);
        if enabled {
            if current.is_some_and(|m| m.whitelists.contains_key(media)) {
                tracing::warn!(
                    "Concurrent moderator enable/disable request or something is out of sync"
                );
                return true;
            }
            av.start(&room, media, &occupant.nick);
            av.start_muted(&server, &room, media, true);
        } else {
            if current.is_none() {
                tracing::warn!(
                    "Concurrent moderator enable/disable request or something is out of sync"
                );
                return true;
            }
            let mut rooms = lock(&av.rooms);
            if let Some(m) = rooms.get_mut(&room.jid) {
                m.whitelists.remove(media);
                m.actors.remove(media);
                if m.whitelists.is_empty() {
                    rooms.remove(&room.jid);
                }
            }
            drop(rooms);
            av.start_muted(&server, &room, media, false);
        }
        av.notify_enable(&server, None, enabled, &room, &occupant.nick, media);
        if enabled {
            av.notify_whitelist(&server, None, true, &room, Some(media), false);
        }
        return true;
    }
    if let Some(jid) = command.get_attr("jidToWhitelist") {
        let Some(to_add) = room.get_occupant_by_nick(&av.finder.to_real(jid)) else {
            tracing::warn!(room = %room.jid, "No occupant {jid} found");
            return false;
        };
        let moderated = {
            let mut rooms = lock(&av.rooms);
            match rooms.get_mut(&room.jid) {
                Some(m) => {
                    m.whitelists
                        .entry(media.to_string())
                        .or_default()
                        .push(jid.to_string());
                    true
                }
                None => false,
            }
        };
        if moderated {
            av.notify_whitelist(
                &server,
                to_add.jid.as_deref(),
                true,
                &room,
                Some(media),
                false,
            );
            return true;
        }
        // Asked to unmute without moderation on: just the event (and, as
        // Jitsi's handler, no claim to have handled the message).
        if let Some(real) = &to_add.jid {
            let msg = approved_message(&av.finder.to_virtual(&room.jid), &occupant.nick, media);
            av.send(&server, real, &msg);
        }
        return false;
    }
    if let Some(jid) = command.get_attr("jidToBlacklist") {
        let Some(to_remove) = room.get_occupant_by_nick(&av.finder.to_real(jid)) else {
            tracing::warn!(room = %room.jid, "No occupant {jid} found");
            return false;
        };
        let (moderated, removed) = {
            let mut rooms = lock(&av.rooms);
            match rooms.get_mut(&room.jid) {
                None => (false, false),
                Some(m) => {
                    let list = m.whitelists.get_mut(media);
                    let index = list.as_ref().and_then(|l| l.iter().position(|j| j == jid));
                    match (list, index) {
                        (Some(l), Some(i)) => {
                            l.remove(i);
                            (true, true)
                        }
                        _ => (true, false),
                    }
                }
            }
        };
        if removed {
            av.notify_whitelist(
                &server,
                to_remove.jid.as_deref(),
                true,
                &room,
                Some(media),
                true,
            );
        }
        return moderated;
    }
    false
}

/// New occupants learn what is moderated; a moderator joining makes the
/// moderators get the whitelists.
fn occupant_joined(event: &Event, av: &AvModeration, muc_host: &Host) {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return;
    };
    if is_healthcheck_room(&room.jid) || is_admin(muc_host, &occupant.bare_jid) {
        return;
    }
    let server = event.server.clone();
    let is_moderator = room.get_role(&occupant.nick) == Some(Role::Moderator);
    if let Some(Value::Bool(can_unmute)) = room.data_value("av_can_unmute")
        && !room.data_bool("av_first_moderator_joined")
        && is_moderator
        && !can_unmute
    {
        for media in MEDIA_TYPES {
            av.start(&room, media, &occupant.nick);
            av.start_muted(&server, &room, media, true);
            av.notify_enable(&server, None, true, &room, &occupant.nick, media);
        }
        room.set_data_bool("av_first_moderator_joined", true);
        return;
    }
    let Some(moderation) = av.get(&room) else {
        return;
    };
    let Some(real) = occupant.jid.as_deref() else {
        return;
    };
    for media in moderation.enabled() {
        let actor = moderation.actors.get(media).map_or("", String::as_str);
        av.notify_enable(&server, Some(real), true, &room, actor, media);
    }
    if is_moderator {
        for media in moderation.enabled() {
            av.notify_whitelist(&server, None, true, &room, Some(media), false);
        }
    }
}

/// An occupant made owner joins every whitelist; when someone made the
/// change, the moderators get the whitelists.
fn affiliation_changed(event: &Event, av: &AvModeration, muc_host: &Host) {
    let Some(room) = room_of(event) else {
        return;
    };
    let jid = event.field_str("jid").unwrap_or_default();
    if av.get(&room).is_none()
        || is_healthcheck_room(&room.jid)
        || is_admin(muc_host, jid)
        || event.field_str("affiliation") != Some("owner")
    {
        return;
    }
    let nicks: Vec<String> = room
        .each_occupant()
        .into_iter()
        .filter(|o| o.bare_jid == jid)
        .map(|o| av.finder.to_virtual(&o.nick))
        .collect();
    let enabled: Vec<&str> = {
        let mut rooms = lock(&av.rooms);
        let Some(m) = rooms.get_mut(&room.jid) else {
            return;
        };
        for list in m.whitelists.values_mut() {
            list.extend(nicks.iter().cloned());
        }
        m.enabled().collect()
    };
    if event.field_str("actor").is_some() {
        let server = event.server.clone();
        for media in enabled {
            av.notify_whitelist(&server, None, true, &room, Some(media), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn enable_message_shape() {
        let m = parse(&enable_message(true, "r@muc.x", "r@muc.x/abcd", "audio"));
        assert_eq!(
            m,
            json!({"type": "av_moderation", "enabled": true, "room": "r@muc.x",
                   "actor": "r@muc.x/abcd", "mediaType": "audio"})
        );
    }

    #[test]
    fn whitelists_for_moderators_approval_for_the_participant() {
        let mut m = Moderation::default();
        m.whitelists
            .insert("audio".into(), vec!["r@muc.x/a".into()]);
        m.whitelists.insert("video".into(), vec![]);
        let (mods, part) = whitelist_messages(&m, "r@muc.x", Some("audio"), false);
        assert_eq!(
            parse(&mods),
            json!({"type": "av_moderation", "room": "r@muc.x", "mediaType": "audio",
                   "whitelists": {"audio": ["r@muc.x/a"]}})
        );
        assert_eq!(
            parse(&part),
            json!({"type": "av_moderation", "room": "r@muc.x", "mediaType": "audio",
                   "approved": true})
        );
        let (mods, part) = whitelist_messages(&m, "r@muc.x", Some("audio"), true);
        assert_eq!(parse(&mods)["removed"], json!(true));
        assert_eq!(parse(&part).get("approved"), None);
        let (mods, _) = whitelist_messages(&m, "r@muc.x", None, false);
        assert_eq!(parse(&mods).get("mediaType"), None);
    }

    #[test]
    fn approval_without_moderation() {
        let m = parse(&approved_message("r@muc.x", "[t]r@muc.x/b", "video"));
        assert_eq!(m["approved"], json!(true));
        assert_eq!(m["from"], json!("[t]r@muc.x/b"));
        assert_eq!(m["mediaType"], json!("video"));
    }

    #[test]
    fn enabled_media_in_jitsi_order() {
        let mut m = Moderation::default();
        m.whitelists.insert("video".into(), vec![]);
        m.whitelists.insert("desktop".into(), vec![]);
        m.whitelists.insert("audio".into(), vec![]);
        assert_eq!(
            m.enabled().collect::<Vec<_>>(),
            ["audio", "video", "desktop"]
        );
    }
}
