//! One account's PEP nodes (Prosody 0.12's `util.pubsub` service as
//! mod_pep configures it) and their storage.
//!
//! - Node data: the map store `pep`, one entry per node keyed by its name,
//!   holding `{ name, config, subscribers, affiliations }` as Prosody saves
//!   it (`config` keeps only what was set; defaults are applied on reading;
//!   an entry that is just `true` is Prosody's old `persist_items` flag).
//! - Items: the archive store `pep_<node>`, the account's list, each item
//!   stored under its item id with the payload as the stanza and the
//!   publisher's bare JID as `with`; at most `max_items` are kept (oldest go).
//!
//! Access (`util.pubsub`'s affiliations): the account itself is `owner`;
//! anyone else gets the node's stored affiliation, else one from the access
//! model: `open` → member, `whitelist` → outcast, `presence` → member when
//! subscribed to the account's presence, else outcast. A node that does not
//! exist uses the default model, `presence`.

use std::collections::BTreeMap;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::{ArchiveQuery, StorageError};
use xmpp_core::value::{Table, Value};
use xmpp_core::{Host, Jid};

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// The map (and keyval) store holding node data.
pub const NODE_STORE: &str = "pep";
/// Prosody's default `pep_max_items`.
pub const DEFAULT_MAX_MAX_ITEMS: i64 = 256;

/// What an operation failed with, as `pubsub.lib.lua` names errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepError {
    #[error("forbidden")]
    Forbidden,
    #[error("item-not-found")]
    ItemNotFound,
    #[error("conflict")]
    Conflict,
    #[error("not-acceptable")]
    NotAcceptable,
    #[error("precondition-not-met: {0}")]
    PreconditionNotMet(String),
    #[error("persistent-items-unsupported")]
    PersistentItemsUnsupported,
    #[error("not-subscribed")]
    NotSubscribed,
    #[error("invalid-jid")]
    InvalidJid,
    #[error("internal-server-error: {0}")]
    Internal(String),
}

impl From<StorageError> for PepError {
    fn from(e: StorageError) -> PepError {
        PepError::Internal(e.to_string())
    }
}

/// Who is asking, as `util.pubsub` sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affiliation {
    Owner,
    Publisher,
    Member,
    None,
    Outcast,
}

impl Affiliation {
    pub fn parse(s: &str) -> Option<Affiliation> {
        Some(match s {
            "owner" => Affiliation::Owner,
            "publisher" | "publish-only" => Affiliation::Publisher,
            "member" => Affiliation::Member,
            "none" => Affiliation::None,
            "outcast" => Affiliation::Outcast,
            _ => return None,
        })
    }
    pub fn may_get_items(self) -> bool {
        matches!(
            self,
            Affiliation::Owner | Affiliation::Publisher | Affiliation::Member
        )
    }
    pub fn may_publish(self) -> bool {
        matches!(self, Affiliation::Owner | Affiliation::Publisher)
    }
}

/// Whose defaults a node's unset configuration takes: mod_pep's or the
/// pubsub component's (mod_pubsub).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Defaults {
    #[default]
    Pep,
    Service,
}

/// A node: its name, its configuration as stored (only what was set), and
/// the rest of Prosody's table kept as it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub config: Table,
    pub affiliations: Table,
    pub subscribers: Table,
    pub defaults: Defaults,
}

impl Node {
    pub fn new(name: &str, config: Table) -> Node {
        Node {
            name: name.to_string(),
            config,
            affiliations: Table::new(),
            subscribers: Table::new(),
            defaults: Defaults::Pep,
        }
    }

    /// The same node with `defaults` for its unset configuration.
    pub fn with_defaults(mut self, defaults: Defaults) -> Node {
        self.defaults = defaults;
        self
    }

    pub fn from_value(name: &str, v: &Value) -> Node {
        let Some(t) = v.as_table() else {
            // COMPAT: Prosody once stored only `true` (persist_items).
            return Node::new(name, Table::new());
        };
        let table = |k: &str| {
            t.get(k)
                .and_then(Value::as_table)
                .cloned()
                .unwrap_or_default()
        };
        Node {
            name: t
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string(),
            config: table("config"),
            affiliations: table("affiliations"),
            subscribers: table("subscribers"),
            defaults: Defaults::Pep,
        }
    }

    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        t.insert("name", Value::str(&self.name));
        t.insert("config", Value::Table(self.config.clone()));
        t.insert("subscribers", Value::Table(self.subscribers.clone()));
        t.insert("affiliations", Value::Table(self.affiliations.clone()));
        Value::Table(t)
    }

    /// A configuration value, or the default (mod_pep's or mod_pubsub's)
    /// for it.
    pub fn get(&self, key: &str) -> Value {
        self.config
            .get(key)
            .cloned()
            .unwrap_or_else(|| match self.defaults {
                Defaults::Pep => default_config(key),
                Defaults::Service => service_default_config(key),
            })
    }

    pub fn access_model(&self) -> String {
        self.get("access_model")
            .as_str()
            .unwrap_or("presence")
            .to_string()
    }

    pub fn persist_items(&self) -> bool {
        self.get("persist_items").as_bool().unwrap_or(true)
    }

    /// `max_items`, with `"max"` as `pep_max_items`.
    pub fn max_items(&self, max_max: i64) -> usize {
        let n = match self.get("max_items") {
            Value::String(s) if s == "max" => max_max,
            v => v
                .as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(1),
        };
        usize::try_from(n.clamp(1, max_max.max(1))).unwrap_or(1)
    }
}

/// mod_pep's `node_defaults` over `util.pubsub`'s.
pub fn default_config(key: &str) -> Value {
    match key {
        "max_items" => Value::Integer(1),
        "persist_items" => Value::Bool(true),
        "access_model" => Value::str("presence"),
        "send_last_published_item" => Value::str("on_sub_and_presence"),
        "publish_model" => Value::str("publishers"),
        "notification_type" => Value::str("headline"),
        "itemreply" => Value::str("none"),
        "notify_items" | "include_payload" | "notify_delete" | "notify_retract" => {
            Value::Bool(true)
        }
        _ => Value::Bool(false),
    }
}

/// mod_pubsub's `node_defaults`: `util.pubsub`'s, which differ from
/// mod_pep's in `max_items` (20), `access_model` (open) and
/// `send_last_published_item` (never).
pub fn service_default_config(key: &str) -> Value {
    match key {
        "max_items" => Value::Integer(20),
        "access_model" => Value::str("open"),
        "send_last_published_item" => Value::str("never"),
        _ => default_config(key),
    }
}

/// mod_pep's `check_node_config`.
pub fn check_config(config: &Node, max_max: i64) -> bool {
    let max = match config.get("max_items") {
        Value::String(s) if s == "max" => max_max,
        v => v.as_i64().unwrap_or(1),
    };
    max <= max_max
        && matches!(
            config.access_model().as_str(),
            "presence" | "whitelist" | "open"
        )
}

/// One stored item: its id, the publisher and the payload.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub publisher: Option<String>,
    pub payload: Element,
}

impl Item {
    /// `<item id publisher>payload</item>` in `ns`.
    pub fn to_element(&self, ns: &str, with_publisher: bool) -> Element {
        let mut payload = self.payload.clone();
        if payload.ns().is_empty() {
            payload.set_ns(NS_CLIENT);
        }
        Element::new("item", ns)
            .attr("id", &self.id)
            .attr_opt(
                "publisher",
                self.publisher.as_deref().filter(|_| with_publisher),
            )
            .child(payload)
    }
}

/// All nodes of `user`, by name.
pub fn load_nodes(host: &Host, user: &str) -> Result<BTreeMap<String, Node>, PepError> {
    let all = host.open_keyval(NODE_STORE)?.get(Some(user))?;
    let mut nodes = BTreeMap::new();
    if let Some(Value::Table(t)) = all {
        for (name, v) in &t.map {
            nodes.insert(name.clone(), Node::from_value(name, v));
        }
    }
    Ok(nodes)
}

pub fn save_node(host: &Host, user: &str, node: &Node) -> Result<(), PepError> {
    host.open_map(NODE_STORE)?
        .set(Some(user), &node.name, Some(node.to_value()))?;
    Ok(())
}

pub fn delete_node(host: &Host, user: &str, name: &str) -> Result<(), PepError> {
    host.open_map(NODE_STORE)?.set(Some(user), name, None)?;
    clear_items(host, user, name)
}

/// A random UUID (version 4), as Prosody's `util.uuid.generate` makes
/// item ids.
pub fn uuid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn item_store(node: &str) -> String {
    format!("pep_{node}")
}

/// The node's items, newest first.
/// The items an `<items/>` request asks for, of `stored` (newest first):
/// those it names by id, in its order, or else all, oldest first, as
/// Prosody answers; at most its `max_items`.
pub fn requested_items<'a>(request: &Element, stored: &'a [Item]) -> Vec<&'a Item> {
    let limit = request
        .get_attr("max_items")
        .and_then(|m| m.parse::<usize>().ok());
    let ids: Vec<&str> = request
        .children()
        .filter(|c| c.is("item", NS_PUBSUB))
        .filter_map(|c| c.get_attr("id"))
        .collect();
    let mut selected: Vec<&Item> = if ids.is_empty() {
        stored.iter().collect()
    } else {
        ids.iter()
            .filter_map(|id| stored.iter().find(|i| i.id == *id))
            .collect()
    };
    if let Some(l) = limit {
        selected.truncate(l);
    }
    if ids.is_empty() {
        selected.reverse(); // oldest first, as Prosody answers
    }
    selected
}

pub fn items(host: &Host, user: &str, node: &str, limit: usize) -> Result<Vec<Item>, PepError> {
    archive_items(host, &item_store(node), Some(user), limit)
}

/// The item `id`, if stored.
pub fn get_item(host: &Host, user: &str, node: &str, id: &str) -> Result<Option<Item>, PepError> {
    Ok(items(host, user, node, usize::MAX)?
        .into_iter()
        .find(|i| i.id == id))
}

/// Stores `item`, then keeps only the newest `max_items`.
pub fn store_item(
    host: &Host,
    user: &str,
    node: &str,
    item: &Item,
    max_items: usize,
    now: f64,
) -> Result<(), PepError> {
    archive_store_item(host, &item_store(node), Some(user), item, max_items, now)
}

/// Removes the item `id`; `false` when there was none.
pub fn remove_item(host: &Host, user: &str, node: &str, id: &str) -> Result<bool, PepError> {
    archive_remove_item(host, &item_store(node), Some(user), id)
}

pub fn clear_items(host: &Host, user: &str, node: &str) -> Result<(), PepError> {
    archive_clear(host, &item_store(node), Some(user))
}

/// The items of the archive `store` (`user`'s, or the host's with `None`),
/// newest first: `util.pubsub`'s archive item store, shared by mod_pep and
/// mod_pubsub.
pub fn archive_items(
    host: &Host,
    store: &str,
    user: Option<&str>,
    limit: usize,
) -> Result<Vec<Item>, PepError> {
    let q = ArchiveQuery {
        reverse: true,
        limit: Some(limit),
        ..ArchiveQuery::default()
    };
    let found = host.open_archive(store)?.find(user, &q)?;
    Ok(found
        .into_iter()
        .map(|i| Item {
            id: i.key,
            publisher: (!i.with.is_empty()).then_some(i.with),
            payload: i.stanza,
        })
        .collect())
}

/// Stores `item` in `store` (an item of the same id is replaced), then
/// keeps only the newest `max_items`.
pub fn archive_store_item(
    host: &Host,
    store: &str,
    user: Option<&str>,
    item: &Item,
    max_items: usize,
    now: f64,
) -> Result<(), PepError> {
    let archive = host.open_archive(store)?;
    archive.append_keyed(
        user,
        &item.id,
        &item.payload,
        now,
        item.publisher.as_deref().unwrap_or(""),
    )?;
    let all = archive.find(user, &ArchiveQuery::default())?;
    if all.len() > max_items {
        let q = ArchiveQuery {
            limit: Some(all.len() - max_items),
            ..ArchiveQuery::default()
        };
        archive.delete(user, &q)?;
    }
    Ok(())
}

/// Removes the item `id` from `store`; `false` when there was none.
pub fn archive_remove_item(
    host: &Host,
    store: &str,
    user: Option<&str>,
    id: &str,
) -> Result<bool, PepError> {
    let archive = host.open_archive(store)?;
    let all = archive.find(user, &ArchiveQuery::default())?;
    let Some(pos) = all.iter().position(|i| i.key == id) else {
        return Ok(false);
    };
    let q = ArchiveQuery {
        after: pos
            .checked_sub(1)
            .and_then(|p| all.get(p))
            .map(|i| i.key.clone()),
        limit: Some(1),
        ..ArchiveQuery::default()
    };
    archive.delete(user, &q)?;
    Ok(true)
}

/// Empties `store` (`user`'s part of it).
pub fn archive_clear(host: &Host, store: &str, user: Option<&str>) -> Result<(), PepError> {
    host.open_archive(store)?
        .delete(user, &ArchiveQuery::default())?;
    Ok(())
}

/// The affiliation of `actor` on `node` of the account `owner`
/// (`subscribed`: does `actor` receive the owner's presence).
pub fn affiliation(
    owner: &Jid,
    node: Option<&Node>,
    actor: Option<&Jid>,
    subscribed: impl FnOnce() -> bool,
) -> Affiliation {
    let Some(actor) = actor else {
        return Affiliation::Owner; // from the account's own session
    };
    if actor.to_bare() == owner.to_bare() {
        return Affiliation::Owner;
    }
    if let Some(n) = node {
        let stored = n
            .affiliations
            .get(&actor.to_string())
            .or_else(|| n.affiliations.get(&actor.to_bare().to_string()))
            .and_then(Value::as_str)
            .and_then(Affiliation::parse);
        if let Some(a) = stored {
            return a;
        }
    }
    let model = node.map_or_else(|| "presence".to_string(), Node::access_model);
    match model.as_str() {
        "open" => Affiliation::Member,
        "whitelist" => Affiliation::Outcast,
        _ if subscribed() => Affiliation::Member,
        _ => Affiliation::Outcast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_round_trip() {
        let mut config = Table::new();
        config.insert("access_model", Value::str("open"));
        config.insert("max_items", Value::str("max"));
        let node = Node::new("urn:xmpp:microblog:0", config);
        assert_eq!(node.access_model(), "open");
        assert_eq!(node.max_items(256), 256);
        assert!(node.persist_items());
        let back = Node::from_value(&node.name, &node.to_value());
        assert_eq!(back, node);
        let old = Node::from_value("x", &Value::Bool(true));
        assert_eq!(old.access_model(), "presence");
        assert_eq!(old.max_items(256), 1);
    }

    #[test]
    fn access_models() {
        let owner = Jid::parse("juliet@example.com").unwrap();
        let other = Jid::parse("romeo@example.net/phone").unwrap();
        let node = |model: &str| {
            let mut c = Table::new();
            c.insert("access_model", Value::str(model));
            Node::new("n", c)
        };
        let aff = |n: Option<&Node>, sub: bool| affiliation(&owner, n, Some(&other), || sub);
        assert_eq!(aff(None, false), Affiliation::Outcast);
        assert_eq!(aff(None, true), Affiliation::Member);
        assert_eq!(aff(Some(&node("open")), false), Affiliation::Member);
        assert_eq!(aff(Some(&node("whitelist")), true), Affiliation::Outcast);
        let mut listed = node("whitelist");
        listed
            .affiliations
            .insert("romeo@example.net", Value::str("member"));
        assert_eq!(aff(Some(&listed), false), Affiliation::Member);
        let me = Jid::parse("juliet@example.com/balcony").unwrap();
        assert_eq!(
            affiliation(&owner, None, Some(&me), || false),
            Affiliation::Owner
        );
        let mut bad = node("authorize");
        assert!(!check_config(&bad, 256));
        bad.config.insert("access_model", Value::str("open"));
        bad.config.insert("max_items", Value::Integer(1000));
        assert!(!check_config(&bad, 256));
    }
}
