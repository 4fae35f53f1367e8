//! Room vCards and avatars, as Prosody 13 serves them (its mod_muc_vcard
//! with mod_vcard on the MUC component; XEP-0054 vcard-temp for rooms,
//! XEP-0486 room avatars):
//!
//! - a vCard get to `room@service` answers the room's stored vCard, or
//!   `cancel/item-not-found` when there is none (anyone may ask);
//! - a vCard set to a room is for its owners only (anyone else, or a room
//!   that does not exist: `auth/forbidden`); the vCard is kept whole in the
//!   component's `vcard_muc` keyval store under the room's node, as
//!   Prosody's `st.preserialize` table, then `vcard-updated` fires;
//! - the avatar hash (hex SHA-1 of the first `<PHOTO/>`'s decoded
//!   `<BINVAL/>`) is in the room's disco#info (`vcard-temp` feature and the
//!   `muc#roominfo_avatarhash` field) and is announced with
//!   `<x xmlns='vcard-temp:x:update'><photo>hash</photo></x>`: to each
//!   session that joins (when the room has an avatar) and to everyone when
//!   it changes, together with a groupchat message with status 104, as
//!   `muc_avatar_advertise_hashes` says (unset: both; `"presence"`,
//!   `"message"`, or `"none"` for neither and nothing on join).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use sha1::{Digest, Sha1};
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageResult;
use xmpp_core::{Event, Host, Jid, Value};

use super::on_disco;
use crate::events::{lock, room_of};
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::{add_disco_feature, add_disco_field};
use crate::util::{NS_MUC_USER, bare_of};
use crate::{Affiliation, Lookup};

pub const NS_VCARD: &str = "vcard-temp";
pub const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";
/// The keyval store of room vCards (mod_vcard's store on a MUC component).
pub const STORE: &str = "vcard_muc";
/// mod_vcard's stanza event, for rooms (`iq/bare`) and the service (`iq/host`).
const VCARD_EVENTS: [&str; 2] = ["iq/bare/vcard-temp:vCard", "iq/host/vcard-temp:vCard"];
/// Above mod_vcard (0), should it be loaded on the component too.
const PRIORITY: i32 = 10;

/// `muc_avatar_advertise_hashes`, as Prosody compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Advertise {
    /// Unset: presence and message.
    Both,
    Presence,
    Message,
    /// `"none"`: nothing on join nor on change.
    None,
    /// Anything else: sent on join, nothing broadcast on change.
    Other,
}

impl Advertise {
    fn read(host: &Host) -> Advertise {
        match host.option("muc_avatar_advertise_hashes") {
            None => Advertise::Both,
            Some(Value::String(s)) if s == "presence" => Advertise::Presence,
            Some(Value::String(s)) if s == "message" => Advertise::Message,
            Some(Value::String(s)) if s == "none" => Advertise::None,
            Some(v) => {
                tracing::warn!(
                    host = %host.name,
                    "muc_avatar_advertise_hashes should be \"presence\", \"message\" or \"none\", not {v:?}: avatar changes will not be broadcast"
                );
                Advertise::Other
            }
        }
    }
}

/// The avatar hashes of rooms, read once from the store (`room.avatar_hash`).
#[derive(Default)]
struct Hashes(Mutex<HashMap<String, Option<String>>>);

impl Hashes {
    fn get(&self, host: &Host, room_jid: &str) -> Option<String> {
        if let Some(h) = lock(&self.0).get(room_jid) {
            return h.clone();
        }
        let node = Jid::parse(room_jid).ok()?.node()?.to_string();
        let hash = match get_vcard(host, Some(&node)) {
            Ok(v) => v.as_ref().and_then(avatar_hash),
            Err(e) => {
                tracing::error!(room = %room_jid, "could not load the room's vCard: {e}");
                return None;
            }
        };
        lock(&self.0).insert(room_jid.to_string(), hash.clone());
        hash
    }

    fn set(&self, room_jid: &str, hash: Option<String>) {
        lock(&self.0).insert(room_jid.to_string(), hash);
    }

    fn forget(&self, room_jid: &str) {
        lock(&self.0).remove(room_jid);
    }
}

/// The stored vCard of the room `node` (`None`: the service's).
pub fn get_vcard(host: &Host, node: Option<&str>) -> StorageResult<Option<Element>> {
    let v = host.open_keyval(STORE)?.get(node)?;
    Ok(v.and_then(|v| xmpp_core::stanza::preserialize::deserialize(&v, NS_CLIENT)))
}

/// Stores (or, with `None`, removes) the vCard of the room `node`.
pub fn set_vcard(host: &Host, node: &str, vcard: Option<&Element>) -> StorageResult<()> {
    host.open_keyval(STORE)?.set(
        Some(node),
        vcard.map(|v| xmpp_core::stanza::preserialize::preserialize(v, NS_CLIENT)),
    )
}

/// The avatar hash of a vCard as Prosody's mod_vcard computes it: the hex
/// SHA-1 of the first `<PHOTO/>`'s `<BINVAL/>`, base64-decoded.
pub fn avatar_hash(vcard: &Element) -> Option<String> {
    let binval = vcard
        .get_child("PHOTO", NS_VCARD)?
        .get_child("BINVAL", NS_VCARD)?
        .text_content();
    let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    Some(
        Sha1::digest(&raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The presence announcing `hash` (an empty `<photo/>`: no avatar).
fn update_presence(room_jid: &str, to: Option<&str>, hash: Option<&str>) -> Element {
    let mut photo = Element::new("photo", NS_VCARD_UPDATE);
    if let Some(h) = hash {
        photo = photo.text(h);
    }
    Element::new("presence", NS_CLIENT)
        .attr("from", room_jid)
        .attr_opt("to", to.map(str::to_string))
        .child(Element::new("x", NS_VCARD_UPDATE).child(photo))
}

/// Hooks the vCard stanzas, joins, changes and disco#info of rooms.
pub fn register(host: &Arc<Host>) {
    let advertise = Advertise::read(host);
    let hashes = Arc::new(Hashes::default());

    for name in VCARD_EVENTS {
        host.events.hook(name, PRIORITY, handle_vcard);
    }

    if advertise != Advertise::None {
        let h = hashes.clone();
        host.events.hook("muc-occupant-joined", 0, move |event| {
            let (Some(room), Some(host)) = (room_of(event), event.host.clone()) else {
                return false;
            };
            let to = event
                .stanza
                .as_ref()
                .and_then(|s| s.from())
                .map(str::to_string);
            if let (Some(hash), Some(to)) = (h.get(&host, &room.jid), to) {
                room.route_stanza(update_presence(&room.jid, Some(&to), Some(&hash)));
            }
            false
        });
        let h = hashes.clone();
        host.events.hook("vcard-updated", 0, move |event| {
            let Some(room) = updated_room(event) else {
                return false;
            };
            let hash = event
                .stanza
                .as_ref()
                .and_then(|s| s.get_child("vCard", NS_VCARD))
                .and_then(avatar_hash);
            h.set(&room.jid, hash.clone());
            broadcast_hash(&room, &advertise, hash.as_deref());
            false
        });
    } else {
        let h = hashes.clone();
        host.events.hook("vcard-updated", 0, move |event| {
            if let Some(room) = updated_room(event) {
                h.forget(&room.jid);
            }
            false
        });
    }

    let h = hashes.clone();
    host.events.hook("muc-room-destroyed", 0, move |event| {
        if let Some(room) = room_of(event) {
            h.forget(&room.jid);
        }
        false
    });

    on_disco(host, move |room, event| {
        add_disco_feature(event, NS_VCARD);
        let hash = event
            .host
            .as_ref()
            .and_then(|host| hashes.get(host, &room.jid));
        add_disco_field(
            event,
            Field::new("muc#roominfo_avatarhash", "text-multi"),
            hash.map(|h| FieldValue::List(vec![h])),
        );
    });
}

/// The live room a `vcard-updated` event is about.
fn updated_room(event: &Event) -> Option<Arc<Room>> {
    let to = event.stanza.as_ref()?.to()?;
    let service = crate::service_for(event.host.as_ref()?)?;
    match service.get_room(bare_of(to)) {
        Lookup::Live(r) | Lookup::Creating(r) => Some(r),
        _ => None,
    }
}

/// Tells the occupants the avatar changed.
fn broadcast_hash(room: &Arc<Room>, advertise: &Advertise, hash: Option<&str>) {
    if matches!(advertise, Advertise::Both | Advertise::Presence) {
        room.broadcast_message(update_presence(&room.jid, None, hash));
    }
    if matches!(advertise, Advertise::Both | Advertise::Message) {
        room.broadcast_message(
            Element::new("message", NS_CLIENT)
                .attr("from", room.jid.as_str())
                .attr("type", "groupchat")
                .child(
                    Element::new("x", NS_MUC_USER)
                        .child(Element::new("status", NS_MUC_USER).attr("code", "104")),
                ),
        );
    }
}

/// mod_vcard on the component, with mod_muc_vcard's rule for sets.
fn handle_vcard(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let node = match stanza.to().map(Jid::parse) {
        Some(Ok(j)) => j.node().map(str::to_string),
        Some(Err(_)) | None => None,
    };
    match stanza.type_() {
        Some("get") => match get_vcard(&host, node.as_deref()) {
            Ok(Some(v)) => event.reply(stanza.reply().child(v)),
            Ok(None) => event.reply(StanzaError::item_not_found().reply_to(&stanza)),
            Err(e) => {
                tracing::error!(host = %host.name, room = ?node, "could not load the room's vCard: {e}");
                event.reply(StanzaError::item_not_found().reply_to(&stanza));
            }
        },
        Some("set") => {
            let from = stanza.from().unwrap_or_default();
            let room = node.as_ref().and_then(|_| {
                let service = crate::service_for(&host)?;
                match service.get_room(bare_of(stanza.to().unwrap_or_default())) {
                    Lookup::Live(r) | Lookup::Creating(r) => Some(r),
                    _ => None,
                }
            });
            let is_owner = room
                .as_ref()
                .is_some_and(|r| r.get_affiliation(from) == Some(Affiliation::Owner));
            let (Some(node), true) = (node, is_owner) else {
                event.reply(StanzaError::forbidden().reply_to(&stanza));
                return true;
            };
            let Some(vcard) = stanza.first_child() else {
                event.reply(StanzaError::bad_request().reply_to(&stanza));
                return true;
            };
            if let Err(e) = set_vcard(&host, &node, Some(vcard)) {
                tracing::error!(host = %host.name, room = %node, "could not store the room's vCard: {e}");
                event.reply(
                    StanzaError::new(ErrorType::Wait, "internal-server-error").reply_to(&stanza),
                );
                return true;
            }
            event.reply(stanza.reply());
            let server = event.server.clone();
            let mut ev = Event::new(&server, "vcard-updated").with_stanza(stanza);
            ev.origin = event.origin.clone();
            server.fire_on_host(&host, "vcard-updated", &mut ev);
        }
        _ => return false,
    }
    true
}
