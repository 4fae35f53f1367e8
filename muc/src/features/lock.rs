//! Room locking (Prosody's `lock` library): a room created with the MUC
//! protocol is locked until its owner submits the configuration (or
//! `muc_room_lock_timeout` passes); nobody else may join meanwhile.
//! `muc_room_locking = false` turns it off.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::{Host, Value};

use crate::events::room_of;
use crate::room::{Room, reply_error};
use crate::util::NS_MUC;

impl Room {
    fn fire_lock_event(self: &Arc<Self>, name: &str) {
        if let Some(ctx) = self.ctx() {
            let mut ev = ctx.room_event(name, self);
            ctx.fire(name, &mut ev);
        }
    }

    /// Locks the room for the lock timeout.
    pub fn lock(self: &Arc<Self>) {
        self.fire_lock_event("muc-room-locked");
        let (now, timeout) = match self.ctx() {
            Some(c) => (
                c.server.clock.now().floor() as i64,
                c.service.settings().lock_timeout,
            ),
            None => (0, 300),
        };
        self.set_data_value("locked", Some(Value::Integer(now + timeout)));
    }

    pub fn unlock(self: &Arc<Self>) {
        self.fire_lock_event("muc-room-unlocked");
        self.set_data_value("locked", None);
    }

    /// Is the room locked (unlocking it if the lock has expired)?
    pub fn is_locked(self: &Arc<Self>) -> bool {
        let Some(until) = self.data_value("locked").and_then(|v| v.as_f64()) else {
            return false;
        };
        let now = self.ctx().map_or(0.0, |c| c.server.clock.now().floor());
        if now < until {
            return true;
        }
        self.unlock();
        false
    }
}

pub fn register(host: &Arc<Host>) {
    // `muc_room_locking`, read per new room (a reload applies).
    host.events.hook("muc-room-pre-create", 10, |event| {
        if event.stanza().get_child("x", NS_MUC).is_some()
            && let Some(room) = room_of(event)
            && room.service().is_some_and(|s| s.settings().room_locking)
        {
            room.lock();
        }
        false
    });
    host.events.hook("muc-occupant-pre-join", -30, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if crate::room::presence::is_new_room(event) || !room.is_locked() {
            return false;
        }
        if let (Some(origin), Some(service)) = (event.origin.clone(), room.service()) {
            reply_error(
                &origin,
                event.stanza(),
                StanzaError::item_not_found(),
                &service.host_name,
            );
        }
        true
    });
    host.events.hook("muc-config-submitted", -1, |event| {
        if let Some(room) = room_of(event)
            && room.is_locked()
        {
            room.unlock();
        }
        false
    });
}
