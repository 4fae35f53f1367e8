//! Shared harness for the IM module tests: a `Server` with the modules
//! loaded, an in-test memory storage driver, an auth provider knowing a
//! fixed set of accounts, and bound client sessions whose outbound queues
//! the tests read.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use xmpp_core::auth::{AuthProvider, SaslContext, SaslExchange, SaslFailure};
use xmpp_core::config::{HostConfig, Section};
use xmpp_core::stanza::{Element, NS_CLIENT, NS_STANZAS};
use xmpp_core::storage::{
    ArchiveItem, ArchiveQuery, ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageResult,
    filter_archive,
};
use xmpp_core::{
    Clock, Event, Host, HostKind, Jid, Outbound, Server, ServerConfig, Session, SessionKind, Value,
};

pub const HOST: &str = "localhost";
pub const NOW: f64 = 1219439344.0;

// -- storage ----------------------------------------------------------------------

type Key = (String, String, Option<String>);

/// Everything in RAM, inspectable by tests.
#[derive(Default)]
pub struct MemDriver {
    pub keyval: Mutex<HashMap<Key, Value>>,
    pub archives: Mutex<HashMap<Key, Vec<ArchiveItem>>>,
    next_key: Mutex<u64>,
}

struct MemKeyval(Arc<MemDriver>, String, String);
struct MemArchive(Arc<MemDriver>, String, String);

impl KeyValueStore for MemKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        let k = (self.1.clone(), self.2.clone(), user.map(str::to_string));
        Ok(self.0.keyval.lock().unwrap().get(&k).cloned())
    }
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let k = (self.1.clone(), self.2.clone(), user.map(str::to_string));
        let mut m = self.0.keyval.lock().unwrap();
        match value {
            Some(v) => m.insert(k, v),
            None => m.remove(&k),
        };
        Ok(())
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        let m = self.0.keyval.lock().unwrap();
        Ok(m.keys()
            .filter(|k| k.0 == self.1 && k.1 == self.2)
            .filter_map(|k| k.2.clone())
            .collect())
    }
}

impl ArchiveStore for MemArchive {
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let mut n = self.0.next_key.lock().unwrap();
        *n += 1;
        let key = format!("k{n}");
        let k = (self.1.clone(), self.2.clone(), user.map(str::to_string));
        let item = ArchiveItem {
            key: key.clone(),
            stanza: stanza.clone(),
            when,
            with: with.to_string(),
        };
        self.0
            .archives
            .lock()
            .unwrap()
            .entry(k)
            .or_default()
            .push(item);
        Ok(key)
    }
    fn find(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        let k = (self.1.clone(), self.2.clone(), user.map(str::to_string));
        let m = self.0.archives.lock().unwrap();
        Ok(m.get(&k)
            .map(|items| filter_archive(items, query))
            .unwrap_or_default())
    }
    fn delete(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<usize> {
        let k = (self.1.clone(), self.2.clone(), user.map(str::to_string));
        let mut m = self.0.archives.lock().unwrap();
        let Some(items) = m.get_mut(&k) else {
            return Ok(0);
        };
        let gone: HashSet<String> = filter_archive(items, query)
            .into_iter()
            .map(|i| i.key)
            .collect();
        items.retain(|i| !gone.contains(&i.key));
        Ok(gone.len())
    }
}

/// A driver handle (the driver itself is shared with the test).
pub struct MemDriverHandle(pub Arc<MemDriver>);

impl StorageDriver for MemDriverHandle {
    fn name(&self) -> &str {
        "memory"
    }
    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(MemKeyval(
            self.0.clone(),
            host.into(),
            store.into(),
        )))
    }
    fn open_map(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Err(xmpp_core::storage::StorageError::Other(
            "no map stores in this test driver".into(),
        ))
    }
    fn open_archive(&self, host: &str, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Ok(Arc::new(MemArchive(
            self.0.clone(),
            host.into(),
            store.into(),
        )))
    }
    fn purge_user(&self, _host: &str, _user: &str) -> StorageResult<()> {
        Ok(())
    }
}

// -- accounts -----------------------------------------------------------------------

/// Knows a fixed set of accounts; no SASL (sessions are bound directly).
pub struct Accounts {
    pub name: String,
    pub users: Mutex<HashSet<String>>,
}

impl AuthProvider for Accounts {
    fn name(&self) -> &str {
        &self.name
    }
    fn sasl_mechanisms(&self, _ctx: &SaslContext) -> Vec<String> {
        Vec::new()
    }
    fn sasl_start(
        &self,
        _m: &str,
        _ctx: &SaslContext,
    ) -> Result<Box<dyn SaslExchange>, SaslFailure> {
        Err(SaslFailure::new("invalid-mechanism"))
    }
    fn user_exists(&self, username: &str) -> StorageResult<bool> {
        Ok(self.users.lock().unwrap().contains(username))
    }
}

// -- the server -----------------------------------------------------------------------

pub struct Harness {
    pub server: Arc<Server>,
    pub host: Arc<Host>,
    pub storage: Arc<MemDriver>,
    pub accounts: Arc<Accounts>,
}

pub const IM_MODULES: &[&str] = &[
    "iq", "presence", "message", "offline", "roster", "disco", "ping", "version", "time", "uptime",
];

/// Another host: (name, is_component, options).
pub type ExtraHost = (&'static str, bool, Vec<(&'static str, Value)>);

/// Options and extra hosts for [`Harness::with`].
#[derive(Default)]
pub struct Setup {
    pub global: Vec<(&'static str, Value)>,
    pub host_options: Vec<(&'static str, Value)>,
    /// Extra hosts: (name, is_component, options).
    pub extra_hosts: Vec<ExtraHost>,
    pub auth_name: Option<&'static str>,
    /// Use the real `internal` driver over this data directory.
    pub data_path: Option<std::path::PathBuf>,
}

impl Harness {
    /// `localhost` with every IM module and accounts `users`.
    pub fn new(users: &[&str]) -> Harness {
        Harness::with(users, IM_MODULES, Setup::default())
    }

    pub fn with(users: &[&str], modules: &[&str], setup: Setup) -> Harness {
        match Harness::try_with(users, modules, setup) {
            Ok(h) => h,
            Err(e) => panic!("modules failed to load: {e}"),
        }
    }

    pub fn try_with(
        users: &[&str],
        modules: &[&str],
        setup: Setup,
    ) -> Result<Harness, modules::ModuleError> {
        let mut cfg = ServerConfig::default();
        cfg.global.set("storage", Value::str("memory"));
        for (k, v) in setup.global {
            cfg.global.set(k, v);
        }
        let mut section = Section::default();
        for (k, v) in setup.host_options {
            section.set(k, v);
        }
        cfg.hosts.push(HostConfig {
            name: HOST.into(),
            kind: HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        });
        for (name, component, opts) in setup.extra_hosts {
            let mut section = Section::default();
            for (k, v) in opts {
                section.set(k, v);
            }
            let kind = if component {
                HostKind::Component { module: None }
            } else {
                HostKind::VirtualHost
            };
            cfg.hosts.push(HostConfig {
                name: name.into(),
                kind,
                section,
                defined_at: Default::default(),
            });
        }
        if setup.data_path.is_some() {
            cfg.global.set("storage", Value::str("internal"));
        }
        let server = Server::new(cfg, Clock::Fixed(NOW));
        if let Some(path) = setup.data_path {
            server
                .storage
                .register(Arc::new(modules::storage::InternalDriver::new(path)));
        }
        let storage = Arc::new(MemDriver::default());
        server
            .storage
            .register(Arc::new(MemDriverHandle(storage.clone())));
        let accounts = Arc::new(Accounts {
            name: setup.auth_name.unwrap_or("internal_hashed").to_string(),
            users: Mutex::new(users.iter().map(|u| u.to_string()).collect()),
        });
        let host = server.host(HOST).expect("localhost configured");
        for h in server.hosts() {
            h.set_auth_provider(accounts.clone());
        }
        for m in modules {
            let outcome = modules::load_module(&server, &host, m)?;
            assert_eq!(outcome, modules::LoadOutcome::Loaded, "module {m} exists");
        }
        Ok(Harness {
            server,
            host,
            storage,
            accounts,
        })
    }

    /// Binds `user@localhost/resource`.
    pub fn connect(&self, user: &str, resource: &str) -> Client {
        let (tx, rx) = mpsc::unbounded_channel();
        let session = Arc::new(Session::new(SessionKind::C2s, HOST, None, tx));
        let jid = Jid::from_parts(Some(user), HOST, Some(resource)).expect("valid jid");
        {
            let mut st = session.state();
            st.username = Some(user.into());
            st.resource = Some(resource.into());
            st.full_jid = Some(jid.clone());
        }
        self.server.sessions.bind(&jid, &session);
        let mut ev = Event::new(&self.server, "resource-bind").with_origin(&session);
        self.server
            .fire_on_host(&self.host, "resource-bind", &mut ev);
        Client {
            session,
            rx,
            jid,
            server: self.server.clone(),
        }
    }

    /// What the c2s layer does when a stream ends: unbind, then `resource-unbind`.
    pub fn disconnect(&self, client: &Client) {
        self.server.sessions.unbind(&client.jid, &client.session);
        let mut ev = Event::new(&self.server, "resource-unbind").with_origin(&client.session);
        self.server
            .fire_on_host(&self.host, "resource-unbind", &mut ev);
    }

    pub fn stored_roster(&self, user: &str) -> Option<Value> {
        let k = (
            HOST.to_string(),
            "roster".to_string(),
            Some(user.to_string()),
        );
        self.storage.keyval.lock().unwrap().get(&k).cloned()
    }

    pub fn set_stored_roster(&self, user: &str, v: Value) {
        let k = (
            HOST.to_string(),
            "roster".to_string(),
            Some(user.to_string()),
        );
        self.storage.keyval.lock().unwrap().insert(k, v);
    }

    pub fn offline(&self, user: &str) -> Vec<ArchiveItem> {
        let k = (
            HOST.to_string(),
            "offline".to_string(),
            Some(user.to_string()),
        );
        self.storage
            .archives
            .lock()
            .unwrap()
            .get(&k)
            .cloned()
            .unwrap_or_default()
    }
}

// -- clients ------------------------------------------------------------------------

pub struct Client {
    pub session: Arc<Session>,
    pub rx: mpsc::UnboundedReceiver<Outbound>,
    pub jid: Jid,
    pub server: Arc<Server>,
}

impl Client {
    pub fn full(&self) -> String {
        self.jid.to_string()
    }
    pub fn bare(&self) -> String {
        self.jid.to_bare().to_string()
    }
    /// The client sends a stanza (through the router, as the c2s layer does).
    pub fn send(&self, stanza: Element) {
        self.server.process_stanza(&self.session, stanza);
    }
    /// Everything queued for the client so far.
    pub fn drain(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        while let Ok(o) = self.rx.try_recv() {
            if let Outbound::Stanza(e) = o {
                out.push(e);
            }
        }
        out
    }
    /// The next stanza, which must be there.
    #[track_caller]
    pub fn recv(&mut self) -> Element {
        match self.rx.try_recv() {
            Ok(Outbound::Stanza(e)) => e,
            other => panic!("{} expected a stanza, got {other:?}", self.jid),
        }
    }
    #[track_caller]
    pub fn expect_nothing(&mut self) {
        let left = self.drain();
        assert!(
            left.is_empty(),
            "{} expected nothing, got:\n{}",
            self.jid,
            xml_list(&left)
        );
    }
    /// Sends an IQ and returns the reply (skipping anything else received first).
    #[track_caller]
    pub fn iq(&mut self, stanza: Element) -> Element {
        let id = stanza.id().unwrap_or_default().to_string();
        self.send(stanza);
        let all = self.drain();
        all.into_iter()
            .find(|e| {
                e.name() == "iq"
                    && e.id() == Some(id.as_str())
                    && matches!(e.type_(), Some("result") | Some("error"))
            })
            .unwrap_or_else(|| panic!("{}: no reply to iq {id}", self.jid))
    }
}

pub fn xml_list(v: &[Element]) -> String {
    v.iter()
        .map(|e| format!("  {}", e.to_xml()))
        .collect::<Vec<_>>()
        .join("\n")
}

// -- stanza builders --------------------------------------------------------------------

pub fn iq(type_: &str, id: &str, to: Option<&str>, payload: Element) -> Element {
    Element::new("iq", NS_CLIENT)
        .attr("type", type_)
        .attr("id", id)
        .attr_opt("to", to)
        .child(payload)
}

pub fn query(ns: &str) -> Element {
    Element::new("query", ns)
}

pub fn presence() -> Element {
    Element::new("presence", NS_CLIENT)
}

pub fn presence_to(to: &str, type_: Option<&str>) -> Element {
    presence().attr("to", to).attr_opt("type", type_)
}

pub fn with_priority(p: Element, priority: i32) -> Element {
    p.child(Element::new("priority", NS_CLIENT).text(priority.to_string()))
}

pub fn message(to: &str, type_: &str, body: &str) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("to", to)
        .attr("type", type_)
        .child(Element::new("body", NS_CLIENT).text(body))
}

pub fn body(e: &Element) -> Option<String> {
    e.get_child_text("body", NS_CLIENT)
}

/// The defined condition of an error stanza.
pub fn error_condition(e: &Element) -> Option<String> {
    let err = e.get_child("error", NS_CLIENT)?;
    err.children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_string())
}

pub fn is_roster_push(e: &Element) -> bool {
    e.name() == "iq"
        && e.type_() == Some("set")
        && e.get_child("query", "jabber:iq:roster").is_some()
}

/// The single item of a roster push: (jid, subscription, ask).
pub fn push_item(e: &Element) -> (String, String, Option<String>) {
    let item = e
        .get_child("query", "jabber:iq:roster")
        .and_then(|q| q.get_child("item", "jabber:iq:roster"))
        .expect("push has an item");
    (
        item.get_attr("jid").unwrap_or_default().to_string(),
        item.get_attr("subscription")
            .unwrap_or_default()
            .to_string(),
        item.get_attr("ask").map(str::to_string),
    )
}

/// Items of a roster result: jid → (subscription, ask).
pub fn roster_items(e: &Element) -> Vec<(String, String, Option<String>)> {
    e.get_child("query", "jabber:iq:roster")
        .map(|q| {
            q.children()
                .map(|i| {
                    (
                        i.get_attr("jid").unwrap_or_default().to_string(),
                        i.get_attr("subscription").unwrap_or_default().to_string(),
                        i.get_attr("ask").map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The user's roster as the server sees it (by a roster get).
#[track_caller]
pub fn roster_of(c: &mut Client) -> Vec<(String, String, Option<String>)> {
    let r = c.iq(iq("get", "roster-check", None, query("jabber:iq:roster")));
    roster_items(&r)
}

pub fn is_presence(e: &Element, from: &str, type_: Option<&str>) -> bool {
    e.name() == "presence" && e.from() == Some(from) && e.type_() == type_
}
