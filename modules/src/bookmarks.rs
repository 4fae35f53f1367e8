//! `bookmarks`: Prosody 0.12's mod_bookmarks — XEP-0402 PEP Native
//! Bookmarks (`urn:xmpp:bookmarks:1`, on [`crate::pep`]), with XEP-0048's
//! two older stores kept working both ways.
//!
//! - Bookmarks live in the account's PEP node `urn:xmpp:bookmarks:1`, one
//!   item per room (item id = room JID, payload `<conference/>`), node
//!   options `whitelist`, `max_items = "max"`, `send_last_published_item =
//!   never`.
//! - XEP-0048 through private XML storage (`jabber:iq:private`,
//!   `<storage xmlns='storage:bookmarks'/>`) and through the legacy PEP node
//!   `storage:bookmarks`: a get builds the old `<storage/>` from the PEP
//!   items; a set publishes each `<conference/>` to PEP (unchanged ones are
//!   skipped) and retracts the rooms that are gone (an empty `<storage/>`
//!   purges the node).
//! - `upgrade_legacy_bookmarks` (default true): at resource binding,
//!   bookmarks left in private storage (`private` map key
//!   `storage:storage:bookmarks`) or in the legacy PEP node move into PEP
//!   and are removed there, as Prosody does.
//! - At initial presence the account's resources interested in
//!   `storage:bookmarks+notify` get the legacy view.
//!
//! Publishing to `urn:xmpp:bookmarks:0` (XEP-0402 before 0.4) is refused
//! with `not-allowed`, as Prosody.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::value::{Table, Value};
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::disco::NS_DISCO_INFO;
use crate::pep::node::{Item, NS_PUBSUB, PepError};
use crate::pep::{notify, owner};
use crate::private::{self, NS_PRIVATE};

pub const NS_BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
pub const NS_BOOKMARKS_OLD: &str = "urn:xmpp:bookmarks:0";
pub const NS_LEGACY: &str = "storage:bookmarks";

/// The node options mod_bookmarks publishes with.
fn default_options() -> Table {
    let mut t = Table::new();
    t.insert("persist_items", Value::Bool(true));
    t.insert("max_items", Value::str("max"));
    t.insert("send_last_published_item", Value::str("never"));
    t.insert("access_model", Value::str("whitelist"));
    t
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    // `module:depends "pep"`.
    crate::load_module(server, host, "pep")?;
    let upgrade = host.option_bool("upgrade_legacy_bookmarks", true)?;
    crate::disco::add_feature(host, NS_PRIVATE);
    host.events.hook("account-disco-info", 0, |e| {
        if let Some(q) = e
            .stanza
            .as_mut()
            .and_then(|r| r.get_child_mut("query", NS_DISCO_INFO))
        {
            for var in [
                format!("{NS_BOOKMARKS}#compat"),
                format!("{NS_BOOKMARKS}#compat-pep"),
                "urn:xmpp:bookmarks-conversion:0".to_string(),
            ] {
                q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
            }
        }
        false
    });
    host.events
        .hook(&format!("iq/self/{NS_PRIVATE}:query"), 1, on_private);
    host.events
        .hook(&format!("iq/bare/{NS_PUBSUB}:pubsub"), 1, on_legacy_pep);
    if upgrade {
        host.events.hook("resource-bind", 0, |e| {
            migrate(e);
            false
        });
    }
    host.events.hook("presence/initial", 0, |e| {
        if let (Some(host), Some(user)) =
            (e.host.clone(), e.origin.as_ref().and_then(|o| o.username()))
        {
            legacy_broadcast(&e.server.clone(), &host, &user);
        }
        false
    });
    Ok(())
}

/// The XEP-0048 `<storage/>` of the PEP bookmarks.
pub fn legacy_storage(items: &[Item]) -> Element {
    let mut storage = Element::new("storage", NS_LEGACY);
    for item in items {
        let b = item
            .payload
            .is("conference", NS_BOOKMARKS)
            .then_some(&item.payload);
        if b.is_none() {
            tracing::warn!("invalid bookmark published: {}", item.payload.name());
        }
        let mut c = Element::new("conference", NS_LEGACY)
            .attr("jid", &item.id)
            .attr_opt("name", b.and_then(|b| b.get_attr("name")))
            .attr_opt("autojoin", b.and_then(|b| b.get_attr("autojoin")));
        for tag in ["nick", "password"] {
            if let Some(t) = b.and_then(|b| b.get_child_text(tag, NS_BOOKMARKS)) {
                c.push_child(Element::new(tag, NS_LEGACY).text(t));
            }
        }
        storage.push_child(c);
    }
    storage
}

/// A XEP-0048 `<conference/>` as a XEP-0402 item.
fn to_item(c: &Element) -> Option<Item> {
    let jid = c.get_attr("jid")?;
    let mut conf = Element::new("conference", NS_BOOKMARKS)
        .attr_opt("name", c.get_attr("name"))
        .attr_opt("autojoin", c.get_attr("autojoin"));
    for tag in ["nick", "password"] {
        if let Some(t) = c.get_child_text(tag, NS_LEGACY) {
            conf.push_child(Element::new(tag, NS_BOOKMARKS).text(t));
        }
    }
    Some(Item {
        id: jid.to_string(),
        publisher: None,
        payload: conf,
    })
}

/// `compare_bookmark2`: same room, name, autojoin, nick and password.
fn same(a: &Item, b: &Item) -> bool {
    let attr = |i: &Item, n: &str| i.payload.get_attr(n).map(str::to_string);
    let text = |i: &Item, n: &str| i.payload.get_child_text(n, NS_BOOKMARKS);
    a.id == b.id
        && attr(a, "name") == attr(b, "name")
        && attr(a, "autojoin") == attr(b, "autojoin")
        && text(a, "nick") == text(b, "nick")
        && text(a, "password") == text(b, "password")
}

/// `publish_to_pep`: the legacy `<storage/>` into the PEP node
/// (`synchronise`: rooms not in it are retracted, an empty one purges).
pub fn publish_to_pep(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    storage: &Element,
    synchronise: bool,
) -> Result<(), PepError> {
    let wanted: Vec<Item> = storage
        .children()
        .filter(|c| c.is("conference", NS_LEGACY))
        .filter_map(to_item)
        .collect();
    if storage.children().next().is_none() {
        if synchronise {
            return match owner::purge(server, host, user, NS_BOOKMARKS) {
                Err(PepError::ItemNotFound) => Ok(()),
                r => r,
            };
        }
        return Ok(());
    }
    let current = match owner::items(host, user, NS_BOOKMARKS)? {
        Some((node, items)) => {
            // Options that differ from mod_bookmarks' are put back.
            let defaults = default_options();
            let differs = defaults
                .map
                .iter()
                .any(|(k, v)| node.config.get(k).is_some_and(|have| have != v));
            if differs {
                owner::configure(host, user, NS_BOOKMARKS, &defaults)?;
            }
            items
        }
        None => {
            owner::configure(host, user, NS_BOOKMARKS, &default_options())?;
            Vec::new()
        }
    };
    let mut to_remove: Vec<String> = current.iter().map(|i| i.id.clone()).collect();
    for mut item in wanted {
        to_remove.retain(|id| id != &item.id);
        if current.iter().any(|c| same(c, &item)) {
            continue;
        }
        item.publisher = Some(format!("{user}@{}", host.name));
        owner::publish(server, host, user, NS_BOOKMARKS, &item, default_options())?;
    }
    if synchronise {
        for id in to_remove {
            owner::retract(server, host, user, NS_BOOKMARKS, &id)?;
        }
    }
    Ok(())
}

fn failed(stanza: &Element, e: &PepError, text: &str) -> Element {
    tracing::error!("bookmarks: {text}: {e}");
    StanzaError::new(ErrorType::Cancel, "internal-server-error")
        .with_text(text)
        .reply_to(stanza)
}

/// The legacy view, to the account's resources that want it.
fn legacy_broadcast(server: &Arc<Server>, host: &Arc<Host>, user: &str) {
    let items = match owner::items(host, user, NS_BOOKMARKS) {
        Ok(Some((_, items))) => items,
        Ok(None) => Vec::new(),
        Err(_) => return,
    };
    let event = Element::new("items", notify::NS_PUBSUB_EVENT)
        .attr("node", NS_LEGACY)
        .child(
            Element::new("item", notify::NS_PUBSUB_EVENT)
                .attr("id", "current")
                .child(legacy_storage(&items)),
        );
    owner::notify_interested(server, host, user, NS_LEGACY, event);
}

/// Private XML storage of `storage:bookmarks`.
fn on_private(event: &mut Event) -> bool {
    let server = event.server.clone();
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(query) = stanza.get_child("query", NS_PRIVATE) else {
        return false;
    };
    let Some(storage) = query.get_child("storage", NS_LEGACY) else {
        return false;
    };
    let reply = if stanza.type_() == Some("get") {
        match owner::items(&host, &user, NS_BOOKMARKS) {
            Ok(Some((_, items))) => stanza
                .reply()
                .child(Element::new("query", NS_PRIVATE).child(legacy_storage(&items))),
            Ok(None) => stanza.reply().child(query.clone()),
            Err(e) => failed(&stanza, &e, "Failed to retrieve bookmarks from PEP"),
        }
    } else {
        match publish_to_pep(&server, &host, &user, storage, true) {
            Ok(()) => {
                legacy_broadcast(&server, &host, &user);
                stanza.reply()
            }
            Err(e) => failed(&stanza, &e, "Failed to store bookmarks to PEP"),
        }
    };
    event.reply(reply);
    true
}

/// The legacy PEP node `storage:bookmarks` (of one's own account).
fn on_legacy_pep(event: &mut Event) -> bool {
    let server = event.server.clone();
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let Some(user) = origin.username() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let own = stanza.to().is_none_or(|t| {
        Jid::parse(t).is_ok_and(|j| j.node() == Some(user.as_str()) && j.domain() == host.name)
    });
    let Some(pubsub) = stanza.get_child("pubsub", NS_PUBSUB) else {
        return false;
    };
    if !own {
        return false;
    }
    let reply = if stanza.type_() == Some("get") {
        let Some(items) = pubsub.get_child("items", NS_PUBSUB) else {
            return false;
        };
        if items.get_attr("node") != Some(NS_LEGACY) {
            return false;
        }
        match owner::items(&host, &user, NS_BOOKMARKS) {
            Ok(Some((_, items))) => stanza.reply().child(
                Element::new("pubsub", NS_PUBSUB).child(
                    Element::new("items", NS_PUBSUB)
                        .attr("node", NS_LEGACY)
                        .child(
                            Element::new("item", NS_PUBSUB)
                                .attr("id", "current")
                                .child(legacy_storage(&items)),
                        ),
                ),
            ),
            Ok(None) => StanzaError::new(ErrorType::Cancel, "item-not-found")
                .with_text("Failed to retrieve bookmarks from PEP")
                .reply_to(&stanza),
            Err(e) => failed(&stanza, &e, "Failed to retrieve bookmarks from PEP"),
        }
    } else {
        let Some(publish) = pubsub.get_child("publish", NS_PUBSUB) else {
            return false;
        };
        match publish.get_attr("node") {
            Some(NS_BOOKMARKS_OLD) => StanzaError::new(ErrorType::Modify, "not-allowed")
                .with_text("Your client does XEP-0402 version 0.3.0 but 0.4.0+ is required")
                .reply_to(&stanza),
            Some(NS_LEGACY) => {
                let Some(storage) = publish
                    .get_child("item", NS_PUBSUB)
                    .and_then(|i| i.get_child("storage", NS_LEGACY))
                else {
                    return false;
                };
                match publish_to_pep(&server, &host, &user, storage, true) {
                    Ok(()) => {
                        legacy_broadcast(&server, &host, &user);
                        stanza.reply()
                    }
                    Err(e) => failed(&stanza, &e, "Failed to store bookmarks to PEP"),
                }
            }
            _ => return false,
        }
    };
    event.reply(reply);
    true
}

/// `migrate_legacy_bookmarks`, at resource binding.
fn migrate(event: &mut Event) {
    let server = event.server.clone();
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return;
    };
    // The legacy PEP node's bookmarks, then the node made private.
    match owner::items(&host, &user, NS_LEGACY) {
        Ok(Some((node, items))) => {
            let mut ok = true;
            for item in &items {
                if let Err(e) = publish_to_pep(&server, &host, &user, &item.payload, false) {
                    tracing::error!(%user, "could not migrate legacy PEP bookmarks: {e}");
                    ok = false;
                    break;
                }
            }
            if ok
                && !items.is_empty()
                && let Err(e) = crate::pep::node::clear_items(&host, &user, NS_LEGACY)
            {
                tracing::error!(%user, "could not delete legacy PEP bookmarks: {e}");
            }
            if node.access_model() != "whitelist" {
                let _ = owner::configure(&host, &user, NS_LEGACY, &legacy_node_options());
            }
        }
        Ok(None) => {
            let _ = owner::configure(&host, &user, NS_LEGACY, &legacy_node_options());
        }
        Err(e) => tracing::error!(%user, "legacy PEP bookmarks: {e}"),
    }
    // Private XML storage.
    match private::get_private(&host, &user, "storage", NS_LEGACY) {
        Ok(Some(storage)) => {
            if let Err(e) = publish_to_pep(&server, &host, &user, &storage, false) {
                tracing::error!(%user, "could not migrate private bookmarks: {e}");
                return;
            }
            let empty = Element::new("storage", NS_LEGACY);
            if let Err(e) = private::set_private(&host, &user, &empty) {
                tracing::error!(%user, "could not remove private bookmarks: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(%user, "private bookmarks: {e}"),
    }
}

fn legacy_node_options() -> Table {
    let mut t = Table::new();
    t.insert("persist_items", Value::Bool(false));
    t.insert("max_items", Value::Integer(1));
    t.insert("send_last_published_item", Value::str("never"));
    t.insert("access_model", Value::str("whitelist"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_round_trip() {
        let conf = Element::new("conference", NS_LEGACY)
            .attr("jid", "room@muc.example.org")
            .attr("name", "The Room")
            .attr("autojoin", "true")
            .child(Element::new("nick", NS_LEGACY).text("alice"))
            .child(Element::new("password", NS_LEGACY).text("s3cret"));
        let item = to_item(&conf).unwrap();
        assert_eq!(item.id, "room@muc.example.org");
        assert!(item.payload.is("conference", NS_BOOKMARKS));
        assert!(same(&item, &item.clone()));
        let storage = legacy_storage(std::slice::from_ref(&item));
        let back = storage.get_child("conference", NS_LEGACY).unwrap();
        assert_eq!(back, &conf);
    }
}
