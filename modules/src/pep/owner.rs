//! The account's own access to its PEP service, for other modules
//! (mod_bookmarks uses mod_pep's service this way): every call acts as the
//! account itself (`owner`).

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::value::Table;
use xmpp_core::{Host, Jid, Server};

use super::node::{self, Item, Node, PepError};
use super::{Request, max_max_items, notify, publish_item, recipients};

fn request(host: &Arc<Host>, user: &str) -> Result<Request, PepError> {
    let owner = Jid::parse(&format!("{user}@{}", host.name))
        .map_err(|e| PepError::Internal(format!("account JID: {e}")))?;
    Ok(Request {
        host: host.clone(),
        user: user.to_string(),
        actor: Some(owner.clone()),
        owner,
    })
}

/// The node and its items, oldest first (`None`: no such node).
pub fn items(
    host: &Arc<Host>,
    user: &str,
    name: &str,
) -> Result<Option<(Node, Vec<Item>)>, PepError> {
    let nodes = node::load_nodes(host, user)?;
    let Some(n) = nodes.get(name) else {
        return Ok(None);
    };
    let mut items = if n.persist_items() {
        node::items(host, user, name, n.max_items(max_max_items(host)))?
    } else {
        Vec::new()
    };
    items.reverse();
    Ok(Some((n.clone(), items)))
}

/// Creates the node, or sets the given configuration keys on it.
pub fn configure(host: &Arc<Host>, user: &str, name: &str, config: &Table) -> Result<(), PepError> {
    let nodes = node::load_nodes(host, user)?;
    let mut n = nodes
        .get(name)
        .cloned()
        .unwrap_or_else(|| Node::new(name, Table::new()));
    for (k, v) in &config.map {
        n.config.insert(k.clone(), v.clone());
    }
    if !node::check_config(&n, max_max_items(host)) {
        return Err(PepError::NotAcceptable);
    }
    node::save_node(host, user, &n)?;
    if !n.persist_items() {
        node::clear_items(host, user, name)?;
    }
    Ok(())
}

/// Publishes `item` (auto-creating the node with `options`), notifying.
pub fn publish(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
    item: &Item,
    options: Table,
) -> Result<(), PepError> {
    publish_item(server, &request(host, user)?, name, item, Some(options))
}

/// Retracts `id`, sending `<retract/>` to those interested.
pub fn retract(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
    id: &str,
) -> Result<(), PepError> {
    let req = request(host, user)?;
    let nodes = node::load_nodes(host, user)?;
    let n = nodes.get(name).ok_or(PepError::ItemNotFound)?;
    if !node::remove_item(host, user, name, id)? {
        return Err(PepError::ItemNotFound);
    }
    let to = recipients(server, &req, n);
    let event = Element::new("items", notify::NS_PUBSUB_EVENT)
        .attr("node", name)
        .child(Element::new("retract", notify::NS_PUBSUB_EVENT).attr("id", id));
    notify::broadcast(server, host, user, &to, event);
    Ok(())
}

/// Removes every item of the node, sending `<purge/>`.
pub fn purge(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
) -> Result<(), PepError> {
    let req = request(host, user)?;
    let nodes = node::load_nodes(host, user)?;
    let n = nodes.get(name).ok_or(PepError::ItemNotFound)?;
    node::clear_items(host, user, name)?;
    let to = recipients(server, &req, n);
    let event = Element::new("purge", notify::NS_PUBSUB_EVENT).attr("node", name);
    notify::broadcast(server, host, user, &to, event);
    Ok(())
}

/// Sends `event` (an `<items/>` etc. of node `name`) to whoever is
/// interested in `name` (by caps), whether or not the node exists.
pub fn notify_interested(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
    event: Element,
) {
    let to = notify::interested(host, user, name);
    notify::broadcast(server, host, user, &to, event);
}

/// `service:get_last_item(node, actor)`: the newest item of `user`'s node
/// as `actor` may see it (`Forbidden`, `ItemNotFound` for no node;
/// `Ok(None)` for an empty node).
pub fn last_item_for(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
    actor: Option<&Jid>,
) -> Result<Option<Item>, PepError> {
    let mut req = request(host, user)?;
    req.actor = actor.cloned();
    let nodes = node::load_nodes(host, user)?;
    let n = nodes.get(name);
    if !req.affiliation(server, n).may_get_items() {
        return Err(PepError::Forbidden);
    }
    let n = n.ok_or(PepError::ItemNotFound)?;
    if !n.persist_items() {
        return Ok(None);
    }
    Ok(node::items(host, user, name, 1)?.into_iter().next())
}

/// `service:publish(node, actor, id, item)` as the account, without
/// required options (the node is created with the defaults).
pub fn publish_default(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    name: &str,
    item: &Item,
) -> Result<(), PepError> {
    publish_item(server, &request(host, user)?, name, item, None)
}
