//! MUC events on the component host's bus, with Prosody's names and payload
//! fields.
//!
//! Every event carries the room as the object field `room` (an
//! `Arc<Room>`, see [`room_of`]) and its JID as the field `room_jid`.
//! Occupants travel as object fields (`occupant`, `orig_occupant`,
//! `dest_occupant`: an `Arc<Occupant>`, a copy); `nick` is a field with
//! Prosody's meaning for that event (the occupant JID for joins and
//! leaves, the new nickname in `muc-broadcast-presence`). Elements a handler
//! may change besides `event.stanza` (Prosody's `event.x`, `event.reply`,
//! `event.form`) are objects holding a `Mutex`. Events whose Prosody
//! handlers return a value (`muc-get-default-role`, ...) take it from a
//! field the handler sets before returning `true`.

use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::{Event, Host, Server, Session, Value};

use crate::occupant::Occupant;
use crate::room::Room;
use crate::service::MucService;

/// What firing an event needs: the server, the component host, the service.
#[derive(Clone)]
pub struct Ctx {
    pub server: Arc<Server>,
    pub host: Arc<Host>,
    pub service: Arc<MucService>,
}

impl Ctx {
    /// Fires `event` under `name` on the component host.
    pub fn fire(&self, name: &str, event: &mut Event) -> bool {
        self.server.fire_on_host(&self.host, name, event)
    }

    /// A new event about `room`.
    pub fn room_event(&self, name: &str, room: &Arc<Room>) -> Event {
        Event::new(&self.server, name)
            .with_object("room", room.clone())
            .with_field("room_jid", room.jid.as_str())
    }
}

/// Builder helpers for MUC events.
pub trait EventExt {
    fn origin_opt(self, origin: Option<&Arc<Session>>) -> Self;
    fn occupant(self, key: &str, occupant: &Occupant) -> Self;
    fn mutable<T: Send + 'static>(self, key: &str, value: T) -> Self;
}

impl EventExt for Event {
    fn origin_opt(mut self, origin: Option<&Arc<Session>>) -> Event {
        self.origin = origin.cloned();
        self
    }
    /// Puts an occupant (a copy) under `key`.
    fn occupant(self, key: &str, occupant: &Occupant) -> Event {
        self.with_object(key, Arc::new(occupant.clone()))
    }
    fn mutable<T: Send + 'static>(self, key: &str, value: T) -> Event {
        self.with_object(key, Arc::new(Mutex::new(value)))
    }
}

/// The room an event is about.
pub fn room_of(event: &Event) -> Option<Arc<Room>> {
    event.object::<Room>("room")
}

/// An occupant field of an event (a copy).
pub fn occupant_of(event: &Event, key: &str) -> Option<Arc<Occupant>> {
    event.object::<Occupant>(key)
}

/// A mutable object field of an event.
pub fn mutable_of<T: Send + 'static>(event: &Event, key: &str) -> Option<Arc<Mutex<T>>> {
    event.object::<Mutex<T>>(key)
}

/// Locks a mutex, whatever a panicking holder left.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the value out of a mutable object field (after firing).
pub fn take_mutable<T: Send + Clone + 'static>(event: &Event, key: &str) -> Option<T> {
    mutable_of::<T>(event, key).map(|m| lock(&m).clone())
}

/// A boolean field of an event (`false` when absent).
pub fn flag(event: &Event, key: &str) -> bool {
    matches!(event.fields.get(key), Some(Value::Bool(true)))
}
