//! The MUC service of one component host, as Prosody's `mod_muc.lua`: the
//! live rooms (an LRU cache of `muc_room_cache_size`, evicted rooms swapped
//! out to storage with their occupants), room lookup, creation and
//! restoration, saving, forgetting and deleting rooms.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::storage::{KeyValueStore, MapStore, StorageError};
use xmpp_core::{Host, Server, Session, Table, Value};

use crate::events::{Ctx, lock};
use crate::room::persist::RestoreError;
use crate::room::{Method, Room};
use crate::settings::Settings;
use crate::util::{NS_MUC, bare_of};

/// Live rooms, least recently used first out.
#[derive(Default)]
struct RoomCache {
    rooms: HashMap<String, (Arc<Room>, u64)>,
    lru: BTreeMap<u64, String>,
    tick: u64,
}

impl RoomCache {
    fn bump(&mut self, jid: &str) -> Option<Arc<Room>> {
        self.tick += 1;
        let tick = self.tick;
        let (room, t) = self.rooms.get_mut(jid)?;
        self.lru.remove(t);
        *t = tick;
        self.lru.insert(tick, jid.to_string());
        Some(room.clone())
    }
    fn insert(&mut self, room: &Arc<Room>) {
        self.tick += 1;
        if let Some((_, t)) = self
            .rooms
            .insert(room.jid.clone(), (room.clone(), self.tick))
        {
            self.lru.remove(&t);
        }
        self.lru.insert(self.tick, room.jid.clone());
    }
    fn remove(&mut self, jid: &str) -> Option<Arc<Room>> {
        let (room, t) = self.rooms.remove(jid)?;
        self.lru.remove(&t);
        Some(room)
    }
    /// The least recently used room that is idle, other than `keep`.
    fn victim(&self, keep: &str) -> Option<String> {
        self.lru
            .values()
            .find(|j| j.as_str() != keep && self.rooms.get(*j).is_some_and(|(r, _)| r.is_idle()))
            .cloned()
    }
}

/// The stores a service keeps rooms in (absent when storage failed).
struct Stores {
    config: Arc<dyn KeyValueStore>,
    state: Arc<dyn KeyValueStore>,
    persistent: Arc<dyn KeyValueStore>,
    persistent_map: Arc<dyn MapStore>,
}

/// What a room JID leads to.
pub enum Lookup {
    Live(Arc<Room>),
    /// Being created by its first presence.
    Creating(Arc<Room>),
    /// Just made for this first presence (queued on it already).
    New(Arc<Room>),
    Missing,
    /// Could not be restored (the store failed, or `muc_max_rooms`).
    Unavailable(StanzaError),
}

/// The MUC service of a component host.
pub struct MucService {
    pub host_name: String,
    server: Weak<Server>,
    host: Weak<Host>,
    me: Weak<MucService>,
    /// The options in force (replaced when the config is reloaded).
    settings: RwLock<Arc<Settings>>,
    rooms: Mutex<RoomCache>,
    creating: Mutex<HashMap<String, Arc<Room>>>,
    /// Serialises lookups that restore or create rooms.
    lookup: Mutex<()>,
    /// Public rooms → name (`""` for none): the room list.
    pub(crate) items_cache: Mutex<BTreeMap<String, String>>,
    stores: Option<Stores>,
    /// Where rooms of this service take affiliations from instead of their
    /// own list (Jitsi's lobby and breakout rooms replace `room_mt.
    /// get_affiliation` with their main room's), see
    /// [`MucService::set_affiliation_source`].
    pub(crate) affiliation_source: std::sync::OnceLock<AffiliationSource>,
    /// Where rooms of this service take members-only from (Jitsi's
    /// breakout rooms replace `room_mt.get_members_only` with their main
    /// room's), see [`MucService::set_members_only_source`].
    pub(crate) members_only_source: std::sync::OnceLock<MembersOnlySource>,
}

/// A room's members-only setting taken from elsewhere: `Some(value)`
/// answers for the room, `None` falls back to its own setting.
pub type MembersOnlySource = Arc<dyn Fn(&Room) -> Option<bool> + Send + Sync>;

/// A room's affiliations taken from elsewhere: `Some(affiliation)` answers
/// for the room (`Some(None)`: none), `None` falls back to its own list.
pub type AffiliationSource =
    Arc<dyn Fn(&Room, &str) -> Option<Option<crate::Affiliation>> + Send + Sync>;

fn open_stores(host: &Host) -> Result<Stores, StorageError> {
    Ok(Stores {
        config: host.open_keyval("config")?,
        state: host.open_keyval("state")?,
        persistent: host.open_keyval("persistent")?,
        persistent_map: host.open_map("persistent")?,
    })
}

impl MucService {
    pub fn new(server: &Arc<Server>, host: &Arc<Host>, settings: Settings) -> Arc<MucService> {
        let stores = match open_stores(host) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(host = %host.name, "MUC storage unavailable, rooms will not be saved: {e}");
                None
            }
        };
        Arc::new_cyclic(|me| MucService {
            host_name: host.name.clone(),
            server: Arc::downgrade(server),
            host: Arc::downgrade(host),
            me: me.clone(),
            settings: RwLock::new(Arc::new(settings)),
            rooms: Mutex::new(RoomCache::default()),
            creating: Mutex::new(HashMap::new()),
            lookup: Mutex::new(()),
            items_cache: Mutex::new(BTreeMap::new()),
            stores,
            affiliation_source: std::sync::OnceLock::new(),
            members_only_source: std::sync::OnceLock::new(),
        })
    }

    pub fn ctx(&self) -> Option<Ctx> {
        Some(Ctx {
            server: self.server.upgrade()?,
            host: self.host.upgrade()?,
            service: self.me.upgrade()?,
        })
    }

    /// Makes every room of this service take affiliations from `source`
    /// (Prosody modules replacing `room_mt.get_affiliation`); `false` if a
    /// source is already set.
    pub fn set_affiliation_source(&self, source: AffiliationSource) -> bool {
        self.affiliation_source.set(source).is_ok()
    }

    /// Makes every room of this service take members-only from `source`;
    /// `false` if a source is already set.
    pub fn set_members_only_source(&self, source: MembersOnlySource) -> bool {
        self.members_only_source.set(source).is_ok()
    }

    /// The options in force now.
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the options again from the host's config in force (after a
    /// reload): new rooms get the new defaults, every check the new
    /// limits; rooms keep the configuration they have. A wrong value
    /// leaves the options as they were and says which.
    pub fn reread_settings(&self) -> Result<(), xmpp_core::config::OptionError> {
        let Some(host) = self.host.upgrade() else {
            return Ok(());
        };
        let new = Settings::read(&host)?;
        match self.settings.write() {
            Ok(mut s) => *s = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
        Ok(())
    }

    /// Is `jid` an admin of the service (global or component `admins`)?
    pub fn is_admin(&self, jid: &str) -> bool {
        let settings = self.settings();
        !settings.admins.is_empty() && settings.admins.contains(bare_of(jid))
    }

    /// The live rooms (Prosody's `live_rooms()`).
    pub fn live_rooms(&self) -> Vec<Arc<Room>> {
        let cache = lock(&self.rooms);
        cache
            .lru
            .values()
            .filter_map(|j| cache.rooms.get(j))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every room: the live ones, then the persistent ones in storage
    /// (restored), as Prosody's `all_rooms()`.
    pub fn all_rooms(&self) -> Vec<Arc<Room>> {
        let mut out = self.live_rooms();
        let stored = self
            .stores
            .as_ref()
            .and_then(|s| match s.persistent.get(None) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(host = %self.host_name, "error loading the list of persistent rooms: {e}");
                    None
                }
            });
        if let Some(Value::Table(t)) = stored {
            for jid in t.map.keys() {
                if out.iter().any(|r| &r.jid == jid) {
                    continue;
                }
                match self.get_room(jid) {
                    Lookup::Live(r) => out.push(r),
                    _ => {
                        tracing::error!(host = %self.host_name, "missing data for room {jid}, omitting it")
                    }
                }
            }
        }
        out
    }

    /// The room with this bare JID, restoring it from storage if needed
    /// (Prosody's `get_room_from_jid`).
    pub fn get_room(&self, jid: &str) -> Lookup {
        if let Some(found) = self.in_memory(jid) {
            return found;
        }
        match self.restore_room(jid) {
            Ok(Some(r)) => Lookup::Live(r),
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Unavailable(e),
        }
    }

    /// A live room, or one being created.
    fn in_memory(&self, jid: &str) -> Option<Lookup> {
        if let Some(r) = lock(&self.rooms).bump(jid) {
            return Some(Lookup::Live(r));
        }
        lock(&self.creating)
            .get(jid)
            .map(|r| Lookup::Creating(r.clone()))
    }

    /// Looks a room up, making an untracked one when there is none, with
    /// `stanza` (its first presence) queued on it before anything else can be.
    fn get_or_new(&self, jid: &str, origin: &Arc<Session>, stanza: &Element) -> Lookup {
        match self.get_room(jid) {
            Lookup::Missing => {}
            other => return other,
        }
        let _guard = lock(&self.lookup);
        if let Some(found) = self.in_memory(jid) {
            return found;
        }
        let Some(me) = self.me.upgrade() else {
            return Lookup::Missing;
        };
        let room = Room::new(jid, &me, Table::new());
        room.push(origin, stanza.clone(), Method::FirstPresence);
        lock(&self.creating).insert(jid.to_string(), room.clone());
        Lookup::New(room)
    }

    /// The first presence of a new room was handled: untracked, it is gone.
    pub(crate) fn creation_done(&self, room: &Arc<Room>) {
        let mut creating = lock(&self.creating);
        if creating
            .get(&room.jid)
            .is_some_and(|r| Arc::ptr_eq(r, room))
        {
            creating.remove(&room.jid);
        }
        drop(creating);
        if !room.is_live() {
            room.set_gone();
        }
    }

    /// Brings a stored room back (mod_muc's `restore_room`). Storage is read
    /// and events fire without any lock held; only making it live is
    /// serialised, so one room is never restored twice.
    fn restore_room(&self, jid: &str) -> Result<Option<Arc<Room>>, StanzaError> {
        let Some(stores) = &self.stores else {
            return Ok(None);
        };
        let node = jid.split_once('@').map_or("", |(n, _)| n);
        let data = match stores.config.get(Some(node)) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::error!(host = %self.host_name, "error restoring room {jid} from storage: {e}");
                return Err(StanzaError::internal_server_error());
            }
        };
        let ctx = self.ctx().ok_or_else(StanzaError::internal_server_error)?;
        let mut ev =
            xmpp_core::Event::new(&ctx.server, "muc-room-pre-restore").with_field("jid", jid);
        ev.fields.insert("data".into(), data.clone());
        if ctx.fire("muc-room-pre-restore", &mut ev) {
            return Err(StanzaError::new(ErrorType::Wait, "resource-constraint"));
        }
        let state = match stores.state.get(Some(node)) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(host = %self.host_name, "could not restore the state of room {jid}: {e}");
                None
            }
        };
        let room =
            Room::restore(&ctx.service, &data, state.as_ref()).map_err(|e: RestoreError| {
                tracing::error!(host = %self.host_name, "{e}");
                StanzaError::internal_server_error()
            })?;
        {
            let _guard = lock(&self.lookup);
            match self.in_memory(jid) {
                // Restored (or created) by someone else meanwhile.
                Some(Lookup::Live(r)) => return Ok(Some(r)),
                Some(_) => return Err(StanzaError::new(ErrorType::Wait, "resource-constraint")),
                None => {}
            }
            if !self.track_room(&room) {
                return Err(StanzaError::new(ErrorType::Wait, "resource-constraint"));
            }
        }
        if let Err(e) = stores.state.set(Some(node), None) {
            tracing::warn!(host = %self.host_name, "room {jid}: {e}");
        }
        let mut ev = ctx
            .room_event("muc-room-restored", &room)
            .with_field("jid", jid);
        ctx.fire("muc-room-restored", &mut ev);
        Ok(Some(room))
    }

    /// Makes a room live (Prosody's `track_room`); `false` when
    /// `muc_max_rooms` is reached. Over `muc_room_cache_size`, the least
    /// recently used idle room is saved with its state and dropped.
    pub fn track_room(&self, room: &Arc<Room>) -> bool {
        let settings = self.settings();
        let capacity = settings.max_rooms.unwrap_or(settings.cache_size);
        let evicted = {
            let mut cache = lock(&self.rooms);
            if !cache.rooms.contains_key(&room.jid) && cache.rooms.len() >= capacity {
                if settings.max_rooms.is_some() {
                    tracing::info!(host = %self.host_name, "room limit of {capacity} reached, no new rooms allowed");
                    return false;
                }
                cache.victim(&room.jid).and_then(|j| cache.remove(&j))
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            tracing::debug!(host = %self.host_name, "evicting room {}", old.jid);
            old.set_gone();
            if let Err(e) = self.room_save(&old, false, true) {
                tracing::error!(host = %self.host_name, "failed to swap inactive room {} to disk: {e}", old.jid);
                old.set_live();
                lock(&self.rooms).insert(&old);
                return false;
            }
        }
        lock(&self.rooms).insert(room);
        room.set_live();
        true
    }

    /// At shutdown: every live room is saved with its state (Prosody's
    /// `shutdown_component`), then each occupant session is told the
    /// service is going away (XEP-0045 status 332).
    pub fn save_live_rooms(&self) {
        for room in self.live_rooms() {
            if let Err(e) = self.room_save(&room, false, true) {
                tracing::error!(host = %self.host_name, "saving room {}: {e}", room.jid);
            }
            for occupant in room.each_occupant() {
                let affiliation = room.get_affiliation(&occupant.bare_jid);
                for session in &occupant.sessions {
                    let x = Element::new("x", crate::util::NS_MUC_USER)
                        .child(crate::room::affiliation::item(
                            affiliation,
                            Some("none"),
                            Some(&session.jid),
                            None,
                            None,
                            None,
                            None,
                        ))
                        .child(Element::new("status", crate::util::NS_MUC_USER).attr("code", "332"))
                        .child(
                            Element::new("status", crate::util::NS_MUC_USER).attr("code", "110"),
                        );
                    room.route_stanza(
                        Element::new("presence", xmpp_core::stanza::NS_CLIENT)
                            .attr("from", occupant.nick.as_str())
                            .attr("to", session.jid.as_str())
                            .attr("type", "unavailable")
                            .child(x),
                    );
                }
            }
        }
    }

    /// Drops a room from memory without saving it (Prosody's `forget_room`).
    pub fn forget_room(&self, room: &Arc<Room>) {
        let mut cache = lock(&self.rooms);
        if cache
            .rooms
            .get(&room.jid)
            .is_some_and(|(r, _)| Arc::ptr_eq(r, room))
        {
            cache.remove(&room.jid);
        }
        drop(cache);
        room.set_gone();
    }

    /// Removes a room from storage (Prosody's `delete_room`).
    pub fn delete_room(&self, room: &Room) {
        lock(&self.items_cache).remove(&room.jid);
        let Some(stores) = &self.stores else { return };
        let node = room.node();
        let results = [
            stores.config.set(Some(node), None),
            stores.state.set(Some(node), None),
            stores.persistent_map.set(None, &room.jid, None),
        ];
        for r in results {
            if let Err(e) = r {
                tracing::error!(host = %self.host_name, "deleting room {}: {e}", room.jid);
            }
        }
    }

    /// Saves a room (Prosody's `room_save`): persistent rooms (or, with
    /// `savestate`, any room with its occupants) to storage; `forced`
    /// removes a room that is not persistent.
    pub fn room_save(
        &self,
        room: &Room,
        forced: bool,
        savestate: bool,
    ) -> Result<(), StorageError> {
        {
            let mut items = lock(&self.items_cache);
            if room.get_public() {
                items.insert(room.jid.clone(), room.get_name().unwrap_or_default());
            } else {
                items.remove(&room.jid);
            }
        }
        let Some(stores) = &self.stores else {
            return Ok(());
        };
        let node = room.node();
        if room.get_persistent() || savestate {
            stores
                .persistent_map
                .set(None, &room.jid, Some(Value::Bool(true)))?;
            let (data, state) = room.freeze(savestate);
            stores.state.set(Some(node), state)?;
            stores.config.set(Some(node), Some(data))
        } else if forced {
            stores.persistent_map.set(None, &room.jid, None)?;
            stores.state.set(Some(node), None)?;
            stores.config.set(Some(node), None)
        } else {
            Ok(())
        }
    }

    /// Creates a room from code (Prosody's `create_room`): the defaults of
    /// the options unless `config` is given; `None` if the JID is invalid
    /// or the room exists.
    pub fn create_room(&self, jid: &str, config: Option<Table>) -> Option<Arc<Room>> {
        if bare_of(jid) != jid || !crate::util::is_strict_room_jid(jid) {
            return None;
        }
        if !matches!(self.get_room(jid), Lookup::Missing) {
            return None;
        }
        let ctx = self.ctx()?;
        let with_defaults = config.is_none();
        let room = Room::new(jid, &ctx.service, config.unwrap_or_default());
        if with_defaults {
            crate::features::defaults::apply(&room, &ctx.service.settings(), None);
        }
        let mut ev = ctx.room_event("muc-room-created", &room);
        ctx.fire("muc-room-created", &mut ev);
        let _guard = lock(&self.lookup);
        if self.in_memory(jid).is_some() {
            return None;
        }
        self.track_room(&room).then_some(room)
    }

    /// Routes a stanza to its room (mod_muc's handler of the stanza
    /// events); gives the stanza back when it is not the MUC's to handle
    /// (an error bounced from a room that does not exist).
    pub fn dispatch(
        &self,
        origin: &Arc<Session>,
        stanza: Element,
        method: Method,
    ) -> Result<(), Element> {
        let Some(ctx) = self.ctx() else {
            return Err(stanza);
        };
        let room_jid = stanza.to().map(bare_of).unwrap_or_default().to_string();
        let creating = stanza.name() == "presence"
            && stanza.type_().is_none()
            && stanza.get_child("x", NS_MUC).is_some();
        let mut lookup = if creating {
            self.get_or_new(&room_jid, origin, &stanza)
        } else {
            self.get_room(&room_jid)
        };
        if let Lookup::Live(room) = &lookup
            && room.data_bool("destroyed")
        {
            match crate::features::tombstone::check(&ctx, room, &stanza) {
                Ok(()) => {
                    self.delete_room(room);
                    self.forget_room(room);
                    lookup = if creating {
                        self.get_or_new(&room_jid, origin, &stanza)
                    } else {
                        Lookup::Missing
                    };
                }
                Err(reply) => {
                    if let Some(reply) = reply {
                        origin.send(reply);
                    }
                    return Ok(());
                }
            }
        }
        let error = match lookup {
            Lookup::Live(room) | Lookup::Creating(room) => {
                room.submit(origin, stanza, method);
                return Ok(());
            }
            Lookup::New(room) => {
                room.drain();
                return Ok(());
            }
            Lookup::Unavailable(e) => e,
            Lookup::Missing if !crate::util::is_strict_room_jid(&room_jid) => {
                StanzaError::jid_malformed()
            }
            Lookup::Missing if stanza.type_() == Some("error") => return Err(stanza),
            Lookup::Missing => StanzaError::item_not_found(),
        };
        crate::room::reply_error(origin, &stanza, error, &self.host_name);
        Ok(())
    }
}
