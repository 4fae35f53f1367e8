//! XEP-0050 ad-hoc commands as modules register them (Prosody's
//! `module:provides("adhoc", ...)` with `util.adhoc`): a [`Command`] (name,
//! node, [`Permission`], handler) goes into the host's command list with
//! [`register`], owned by the module loading (unloading it takes the
//! command away). Answering the commands protocol is the `adhoc` module's
//! job (`modules::adhoc`, Prosody's mod_adhoc); a module that registers
//! commands depends on it.
//!
//! A handler gets a [`Request`] (from, to, action, the submitted
//! `jabber:x:data` form, and the state it returned last time for this
//! `sessionid`) and returns a [`Reply`]: a status, notes, actions, a form
//! and the state to keep. [`simple_form`] makes the usual one-stage command
//! (Prosody's `util.adhoc.new_simple_form`/`new_initial_data_form`).
//!
//! Permissions: `admin` is a JID in the global or the host's `admins`,
//! `global_admin` one in the global `admins` only, `local_user` an account
//! of this host, `any` anyone.

pub mod form;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StanzaError;
use crate::stanza::Element;
use crate::{Host, Jid, Server, Value};

pub use form::{Field, FieldValue, Form};

pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// Who may see and run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Admins of the host (global or host `admins`).
    Admin,
    /// Global `admins` only.
    GlobalAdmin,
    /// Accounts of this host.
    LocalUser,
    /// Anyone.
    Any,
}

/// What a handler is given.
pub struct Request<'a> {
    pub server: &'a Arc<Server>,
    pub host: &'a Arc<Host>,
    pub from: &'a str,
    pub to: &'a str,
    /// `execute` unless the request says otherwise.
    pub action: &'a str,
    /// The `<x xmlns='jabber:x:data'/>` of the request.
    pub form: Option<&'a Element>,
    /// What the handler kept for this session last time.
    pub state: Option<Value>,
}

/// The status of a command session after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Executing,
    Completed,
    Canceled,
    /// The request fails with this stanza error (no `<command/>`).
    Error(StanzaError),
}

/// What a handler answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: Status,
    pub info: Option<String>,
    pub warn: Option<String>,
    /// An error note (with `Completed` or `Canceled`).
    pub error: Option<String>,
    /// Actions offered while executing, and the default one.
    pub actions: Option<(Vec<String>, Option<String>)>,
    /// A form (or a result form) to show.
    pub form: Option<Element>,
    /// Other payload.
    pub other: Vec<Element>,
    /// Kept for the next step of this session (dropped when it ends).
    pub state: Option<Value>,
}

impl Reply {
    pub fn new(status: Status) -> Reply {
        Reply {
            status,
            info: None,
            warn: None,
            error: None,
            actions: None,
            form: None,
            other: Vec::new(),
            state: None,
        }
    }
    pub fn completed() -> Reply {
        Reply::new(Status::Completed)
    }
    pub fn canceled() -> Reply {
        Reply::new(Status::Canceled)
    }
    pub fn info(mut self, text: impl Into<String>) -> Reply {
        self.info = Some(text.into());
        self
    }
    pub fn error_note(mut self, text: impl Into<String>) -> Reply {
        self.error = Some(text.into());
        self
    }
}

pub type Handler = Arc<dyn Fn(&Request<'_>) -> Reply + Send + Sync>;

/// A command (Prosody's `adhoc.new(name, node, handler, permission)`).
#[derive(Clone)]
pub struct Command {
    pub name: String,
    pub node: String,
    pub permission: Permission,
    pub handler: Handler,
}

impl Command {
    pub fn new(
        name: &str,
        node: &str,
        permission: Permission,
        handler: impl Fn(&Request<'_>) -> Reply + Send + Sync + 'static,
    ) -> Command {
        Command {
            name: name.to_string(),
            node: node.to_string(),
            permission,
            handler: Arc::new(handler),
        }
    }
}

/// The commands of a host and their open sessions.
#[derive(Default)]
pub struct Registry {
    pub commands: Mutex<BTreeMap<String, Command>>,
    /// Open sessions' state, by `sessionid`.
    pub sessions: Mutex<HashMap<String, Value>>,
}

/// Locks, whether or not a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds a command to the host (replacing one with the same node); the
/// module loading it owns it and takes it away at unload.
pub fn register(host: &Host, command: Command) {
    let registry = host.extension::<Registry>();
    let node = command.node.clone();
    lock(&registry.commands).insert(node.clone(), command);
    crate::module::scope::on_unload(move || {
        lock(&registry.commands).remove(&node);
    });
}

/// Removes the command at `node`.
pub fn unregister(host: &Host, node: &str) {
    lock(&host.extension::<Registry>().commands).remove(node);
}

/// The nodes of the host's commands, sorted.
pub fn nodes(host: &Host) -> Vec<String> {
    lock(&host.extension::<Registry>().commands)
        .keys()
        .cloned()
        .collect()
}

/// The command at `node`.
pub fn command(host: &Host, node: &str) -> Option<Command> {
    lock(&host.extension::<Registry>().commands)
        .get(node)
        .cloned()
}

/// May `from` see and run a command with `permission` on `host`?
pub fn permitted(host: &Host, permission: Permission, from: Option<&str>) -> bool {
    let from = from.and_then(|f| Jid::parse(f).ok());
    match permission {
        Permission::Any => true,
        Permission::LocalUser => from.is_some_and(|f| f.domain() == host.name),
        Permission::Admin => from.is_some_and(|f| is_admin(host, &f)),
        Permission::GlobalAdmin => from.is_some_and(|f| {
            let bare = f.to_bare();
            host.config()
                .get_global("admins")
                .and_then(Value::as_string_list)
                .into_iter()
                .flatten()
                .any(|a| Jid::parse(&a).is_ok_and(|a| a == bare))
        }),
    }
}

/// The initial values of a form, by field name.
pub type InitialData = Box<dyn Fn(&Request<'_>) -> BTreeMap<String, Vec<String>> + Send + Sync>;

/// A one-stage command around `layout` (Prosody's `util.adhoc` forms): the
/// form (with `initial` values, if any) when there is neither a submitted
/// form nor a session, `canceled` on `cancel`, else `result(fields, errors)`.
pub fn simple_form(
    layout: Form,
    initial: Option<InitialData>,
    result: impl Fn(&Request<'_>, BTreeMap<String, FieldValue>, Vec<(String, String)>) -> Reply
    + Send
    + Sync
    + 'static,
) -> impl Fn(&Request<'_>) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.state.is_some() || req.form.is_some() {
            if req.action == "cancel" {
                return Reply::canceled();
            }
            let (fields, errors) = layout.data(req.form);
            return result(req, fields, errors);
        }
        let values = initial.as_ref().map(|f| f(req)).unwrap_or_default();
        let mut reply = Reply::new(Status::Executing);
        reply.actions = Some((
            vec!["next".into(), "complete".into()],
            Some("complete".into()),
        ));
        reply.form = Some(layout.form(&values, "form"));
        reply.state = Some(Value::str("executing"));
        reply
    }
}

/// Prosody's way of listing form errors in a note: `field: problem` lines.
pub fn errors_text(errors: &[(String, String)]) -> String {
    errors
        .iter()
        .map(|(f, e)| format!("{f}: {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Is `jid` in the global or the host's `admins`?
pub fn is_admin(host: &Host, jid: &Jid) -> bool {
    let bare = jid.to_bare();
    let cfg = host.config();
    let host_admins = cfg.host(&host.name).and_then(|h| h.section.get("admins"));
    [cfg.get_global("admins"), host_admins]
        .into_iter()
        .flatten()
        .filter_map(Value::as_string_list)
        .flatten()
        .any(|a| Jid::parse(&a).is_ok_and(|a| a == bare))
}
