//! Ad-hoc commands a Lua module provides, served as lilt's own
//! (`xmpp_core::adhoc`): the host's `adhoc` module answers disco and the
//! commands protocol and checks the permission; executing the command runs
//! the module's Lua handler ([`LuaModule::adhoc_execute`]).

use std::sync::{Arc, RwLock, Weak};

use lua_compat::host::{AdhocCommand, AdhocReply, AdhocRequest, LuaModule};
use xmpp_core::Value;
use xmpp_core::adhoc::{Command, Permission, Registry, Reply, Request, Status, lock};
use xmpp_core::error::{ErrorType, StanzaError};

/// The RFC 6120 stanza error conditions, for a handler's `error.condition`.
const CONDITIONS: &[&str] = &[
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
];

fn permission(word: &str) -> Permission {
    match word {
        "any" => Permission::Any,
        "local_user" => Permission::LocalUser,
        "global_admin" => Permission::GlobalAdmin,
        _ => Permission::Admin,
    }
}

fn error_type(word: &str) -> ErrorType {
    match word {
        "auth" => ErrorType::Auth,
        "modify" => ErrorType::Modify,
        "wait" => ErrorType::Wait,
        "continue" => ErrorType::Continue,
        _ => ErrorType::Cancel,
    }
}

fn reply(out: AdhocReply) -> Reply {
    if let Some(e) = out.error {
        let condition = CONDITIONS
            .iter()
            .find(|c| **c == e.condition)
            .copied()
            .unwrap_or("undefined-condition");
        let mut err = StanzaError::new(error_type(&e.kind), condition);
        if let Some(t) = e.text {
            err = err.with_text(t);
        }
        return Reply::new(Status::Error(err));
    }
    let status = match out.status.as_str() {
        "completed" => Status::Completed,
        "canceled" => Status::Canceled,
        _ => Status::Executing,
    };
    let mut r = Reply::new(status);
    r.info = out.info;
    r.warn = out.warn;
    r.error = out.error_note;
    r.actions = out.actions;
    r.form = out.form;
    r.other = out.other;
    r.state = out.state.map(Value::str);
    r
}

/// Serves `command` on `host`, its handler in the module `module` will hold.
pub(super) fn add(
    host: &xmpp_core::Host,
    command: AdhocCommand,
    module: Arc<RwLock<Weak<LuaModule>>>,
) {
    let node = command.node.clone();
    let handler = move |req: &Request<'_>| -> Reply {
        let Some(m) = module.read().unwrap_or_else(|e| e.into_inner()).upgrade() else {
            return Reply::new(Status::Error(StanzaError::new(
                ErrorType::Cancel,
                "service-unavailable",
            )));
        };
        let request = AdhocRequest {
            from: req.from.to_string(),
            to: req.to.to_string(),
            action: req.action.to_string(),
            form: req.form.cloned(),
            state: req
                .state
                .as_ref()
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        match m.adhoc_execute(&node, &request) {
            Ok(Some(out)) => reply(out),
            Ok(None) => Reply::new(Status::Error(StanzaError::item_not_found())),
            Err(_) => Reply::new(Status::Error(StanzaError::new(
                ErrorType::Cancel,
                "internal-server-error",
            ))),
        }
    };
    let command = Command::new(
        &command.name,
        &command.node,
        permission(&command.permission),
        handler,
    );
    let registry = host.extension::<Registry>();
    lock(&registry.commands).insert(command.node.clone(), command);
}

/// Stops serving the command at `node` on `host`.
pub(super) fn remove(host: &xmpp_core::Host, node: &str) {
    lock(&host.extension::<Registry>().commands).remove(node);
}
