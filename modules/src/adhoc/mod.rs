//! `adhoc`: Prosody's mod_adhoc — XEP-0050 ad-hoc commands on a host.
//!
//! **Registering a command** (Prosody's `module:provides("adhoc", ...)`):
//! any crate calls [`register`] with a [`Command`]: its name, node,
//! [`Permission`] and handler. The registry lives on the host, so a command
//! may be registered before or after `adhoc` itself is loaded; `adhoc` is
//! what answers for them (load it where commands are registered, as
//! Prosody's `module:depends("adhoc")`).
//!
//! A handler gets a [`Request`] (from, to, action, the submitted
//! `jabber:x:data` form, and the state it returned last time for this
//! `sessionid`) and returns a [`Reply`]: a status, notes, actions, a form
//! and the state to keep. [`simple_form`] makes the usual one-stage command
//! (Prosody's `util.adhoc.new_simple_form`/`new_initial_data_form`): the
//! form first, or straight to the result when the request already carries
//! the filled form.
//!
//! What it answers, as Prosody 13:
//! - disco#info feature `http://jabber.org/protocol/commands`;
//! - disco#items of node `http://jabber.org/protocol/commands`: the commands
//!   the requester may run, sorted by node, `jid` the host;
//! - disco#info of a command node (identity `automation/command-node`,
//!   features commands and `jabber:x:data`; `forbidden` "This item is not
//!   available to you" when not permitted) and of the list node;
//! - `<command/>` sets: `forbidden` plus a canceled `<command/>` with an
//!   error note when not permitted; otherwise the handler's reply with
//!   `sessionid` (the request's, or a new one), `status`, notes
//!   (`info`/`warn`/`error`), `actions` while executing, and the form.
//!   Unknown nodes are left to the router (`service-unavailable`).
//!
//! Permissions: `admin` is a JID in the global or the host's `admins`,
//! `global_admin` one in the global `admins` only, `local_user` an account
//! of this host, `any` anyone. (Prosody 13 checks `admin` through its roles
//! API, `mod_adhoc:<node>`; lilt has no roles yet, so custom role
//! assignments are not consulted.)

pub mod form;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::RngCore;
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server, Value};

use crate::ModuleError;
use crate::disco::{NS_DISCO_INFO, NS_DISCO_ITEMS};
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
    commands: Mutex<BTreeMap<String, Command>>,
    sessions: Mutex<HashMap<String, Value>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds a command to the host (replacing one with the same node); the
/// module loading it owns it and takes it away at unload.
pub fn register(host: &Host, command: Command) {
    let registry = host.extension::<Registry>();
    let node = command.node.clone();
    lock(&registry.commands).insert(node.clone(), command);
    xmpp_core::module::scope::on_unload(move || {
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

fn command(host: &Host, node: &str) -> Option<Command> {
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
        Permission::Admin => from.is_some_and(|f| crate::disco::is_admin(host, &f)),
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

fn new_session_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn cmdtag(node: &str, status: &str, sessionid: Option<&str>) -> Element {
    Element::new("command", NS_COMMANDS)
        .attr("node", node)
        .attr("status", status)
        .attr_opt("sessionid", sessionid)
}

fn note(type_: &str, text: &str) -> Element {
    Element::new("note", NS_COMMANDS)
        .attr("type", type_)
        .text(text)
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_COMMANDS);
    host.events.hook("host-disco-info-node", 0, disco_info_node);
    host.events
        .hook("host-disco-items-node", 0, disco_items_node);
    host.events.hook(
        "iq-set/host/http://jabber.org/protocol/commands:command",
        500,
        execute,
    );
    Ok(())
}

fn disco_info_node(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let Some(node) = event.field_str("node").map(str::to_string) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let (identity, features): (Element, &[&str]) = if let Some(cmd) = command(&host, &node) {
        if !permitted(&host, cmd.permission, stanza.from()) {
            event.reply(
                StanzaError::forbidden()
                    .with_text("This item is not available to you")
                    .reply_to(&stanza),
            );
            return true;
        }
        (
            Element::new("identity", NS_DISCO_INFO)
                .attr("name", cmd.name.as_str())
                .attr("category", "automation")
                .attr("type", "command-node"),
            &[NS_COMMANDS, form::NS_DATA],
        )
    } else if node == NS_COMMANDS {
        (
            Element::new("identity", NS_DISCO_INFO)
                .attr("name", "Ad-Hoc Commands")
                .attr("category", "automation")
                .attr("type", "command-list"),
            &[],
        )
    } else {
        return false;
    };
    let mut query = Element::new("query", NS_DISCO_INFO)
        .attr("node", node.as_str())
        .child(identity);
    for f in features {
        query.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", *f));
    }
    event.reply(stanza.reply().child(query));
    true
}

fn disco_items_node(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    if event.field_str("node") != Some(NS_COMMANDS) {
        return false;
    }
    let stanza = event.stanza().clone();
    let mut query = Element::new("query", NS_DISCO_ITEMS).attr("node", NS_COMMANDS);
    let commands: Vec<Command> = lock(&host.extension::<Registry>().commands)
        .values()
        .cloned()
        .collect();
    for cmd in commands {
        if permitted(&host, cmd.permission, stanza.from()) {
            query.push_child(
                Element::new("item", NS_DISCO_ITEMS)
                    .attr("name", cmd.name.as_str())
                    .attr("node", cmd.node.as_str())
                    .attr("jid", host.name.as_str()),
            );
        }
    }
    event.reply(stanza.reply().child(query));
    true
}

fn execute(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(request) = stanza.first_child() else {
        return false;
    };
    let Some(cmd) = request.get_attr("node").and_then(|n| command(&host, n)) else {
        return false;
    };
    if !permitted(&host, cmd.permission, stanza.from()) {
        let text = "You don't have permission to execute this command";
        let reply = StanzaError::forbidden()
            .with_text(text)
            .reply_to(&stanza)
            .child(cmdtag(&cmd.node, "canceled", None).child(note("error", text)));
        event.reply(reply);
        return true;
    }
    let sessionid = request
        .get_attr("sessionid")
        .map(str::to_string)
        .unwrap_or_else(new_session_id);
    let registry = host.extension::<Registry>();
    let state = lock(&registry.sessions).get(&sessionid).cloned();
    let req = Request {
        server: &event.server,
        host: &host,
        from: stanza.from().unwrap_or_default(),
        to: stanza.to().unwrap_or_default(),
        action: request.get_attr("action").unwrap_or("execute"),
        form: request.get_child("x", form::NS_DATA),
        state,
    };
    let out = (cmd.handler)(&req);
    let status = match &out.status {
        Status::Executing => "executing",
        Status::Completed => "completed",
        Status::Canceled => "canceled",
        Status::Error(e) => {
            lock(&registry.sessions).remove(&sessionid);
            event.reply(e.reply_to(&stanza));
            return true;
        }
    };
    match (&out.status, out.state.clone()) {
        (Status::Executing, Some(s)) => {
            lock(&registry.sessions).insert(sessionid.clone(), s);
        }
        _ => {
            lock(&registry.sessions).remove(&sessionid);
        }
    }
    let mut tag = cmdtag(&cmd.node, status, Some(&sessionid));
    for (type_, text) in [
        ("info", &out.info),
        ("warn", &out.warn),
        ("error", &out.error),
    ] {
        if let Some(t) = text {
            tag.push_child(note(type_, t));
        }
    }
    let actions = match (&out.status, out.actions) {
        (Status::Executing, None) => Some((vec!["complete".to_string()], None)),
        (_, a) => a,
    };
    if let Some((list, default)) = actions {
        let mut el = Element::new("actions", NS_COMMANDS).attr_opt("execute", default);
        for a in list {
            if matches!(a.as_str(), "prev" | "next" | "complete") {
                el.push_child(Element::new(a, NS_COMMANDS));
            } else {
                tracing::error!(host = %host.name, node = %cmd.node, "command {:?} provided an invalid action {a:?}", cmd.name);
            }
        }
        tag.push_child(el);
    }
    if let Some(f) = out.form {
        tag.push_child(f);
    }
    for o in out.other {
        tag.push_child(o);
    }
    event.reply(stanza.reply().child(tag));
    true
}
