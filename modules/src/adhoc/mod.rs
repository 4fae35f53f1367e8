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

use std::sync::Arc;

use rand::RngCore;
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server};

use crate::ModuleError;
use crate::disco::{NS_DISCO_INFO, NS_DISCO_ITEMS};

pub use xmpp_core::adhoc::{
    Command, Field, FieldValue, Form, Handler, InitialData, NS_COMMANDS, Permission, Registry,
    Reply, Request, Status, command, errors_text, form, lock, nodes, permitted, register,
    simple_form, unregister,
};

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
