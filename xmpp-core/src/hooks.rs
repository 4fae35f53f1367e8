//! Events and hooks, as Prosody's `util.events`: handlers registered per event
//! name with a priority; firing calls them highest priority first (ties in
//! registration order) and stops at the first handler that returns `true`.
//!
//! There is one global bus (`prosody.events`, on [`crate::Server`]) and one per
//! host (`hosts[host].events`, on [`crate::Host`]).
//!
//! Every handler remembers the module instance that was loading when it was
//! hooked ([`crate::module::scope`]), so unloading a module takes its
//! handlers off every bus ([`EventBus::unhook_owner`]).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::host::Host;
use crate::server::Server;
use crate::session::Session;
use crate::stanza::Element;
use crate::value::Value;

/// The payload of an event: Prosody's event table with its usual fields.
pub struct Event {
    /// The event name being fired.
    pub name: String,
    pub server: Arc<Server>,
    /// The host whose bus fired the event (None on the global bus).
    pub host: Option<Arc<Host>>,
    /// The session the stanza came from.
    pub origin: Option<Arc<Session>>,
    pub stanza: Option<Element>,
    /// The stanza was addressed to the sender's own account (no `to`, or its bare JID).
    pub to_self: bool,
    /// Any other fields (`username`, `resource`, `reason`, ...).
    pub fields: HashMap<String, Value>,
    /// Fields that are objects rather than Lua-shaped values (Prosody's
    /// `event.room`, `event.occupant`), by name; see [`Event::object`].
    pub objects: HashMap<String, Arc<dyn Any + Send + Sync>>,
}

impl Event {
    pub fn new(server: &Arc<Server>, name: impl Into<String>) -> Event {
        Event {
            name: name.into(),
            server: server.clone(),
            host: None,
            origin: None,
            stanza: None,
            to_self: false,
            fields: HashMap::new(),
            objects: HashMap::new(),
        }
    }
    pub fn with_origin(mut self, origin: &Arc<Session>) -> Event {
        self.origin = Some(origin.clone());
        self
    }
    pub fn with_stanza(mut self, stanza: Element) -> Event {
        self.stanza = Some(stanza);
        self
    }
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(key.to_string(), value.into());
        self
    }
    /// Builder: sets an object field.
    pub fn with_object<T: Any + Send + Sync>(mut self, key: &str, value: Arc<T>) -> Event {
        self.objects.insert(key.to_string(), value);
        self
    }
    /// The object field `key`, if it is there and of type `T`.
    pub fn object<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.objects
            .get(key)
            .and_then(|o| o.clone().downcast::<T>().ok())
    }
    pub fn field_str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }
    /// The stanza, which every stanza event has.
    pub fn stanza(&self) -> &Element {
        static EMPTY: std::sync::OnceLock<Element> = std::sync::OnceLock::new();
        self.stanza
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(|| Element::new("none", "")))
    }
    /// Replies to the origin with `stanza` (Prosody's `origin.send`).
    pub fn reply(&self, stanza: Element) {
        if let Some(o) = &self.origin {
            o.send(stanza);
        }
    }
}

/// A hook handler. Returning `true` stops the chain (the event is handled).
pub type Handler = Arc<dyn Fn(&mut Event) -> bool + Send + Sync>;

/// A handle to unhook later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HookId(u64);

struct Registered {
    id: u64,
    priority: i32,
    handler: Handler,
    /// The module instance that registered it (0: none), see
    /// [`crate::module::scope`].
    owner: u64,
}

impl Registered {
    fn duplicate(&self) -> Registered {
        Registered {
            id: self.id,
            priority: self.priority,
            handler: self.handler.clone(),
            owner: self.owner,
        }
    }
}

/// An event bus.
#[derive(Default)]
pub struct EventBus {
    handlers: RwLock<HashMap<String, Arc<Vec<Registered>>>>,
    next_id: AtomicU64,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus::default()
    }

    /// Registers `handler` for `name` at `priority` (Prosody's default is 0).
    pub fn hook(
        &self,
        name: &str,
        priority: i32,
        handler: impl Fn(&mut Event) -> bool + Send + Sync + 'static,
    ) -> HookId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut map = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(name.to_string()).or_default();
        let mut new: Vec<Registered> = list.iter().map(Registered::duplicate).collect();
        new.push(Registered {
            id,
            priority,
            handler: Arc::new(handler),
            owner: crate::module::scope::current_owner(),
        });
        // Stable sort: highest priority first, registration order within a priority.
        new.sort_by_key(|r| std::cmp::Reverse(r.priority));
        *list = Arc::new(new);
        HookId(id)
    }

    /// Removes a handler.
    pub fn unhook(&self, id: HookId) {
        let mut map = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        for list in map.values_mut() {
            if list.iter().any(|r| r.id == id.0) {
                let new: Vec<Registered> = list
                    .iter()
                    .filter(|r| r.id != id.0)
                    .map(Registered::duplicate)
                    .collect();
                *list = Arc::new(new);
            }
        }
    }

    /// Removes every handler module instance `owner` registered; how many.
    pub fn unhook_owner(&self, owner: u64) -> usize {
        if owner == 0 {
            return 0;
        }
        let mut removed = 0;
        let mut map = self.handlers.write().unwrap_or_else(|e| e.into_inner());
        for list in map.values_mut() {
            let before = list.len();
            if list.iter().any(|r| r.owner == owner) {
                let new: Vec<Registered> = list
                    .iter()
                    .filter(|r| r.owner != owner)
                    .map(Registered::duplicate)
                    .collect();
                removed += before - new.len();
                *list = Arc::new(new);
            }
        }
        map.retain(|_, l| !l.is_empty());
        removed
    }

    /// How many handlers module instance `owner` has hooked here.
    pub fn owned_count(&self, owner: u64) -> usize {
        let map = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .map(|l| l.iter().filter(|r| r.owner == owner).count())
            .sum()
    }

    /// How many handlers are hooked on every event together.
    pub fn total_count(&self) -> usize {
        let map = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|l| l.len()).sum()
    }

    /// Is anything hooked on `name`?
    pub fn has_handlers(&self, name: &str) -> bool {
        let map = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).is_some_and(|l| !l.is_empty())
    }

    /// How many handlers are hooked on `name`.
    pub fn handler_count(&self, name: &str) -> usize {
        let map = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).map_or(0, |l| l.len())
    }

    /// Fires `event` under `name`; `true` when a handler handled it.
    /// Handlers may hook, unhook and fire events themselves.
    pub fn fire(&self, name: &str, event: &mut Event) -> bool {
        let list = {
            let map = self.handlers.read().unwrap_or_else(|e| e.into_inner());
            match map.get(name) {
                Some(l) => l.clone(),
                None => return false,
            }
        };
        let previous = std::mem::replace(&mut event.name, name.to_string());
        let mut handled = false;
        for r in list.iter() {
            if (r.handler)(event) {
                handled = true;
                break;
            }
        }
        event.name = previous;
        handled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn priorities_and_stop_on_first_true() {
        let server = Server::for_tests();
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for (p, tag, stop) in [
            (0, "a", false),
            (10, "b", false),
            (5, "c", true),
            (0, "d", false),
        ] {
            let seen = seen.clone();
            bus.hook("ev", p, move |_| {
                seen.lock().unwrap().push(tag);
                stop
            });
        }
        let mut ev = Event::new(&server, "ev");
        assert!(bus.fire("ev", &mut ev));
        assert_eq!(*seen.lock().unwrap(), vec!["b", "c"]);
        assert!(!bus.fire("other", &mut ev));
    }

    #[test]
    fn equal_priorities_run_in_registration_order_and_unhook_works() {
        let server = Server::for_tests();
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut ids = Vec::new();
        for tag in ["x", "y", "z"] {
            let seen = seen.clone();
            ids.push(bus.hook("ev", 0, move |_| {
                seen.lock().unwrap().push(tag);
                false
            }));
        }
        bus.unhook(ids[1]);
        let mut ev = Event::new(&server, "ev");
        assert!(!bus.fire("ev", &mut ev));
        assert_eq!(*seen.lock().unwrap(), vec!["x", "z"]);
    }
}
