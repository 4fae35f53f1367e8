//! The pubsub component's storage, laid out as Prosody's mod_pubsub keeps
//! it, so that a Prosody service's data is used in place and the reverse:
//!
//! - Node data: the keyval store `pubsub_nodes`, one entry per node with
//!   the node's name as the key (`util.pubsub`'s nodestore), holding
//!   `{ name, config, subscribers, affiliations }`.
//! - Items: the archive store `pubsub_<node>` of the service itself (no
//!   user), each item under its id with the publisher's bare JID as `with`.

use std::collections::BTreeMap;

use xmpp_core::Host;

use crate::pep::node::{self, Defaults, Item, Node, PepError};

/// The keyval store of node data.
pub const NODE_STORE: &str = "pubsub_nodes";

fn item_store(node: &str) -> String {
    format!("pubsub_{node}")
}

/// The node `name`, if it exists.
pub fn load_node(host: &Host, name: &str) -> Result<Option<Node>, PepError> {
    let v = host.open_keyval(NODE_STORE)?.get(Some(name))?;
    Ok(v.map(|v| Node::from_value(name, &v).with_defaults(Defaults::Service)))
}

/// Every node of the service, by name.
pub fn load_nodes(host: &Host) -> Result<BTreeMap<String, Node>, PepError> {
    let store = host.open_keyval(NODE_STORE)?;
    let mut nodes = BTreeMap::new();
    for name in store.users()? {
        if let Some(v) = store.get(Some(&name))? {
            let node = Node::from_value(&name, &v).with_defaults(Defaults::Service);
            nodes.insert(name, node);
        }
    }
    Ok(nodes)
}

pub fn save_node(host: &Host, node: &Node) -> Result<(), PepError> {
    host.open_keyval(NODE_STORE)?
        .set(Some(&node.name), Some(node.to_value()))?;
    Ok(())
}

/// Deletes the node and its items.
pub fn delete_node(host: &Host, name: &str) -> Result<(), PepError> {
    host.open_keyval(NODE_STORE)?.set(Some(name), None)?;
    clear_items(host, name)
}

/// The node's items, newest first.
pub fn items(host: &Host, name: &str, limit: usize) -> Result<Vec<Item>, PepError> {
    node::archive_items(host, &item_store(name), None, limit)
}

pub fn store_item(
    host: &Host,
    name: &str,
    item: &Item,
    max_items: usize,
    now: f64,
) -> Result<(), PepError> {
    node::archive_store_item(host, &item_store(name), None, item, max_items, now)
}

pub fn remove_item(host: &Host, name: &str, id: &str) -> Result<bool, PepError> {
    node::archive_remove_item(host, &item_store(name), None, id)
}

pub fn clear_items(host: &Host, name: &str) -> Result<(), PepError> {
    node::archive_clear(host, &item_store(name), None)
}
