//! `invites_register`: Prosody 0.12's mod_invites_register.
//!
//! - Stream features `<register xmlns='urn:xmpp:invite'/>` and
//!   `<register xmlns='urn:xmpp:ibr-token:0'/>` for unauthenticated client
//!   streams (encrypted ones while encryption is required).
//! - `<iq type='set'><preauth xmlns='urn:xmpp:pars:0' token='...'/></iq>`
//!   before registering: the token is checked (`forbidden` "The invite
//!   token is invalid or expired") and remembered on the session.
//! - `registration_invite_only` (default true): in-band registration is
//!   offered (as Prosody's `module:depends("register_ibr")`, whatever
//!   `allow_registration` says) and refused without a valid token. An
//!   account invite naming a user registers that user only (as Prosody
//!   13); a reset invite sets the password of the account it names.
//! - After a registration with a token: the token is spent; for a contact
//!   invite the inviter and the new account become mutual contacts; the
//!   invite's `roles` go into the `roles` store.
//! - An inbound `<presence type='subscribe'>` to a local user carrying
//!   `<preauth xmlns='urn:xmpp:pars:0' token='...'/>` of one of that user's
//!   contact invites is approved at once, and the user asks for the
//!   contact's presence in return (the aim is a mutual subscription).

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::module::ModuleContext;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::value::Value;
use xmpp_core::{Event, Host, Jid, Server, SessionKind};

use super::{Invites, ValidInvite, loaded, now};
use crate::ModuleError;
use crate::roster::manager::roster_push;
use crate::roster::subscription as sub;

pub const NS_PARS: &str = "urn:xmpp:pars:0";
pub const NS_INVITE: &str = "urn:xmpp:invite";
pub const NS_IBR_TOKEN: &str = "urn:xmpp:ibr-token:0";
/// The session attribute holding the token a `<preauth/>` validated.
pub const SESSION_TOKEN: &str = "validated_invite";

pub fn load(ctx: &ModuleContext) -> Result<(), ModuleError> {
    ctx.depends("invites")?;
    let host = ctx.host().clone();
    let require_encryption = host.option_bool(
        "c2s_require_encryption",
        host.option_bool("require_encryption", true)?,
    )?;
    let invite_only = host.option_bool("registration_invite_only", true)?;
    if invite_only {
        crate::register::load_ibr(ctx.server(), &host)?;
    }
    ctx.hook("stream-features", 0, move |e| {
        let Some(origin) = e.origin.clone() else {
            return false;
        };
        if origin.kind != SessionKind::C2s
            || origin.username().is_some()
            || (require_encryption && !origin.state().secure)
        {
            return false;
        }
        if let Some(f) = e.stanza.as_mut() {
            f.push_child(Element::new("register", NS_INVITE));
            f.push_child(Element::new("register", NS_IBR_TOKEN));
        }
        false
    });
    ctx.hook("presence/bare", 1, |e| {
        preauthorized_subscription(e);
        false
    });
    ctx.hook(&format!("stanza/iq/{NS_PARS}:preauth"), 0, preauth_iq);
    ctx.hook("user-registering", 0, move |e| {
        user_registering(e, invite_only);
        false
    });
    ctx.hook("user-registered", 0, |e| {
        user_registered(e);
        false
    });
    ctx.hook("user-password-reset", 0, |e| {
        if let Some((invites, invite)) = session_invite(e) {
            spend(&invites, &invite);
        }
        false
    });
    Ok(())
}

fn invites_of(event: &Event) -> Option<Invites> {
    event.host.as_deref().and_then(loaded)
}

fn spend(invites: &Invites, invite: &ValidInvite) {
    if let Err(e) = invite.spend(invites) {
        tracing::warn!("could not remove used invite {}: {e}", invite.token);
    }
}

/// The invite the event's session validated, if it is still good.
fn session_invite(event: &Event) -> Option<(Invites, ValidInvite)> {
    let token = event
        .origin
        .as_ref()?
        .state()
        .attributes
        .get(SESSION_TOKEN)
        .and_then(Value::as_str)
        .map(str::to_string)?;
    let invites = invites_of(event)?;
    let invite = invites
        .get(Some(&token), None, now(&event.server))
        .inspect_err(|e| tracing::debug!("validated invite no longer good: {e}"))
        .ok()?;
    Some((invites, invite))
}

/// `<iq type='set'><preauth xmlns='urn:xmpp:pars:0' token='...'/></iq>`.
fn preauth_iq(event: &mut Event) -> bool {
    let stanza = event.stanza().clone();
    let Some(origin) = event.origin.clone() else {
        return false;
    };
    let token = stanza.first_child().and_then(|p| p.get_attr("token"));
    let valid = invites_of(event).and_then(|i| i.get(token, None, now(&event.server)).ok());
    let Some(invite) = valid else {
        event.reply(
            StanzaError::new(ErrorType::Cancel, "forbidden")
                .with_text("The invite token is invalid or expired")
                .reply_to(&stanza),
        );
        return true;
    };
    origin
        .state()
        .attributes
        .insert(SESSION_TOKEN, Value::str(invite.token));
    event.reply(stanza.reply());
    true
}

/// Refuses a registration without an invite when invite-only; passes on a
/// reset invite's account.
fn user_registering(event: &mut Event, invite_only: bool) {
    let Some((_, invite)) = session_invite(event) else {
        if invite_only {
            event.fields.insert("allowed".into(), Value::Bool(false));
            event.fields.insert(
                "reason".into(),
                Value::str("Registration on this server is through invitation only"),
            );
        }
        return;
    };
    let username = event.field_str("username").unwrap_or_default().to_string();
    if invite.kind == "register"
        && let Some(node) = invite_node(&invite)
        && node != username
    {
        event.fields.insert("allowed".into(), Value::Bool(false));
        event.fields.insert("error_type".into(), Value::str("auth"));
        event
            .fields
            .insert("error_condition".into(), Value::str("forbidden"));
        event.fields.insert(
            "reason".into(),
            Value::str("The invite is for another username"),
        );
        return;
    }
    if let Some(reset) = invite.data("allow_reset").and_then(Value::as_str) {
        event.fields.insert("allow_reset".into(), Value::str(reset));
    }
}

/// The user an account invite is for (`user@host`), if any.
fn invite_node(invite: &ValidInvite) -> Option<String> {
    // The URI is `xmpp:JID?...`; the JID is what the invite was made for.
    let jid = invite.uri.strip_prefix("xmpp:")?.split('?').next()?;
    Jid::parse(jid).ok()?.node().map(str::to_string)
}

/// Spends the invite; a contact invite makes inviter and new account
/// mutual contacts; roles are granted.
fn user_registered(event: &mut Event) {
    let Some((invites, invite)) = session_invite(event) else {
        return;
    };
    let (Some(host), Some(contact)) = (
        event.host.clone(),
        event.field_str("username").map(str::to_string),
    ) else {
        return;
    };
    let server = event.server.clone();
    spend(&invites, &invite);
    if let Some(origin) = &event.origin {
        origin.state().attributes.map.remove(SESSION_TOKEN);
    }
    if let Some(inviter) = &invite.inviter {
        tracing::debug!("Creating mutual subscription between {inviter} and {contact}");
        subscribe(&server, &host, inviter, &contact);
        subscribe(&server, &host, &contact, inviter);
        roster_push(&server, &host, inviter, &format!("{contact}@{}", host.name));
    }
    if let Some(roles) = invite.data("roles").filter(|r| r.as_table().is_some()) {
        tracing::debug!("Importing roles from invite");
        if let Err(e) = host
            .open_keyval("roles")
            .and_then(|kv| kv.set(Some(&contact), Some(roles.clone())))
        {
            tracing::warn!("could not store the roles of {contact}: {e}");
        }
    }
}

/// A one-way subscription of `user` to `contact`, both local.
fn subscribe(server: &Arc<Server>, host: &Arc<Host>, user: &str, contact: &str) {
    let user_jid = format!("{user}@{}", host.name);
    let contact_jid = format!("{contact}@{}", host.name);
    sub::set_contact_pending_out(server, host, user, &contact_jid);
    sub::set_contact_pending_in(server, host, contact, &user_jid, None);
    sub::subscribed(server, host, contact, &user_jid);
    sub::process_inbound_subscription_approval(server, host, user, &contact_jid);
}

/// XEP-0379: an inbound subscription request with a contact invite's token.
fn preauthorized_subscription(event: &mut Event) {
    let stanza = event.stanza().clone();
    if stanza.type_() != Some("subscribe") {
        return;
    }
    let Some(token) = stanza
        .get_child("preauth", NS_PARS)
        .and_then(|p| p.get_attr("token"))
    else {
        return;
    };
    let (Some(host), Some(to), Some(from)) = (
        event.host.clone(),
        stanza.to().and_then(|t| Jid::parse(t).ok()),
        stanza.from().and_then(|f| Jid::parse(f).ok()),
    ) else {
        return;
    };
    let Some(username) = to.node().map(str::to_string) else {
        return;
    };
    let Some(invites) = invites_of(event) else {
        return;
    };
    let server = event.server.clone();
    let invite = match invites.get(Some(token), Some(&username), now(&server)) {
        Ok(i) => i,
        Err(e) => {
            tracing::debug!("Got invalid token, error: {e}");
            return;
        }
    };
    let contact = from.to_bare().to_string();
    tracing::debug!("Approving inbound subscription to {username} from {contact}");
    if !sub::set_contact_pending_in(&server, &host, &username, &contact, Some(&stanza))
        || !sub::subscribed(&server, &host, &username, &contact)
    {
        return;
    }
    spend(&invites, &invite);
    roster_push(&server, &host, &username, &contact);
    if sub::is_user_subscribed(&server, &host, &username, &contact)
        || sub::is_contact_pending_out(&server, &host, &username, &contact)
    {
        return;
    }
    tracing::debug!("Sending automatic subscription request to {contact} from {username}");
    if sub::set_contact_pending_out(&server, &host, &username, &contact) {
        roster_push(&server, &host, &username, &contact);
        let request = Element::new("presence", NS_CLIENT)
            .attr("type", "subscribe")
            .attr("from", format!("{username}@{}", host.name))
            .attr("to", contact.as_str());
        server.post_stanza(&host.local_session, request, false);
    } else {
        tracing::warn!("Failed to set contact pending out for {username}");
    }
}
