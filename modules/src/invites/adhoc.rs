//! `invites_adhoc`: Prosody 0.12's mod_invites_adhoc — two XEP-0050
//! commands answering with a result form (`landing-url` when there is a
//! landing page, `uri`, `expire`):
//!
//! - "Create new contact invite" (`urn:xmpp:invite#invite`), for local
//!   users (admins only with `allow_contact_invites = false`): a contact
//!   invite of the caller, which also allows registering an account when
//!   the caller may invite new users (admins always; others with
//!   `allow_user_invites`, default false).
//! - "Create new account invite" (`urn:xmpp:invite#create-account`),
//!   admins only: an invite to register any account.
//!
//! The invite's `additional_data.source` is the caller's JID.

use std::collections::BTreeMap;

use xmpp_core::adhoc::{Command, Field, Form, Permission, Reply, Request, is_admin};
use xmpp_core::module::ModuleContext;
use xmpp_core::value::{Table, Value};
use xmpp_core::{Host, Jid};

use super::{Invite, loaded, now};
use crate::ModuleError;

pub const NODE_INVITE: &str = "urn:xmpp:invite#invite";
pub const NODE_CREATE_ACCOUNT: &str = "urn:xmpp:invite#create-account";

pub fn load(ctx: &ModuleContext) -> Result<(), ModuleError> {
    ctx.depends("invites")?;
    ctx.depends("adhoc")?;
    let host = ctx.host();
    let allow_user_invites = host.option_bool("allow_user_invites", false)?;
    let allow_contact_invites = host.option_bool("allow_contact_invites", true)?;
    ctx.add_command(Command::new(
        "Create new contact invite",
        NODE_INVITE,
        if allow_contact_invites {
            Permission::LocalUser
        } else {
            Permission::Admin
        },
        move |req| contact_invite(req, allow_user_invites),
    ))?;
    ctx.add_command(Command::new(
        "Create new account invite",
        NODE_CREATE_ACCOUNT,
        Permission::Admin,
        account_invite,
    ))?;
    Ok(())
}

/// May `from` create invites that allow registering on `host`?
fn may_invite_new_users(host: &Host, from: &Jid, allow_user_invites: bool) -> bool {
    is_admin(host, from) || allow_user_invites
}

fn source(req: &Request<'_>) -> Value {
    let mut t = Table::new();
    t.insert("source", Value::str(req.from));
    Value::Table(t)
}

fn failed(text: &str) -> Reply {
    Reply::completed().error_note(text)
}

fn contact_invite(req: &Request<'_>, allow_user_invites: bool) -> Reply {
    let Ok(from) = Jid::parse(req.from) else {
        return failed("Invalid sender");
    };
    let (Some(username), true) = (from.node(), from.domain() == req.host.name) else {
        return failed(&format!(
            "This command is only available to users of {}",
            req.host.name
        ));
    };
    let Some(invites) = loaded(req.host) else {
        return failed("mod_invites is not loaded on this host");
    };
    let allow_registration = may_invite_new_users(req.host, &from, allow_user_invites);
    match invites.create_contact(
        username,
        allow_registration,
        Some(source(req)),
        None,
        now(req.server),
    ) {
        Ok(invite) => result(&invite),
        Err(e) => failed(&format!("Could not create the invite: {e}")),
    }
}

fn account_invite(req: &Request<'_>) -> Reply {
    let Some(invites) = loaded(req.host) else {
        return failed("mod_invites is not loaded on this host");
    };
    match invites.create_account(None, Some(source(req)), None, now(req.server)) {
        Ok(invite) => result(&invite),
        Err(e) => failed(&format!("Could not create the invite: {e}")),
    }
}

/// The result form of Prosody's `invite_result_form`.
fn result(invite: &Invite) -> Reply {
    let layout = Form {
        title: Some("Your invite has been created".into()),
        instructions: None,
        fields: vec![
            Field::new("landing-url", "text-single").label("Invite web page"),
            Field::new("uri", "text-single").label("Invite URI"),
            Field::new("expire", "text-single").label("Invite valid until"),
        ],
    };
    let mut values = BTreeMap::new();
    values.insert("uri".to_string(), vec![invite.uri.clone()]);
    values.insert(
        "expire".to_string(),
        vec![crate::time::datetime(invite.expires as f64)],
    );
    let mut reply = Reply::completed();
    reply.form = Some(layout.form(&values, "result"));
    reply
}
