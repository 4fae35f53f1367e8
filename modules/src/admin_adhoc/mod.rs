//! `admin_adhoc`: Prosody 0.12's mod_admin_adhoc — the XEP-0133 service
//! administration commands (and Prosody's own `modules#…`, `config#reload`,
//! `s2s#list` and `hosts#…` nodes) as ad-hoc commands of the host, with
//! the same nodes, names, forms, notes and permissions (`admin`: global or
//! host admins; `global_admin`: global admins only).
//!
//! Split by concept: [`users`] (add, change password, delete, roster,
//! statistics), [`sessions`] (end sessions, online users, s2s list),
//! [`manage`] (list/load/reload/unload modules, on this host or all) and
//! [`service`] (config reload, shut down, activate/deactivate hosts).
//! Start with [`load`], which registers every command.

pub mod manage;
pub mod service;
pub mod sessions;
pub mod users;

use std::collections::BTreeMap;

use xmpp_core::adhoc::{
    Command, Field, FieldValue, Form, Handler, InitialData, Permission, Reply, Request,
    errors_text, simple_form,
};
use xmpp_core::module::ModuleContext;
use xmpp_core::stanza::Element;

use crate::ModuleError;

/// The `FORM_TYPE` of the XEP-0133 forms.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";
const NS_DATA: &str = "jabber:x:data";

/// Submitted values by field name.
pub type Fields = BTreeMap<String, FieldValue>;

pub fn load(ctx: &ModuleContext) -> Result<(), ModuleError> {
    ctx.depends("adhoc")?;
    use Permission::{Admin, GlobalAdmin};
    let commands: [(&str, &str, Handler, Permission); 19] = [
        (
            "Add User",
            "http://jabber.org/protocol/admin#add-user",
            users::add_user(),
            Admin,
        ),
        (
            "Change User Password",
            "http://jabber.org/protocol/admin#change-user-password",
            users::change_password(),
            Admin,
        ),
        (
            "Reload configuration",
            "http://prosody.im/protocol/config#reload",
            service::config_reload(),
            GlobalAdmin,
        ),
        (
            "Delete User",
            "http://jabber.org/protocol/admin#delete-user",
            users::delete_user(),
            Admin,
        ),
        (
            "End User Session",
            "http://jabber.org/protocol/admin#end-user-session",
            sessions::end_user_session(),
            Admin,
        ),
        (
            "Get User Roster",
            "http://jabber.org/protocol/admin#get-user-roster",
            users::get_user_roster(),
            Admin,
        ),
        (
            "Get User Statistics",
            "http://jabber.org/protocol/admin#user-stats",
            users::get_user_stats(),
            Admin,
        ),
        (
            "Get List of Online Users",
            "http://jabber.org/protocol/admin#get-online-users-list",
            sessions::get_online_users(),
            Admin,
        ),
        (
            "List S2S connections",
            "http://prosody.im/protocol/s2s#list",
            sessions::list_s2s(),
            Admin,
        ),
        (
            "List loaded modules",
            "http://prosody.im/protocol/modules#list",
            manage::list_modules(),
            Admin,
        ),
        (
            "Load module",
            "http://prosody.im/protocol/modules#load",
            manage::load_module(),
            Admin,
        ),
        (
            "Globally load module",
            "http://prosody.im/protocol/modules#global-load",
            manage::globally_load_module(),
            GlobalAdmin,
        ),
        (
            "Reload modules",
            "http://prosody.im/protocol/modules#reload",
            manage::reload_modules(),
            Admin,
        ),
        (
            "Globally reload module",
            "http://prosody.im/protocol/modules#global-reload",
            manage::globally_reload_module(),
            GlobalAdmin,
        ),
        (
            "Shut Down Service",
            "http://jabber.org/protocol/admin#shutdown",
            service::shut_down_service(ctx),
            GlobalAdmin,
        ),
        (
            "Unload modules",
            "http://prosody.im/protocol/modules#unload",
            manage::unload_modules(),
            Admin,
        ),
        (
            "Globally unload module",
            "http://prosody.im/protocol/modules#global-unload",
            manage::globally_unload_module(),
            GlobalAdmin,
        ),
        (
            "Activate host",
            "http://prosody.im/protocol/hosts#activate",
            service::activate_host(),
            GlobalAdmin,
        ),
        (
            "Deactivate host",
            "http://prosody.im/protocol/hosts#deactivate",
            service::deactivate_host(),
            GlobalAdmin,
        ),
    ];
    for (name, node, handler, permission) in commands {
        ctx.add_command(Command {
            name: name.to_string(),
            node: node.to_string(),
            permission,
            handler,
        })?;
    }
    Ok(())
}

/// A form layout: title, instructions and fields.
pub fn layout(title: Option<&str>, instructions: Option<&str>, fields: Vec<Field>) -> Form {
    Form {
        title: title.map(str::to_string),
        instructions: instructions.map(str::to_string),
        fields,
    }
}

/// The hidden `FORM_TYPE` field.
pub fn form_type(value: &str) -> Field {
    Field::new("FORM_TYPE", "hidden").value(value)
}

/// Prosody's `generate_error_message`: the form's problems as an error note.
pub fn error_message(errors: &[(String, String)]) -> Reply {
    Reply::completed().error_note(errors_text(errors))
}

/// A completed reply with an error note.
pub fn failed(text: impl Into<String>) -> Reply {
    Reply::completed().error_note(text)
}

/// Prosody's `adhoc_simple(layout, f)`: the form first, then `f` with the
/// submitted values (a form with problems gets their error note).
pub fn simple(
    layout: Form,
    f: impl Fn(&Request<'_>, &Fields) -> Reply + Send + Sync + 'static,
) -> Handler {
    handler(layout, None, f)
}

/// Prosody's `adhoc_initial(layout, initial, f)`: as [`simple`], the form
/// filled with `initial`'s values.
pub fn initial(
    layout: Form,
    initial: impl Fn(&Request<'_>) -> BTreeMap<String, Vec<String>> + Send + Sync + 'static,
    f: impl Fn(&Request<'_>, &Fields) -> Reply + Send + Sync + 'static,
) -> Handler {
    let initial: InitialData = Box::new(initial);
    handler(layout, Some(initial), f)
}

fn handler(
    layout: Form,
    initial: Option<InitialData>,
    f: impl Fn(&Request<'_>, &Fields) -> Reply + Send + Sync + 'static,
) -> Handler {
    std::sync::Arc::new(simple_form(layout, initial, move |req, fields, errors| {
        if !errors.is_empty() {
            return error_message(&errors);
        }
        f(req, &fields)
    }))
}

/// A text value of the submitted form.
pub fn text<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(FieldValue::as_text)
}

/// A list value of the submitted form.
pub fn list<'a>(fields: &'a Fields, name: &str) -> &'a [String] {
    fields.get(name).map(FieldValue::as_list).unwrap_or(&[])
}

/// A result form of `layout` (`layout:form(values, "result")`): a
/// `text-multi` value is split into its lines, empty ones dropped, as
/// Prosody's `util.dataforms` does.
pub fn result_form(layout: &Form, values: &[(&str, String)]) -> Element {
    let mut map = BTreeMap::new();
    for (name, value) in values {
        let multi = layout
            .fields
            .iter()
            .any(|f| f.name == *name && f.type_ == "text-multi");
        let v = if multi {
            value
                .split('\n')
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            vec![value.clone()]
        };
        map.insert(name.to_string(), v);
    }
    layout.form(&map, "result")
}

/// A completed reply carrying `form`.
pub fn with_form(form: Element) -> Reply {
    let mut reply = Reply::completed();
    reply.form = Some(form);
    reply
}

/// Replaces the options of field `var` of form `x` with `(label, value)`
/// pairs (the layout gives options whose label is their value).
pub fn set_options(x: &mut Element, var: &str, options: &[(&str, &str)]) {
    if let Some(field) = x
        .children_mut()
        .find(|c| c.is("field", NS_DATA) && c.get_attr("var") == Some(var))
    {
        field.remove_children(|c| c.name() == "option");
        let values: Vec<Element> = field.children().cloned().collect();
        field.remove_children(|_| true);
        for (label, value) in options {
            field.push_child(
                Element::new("option", NS_DATA)
                    .attr("label", *label)
                    .child(Element::new("value", NS_DATA).text(*value)),
            );
        }
        for v in values {
            field.push_child(v);
        }
    }
}

/// "The following …:\nA\nB\n" + "The following … could not …:\nC" as
/// Prosody joins the lists of done and failed items.
pub fn done_and_failed(
    done_head: &str,
    done: &[String],
    failed_head: &str,
    failed: &[String],
) -> String {
    let mut out = String::new();
    if !done.is_empty() {
        out.push_str(done_head);
        out.push('\n');
        out.push_str(&done.join("\n"));
        out.push('\n');
    }
    if !failed.is_empty() {
        out.push_str(failed_head);
        out.push('\n');
        out.push_str(&failed.join("\n"));
    }
    out
}

/// The `ok` list, then a newline when both are non-empty, then the `err`
/// list, each under its heading (Prosody's module command answers).
pub fn ok_and_err(ok_head: &str, ok: &[String], err_head: &str, err: &[String]) -> String {
    let mut out = String::new();
    if !ok.is_empty() {
        out.push_str(ok_head);
        out.push('\n');
        out.push_str(&ok.join("\n"));
    }
    if !ok.is_empty() && !err.is_empty() {
        out.push('\n');
    }
    if !err.is_empty() {
        out.push_str(err_head);
        out.push('\n');
        out.push_str(&err.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests;
