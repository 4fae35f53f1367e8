//! The account commands of mod_admin_adhoc: add a user, change a user's
//! password, delete users, get a user's roster and statistics.

use std::sync::Arc;

use xmpp_core::adhoc::{Field, Handler, Reply, Request};
use xmpp_core::error::{StreamError, StreamErrorCondition};
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server};

use super::{NS_ADMIN, failed, form_type, layout, list, result_form, simple, text, with_form};
use crate::roster::manager::{load_roster, lock};

const NS_ROSTER: &str = "jabber:iq:roster";

/// The account's node and domain, from a submitted JID.
fn split(jid: &str) -> (Option<String>, String) {
    match Jid::parse(jid) {
        Ok(j) => (j.node().map(str::to_string), j.domain().to_string()),
        Err(_) => (None, String::new()),
    }
}

fn exists(host: &Host, user: Option<&str>) -> bool {
    user.is_some_and(|u| host.user_exists(u))
}

/// The sessions of `user@host` (its bound resources).
pub fn user_sessions(server: &Server, host: &str, user: &str) -> Vec<Arc<xmpp_core::Session>> {
    match Jid::parse(&format!("{user}@{host}")) {
        Ok(bare) => server.sessions.resources(&bare),
        Err(_) => Vec::new(),
    }
}

/// Closes every session of `user` with `condition` (Prosody's mod_c2s on
/// `user-deleted` and `user-password-changed`).
fn close_sessions(
    server: &Server,
    host: &str,
    user: &str,
    condition: StreamErrorCondition,
    why: &str,
) {
    for s in user_sessions(server, host, user) {
        s.close(Some(StreamError::with_text(condition, why)));
    }
}

fn fire(server: &Arc<Server>, name: &str, user: &str, host: &str) {
    let mut ev = Event::new(server, name)
        .with_field("username", user)
        .with_field("host", host);
    server.fire_global(name, &mut ev);
}

fn bare_from(req: &Request<'_>) -> String {
    Jid::parse(req.from)
        .map(|j| j.to_bare().to_string())
        .unwrap_or_else(|_| req.from.to_string())
}

pub fn add_user() -> Handler {
    let form = layout(
        Some("Adding a User"),
        Some("Fill out this form to add a user."),
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjid", "jid-single")
                .required()
                .label("The Jabber ID for the account to be added"),
            Field::new("password", "text-private").label("The password for this account"),
            Field::new("password-verify", "text-private").label("Retype password"),
        ],
    );
    simple(form, |req, fields| {
        let jid = text(fields, "accountjid").unwrap_or_default();
        let (user, domain) = split(jid);
        if domain != req.host.name {
            return failed(format!(
                "Trying to add a user on {domain} but command was sent to {}",
                req.host.name
            ));
        }
        let password = text(fields, "password");
        let (Some(user), true) = (user, password == text(fields, "password-verify")) else {
            tracing::debug!(
                "Invalid data, password mismatch or empty username while creating account for {jid}"
            );
            return failed("Invalid data.\nPassword mismatch, or empty username");
        };
        if req.host.user_exists(&user) {
            return failed("Account already exists");
        }
        let created = auth::provider_for_host(req.host)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                match password {
                    Some(pw) => p.add_user(&user, pw).map(|_| ()),
                    None => p.create_user(&user, None),
                }
                .map_err(|e| e.to_string())
            });
        match created {
            Ok(()) => {
                tracing::info!(
                    "Created new account {user}@{} by {}",
                    req.host.name,
                    bare_from(req)
                );
                Reply::completed().info("Account successfully created")
            }
            Err(e) => {
                tracing::debug!("creating {user}@{} failed: {e}", req.host.name);
                failed("Failed to write data to disk")
            }
        }
    })
}

pub fn change_password() -> Handler {
    let form = layout(
        Some("Changing a User Password"),
        Some("Fill out this form to change a user's password."),
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjid", "jid-single")
                .required()
                .label("The Jabber ID for this account"),
            Field::new("password", "text-private")
                .required()
                .label("The password for this account"),
        ],
    );
    simple(form, |req, fields| {
        let (user, domain) = split(text(fields, "accountjid").unwrap_or_default());
        if domain != req.host.name {
            return failed(format!(
                "Trying to change the password of a user on {domain} but command was sent to {}",
                req.host.name
            ));
        }
        let password = text(fields, "password").unwrap_or_default();
        let changed = match &user {
            Some(u) if req.host.user_exists(u) => {
                auth::provider_for_host(req.host).is_ok_and(|p| p.set_password(u, password).is_ok())
            }
            _ => false,
        };
        let Some(user) = user.filter(|_| changed) else {
            return failed("User does not exist");
        };
        tracing::info!(
            "Password of account {user}@{} changed by {}",
            req.host.name,
            bare_from(req)
        );
        fire(req.server, "user-password-changed", &user, &req.host.name);
        close_sessions(
            req.server,
            &req.host.name,
            &user,
            StreamErrorCondition::Reset,
            "Password changed",
        );
        Reply::completed().info("Password successfully changed")
    })
}

pub fn delete_user() -> Handler {
    let form = layout(
        Some("Deleting a User"),
        Some("Fill out this form to delete a user."),
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjids", "jid-multi")
                .required()
                .label("The Jabber ID(s) to delete"),
        ],
    );
    simple(form, |req, fields| {
        let mut done = Vec::new();
        let mut not_done = Vec::new();
        for jid in list(fields, "accountjids") {
            let (user, domain) = split(jid);
            let deleted = match &user {
                Some(u) if domain == req.host.name && req.host.user_exists(u) => {
                    auth::provider_for_host(req.host).is_ok_and(|p| p.delete_user(u).is_ok())
                }
                _ => false,
            };
            match user.filter(|_| deleted) {
                Some(u) => {
                    tracing::info!("User {jid} has been deleted by {}", bare_from(req));
                    fire(req.server, "user-deleted", &u, &req.host.name);
                    close_sessions(
                        req.server,
                        &req.host.name,
                        &u,
                        StreamErrorCondition::NotAuthorized,
                        "Account deleted",
                    );
                    done.push(jid.clone());
                }
                None => {
                    tracing::debug!("Tried to delete non-existent user {jid}");
                    not_done.push(jid.clone());
                }
            }
        }
        Reply::completed().info(super::done_and_failed(
            "The following accounts were successfully deleted:",
            &done,
            "The following accounts could not be deleted:",
            &not_done,
        ))
    })
}

/// The user named in `accountjid` if it is an account of this host, or
/// the error reply (`what`: "roster", "stats").
fn local_account(req: &Request<'_>, jid: &str, what: &str) -> Result<String, Box<Reply>> {
    let (user, domain) = split(jid);
    if domain != req.host.name {
        return Err(Box::new(failed(format!(
            "Tried to get {what} for a user on {domain} but command was sent to {}",
            req.host.name
        ))));
    }
    match user {
        Some(u) if exists(req.host, Some(&u)) => Ok(u),
        _ => Err(Box::new(failed("User does not exist"))),
    }
}

pub fn get_user_roster() -> Handler {
    let form = layout(
        None,
        None,
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjid", "jid-single")
                .required()
                .label("The Jabber ID for which to retrieve the roster"),
        ],
    );
    let result = layout(
        None,
        None,
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjid", "jid-single").label("This is the roster for"),
            Field::new("roster", "text-multi").label("Roster XML"),
        ],
    );
    simple(form, move |req, fields| {
        let jid = text(fields, "accountjid").unwrap_or_default();
        let user = match local_account(req, jid, "roster") {
            Ok(u) => u,
            Err(reply) => return *reply,
        };
        let roster = load_roster(req.server, req.host, &user);
        let mut query = Element::new("query", NS_ROSTER);
        for (contact, item) in &lock(&roster).items {
            let mut e = Element::new("item", NS_ROSTER)
                .attr("jid", contact.as_str())
                .attr("subscription", item.subscription.as_str())
                .attr_opt("ask", item.ask.clone())
                .attr_opt("name", item.name.clone());
            for g in &item.groups {
                e.push_child(Element::new("group", NS_ROSTER).text(g.clone()));
            }
            query.push_child(e);
        }
        let query_text = query.to_string().replace("><", ">\n<");
        let mut x = result_form(
            &result,
            &[
                ("accountjid", format!("{user}@{}", req.host.name)),
                ("roster", query_text),
            ],
        );
        x.push_child(query);
        with_form(x)
    })
}

pub fn get_user_stats() -> Handler {
    let form = layout(
        Some("Get User Statistics"),
        Some("Fill out this form to gather user statistics."),
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjid", "jid-single")
                .required()
                .label("The Jabber ID for statistics"),
        ],
    );
    let result = layout(
        None,
        None,
        vec![
            form_type(NS_ADMIN),
            Field::new("ipaddresses", "text-multi").label("IP Addresses"),
            Field::new("rostersize", "text-single").label("Roster size"),
            Field::new("onlineresources", "text-multi").label("Online Resources"),
        ],
    );
    simple(form, move |req, fields| {
        let jid = text(fields, "accountjid").unwrap_or_default();
        let user = match local_account(req, jid, "stats") {
            Ok(u) => u,
            Err(reply) => return *reply,
        };
        let rostersize = lock(&load_roster(req.server, req.host, &user)).items.len();
        let mut ips = String::new();
        let mut resources = String::new();
        for s in user_sessions(req.server, &req.host.name, &user) {
            resources.push('\n');
            resources.push_str(
                &s.full_jid()
                    .and_then(|j| j.resource().map(str::to_string))
                    .unwrap_or_default(),
            );
            ips.push('\n');
            ips.push_str(&super::sessions::session_ip(&s).unwrap_or_default());
        }
        let x = result_form(
            &result,
            &[
                ("ipaddresses", ips),
                ("rostersize", rostersize.to_string()),
                ("onlineresources", resources),
            ],
        );
        with_form(x)
    })
}
