//! `roster`: Prosody's mod_roster — RFC 6121 §2 roster get/set/remove with
//! roster versioning (XEP-0237 as Prosody does it: a version number, and an
//! empty result when the client's is current), roster pushes, and the
//! `roster-item-removed` event that mod_presence turns into unsubscriptions.
//!
//! The roster data and the subscription state machine (Prosody's
//! `core/rostermanager.lua`) are in [`manager`]; the stored format in [`item`].

pub mod item;
pub mod manager;
pub mod subscription;

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::hooks::Event;
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Jid, Server, Session};

use crate::ModuleError;
use item::{RosterItem, Subscription};

pub const NS_ROSTER: &str = "jabber:iq:roster";
pub const NS_ROSTERVER_FEATURE: &str = "urn:xmpp:features:rosterver";

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_ROSTER);

    host.events.hook("stream-features", 0, |event| {
        if event.origin.as_ref().and_then(|o| o.username()).is_some()
            && let Some(features) = event.stanza.as_mut()
        {
            features.push_child(Element::new("ver", NS_ROSTERVER_FEATURE));
        }
        false
    });

    host.events
        .hook("iq/self/jabber:iq:roster:query", 0, |event| {
            let Some(origin) = event.origin.clone() else {
                return false;
            };
            let Some(host) = event.host.clone() else {
                return false;
            };
            let server = event.server.clone();
            let stanza = event.stanza().clone();
            if stanza.type_() == Some("get") {
                roster_get(&server, &host, &origin, &stanza);
            } else {
                roster_set(&server, &host, &origin, &stanza);
            }
            true
        });

    let host_name = host.name.clone();
    server.events.hook("user-deleted", 300, move |event| {
        if event.field_str("host") != Some(host_name.as_str()) {
            return false;
        }
        let Some(user) = event.field_str("username").map(str::to_string) else {
            return false;
        };
        let server = event.server.clone();
        if let Some(h) = server.host(&host_name) {
            on_user_deleted(&server, &h, &user, event.origin.clone());
        }
        false
    });
    Ok(())
}

fn roster_get(server: &Arc<Server>, host: &Arc<Host>, origin: &Arc<Session>, stanza: &Element) {
    let Some(user) = origin.username() else {
        return;
    };
    let mut reply = stanza.reply();
    let client_ver = stanza
        .first_child()
        .and_then(|q| q.get_attr("ver"))
        .and_then(|v| v.trim().parse::<f64>().ok());
    let full = manager::with_roster(server, host, &user, |r| {
        let server_ver = r.version_number();
        if client_ver.is_some() && server_ver.is_some() && client_ver == server_ver {
            return None;
        }
        let mut query = Element::new("query", NS_ROSTER);
        for (jid, item) in &r.items {
            query.push_child(item.to_element(jid));
        }
        if server_ver.is_some() {
            query.set_attr("ver", Some(r.version_string()));
        }
        Some(query)
    });
    if let Some(query) = full {
        reply.push_child(query);
    }
    origin.send(reply);
    origin.state().interested = true;
}

fn error(
    stanza: &Element,
    type_: ErrorType,
    condition: &'static str,
    text: Option<&str>,
) -> Element {
    let mut e = StanzaError::new(type_, condition);
    if let Some(t) = text {
        e = e.with_text(t);
    }
    e.reply_to(stanza)
}

fn roster_set(server: &Arc<Server>, host: &Arc<Host>, origin: &Arc<Session>, stanza: &Element) {
    let Some(user) = origin.username() else {
        return;
    };
    let query = stanza.first_child();
    let only_item = query
        .filter(|q| q.children().count() == 1)
        .and_then(|q| q.first_child());
    let Some(item) = only_item.filter(|i| i.is("item", NS_ROSTER) && i.get_attr("jid").is_some())
    else {
        origin.send(error(stanza, ErrorType::Modify, "bad-request", None));
        return;
    };
    let jid = match Jid::parse(item.get_attr("jid").unwrap_or_default()) {
        Ok(j) if j.is_bare() => j.to_string(),
        _ => {
            origin.send(error(stanza, ErrorType::Modify, "bad-request", None));
            return;
        }
    };
    let self_bare = Jid::from_parts(Some(&user), &host.name, None)
        .map(|j| j.to_string())
        .unwrap_or_default();
    if jid == self_bare {
        origin.send(error(stanza, ErrorType::Cancel, "not-allowed", None));
        return;
    }
    if item.get_attr("subscription") == Some("remove") {
        let existing = manager::with_roster(server, host, &user, |r| r.items.get(&jid).cloned());
        let Some(existing) = existing else {
            origin.send(error(stanza, ErrorType::Modify, "item-not-found", None));
            return;
        };
        let mut ev = Event::new(server, "roster-item-removed")
            .with_origin(origin)
            .with_field("username", user.as_str())
            .with_field("jid", jid.as_str())
            .with_field("item", existing.to_value());
        server.fire_on_host(host, "roster-item-removed", &mut ev);
        match manager::set_item(server, host, &user, &jid, None) {
            Ok(()) => {
                origin.send(stanza.reply());
                manager::roster_push(server, host, &user, &jid);
            }
            Err(e) => {
                tracing::warn!(host = %host.name, "{e}");
                origin.send(error(
                    stanza,
                    ErrorType::Wait,
                    "internal-server-error",
                    Some("Unable to save roster"),
                ));
            }
        }
        return;
    }
    let mut new_item = RosterItem::new(Subscription::None);
    new_item.name = item
        .get_attr("name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if let Some((sub, ask)) = manager::with_roster(server, host, &user, |r| {
        r.items.get(&jid).map(|i| (i.subscription, i.ask.clone()))
    }) {
        new_item.subscription = sub;
        new_item.ask = ask;
    }
    for g in item.children().filter(|g| g.is("group", NS_ROSTER)) {
        new_item.groups.insert(g.text_content());
    }
    match manager::set_item(server, host, &user, &jid, Some(new_item)) {
        Ok(()) => {
            origin.send(stanza.reply());
            manager::roster_push(server, host, &user, &jid);
        }
        Err(e) => {
            tracing::warn!(host = %host.name, "{e}");
            origin.send(error(
                stanza,
                ErrorType::Wait,
                "internal-server-error",
                Some("Unable to save roster"),
            ));
        }
    }
}

/// An account went: every contact and pending requester gets
/// `roster-item-removed` (mod_presence sends the unsubscriptions).
fn on_user_deleted(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    origin: Option<Arc<Session>>,
) {
    let items = manager::contacts(server, host, user, |_| true);
    let pending = manager::pending_in(server, host, user);
    let origin = origin.unwrap_or_else(|| host.local_session.clone());
    for (jid, item) in items {
        let mut ev = Event::new(server, "roster-item-removed")
            .with_origin(&origin)
            .with_field("username", user)
            .with_field("jid", jid.as_str())
            .with_field("item", item.to_value());
        server.fire_on_host(host, "roster-item-removed", &mut ev);
    }
    for (jid, _) in pending {
        let mut ev = Event::new(server, "roster-item-removed")
            .with_origin(&origin)
            .with_field("username", user)
            .with_field("jid", jid.as_str());
        server.fire_on_host(host, "roster-item-removed", &mut ev);
    }
    manager::forget(host, user);
}

/// The `item` field of a `roster-item-removed` event, read back.
pub fn removed_item(event: &Event) -> Option<RosterItem> {
    event.fields.get("item").and_then(RosterItem::from_value)
}
