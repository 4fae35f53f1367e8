//! The lifecycle parts of `muc_breakout_rooms` (Jitsi's
//! mod_muc_breakout_rooms), on both the main MUC and the breakout MUC:
//!
//! - Switching rooms: a leave with `<status>switch_room</status>` marks the
//!   occupant's resource as switching (keyed by the main room's occupant
//!   JID, `main@muc/resource`, to the leaver's bare JID, at most 1000
//!   entries); until that resource joins a room of the conference again
//!   (or the session unbinds), a join or nick change to that resource by
//!   someone else gets `conflict`. Every leave from a breakout room first
//!   fires the global `jitsi-breakout-occupant-leaving` (fields `room`,
//!   `main_room`, `occupant`, `stanza`, `session`) so modules can tell a
//!   move from a departure.
//! - A join or nick change whose resource is already in another room of
//!   the same conference under another bare JID gets `conflict`; a join to
//!   a breakout room whose main room is gone gets `service-unavailable`.
//! - Close timer: when the main room and all its breakout rooms are left
//!   (the focus not counted) while breakout rooms are active, after 5 s
//!   the global `maybe-destroy-room` (fields `room`, `reason` "All
//!   occupants left.", `caller` "muc_breakout_rooms") is fired; any join
//!   in between stops the timer.
//! - `maybe-destroy-room` asked by another module is stopped while a
//!   breakout room still has occupants (the main room stays alive).
//!
//! `room_destroy` (Jitsi's mod_room_destroy, which the module depends on)
//! is [`load_room_destroy`]: `maybe-destroy-room` not stopped by anyone
//! makes the room non-persistent and destroys it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::{Event, Server};

use super::breakout_rooms::Breakout;
use super::util::split;
use muc::Room;
use muc::events::{lock, occupant_of, room_of};
use muc::room::reply_error;
use muc::util::{bare_of, host_of};

/// `ROOMS_TTL_IF_ALL_LEFT`.
pub const ROOMS_TTL_IF_ALL_LEFT: Duration = Duration::from_secs(5);
/// The `caller` of the `maybe-destroy-room` this module fires.
pub const MODULE_NAME: &str = "muc_breakout_rooms";
/// How many switching occupants are remembered (Jitsi's `cache.new(1000)`).
pub const SWITCHING_CAPACITY: usize = 1000;
const SWITCH_ROOM_STATUS: &str = "switch_room";

/// Switching entries: key → (bare JID, when set), and the last "when".
type Entries = (HashMap<String, (String, u64)>, u64);

/// Jitsi's `switching_room_cache`: main-room occupant JID → the bare JID
/// switching as it; the least recently set entry goes first when full.
#[derive(Default)]
pub struct SwitchingCache {
    inner: Mutex<Entries>,
}

impl SwitchingCache {
    pub fn set(&self, key: &str, bare_jid: &str) {
        let mut guard = lock(&self.inner);
        let (map, counter) = &mut *guard;
        *counter += 1;
        map.insert(key.to_string(), (bare_jid.to_string(), *counter));
        if map.len() > SWITCHING_CAPACITY
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, n))| *n)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        lock(&self.inner).0.get(key).map(|(v, _)| v.clone())
    }

    pub fn remove(&self, key: &str) {
        lock(&self.inner).0.remove(key);
    }

    /// Forgets every entry of `bare_jid` (its session went away).
    pub fn remove_bare(&self, bare_jid: &str) {
        lock(&self.inner).0.retain(|_, (v, _)| v != bare_jid);
    }

    /// `check_switching_state`: is `key` switching for someone other than
    /// `bare_jid`?
    pub fn conflicts(&self, key: &str, bare_jid: &str) -> bool {
        self.get(key).is_some_and(|s| s != bare_jid)
    }
}

/// The main rooms' close timers (Jitsi's `main_room.close_timer`): a
/// generation per main room, stopped by removing it.
#[derive(Default)]
pub struct CloseTimers {
    running: Mutex<HashMap<String, u64>>,
    next: AtomicU64,
}

impl CloseTimers {
    /// Starts a timer for `main_jid`; `None` if one runs already.
    fn start(&self, main_jid: &str) -> Option<u64> {
        let mut running = lock(&self.running);
        if running.contains_key(main_jid) {
            return None;
        }
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        running.insert(main_jid.to_string(), generation);
        Some(generation)
    }

    pub fn stop(&self, main_jid: &str) {
        lock(&self.running).remove(main_jid);
    }

    /// Is the timer `generation` of `main_jid` still the running one?
    fn is_running(&self, main_jid: &str, generation: u64) -> bool {
        lock(&self.running).get(main_jid) == Some(&generation)
    }
}

fn is_focus_jid(jid: Option<&str>) -> bool {
    jid.is_some_and(|j| split(j).0 == Some("focus"))
}

/// `exist_occupants_in_room`: someone but the focus?
fn exist_occupants_in_room(room: &Room) -> bool {
    room.each_occupant()
        .iter()
        .any(|o| !is_focus_jid(o.jid.as_deref()))
}

impl Breakout {
    /// The switching-cache key of a resource in the conference of `main`.
    fn switching_key(main: &Room, nick: &str) -> String {
        format!("{}/{}", main.jid, split(nick).2.unwrap_or_default())
    }

    /// `exist_occupants_in_rooms`.
    fn exist_occupants_in_rooms(&self, server: &Server, main: &Room) -> bool {
        exist_occupants_in_room(main)
            || self
                .breakout_jids(main)
                .iter()
                .filter_map(|jid| self.breakout_room(server, jid))
                .any(|r| exist_occupants_in_room(&r))
    }

    /// After a join (`on_occupant_joined`, the broadcast aside).
    pub(super) fn occupant_joined(&self, main: &Room, nick: &str) {
        if !main.data_bool("breakout_rooms_active") {
            return;
        }
        // Someone is here: the conference is not closing.
        self.close_timers.stop(&main.jid);
        self.switching.remove(&Self::switching_key(main, nick));
    }

    /// After a leave (`on_occupant_left`, the broadcast aside): the close
    /// timer when every room of the conference is empty.
    pub(super) fn occupant_left(self: &Arc<Self>, server: &Arc<Server>, main: &Arc<Room>) {
        if !main.data_bool("breakout_rooms_active") || self.exist_occupants_in_rooms(server, main) {
            return;
        }
        let Some(generation) = self.close_timers.start(&main.jid) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (me, server, main_jid) = (self.clone(), server.clone(), main.jid.clone());
        runtime.spawn(async move {
            tokio::time::sleep(ROOMS_TTL_IF_ALL_LEFT).await;
            if !me.close_timers.is_running(&main_jid, generation) {
                return;
            }
            me.close_timers.stop(&main_jid);
            // Looked up again: the room may have been destroyed meanwhile.
            let Some(main) = me.main_room(&server, &main_jid) else {
                return;
            };
            tracing::info!(room = %main_jid, "closing the conference, all occupants left");
            let mut ev = Event::new(&server, "maybe-destroy-room")
                .with_object("room", main)
                .with_field("reason", "All occupants left.")
                .with_field("caller", MODULE_NAME);
            server.fire_global("maybe-destroy-room", &mut ev);
        });
    }

    /// `muc-occupant-pre-leave` on the breakout MUC (`on_occupant_pre_leave`).
    fn breakout_pre_leave(&self, event: &Event) {
        let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
            return;
        };
        let server = event.server.clone();
        let main = self.main_room(&server, &room.jid);
        let mut ev = Event::new(&server, "jitsi-breakout-occupant-leaving")
            .with_object("room", room.clone())
            .with_object("occupant", occupant.clone());
        if let Some(m) = &main {
            ev = ev.with_object("main_room", m.clone());
        }
        if let Some(s) = &event.stanza {
            ev.stanza = Some(s.clone());
        }
        ev.origin = event.origin.clone();
        server.fire_global("jitsi-breakout-occupant-leaving", &mut ev);
        if let Some(main) = main
            && is_switching(event)
            && let Some(jid) = &occupant.jid
        {
            self.switching
                .set(&Self::switching_key(&main, &occupant.nick), bare_of(jid));
        }
    }

    /// `muc-occupant-pre-leave` on the main MUC.
    fn main_pre_leave(&self, event: &Event) {
        if let Some(occupant) = occupant_of(event, "occupant")
            && is_switching(event)
            && let Some(jid) = &occupant.jid
        {
            self.switching.set(&occupant.nick, bare_of(jid));
        }
    }

    /// Someone else's occupant with this resource in `room`?
    fn taken_in(&self, room: &Room, resource: &str, bare_jid: &str) -> bool {
        room.get_occupant_by_nick(&format!("{}/{resource}", room.jid))
            .is_some_and(|o| o.bare_jid != bare_jid)
    }

    /// `on_occupant_pre_join_or_change`: `true` when the join was refused.
    fn pre_join_or_change(&self, event: &Event) -> bool {
        let (Some(room), Some(origin)) = (room_of(event), event.origin.clone()) else {
            return false;
        };
        let Some(stanza) = event.stanza.clone() else {
            return false;
        };
        let server = event.server.clone();
        let main = if host_of(&room.jid) == self.main_muc {
            Some(room.clone())
        } else {
            self.main_room(&server, &room.jid)
        };
        let Some(main) = main else {
            // The main room went away while someone was switching to it.
            origin.send(StanzaError::service_unavailable().reply_to(&stanza));
            return true;
        };
        let resource = split(stanza.to().unwrap_or_default())
            .2
            .unwrap_or_default()
            .to_string();
        let bare_jid = bare_of(stanza.from().unwrap_or_default()).to_string();
        let conflict = self
            .switching
            .conflicts(&format!("{}/{resource}", main.jid), &bare_jid)
            || (!Arc::ptr_eq(&main, &room) && self.taken_in(&main, &resource, &bare_jid))
            || self
                .breakout_jids(&main)
                .iter()
                .filter(|jid| **jid != room.jid)
                .filter_map(|jid| self.breakout_room(&server, jid))
                .any(|r| self.taken_in(&r, &resource, &bare_jid));
        if conflict {
            reply_error(
                &origin,
                &stanza,
                StanzaError::new(ErrorType::Cancel, "conflict"),
                &room.jid,
            );
        }
        conflict
    }

    /// `handle_maybe_destroy_main_room`: `true` stops the destruction.
    fn maybe_destroy(&self, event: &Event) -> bool {
        if event.field_str("caller") == Some(MODULE_NAME) {
            return false;
        }
        let Some(main) = room_of(event) else {
            return false;
        };
        if host_of(&main.jid) != self.main_muc {
            return false;
        }
        let server = event.server.clone();
        for jid in self.breakout_jids(&main) {
            if self
                .breakout_room(&server, &jid)
                .is_some_and(|r| r.has_occupant())
            {
                tracing::info!("Suppressing room destroy. Breakout room still occupied {jid}");
                return true;
            }
        }
        false
    }
}

fn is_switching(event: &Event) -> bool {
    event
        .stanza
        .as_ref()
        .and_then(|s| s.children().find(|c| c.name() == "status"))
        .is_some_and(|s| s.text_content() == SWITCH_ROOM_STATUS)
}

/// Hooks of the breakout MUC.
pub(super) fn hook_breakout_host(b: &Arc<Breakout>, host: &xmpp_core::Host) {
    let me = b.clone();
    host.events.hook("muc-occupant-pre-leave", 0, move |event| {
        me.breakout_pre_leave(event);
        false
    });
    hook_pre_join(b, host);
}

/// Hooks of the main MUC.
pub(super) fn hook_main_host(b: &Arc<Breakout>, host: &xmpp_core::Host) {
    let me = b.clone();
    host.events.hook("muc-occupant-pre-leave", 0, move |event| {
        me.main_pre_leave(event);
        false
    });
    hook_pre_join(b, host);
}

fn hook_pre_join(b: &Arc<Breakout>, host: &xmpp_core::Host) {
    for name in ["muc-occupant-pre-join", "muc-occupant-pre-change"] {
        let me = b.clone();
        host.events
            .hook(name, 0, move |event| me.pre_join_or_change(event));
    }
}

/// Global hooks: `maybe-destroy-room`, and the switching state of a
/// session that goes away (`jitsi-pre-session-unbind`: every client host's
/// `resource-unbind`).
pub(super) fn hook_global(b: &Arc<Breakout>, server: &Arc<Server>) {
    let me = b.clone();
    server.events.hook("maybe-destroy-room", 0, move |event| {
        me.maybe_destroy(event)
    });
    hook_unbind(b, server);
    // Hosts made after this point are covered once the server has started.
    let me = b.clone();
    server.events.hook("server-started", 0, move |event| {
        hook_unbind(&me, &event.server);
        false
    });
}

fn hook_unbind(b: &Arc<Breakout>, server: &Arc<Server>) {
    for host in server.hosts() {
        if host.is_component() || !lock(&b.unbind_hooked).insert(host.name.clone()) {
            continue;
        }
        let me = b.clone();
        host.events.hook("resource-unbind", 0, move |event| {
            if let Some(jid) = event.origin.as_ref().and_then(|s| s.full_jid()) {
                me.switching.remove_bare(bare_of(&jid.to_string()));
            }
            false
        });
    }
}

/// Marker: `room_destroy` is loaded on this server.
#[derive(Default)]
struct RoomDestroyLoaded(std::sync::OnceLock<()>);

/// `room_destroy` (Jitsi's mod_room_destroy): the last handler (-1) of the
/// global `maybe-destroy-room` makes the room non-persistent and destroys
/// it with the event's `reason`. Loaded once per server.
pub fn load_room_destroy(server: &Arc<Server>) {
    if server.extension::<RoomDestroyLoaded>().0.set(()).is_err() {
        return;
    }
    server.events.hook("maybe-destroy-room", -1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let caller = event.field_str("caller").unwrap_or("?");
        tracing::info!(room = %room.jid, "Destroying room (requested by {caller})");
        room.set_persistent(false);
        let reason = event.field_str("reason").map(str::to_string);
        if let Err(e) = room.destroy(None, reason.as_deref(), None) {
            tracing::warn!(room = %room.jid, "could not destroy the room: {e}");
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switching_entries_conflict_only_for_others() {
        let cache = SwitchingCache::default();
        cache.set("main@muc/abcd", "alice@meet");
        assert!(!cache.conflicts("main@muc/abcd", "alice@meet"));
        assert!(cache.conflicts("main@muc/abcd", "mallory@meet"));
        assert!(!cache.conflicts("main@muc/other", "mallory@meet"));
        cache.remove("main@muc/abcd");
        assert!(!cache.conflicts("main@muc/abcd", "mallory@meet"));
    }

    #[test]
    fn switching_entries_go_with_their_session() {
        let cache = SwitchingCache::default();
        cache.set("a@muc/1", "alice@meet");
        cache.set("b@muc/1", "alice@meet");
        cache.set("c@muc/2", "bob@meet");
        cache.remove_bare("alice@meet");
        assert_eq!(cache.get("a@muc/1"), None);
        assert_eq!(cache.get("b@muc/1"), None);
        assert_eq!(cache.get("c@muc/2").as_deref(), Some("bob@meet"));
    }

    #[test]
    fn the_switching_cache_is_bounded() {
        let cache = SwitchingCache::default();
        for i in 0..=SWITCHING_CAPACITY {
            cache.set(&format!("r@muc/{i}"), "x@meet");
        }
        assert_eq!(cache.get("r@muc/0"), None);
        assert!(cache.get("r@muc/1").is_some());
        assert!(cache.get(&format!("r@muc/{SWITCHING_CAPACITY}")).is_some());
    }

    #[test]
    fn close_timers_run_once_and_stop() {
        let timers = CloseTimers::default();
        let g = timers.start("main@muc").expect("first timer");
        assert_eq!(timers.start("main@muc"), None);
        assert!(timers.is_running("main@muc", g));
        timers.stop("main@muc");
        assert!(!timers.is_running("main@muc", g));
        let g2 = timers.start("main@muc").expect("a new timer");
        assert_ne!(g, g2);
        assert!(!timers.is_running("main@muc", g));
    }
}
