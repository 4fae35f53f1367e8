//! The blocklists, in Prosody's layout, with a per-host cache.
//!
//! The keyval store `blocklist` holds, per user, a table: each blocked JID
//! maps to the time it was blocked (`os.time()`, or `true` after a
//! migration), and the key `[false]` holds `{ created = T, modified = T }`
//! (with `migrated = "privacy"` when made from a mod_privacy default list),
//! which also tells Prosody not to migrate again. Reading lists goes
//! through a cache of `blocklist_cache_size` users (Prosody's option,
//! default 64), as routing asks for every stanza.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use xmpp_core::storage::StorageResult;
use xmpp_core::value::Table;
use xmpp_core::{Host, Jid, Value};

pub const STORE: &str = "blocklist";
/// mod_privacy's store, migrated from once.
const PRIVACY_STORE: &str = "privacy";
/// The metadata key (Lua's `[false]`).
const META: &str = "false";
pub const DEFAULT_CACHE_SIZE: usize = 64;

/// One user's blocklist: the stored table, kept whole so that a rewrite
/// keeps what it does not interpret.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blocklist {
    pub table: Table,
}

impl Blocklist {
    /// The blocked JIDs, sorted.
    pub fn jids(&self) -> BTreeSet<String> {
        self.table
            .map
            .iter()
            .filter(|(k, v)| k.as_str() != META && !matches!(v, Value::Bool(false)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn contains(&self, jid: &str) -> bool {
        jid != META
            && self
                .table
                .map
                .get(jid)
                .is_some_and(|v| !matches!(v, Value::Bool(false)))
    }

    /// Prosody's `is_blocked`: the JID itself, its domain, or its bare JID.
    pub fn blocks(&self, jid: &str) -> bool {
        if self.contains(jid) {
            return true;
        }
        let Ok(j) = Jid::parse(jid) else {
            return false;
        };
        self.contains(j.domain()) || (j.node().is_some() && self.contains(&j.to_bare().to_string()))
    }
}

/// The per-host cache.
#[derive(Default)]
pub struct Cache {
    lists: Mutex<HashMap<String, Arc<Blocklist>>>,
}

impl Cache {
    fn get(&self, user: &str) -> Option<Arc<Blocklist>> {
        self.lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    fn put(&self, host: &Host, user: &str, list: Arc<Blocklist>) {
        let size = host
            .option_i64("blocklist_cache_size", DEFAULT_CACHE_SIZE as i64)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_CACHE_SIZE)
            .max(1);
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if lists.len() >= size && !lists.contains_key(user) {
            // Crude eviction: forget one other user.
            if let Some(other) = lists.keys().next().cloned() {
                lists.remove(&other);
            }
        }
        lists.insert(user.to_string(), list);
    }

    pub fn forget(&self, user: &str) {
        self.lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(user);
    }
}

/// The blocklist of `user` (empty for a user that does not exist), from the
/// cache or the store; a user with none gets one migrated from their
/// mod_privacy default list, if any.
pub fn get_blocklist(host: &Host, user: &str, now: f64) -> Arc<Blocklist> {
    let cache = host.extension::<Cache>();
    if let Some(list) = cache.get(user) {
        return list;
    }
    if !host.user_exists(user) {
        return Arc::new(Blocklist::default());
    }
    let stored = match host.open_keyval(STORE).and_then(|s| s.get(Some(user))) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(host = %host.name, %user, "could not load the blocklist: {e}");
            None
        }
    };
    let list = match stored {
        Some(Value::Table(table)) => Blocklist { table },
        _ => match migrate_privacy_list(host, user, now) {
            Some(list) => list,
            None => {
                let mut table = Table::new();
                table.insert(META, Value::Table(meta(now, None)));
                Blocklist { table }
            }
        },
    };
    let list = Arc::new(list);
    cache.put(host, user, list.clone());
    list
}

/// Stores `list` for `user`; the cache follows.
pub fn set_blocklist(host: &Host, user: &str, list: Blocklist) -> StorageResult<()> {
    host.open_keyval(STORE)?
        .set(Some(user), Some(Value::Table(list.table.clone())))?;
    host.extension::<Cache>().put(host, user, Arc::new(list));
    Ok(())
}

/// `{ created = now }` (and `migrated`).
fn meta(now: f64, migrated: Option<&str>) -> Table {
    let mut t = Table::new();
    t.insert("created", Value::Integer(now as i64));
    if let Some(m) = migrated {
        t.insert("migrated", Value::str(m));
    }
    t
}

/// The JIDs mod_privacy's default list denies become the blocklist (saved).
fn migrate_privacy_list(host: &Host, user: &str, now: f64) -> Option<Blocklist> {
    let legacy = host
        .open_keyval(PRIVACY_STORE)
        .ok()?
        .get(Some(user))
        .ok()??;
    let legacy = legacy.as_table()?;
    let default = legacy.get("default")?.as_str()?;
    let list = legacy.get("lists")?.as_table()?.get(default)?.as_table()?;
    let items = list.get("items")?.as_table()?;
    let mut table = Table::new();
    table.insert(META, Value::Table(meta(now, Some("privacy"))));
    tracing::info!(host = %host.name, "Migrating blocklist from mod_privacy storage for user '{user}'");
    for item in items.seq.iter().filter_map(Value::as_table) {
        let is = |k: &str, v: &str| item.get(k).and_then(Value::as_str) == Some(v);
        if !(is("type", "jid") && is("action", "deny")) {
            continue;
        }
        match item.get("value").and_then(Value::as_str).map(Jid::parse) {
            Some(Ok(j)) => table.insert(j.to_string(), Value::Bool(true)),
            _ => {
                tracing::warn!(host = %host.name, "Invalid JID in privacy store for user '{user}' not migrated")
            }
        }
    }
    let list = Blocklist { table };
    if let Err(e) = set_blocklist(host, user, list.clone()) {
        tracing::warn!(host = %host.name, %user, "could not save the migrated blocklist: {e}");
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_the_jid_its_bare_jid_and_its_domain() {
        let mut table = Table::new();
        table.insert(META, Value::Table(meta(1.0, None)));
        table.insert("bob@example.com", Value::Integer(5));
        table.insert("spam.example", Value::Bool(true));
        table.insert("carol@example.com/phone", Value::Integer(5));
        let list = Blocklist { table };
        assert_eq!(
            list.jids().into_iter().collect::<Vec<_>>(),
            ["bob@example.com", "carol@example.com/phone", "spam.example"]
        );
        assert!(list.blocks("bob@example.com"));
        assert!(list.blocks("bob@example.com/desk"));
        assert!(list.blocks("x@spam.example/r"));
        assert!(list.blocks("spam.example"));
        assert!(list.blocks("carol@example.com/phone"));
        assert!(!list.blocks("carol@example.com/desk"));
        assert!(!list.blocks("carol@example.com"));
        assert!(!list.blocks("false"));
    }
}
