//! [`LuaHost`]: everything a Lua module's environment needs from the server,
//! and the plain data that crosses between them ([`LuaEvent`], [`Origin`],
//! [`Item`], ids).
//!
//! The server side (xmpp-core's per-host module context) implements
//! [`LuaHost`] once; a [`super::LuaModule`] calls it when the Lua code does
//! `module:hook`, `module:send`, `module:add_feature`, ... The other
//! direction is methods on [`super::LuaModule`]: when an event the module
//! hooked is fired, the server calls [`super::LuaModule::handle_event`] with
//! the [`HandlerId`] it was given in [`LuaHost::hook`]; a timer it was asked
//! for comes back through [`super::LuaModule::fire_timer`], an IQ response
//! through [`super::LuaModule::iq_response`], an HTTP request through
//! [`super::LuaModule::handle_http`].
//!
//! Only the first group of methods is required; the rest have defaults that
//! say "not available" so a host can grow into them.

use std::time::Duration;

use xmpp_core::Element;
use xmpp_core::storage::{ArchiveStore, KeyValueStore, MapStore};
use xmpp_core::value::{Table, Value};

/// A session as a number the host understands (for `origin.send`).
pub type SessionId = u64;

/// A Lua event handler, numbered by the module that registered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(pub u64);

/// A timer, numbered by the module that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// An outstanding `module:send_iq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IqRequestId(pub u64);

/// An HTTP route registered through `module:provides("http", ...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub u64);

/// Which bus a hook goes on: the module's host (`module:hook`) or the
/// server-wide one (`module:hook_global`, Prosody's `prosody.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Host,
    Global,
}

/// Prosody's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// Prosody's name for a level (`"warn"`), unknown names are `info`.
    pub fn parse(s: &str) -> LogLevel {
        match s {
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// The session an event came from (Prosody's `event.origin`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// What [`LuaHost::session_send`] takes to reach this session.
    pub id: SessionId,
    /// Prosody's `session.type`: `c2s`, `c2s_unauthed`, `s2sin`, `s2sout`,
    /// `component`, `local`.
    pub kind: String,
    pub username: Option<String>,
    pub host: Option<String>,
    pub resource: Option<String>,
    /// The client's address (`session.ip`).
    pub ip: Option<String>,
    /// Any other session fields (`priority`, `presence` is not here, ...).
    pub extra: Table,
}

impl Origin {
    /// `user@host/resource` when all three are known.
    pub fn full_jid(&self) -> Option<String> {
        match (&self.username, &self.host, &self.resource) {
            (Some(u), Some(h), Some(r)) => Some(format!("{u}@{h}/{r}")),
            _ => None,
        }
    }
}

/// An event as a Lua handler sees it: Prosody's event table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LuaEvent {
    pub name: String,
    pub origin: Option<Origin>,
    /// The stanza; a handler may change it, and the change is written back.
    pub stanza: Option<Element>,
    /// Every other field (`username`, `host`, `to_self`, ...).
    pub fields: Table,
}

impl LuaEvent {
    pub fn new(name: impl Into<String>) -> LuaEvent {
        LuaEvent {
            name: name.into(),
            ..LuaEvent::default()
        }
    }
    pub fn with_origin(mut self, origin: Origin) -> LuaEvent {
        self.origin = Some(origin);
        self
    }
    pub fn with_stanza(mut self, stanza: Element) -> LuaEvent {
        self.stanza = Some(stanza);
        self
    }
    pub fn with_field(mut self, key: &str, value: Value) -> LuaEvent {
        self.fields.insert(key, value);
        self
    }
}

/// Something a module adds with `module:add_item` (and `add_feature`,
/// `add_identity`, `add_extension`, `provides`): Lua-shaped data, or a
/// stanza for `extension` items. Functions inside an item are left out.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Value(Value),
    Stanza(Element),
}

/// A store a module opened (`module:open_store(name, kind)`).
#[derive(Clone)]
pub enum Store {
    KeyVal(std::sync::Arc<dyn KeyValueStore>),
    Map(std::sync::Arc<dyn MapStore>),
    Archive(std::sync::Arc<dyn ArchiveStore>),
}

/// The store kinds of `open_store`'s second argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    KeyVal,
    Map,
    Archive,
}

/// One account's online sessions on a host (what `hosts[h].sessions[user]` lists).
#[derive(Debug, Clone, PartialEq)]
pub struct UserSessions {
    pub username: String,
    /// Resource and session id of each bound session.
    pub resources: Vec<(String, SessionId)>,
}

/// An HTTP request for a module's route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    /// The path after the module's base path.
    pub path: String,
    /// What the route's `*` matched (`"GET /*"` for `/status/x/y` is
    /// `x/y`): the handler's second argument; `path` when `None`.
    pub wildcard: Option<String>,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a module's HTTP handler answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why the host refused something a module asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("not available on this host: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

/// The server as a Lua module sees it. One value per loaded module (it
/// knows which host and module it is for); methods may be called while a
/// [`super::LuaModule`] method is running (the module calls back into the
/// host from inside a handler), so an implementation must not hold a lock
/// around calls into the module.
pub trait LuaHost: Send + Sync {
    /// The host the module is loaded on (`module.host`; `"*"` for a global module).
    fn host(&self) -> &str;

    /// Registers `handler` for `event` at `priority` on the host's or the
    /// global bus. When fired, call [`super::LuaModule::handle_event`]: a
    /// `Some` result stops the chain, as Prosody's non-nil return does.
    fn hook(&self, scope: Scope, event: &str, priority: i32, handler: HandlerId);
    /// Removes a handler registered with [`LuaHost::hook`].
    fn unhook(&self, handler: HandlerId);
    /// Fires an event (`module:fire_event`); the first handler's non-nil answer.
    fn fire_event(&self, scope: Scope, event: &mut LuaEvent) -> Option<Value>;

    /// Routes a stanza from this host (`module:send`).
    fn send(&self, stanza: Element);
    /// Sends to one session (`origin.send`); false when it is gone.
    fn session_send(&self, session: SessionId, stanza: Element) -> bool;

    /// The host's value of an option, falling back to the global section.
    fn option(&self, name: &str) -> Option<Value>;
    /// The global section's value of an option.
    fn global_option(&self, name: &str) -> Option<Value>;

    /// Adds an item (`feature`, `identity`, `extension`, `adhoc`, ...).
    fn add_item(&self, kind: &str, item: Item);
    /// Removes an item added before (on unload, or `module:remove_item`).
    fn remove_item(&self, kind: &str, item: &Item);

    /// Asks for `timer` to be fired in `delay` (call [`super::LuaModule::fire_timer`]).
    fn add_timer(&self, delay: Duration, timer: TimerId);
    /// Forgets a timer.
    fn stop_timer(&self, timer: TimerId);

    /// Logs a line of the module's (`module:log`), already formatted.
    fn log(&self, level: LogLevel, message: &str) {
        match level {
            LogLevel::Debug => tracing::debug!(host = self.host(), "{message}"),
            LogLevel::Info => tracing::info!(host = self.host(), "{message}"),
            LogLevel::Warn => tracing::warn!(host = self.host(), "{message}"),
            LogLevel::Error => tracing::error!(host = self.host(), "{message}"),
        }
    }

    /// Loads another module on this host first (`module:depends`).
    fn depends(&self, module: &str) -> Result<(), HostError> {
        Err(HostError::Unsupported(format!("module {module}")))
    }
    /// Sends an IQ and later calls [`super::LuaModule::iq_response`] with `request`.
    fn send_iq(&self, stanza: Element, request: IqRequestId, timeout: Duration) {
        let _ = (stanza, request, timeout);
    }
    /// Opens one of the host's stores.
    fn open_store(&self, name: &str, kind: StoreKind) -> Result<Store, HostError> {
        let _ = kind;
        Err(HostError::Unsupported(format!("store {name}")))
    }
    /// Registers an HTTP route (`"GET /path"` form split into method and path;
    /// an empty method is any method); the host calls
    /// [`super::LuaModule::handle_http`] for requests to it.
    fn add_http_route(&self, method: &str, path: &str, route: RouteId) -> Result<(), HostError> {
        let _ = route;
        Err(HostError::Unsupported(format!(
            "http route {method} {path}"
        )))
    }
    /// Removes a route added with [`LuaHost::add_http_route`].
    fn remove_http_route(&self, route: RouteId) {
        let _ = route;
    }
    /// The public URL of an HTTP path of this host (`module:http_url`).
    fn http_url(&self, path: &str) -> String {
        format!("http://{}:5280{path}", self.host())
    }
    /// Records a metric sample (`module:measure`, `module:metric`): kind is
    /// `amount`, `counter`, `rate`, `sizes`, `times`, `distribution`.
    fn measure(&self, name: &str, kind: &str, value: f64) {
        let _ = (name, kind, value);
    }

    /// Does this account exist (`usermanager.user_exists`)?
    fn user_exists(&self, username: &str, host: &str) -> bool {
        let _ = (username, host);
        false
    }
    /// Is `jid` an admin of `host` (`usermanager.is_admin`)?
    fn is_admin(&self, jid: &str, host: &str) -> bool {
        let _ = (jid, host);
        false
    }
    /// May the actor `jid` do `action` (`module:may`)?
    fn may(&self, action: &str, jid: &str) -> bool {
        let _ = (action, jid);
        false
    }
    /// Declares a permission and the least role that has it (`module:default_permission`).
    fn default_permission(&self, role: &str, action: &str) {
        let _ = (role, action);
    }
    /// Creates an account (`usermanager.create_user`).
    fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
        host: &str,
    ) -> Result<(), HostError> {
        let _ = (password, host);
        Err(HostError::Unsupported(format!(
            "creating account {username}"
        )))
    }
    /// Deletes an account (`usermanager.delete_user`).
    fn delete_user(&self, username: &str, host: &str) -> Result<(), HostError> {
        let _ = host;
        Err(HostError::Unsupported(format!(
            "deleting account {username}"
        )))
    }
    /// Sets an account's password (`usermanager.set_password`).
    fn set_password(&self, username: &str, password: &str, host: &str) -> Result<(), HostError> {
        let _ = (password, host);
        Err(HostError::Unsupported(format!(
            "setting the password of {username}"
        )))
    }
    /// The modules loaded on a host (`"*"`: the global ones), for
    /// `modulemanager.get_modules`/`is_loaded` and `hosts[h].modules`.
    fn loaded_modules(&self, host: &str) -> Vec<String> {
        let _ = host;
        Vec::new()
    }
    /// Loads, unloads or reloads a module at run time (`modulemanager.load`,
    /// `unload`, `reload`): `op` is one of those three words.
    fn manage_module(&self, op: &str, host: &str, module: &str) -> Result<(), HostError> {
        Err(HostError::Unsupported(format!(
            "{op} of {module} on {host}"
        )))
    }
    /// Does `username@host` have a subscription from `jid` (rostermanager)?
    fn is_contact_subscribed(&self, username: &str, host: &str, jid: &str) -> bool {
        let _ = (username, host, jid);
        false
    }
    /// The affiliation (`owner`, `admin`, `member`, `outcast`) of `jid` in
    /// the MUC room `room` of this host (`room:get_affiliation`); `None`
    /// for none or an unknown room.
    fn room_affiliation(&self, room: &str, jid: &str) -> Option<String> {
        let _ = (room, jid);
        None
    }
    /// Serves an ad-hoc command the module provides: executing it calls
    /// [`super::LuaModule::adhoc_execute`] with the command's node.
    fn add_adhoc_command(&self, command: super::AdhocCommand) -> Result<(), HostError> {
        Err(HostError::Unsupported(format!(
            "ad-hoc command {}",
            command.node
        )))
    }
    /// Stops serving a command added with [`LuaHost::add_adhoc_command`].
    fn remove_adhoc_command(&self, node: &str) {
        let _ = node;
    }
    /// The server's tables for `module:shared` (one for every module and
    /// host); `None`: the module's shared tables are its own.
    fn shared_data(&self) -> Option<std::sync::Arc<super::SharedData>> {
        None
    }
    /// The hosts this server serves (`prosody.hosts`' keys).
    fn hosts(&self) -> Vec<String> {
        vec![self.host().to_string()]
    }
    /// The online accounts of a host (`hosts[h].sessions`); `None` for a
    /// host without user sessions (a component).
    fn sessions(&self, host: &str) -> Option<Vec<UserSessions>> {
        let _ = host;
        None
    }
}
