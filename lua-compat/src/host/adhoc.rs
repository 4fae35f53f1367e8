//! Ad-hoc commands (XEP-0050) a Lua module provides: Prosody's
//! `module:provides("adhoc", adhoc.new(name, node, handler, permission))`.
//!
//! The command's description goes to the host ([`LuaHost::add_adhoc_command`],
//! an [`AdhocCommand`]); the handler stays in the module's Lua state. When
//! someone executes the command, the host calls
//! [`super::LuaModule::adhoc_execute`] with an [`AdhocRequest`]: the Lua
//! side (`module.lua`'s `_adhoc_run`) calls `command:handler(data, state)`
//! as Prosody's `adhoc.lib.lua` does, keeps the handler's state for the
//! next step of a multi-step session (the host only carries a key to it),
//! and renders the answer (forms through their layouts) as an [`AdhocReply`].
//!
//! [`LuaHost::add_adhoc_command`]: super::LuaHost::add_adhoc_command

use mlua::{Function, Table as LuaTable, Value as LuaValue};
use xmpp_core::Element;

use super::LuaModule;
use super::bridge::stanza_value;
use super::convert::{is_stanza, lua_to_element};
use super::sandbox::ModuleError;

/// A command as the module described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdhocCommand {
    pub name: String,
    pub node: String,
    /// Prosody's permission word: `admin`, `global_admin`, `local_user`, `any`.
    pub permission: String,
}

/// One step of a command session, as the host received it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdhocRequest {
    pub from: String,
    pub to: String,
    /// `execute` unless the request says otherwise.
    pub action: String,
    /// The `<x xmlns='jabber:x:data'/>` of the request.
    pub form: Option<Element>,
    /// The key the previous step of this session returned in [`AdhocReply::state`].
    pub state: Option<String>,
}

/// A stanza error the handler asked for (`status = "error"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdhocError {
    /// `cancel`, `modify`, `auth`, `wait` (Prosody's default: `cancel`).
    pub kind: String,
    pub condition: String,
    pub text: Option<String>,
}

/// What the handler answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdhocReply {
    /// `executing`, `completed` or `canceled`; `error` when [`AdhocReply::error`] is set.
    pub status: String,
    pub info: Option<String>,
    pub warn: Option<String>,
    /// The error note (`error = { message = ... }` with a non-error status).
    pub error_note: Option<String>,
    pub error: Option<AdhocError>,
    /// Actions offered and the default one.
    pub actions: Option<(Vec<String>, Option<String>)>,
    /// The form (`form`) or result form (`result`), rendered.
    pub form: Option<Element>,
    /// Any other payload (`other`).
    pub other: Vec<Element>,
    /// A key to the handler's state, to give back with the next step.
    pub state: Option<String>,
}

fn text(t: &LuaTable, key: &str) -> mlua::Result<Option<String>> {
    Ok(match t.get::<LuaValue>(key)? {
        LuaValue::String(s) => Some(s.to_string_lossy()),
        LuaValue::Integer(i) => Some(i.to_string()),
        LuaValue::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn element(v: &LuaValue) -> mlua::Result<Option<Element>> {
    match v {
        LuaValue::Table(t) if is_stanza(v) => Ok(Some(lua_to_element(t, "")?)),
        _ => Ok(None),
    }
}

fn read_reply(t: &LuaTable) -> mlua::Result<AdhocReply> {
    let mut reply = AdhocReply {
        status: text(t, "status")?.unwrap_or_else(|| "executing".to_string()),
        info: text(t, "info")?,
        warn: text(t, "warn")?,
        error_note: text(t, "error_note")?,
        state: text(t, "state")?,
        ..AdhocReply::default()
    };
    if let Some(e) = t.get::<Option<LuaTable>>("error")? {
        reply.error = Some(AdhocError {
            kind: text(&e, "type")?.unwrap_or_else(|| "cancel".to_string()),
            condition: text(&e, "condition")?.unwrap_or_else(|| "undefined-condition".into()),
            text: text(&e, "text")?,
        });
    }
    if let Some(a) = t.get::<Option<LuaTable>>("actions")? {
        let list = a
            .sequence_values::<String>()
            .collect::<mlua::Result<Vec<_>>>()?;
        reply.actions = Some((list, text(&a, "default")?));
    }
    reply.form = element(&t.get("form")?)?;
    if let Some(o) = t.get::<Option<LuaTable>>("other")? {
        for v in o.sequence_values::<LuaValue>() {
            if let Some(e) = element(&v?)? {
                reply.other.push(e);
            }
        }
    }
    Ok(reply)
}

impl LuaModule {
    /// Runs one step of the command at `node` the module provides.
    /// `Ok(None)`: the module has no such command.
    pub fn adhoc_execute(
        &self,
        node: &str,
        request: &AdhocRequest,
    ) -> Result<Option<AdhocReply>, ModuleError> {
        self.guarded("error in ad-hoc command", || {
            let run: Function = self.object.get("_adhoc_run")?;
            let data = self.lua.create_table()?;
            data.set("from", request.from.as_str())?;
            data.set("to", request.to.as_str())?;
            let action = match request.action.as_str() {
                "" => "execute",
                a => a,
            };
            data.set("action", action)?;
            if let Some(f) = &request.form {
                data.set("form", stanza_value(&self.lua, f)?)?;
            }
            let out: Option<LuaTable> =
                run.call((&self.object, node, data, request.state.as_deref()))?;
            out.map(|t| read_reply(&t)).transpose()
        })
    }
}
