//! A server side for Lua module tests: a [`LuaHost`] that records what a
//! module registers and sends, and dispatches events to the module's
//! handlers in Prosody's order. The server is what is stood in for here;
//! the modules under test are Prosody's real ones from Debian.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use lua_compat::host::AdhocCommand;
use lua_compat::host::{
    HandlerId, HostError, Item, LogLevel, LuaEvent, LuaHost, LuaModule, Origin, RouteId, Scope,
    SessionId, SharedData, Store, StoreKind, TimerId, UserSessions,
};
use xmpp_core::Element;
use xmpp_core::storage::{
    ArchiveItem, ArchiveQuery, ArchiveStore, KeyValueStore, MapStore, StorageResult, filter_archive,
};
use xmpp_core::value::{Table, Value};

#[derive(Default)]
pub struct TestHost {
    pub host: String,
    pub options: HashMap<String, Value>,
    pub global: HashMap<String, Value>,
    pub admins: Vec<String>,
    pub online: Vec<UserSessions>,
    pub hooks: Mutex<Vec<(Scope, String, i32, HandlerId)>>,
    pub items: Mutex<Vec<(String, Item)>>,
    pub sent: Mutex<Vec<Element>>,
    pub session_sent: Mutex<Vec<(SessionId, Element)>>,
    pub timers: Mutex<Vec<(Duration, TimerId)>>,
    pub logs: Mutex<Vec<(LogLevel, String)>>,
    pub depends: Mutex<Vec<String>>,
    pub stores: Mutex<HashMap<String, Arc<MemoryKeyVal>>>,
    pub routes: Mutex<Vec<(String, String, RouteId)>>,
    pub module: OnceLock<Weak<LuaModule>>,
    /// `module:shared` tables: give two hosts the same to share them.
    pub shared: Option<Arc<SharedData>>,
    /// Ad-hoc commands served.
    pub adhoc: Mutex<Vec<AdhocCommand>>,
}

impl TestHost {
    pub fn new(host: &str) -> TestHost {
        TestHost {
            host: host.to_string(),
            ..TestHost::default()
        }
    }
    pub fn option(mut self, name: &str, v: Value) -> TestHost {
        self.options.insert(name.to_string(), v);
        self
    }
    pub fn global_option(mut self, name: &str, v: Value) -> TestHost {
        self.global.insert(name.to_string(), v);
        self
    }
    pub fn hooked(&self, event: &str) -> Vec<(Scope, i32, HandlerId)> {
        self.hooks
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e, _, _)| e == event)
            .map(|(s, _, p, h)| (*s, *p, *h))
            .collect()
    }
    pub fn items_of(&self, kind: &str) -> Vec<Item> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, i)| i.clone())
            .collect()
    }
    /// Forgets a timer the way a host does when it fires.
    pub fn stop_timer_for_test(&self, timer: TimerId) {
        self.timers.lock().unwrap().retain(|(_, t)| *t != timer);
    }
    pub fn take_sent(&self) -> Vec<Element> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
    pub fn take_session_sent(&self) -> Vec<(SessionId, Element)> {
        std::mem::take(&mut *self.session_sent.lock().unwrap())
    }
    pub fn logged(&self, level: LogLevel) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// Fires `event` at the module's handlers, highest priority first,
    /// stopping at the first non-nil answer; errors count as nil.
    pub fn fire(&self, event: &mut LuaEvent) -> Option<Value> {
        let module = self.module.get()?.upgrade()?;
        let mut handlers: Vec<(i32, HandlerId)> = self
            .hooked(&event.name)
            .into_iter()
            .map(|(_, p, h)| (p, h))
            .collect();
        handlers.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
        for (_, h) in handlers {
            if let Ok(Some(v)) = module.handle_event(h, event) {
                return Some(v);
            }
        }
        None
    }
}

/// Loads `name` from Debian's module directory on `host`.
pub fn load(host: TestHost, name: &str) -> (Arc<TestHost>, Arc<LuaModule>) {
    load_with(host, name, lua_compat::host::Limits::default())
}

pub fn load_with(
    host: TestHost,
    name: &str,
    limits: lua_compat::host::Limits,
) -> (Arc<TestHost>, Arc<LuaModule>) {
    let host = Arc::new(host);
    let search = lua_compat::host::ModuleSearch::default();
    let module = LuaModule::load(host.clone(), name, &search, limits)
        .unwrap_or_else(|e| panic!("mod_{name} loads: {e}"));
    let module = Arc::new(module);
    let _ = host.module.set(Arc::downgrade(&module));
    (host, module)
}

pub fn origin(id: u64, user: &str, host: &str, resource: &str) -> Origin {
    Origin {
        id,
        kind: "c2s".into(),
        username: Some(user.into()),
        host: Some(host.into()),
        resource: Some(resource.into()),
        ip: Some("127.0.0.1".into()),
        extra: Table::new(),
    }
}

pub fn list(items: &[&str]) -> Value {
    let mut t = Table::new();
    t.seq = items.iter().map(|s| Value::str(*s)).collect();
    Value::Table(t)
}

/// Parses a stanza written as XML (via the crate's own stream parser).
pub fn stanza(xml: &str) -> Element {
    let mut stream = xmpp_core::XmlStream::new(xmpp_core::StreamLimits::default());
    let header =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let mut out = Vec::new();
    stream
        .feed(header.as_bytes(), &mut out)
        .and_then(|_| stream.feed(xml.as_bytes(), &mut out))
        .expect("test stanza parses");
    out.into_iter()
        .find_map(|e| match e {
            xmpp_core::StreamEvent::Stanza(s) => Some(s),
            _ => None,
        })
        .expect("a stanza")
}

#[derive(Default)]
pub struct MemoryKeyVal(Mutex<HashMap<String, Value>>);

impl KeyValueStore for MemoryKeyVal {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        Ok(self.0.lock().unwrap().get(user.unwrap_or("")).cloned())
    }
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let mut m = self.0.lock().unwrap();
        match value {
            Some(v) => m.insert(user.unwrap_or("").to_string(), v),
            None => m.remove(user.unwrap_or("")),
        };
        Ok(())
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        Ok(self.0.lock().unwrap().keys().cloned().collect())
    }
}

#[derive(Default)]
pub struct MemoryMap(Mutex<HashMap<(String, String), Value>>);

impl MapStore for MemoryMap {
    fn get(&self, user: Option<&str>, key: &str) -> StorageResult<Option<Value>> {
        let k = (user.unwrap_or("").to_string(), key.to_string());
        Ok(self.0.lock().unwrap().get(&k).cloned())
    }
    fn set(&self, user: Option<&str>, key: &str, value: Option<Value>) -> StorageResult<()> {
        let k = (user.unwrap_or("").to_string(), key.to_string());
        let mut m = self.0.lock().unwrap();
        match value {
            Some(v) => m.insert(k, v),
            None => m.remove(&k),
        };
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryArchive(Mutex<Vec<(String, ArchiveItem)>>);

impl ArchiveStore for MemoryArchive {
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let mut items = self.0.lock().unwrap();
        let key = format!("k{}", items.len() + 1);
        items.push((
            user.unwrap_or("").to_string(),
            ArchiveItem {
                key: key.clone(),
                stanza: stanza.clone(),
                when,
                with: with.to_string(),
            },
        ));
        Ok(key)
    }
    fn find(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        let items: Vec<ArchiveItem> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(u, _)| u == user.unwrap_or(""))
            .map(|(_, i)| i.clone())
            .collect();
        Ok(filter_archive(&items, query))
    }
    fn delete(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<usize> {
        let doomed: Vec<String> = self.find(user, query)?.into_iter().map(|i| i.key).collect();
        let mut items = self.0.lock().unwrap();
        let before = items.len();
        items.retain(|(_, i)| !doomed.contains(&i.key));
        Ok(before - items.len())
    }
}

impl LuaHost for TestHost {
    fn host(&self) -> &str {
        &self.host
    }
    fn hook(&self, scope: Scope, event: &str, priority: i32, handler: HandlerId) {
        self.hooks
            .lock()
            .unwrap()
            .push((scope, event.to_string(), priority, handler));
    }
    fn unhook(&self, handler: HandlerId) {
        self.hooks
            .lock()
            .unwrap()
            .retain(|(_, _, _, h)| *h != handler);
    }
    fn fire_event(&self, _scope: Scope, event: &mut LuaEvent) -> Option<Value> {
        self.fire(event)
    }
    fn send(&self, stanza: Element) {
        self.sent.lock().unwrap().push(stanza);
    }
    fn session_send(&self, session: SessionId, stanza: Element) -> bool {
        self.session_sent.lock().unwrap().push((session, stanza));
        true
    }
    fn option(&self, name: &str) -> Option<Value> {
        self.options
            .get(name)
            .cloned()
            .or_else(|| self.global.get(name).cloned())
    }
    fn global_option(&self, name: &str) -> Option<Value> {
        self.global.get(name).cloned()
    }
    fn add_item(&self, kind: &str, item: Item) {
        self.items.lock().unwrap().push((kind.to_string(), item));
    }
    fn remove_item(&self, kind: &str, item: &Item) {
        let mut items = self.items.lock().unwrap();
        if let Some(i) = items.iter().position(|(k, it)| k == kind && it == item) {
            items.remove(i);
        }
    }
    fn add_timer(&self, delay: Duration, timer: TimerId) {
        self.timers.lock().unwrap().push((delay, timer));
    }
    fn stop_timer(&self, timer: TimerId) {
        self.timers.lock().unwrap().retain(|(_, t)| *t != timer);
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_string()));
    }
    fn depends(&self, module: &str) -> Result<(), HostError> {
        self.depends.lock().unwrap().push(module.to_string());
        Ok(())
    }
    fn open_store(&self, name: &str, kind: StoreKind) -> Result<Store, HostError> {
        match kind {
            StoreKind::KeyVal => {
                let s = self
                    .stores
                    .lock()
                    .unwrap()
                    .entry(name.to_string())
                    .or_default()
                    .clone();
                Ok(Store::KeyVal(s))
            }
            StoreKind::Map => Ok(Store::Map(Arc::new(MemoryMap::default()))),
            StoreKind::Archive => Ok(Store::Archive(Arc::new(MemoryArchive::default()))),
        }
    }
    fn add_http_route(&self, method: &str, path: &str, route: RouteId) -> Result<(), HostError> {
        self.routes
            .lock()
            .unwrap()
            .push((method.to_string(), path.to_string(), route));
        Ok(())
    }
    fn remove_http_route(&self, route: RouteId) {
        self.routes.lock().unwrap().retain(|(_, _, r)| *r != route);
    }
    fn is_admin(&self, jid: &str, _host: &str) -> bool {
        let bare = jid.split('/').next().unwrap_or(jid);
        self.admins.iter().any(|a| a == bare)
    }
    fn hosts(&self) -> Vec<String> {
        vec![self.host.clone()]
    }
    fn shared_data(&self) -> Option<Arc<SharedData>> {
        self.shared.clone()
    }
    fn add_adhoc_command(&self, command: AdhocCommand) -> Result<(), HostError> {
        self.adhoc.lock().unwrap().push(command);
        Ok(())
    }
    fn remove_adhoc_command(&self, node: &str) {
        self.adhoc.lock().unwrap().retain(|c| c.node != node);
    }
    fn sessions(&self, host: &str) -> Option<Vec<UserSessions>> {
        (host == self.host).then(|| self.online.clone())
    }
}
