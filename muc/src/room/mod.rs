//! A room, as Prosody's `muc.lib.lua` `room_mt`: its configuration (Prosody's
//! `_data` table, kept as a [`Table`] so modules can add their own keys and
//! storage round-trips), affiliations, occupants and history, and the API
//! modules use.
//!
//! **Concurrency.** Stanzas to a room are handled one at a time, in arrival
//! order: [`Room::submit`] queues them and whichever thread finds the room
//! idle handles the queue. Events fired meanwhile run on that thread without
//! any lock held, so handlers may call the room API (each call locks the
//! state briefly) and send stanzas, including to rooms. Occupant lookups by
//! occupant JID and by real JID are hash lookups.

mod admin;
pub mod affiliation;
mod destroy;
pub mod iq;
pub mod message;
pub mod owner;
pub mod persist;
pub mod presence;
mod publicise;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use xmpp_core::stanza::Element;
use xmpp_core::{Session, Table, Value};

use crate::broadcast::{Deliverer, route_stanza};
use crate::events::{Ctx, lock};
use crate::occupant::Occupant;
use crate::service::MucService;
use crate::util::{Affiliation, Role, affiliation_name, affiliation_rank};

pub use affiliation::{Actor, AffiliationData};
pub use presence::reply_error;
pub use publicise::XTemplates;

/// What a queued stanza is, as Prosody's `room[method]` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    FirstPresence,
    DiscoInfo,
    DiscoItems,
    AdminSet,
    AdminGet,
    OwnerSet,
    OwnerGet,
    Register,
    MessageToRoom,
    PresenceToRoom,
    PresenceToOccupant,
    IqToOccupant,
    MessageToOccupant,
}

struct Job {
    origin: Arc<Session>,
    stanza: Element,
    method: Method,
}

const CREATING: u8 = 0;
const LIVE: u8 = 1;
const GONE: u8 = 2;

/// One message of the discussion history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The message as broadcast, `to` removed, with its `<delay/>`.
    pub stanza: Element,
    /// Unix time it was sent.
    pub timestamp: f64,
    /// Its length in characters, once computed (for `maxchars`).
    pub chars: Option<usize>,
}

/// The mutable part of a room.
#[derive(Default)]
pub struct RoomState {
    /// Prosody's `_data`: the configuration and whatever modules keep.
    pub data: Table,
    pub affiliations: BTreeMap<String, Affiliation>,
    pub affiliation_data: BTreeMap<String, Table>,
    occupants: HashMap<String, Occupant>,
    order: BTreeMap<u64, String>,
    next_seq: u64,
    /// Real full JID → occupant JID, for available sessions.
    jid_nick: HashMap<String, String>,
    pub history: VecDeque<HistoryEntry>,
    /// Reserved nickname → bare JID, rebuilt on demand.
    pub reserved_nicks: Option<HashMap<String, String>>,
    /// Set while the room is being destroyed (the reason, if any).
    pub destroying: Option<Option<String>>,
}

/// A room.
pub struct Room {
    /// The room's bare JID.
    pub jid: String,
    service: Weak<MucService>,
    state: Mutex<RoomState>,
    inbox: Mutex<VecDeque<Job>>,
    busy: AtomicBool,
    status: AtomicU8,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MUC room ({})", self.jid)
    }
}

impl Room {
    /// A new room (Prosody's `new_room`), not yet tracked by the service.
    pub fn new(jid: &str, service: &Arc<MucService>, data: Table) -> Arc<Room> {
        Arc::new(Room {
            jid: jid.to_string(),
            service: Arc::downgrade(service),
            state: Mutex::new(RoomState {
                data,
                ..RoomState::default()
            }),
            inbox: Mutex::new(VecDeque::new()),
            busy: AtomicBool::new(false),
            status: AtomicU8::new(CREATING),
        })
    }

    /// The room's node (its name in the JID).
    pub fn node(&self) -> &str {
        self.jid.split_once('@').map_or("", |(n, _)| n)
    }

    /// Locks the state. Never held while firing events or routing.
    pub fn state(&self) -> MutexGuard<'_, RoomState> {
        lock(&self.state)
    }

    pub fn service(&self) -> Option<Arc<MucService>> {
        self.service.upgrade()
    }

    /// The event context of the room's service (for modules that replay
    /// presence or fire room events themselves, as Jitsi's do).
    pub fn ctx(&self) -> Option<Ctx> {
        self.service()?.ctx()
    }

    pub(crate) fn set_live(&self) {
        self.status.store(LIVE, Ordering::SeqCst);
    }
    pub(crate) fn set_gone(&self) {
        self.status.store(GONE, Ordering::SeqCst);
    }
    /// Is the room tracked by its service (not destroyed, evicted or refused)?
    pub fn is_live(&self) -> bool {
        self.status.load(Ordering::SeqCst) == LIVE
    }

    // -- stanza queue ---------------------------------------------------------------------

    /// Queues a stanza for the room and handles the queue unless another
    /// thread is doing so (it will get to this one).
    pub fn submit(self: &Arc<Self>, origin: &Arc<Session>, stanza: Element, method: Method) {
        self.push(origin, stanza, method);
        self.drain();
    }

    /// Queues a stanza without handling the queue.
    pub(crate) fn push(&self, origin: &Arc<Session>, stanza: Element, method: Method) {
        lock(&self.inbox).push_back(Job {
            origin: origin.clone(),
            stanza,
            method,
        });
    }

    /// Nothing queued and nobody handling stanzas.
    pub fn is_idle(&self) -> bool {
        !self.busy.load(Ordering::SeqCst) && lock(&self.inbox).is_empty()
    }

    /// Handles the queue unless another thread is.
    pub(crate) fn drain(self: &Arc<Self>) {
        loop {
            if self
                .busy
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                return;
            }
            {
                let _idle_again = BusyGuard(&self.busy);
                loop {
                    let job = lock(&self.inbox).pop_front();
                    let Some(job) = job else { break };
                    self.process(job);
                }
            }
            if lock(&self.inbox).is_empty() {
                return;
            }
        }
    }

    fn process(self: &Arc<Self>, job: Job) {
        let Some(ctx) = self.ctx() else { return };
        let mut status = self.status.load(Ordering::SeqCst);
        if status == CREATING && job.method != Method::FirstPresence {
            // The first presence is always queued first: it failed (a
            // handler panicked). Let the room go rather than wait forever.
            ctx.service.creation_done(self);
            status = GONE;
        }
        if status == GONE {
            // Destroyed, evicted or refused meanwhile: as if it had just arrived.
            let method = match job.method {
                Method::FirstPresence => Method::PresenceToOccupant,
                m => m,
            };
            let _ = ctx.service.dispatch(&job.origin, job.stanza, method);
            return;
        }
        let (origin, stanza) = (&job.origin, job.stanza);
        match job.method {
            Method::FirstPresence => {
                self.handle_first_presence(&ctx, origin, stanza);
                ctx.service.creation_done(self);
            }
            Method::DiscoInfo => self.handle_disco_info(&ctx, origin, &stanza),
            Method::DiscoItems => self.handle_disco_items(origin, &stanza),
            Method::AdminSet => self.handle_admin_set(&ctx, origin, stanza),
            Method::AdminGet => self.handle_admin_get(&ctx, origin, &stanza),
            Method::OwnerSet => self.handle_owner_set(&ctx, origin, stanza),
            Method::OwnerGet => self.handle_owner_get(&ctx, origin, &stanza),
            Method::Register => {
                crate::features::register::handle_register_iq(self, &ctx, origin, &stanza)
            }
            Method::MessageToRoom => self.handle_message_to_room(&ctx, origin, stanza),
            Method::PresenceToRoom => self.handle_presence_to_room(&ctx, origin, stanza),
            Method::PresenceToOccupant => self.handle_presence_to_occupant(&ctx, origin, stanza),
            Method::IqToOccupant => self.handle_iq_to_occupant(&ctx, origin, stanza),
            Method::MessageToOccupant => self.handle_message_to_occupant(&ctx, origin, stanza),
        }
    }

    // -- occupants --------------------------------------------------------------------------

    /// The occupant JID of a real full JID in the room.
    pub fn get_occupant_jid(&self, real_jid: &str) -> Option<String> {
        self.state().jid_nick.get(real_jid).cloned()
    }

    /// A copy of the occupant with this occupant JID.
    pub fn get_occupant_by_nick(&self, nick: &str) -> Option<Occupant> {
        self.state().occupants.get(nick).map(Occupant::copied)
    }

    /// A copy of the occupant a real full JID is in the room as.
    pub fn get_occupant_by_real_jid(&self, real_jid: &str) -> Option<Occupant> {
        let st = self.state();
        let nick = st.jid_nick.get(real_jid)?;
        st.occupants.get(nick).map(Occupant::copied)
    }

    /// Copies of every occupant, in the order they joined.
    pub fn each_occupant(&self) -> Vec<Occupant> {
        let st = self.state();
        st.order
            .values()
            .filter_map(|n| st.occupants.get(n))
            .map(Occupant::copied)
            .collect()
    }

    pub fn occupant_count(&self) -> usize {
        self.state().occupants.len()
    }

    pub fn has_occupant(&self) -> bool {
        !self.state().occupants.is_empty()
    }

    /// Stores an occupant (Prosody's `save_occupant`): it stays while it has
    /// an available session and a role; returns what is stored.
    pub fn save_occupant(&self, occupant: &Occupant) -> Option<Occupant> {
        let mut occupant = occupant.copied();
        let mut st = self.state();
        let id = occupant.nick.clone();
        if let Some(old) = st.occupants.get(&id) {
            let old_jids: Vec<String> = old.session_jids().map(str::to_string).collect();
            for j in old_jids {
                st.jid_nick.remove(&j);
            }
        }
        let mut live = false;
        if occupant.role.is_some() {
            for s in occupant.sessions.iter().filter(|s| s.is_available()) {
                live = true;
                st.jid_nick.insert(s.jid.clone(), id.clone());
            }
            if !live {
                occupant.role = None;
            }
        }
        if !live {
            if let Some(old) = st.occupants.remove(&id) {
                st.order.remove(&old.seq);
            }
            return None;
        }
        match st.occupants.get(&id).map(|o| o.seq) {
            Some(seq) => occupant.seq = seq,
            None => {
                st.next_seq += 1;
                occupant.seq = st.next_seq;
                st.order.insert(occupant.seq, id.clone());
            }
        }
        st.occupants.insert(id, occupant.clone());
        Some(occupant)
    }

    /// A new occupant object with the default role for the user's
    /// affiliation (not stored).
    pub fn new_occupant(self: &Arc<Self>, bare_jid: &str, nick: &str) -> Occupant {
        let mut o = Occupant::new(bare_jid, nick);
        o.role = self.get_default_role(self.get_affiliation(bare_jid));
        o
    }

    /// The default role for an affiliation (`muc-get-default-role`).
    pub fn get_default_role(self: &Arc<Self>, affiliation: Option<Affiliation>) -> Option<Role> {
        let Some(ctx) = self.ctx() else {
            return default_role_by_rank(affiliation);
        };
        let mut ev = ctx
            .room_event("muc-get-default-role", self)
            .with_field("affiliation", affiliation_name(affiliation))
            .with_field("affiliation_rank", i64::from(affiliation_rank(affiliation)));
        if !ctx.fire("muc-get-default-role", &mut ev) {
            return None;
        }
        ev.field_str("role")
            .and_then(|r| Role::parse(r).ok())
            .flatten()
    }

    // -- routing -----------------------------------------------------------------------------

    /// Sends a stanza from the room through the router (`room:route_stanza`).
    pub fn route_stanza(&self, stanza: Element) {
        if let Some(ctx) = self.ctx() {
            route_stanza(&ctx, stanza);
        }
    }

    /// Sends `stanza` to every session of an occupant (`route_to_occupant`).
    pub fn route_to_occupant(&self, occupant: &Occupant, stanza: &Element) {
        let Some(ctx) = self.ctx() else { return };
        let mut d = Deliverer::new(&ctx, stanza);
        for s in &occupant.sessions {
            d.deliver(s);
        }
    }

    /// Sends `stanza` to every occupant for which `filter` holds (all when
    /// `None`), serialised once.
    pub fn broadcast(&self, stanza: &Element, filter: Option<&dyn Fn(&Occupant) -> bool>) {
        let Some(ctx) = self.ctx() else { return };
        let targets: Vec<_> = match filter {
            None => {
                let st = self.state();
                st.order
                    .values()
                    .filter_map(|n| st.occupants.get(n))
                    .flat_map(|o| o.sessions.iter().filter(|s| s.is_available()).cloned())
                    .collect()
            }
            // The filter runs without the room locked: it may use the room.
            Some(f) => self
                .each_occupant()
                .into_iter()
                .filter(|o| f(o))
                .flat_map(|o| o.sessions)
                .collect(),
        };
        let mut d = Deliverer::new(&ctx, stanza);
        for s in &targets {
            d.deliver(s);
        }
    }

    /// Broadcasts a message (`muc-broadcast-message`, which keeps history,
    /// then to everyone).
    pub fn broadcast_message(self: &Arc<Self>, stanza: Element) {
        let Some(ctx) = self.ctx() else { return };
        let mut ev = ctx
            .room_event("muc-broadcast-message", self)
            .with_stanza(stanza);
        if ctx.fire("muc-broadcast-message", &mut ev) {
            return;
        }
        if let Some(stanza) = ev.stanza.take() {
            self.broadcast(&stanza, None);
        }
    }

    /// Saves the room (persistent rooms to storage; `forced` removes a
    /// room that is no longer persistent), as mod_muc's `room_save`.
    pub fn save(self: &Arc<Self>, forced: bool) {
        if !self.is_live() {
            return;
        }
        if let Some(service) = self.service()
            && let Err(e) = service.room_save(self, forced, false)
        {
            tracing::error!(room = %self.jid, "saving the room failed: {e}");
        }
    }

    // -- `_data` helpers ----------------------------------------------------------------------

    pub fn data_bool(&self, key: &str) -> bool {
        matches!(self.state().data.get(key), Some(Value::Bool(true)))
    }
    /// Sets a boolean `_data` key (`false` removes it, as Prosody stores
    /// `nil`); `true` if it changed.
    pub fn set_data_bool(&self, key: &str, value: bool) -> bool {
        let mut st = self.state();
        if matches!(st.data.get(key), Some(Value::Bool(true))) == value {
            return false;
        }
        if value {
            st.data.insert(key, Value::Bool(true));
        } else {
            st.data.map.remove(key);
        }
        true
    }
    pub fn data_str(&self, key: &str) -> Option<String> {
        self.state()
            .data
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    }
    /// Sets a string `_data` key (`None` or empty removes it); `true` if it changed.
    pub fn set_data_str(&self, key: &str, value: Option<&str>) -> bool {
        let value = value.filter(|v| !v.is_empty());
        let mut st = self.state();
        if st.data.get(key).and_then(Value::as_str) == value {
            return false;
        }
        match value {
            Some(v) => st.data.insert(key, Value::str(v)),
            None => {
                st.data.map.remove(key);
            }
        }
        true
    }
    pub fn data_value(&self, key: &str) -> Option<Value> {
        self.state().data.get(key).cloned()
    }
    pub fn set_data_value(&self, key: &str, value: Option<Value>) {
        let mut st = self.state();
        match value {
            Some(v) => st.data.insert(key, v),
            None => {
                st.data.map.remove(key);
            }
        }
    }
}

/// Prosody's last-resort default roles (priority -1 of `muc-get-default-role`).
pub fn default_role_by_rank(affiliation: Option<Affiliation>) -> Option<Role> {
    let rank = affiliation_rank(affiliation);
    if rank >= affiliation_rank(Some(Affiliation::Admin)) {
        Some(Role::Moderator)
    } else if rank >= 0 {
        Some(Role::Participant)
    } else {
        None
    }
}

/// Clears the busy flag when dropped (also when a handler panics).
struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
