//! The `memory` storage driver (`mod_storage_memory`): everything in RAM,
//! per driver instance, gone when the process ends. Values are copied in
//! and out, as Prosody re-serialises them. Map stores are the keys of the
//! keyval table (storagemanager's shim); archives hold at most
//! `storage_archive_item_limit` items (1000 for this driver, as Prosody).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::Element;
use xmpp_core::storage::{
    ArchiveItem, ArchiveQuery, ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError,
    StorageResult,
};
use xmpp_core::value::{Table, Value};

use super::internal_archive::QUOTA_LIMIT;
use super::new_id;
use super::query::{self, ItemMeta};

/// Prosody's default `storage_archive_item_limit` for this driver.
pub const DEFAULT_ARCHIVE_ITEM_LIMIT: usize = 1000;

type UserKey = Option<String>;

#[derive(Default)]
struct StoreData {
    keyval: HashMap<UserKey, Value>,
    archive: HashMap<UserKey, Vec<ArchiveItem>>,
}

/// One store (host + name), shared by whoever opens it.
#[derive(Default)]
struct MemoryStore {
    data: Mutex<StoreData>,
    item_limit: usize,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, StoreData> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `memory` driver.
pub struct MemoryDriver {
    stores: Mutex<HashMap<(String, String), Arc<MemoryStore>>>,
    item_limit: usize,
}

impl Default for MemoryDriver {
    fn default() -> MemoryDriver {
        MemoryDriver::new()
    }
}

impl MemoryDriver {
    pub fn new() -> MemoryDriver {
        MemoryDriver::with_item_limit(DEFAULT_ARCHIVE_ITEM_LIMIT)
    }

    pub fn with_item_limit(item_limit: usize) -> MemoryDriver {
        MemoryDriver {
            stores: Mutex::new(HashMap::new()),
            item_limit,
        }
    }

    fn store(&self, host: &str, store: &str) -> Arc<MemoryStore> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        stores
            .entry((host.to_string(), store.to_string()))
            .or_insert_with(|| {
                Arc::new(MemoryStore {
                    data: Mutex::default(),
                    item_limit: self.item_limit,
                })
            })
            .clone()
    }
}

fn user_key(user: Option<&str>) -> UserKey {
    user.map(str::to_string)
}

impl StorageDriver for MemoryDriver {
    fn name(&self) -> &str {
        "memory"
    }
    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(MemoryKeyval(self.store(host, store))))
    }
    fn open_map(&self, host: &str, store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Ok(Arc::new(MemoryMap(self.store(host, store))))
    }
    fn open_archive(&self, host: &str, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Ok(Arc::new(MemoryArchive(self.store(host, store))))
    }
    fn purge_user(&self, host: &str, user: &str) -> StorageResult<()> {
        let stores: Vec<Arc<MemoryStore>> = {
            let stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
            stores
                .iter()
                .filter(|((h, _), _)| h == host)
                .map(|(_, s)| s.clone())
                .collect()
        };
        let key = Some(user.to_string());
        for s in stores {
            let mut data = s.lock();
            data.keyval.remove(&key);
            data.archive.remove(&key);
        }
        Ok(())
    }
}

struct MemoryKeyval(Arc<MemoryStore>);

impl KeyValueStore for MemoryKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        Ok(self.0.lock().keyval.get(&user_key(user)).cloned())
    }
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let mut data = self.0.lock();
        match value {
            Some(v) => data.keyval.insert(user_key(user), v),
            None => data.keyval.remove(&user_key(user)),
        };
        Ok(())
    }
    fn create(&self, user: Option<&str>, value: Value) -> StorageResult<bool> {
        let mut data = self.0.lock();
        if data.keyval.contains_key(&user_key(user)) {
            return Ok(false);
        }
        data.keyval.insert(user_key(user), value);
        Ok(true)
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        let mut users: Vec<String> = self.0.lock().keyval.keys().flatten().cloned().collect();
        users.sort();
        Ok(users)
    }
}

struct MemoryMap(Arc<MemoryStore>);

impl MapStore for MemoryMap {
    fn get(&self, user: Option<&str>, key: &str) -> StorageResult<Option<Value>> {
        Ok(self
            .0
            .lock()
            .keyval
            .get(&user_key(user))
            .and_then(|v| v.get(key))
            .cloned())
    }
    fn set(&self, user: Option<&str>, key: &str, value: Option<Value>) -> StorageResult<()> {
        let mut data = self.0.lock();
        let entry = data
            .keyval
            .entry(user_key(user))
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(t) = entry else {
            return Err(StorageError::Other(format!(
                "map store: the value of {user:?} is not a table"
            )));
        };
        match value {
            Some(v) => t.insert(key, v),
            None => {
                t.map.remove(key);
            }
        }
        Ok(())
    }
}

struct MemoryArchive(Arc<MemoryStore>);

fn metas(items: &[ArchiveItem]) -> Vec<ItemMeta<'_>> {
    items
        .iter()
        .map(|i| ItemMeta {
            key: i.key.as_str().into(),
            when: i.when,
            with: &i.with,
        })
        .collect()
}

impl ArchiveStore for MemoryArchive {
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let mut data = self.0.lock();
        let items = data.archive.entry(user_key(user)).or_default();
        if items.len() >= self.0.item_limit {
            return Err(StorageError::Other(format!(
                "{QUOTA_LIMIT}: the archive holds {} items",
                items.len()
            )));
        }
        let key = new_id();
        items.push(ArchiveItem {
            key: key.clone(),
            stanza: stanza.clone(),
            when,
            with: with.to_string(),
        });
        Ok(key)
    }

    fn append_keyed(
        &self,
        user: Option<&str>,
        key: &str,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let mut data = self.0.lock();
        let items = data.archive.entry(user_key(user)).or_default();
        items.retain(|i| i.key != key);
        if items.len() >= self.0.item_limit {
            return Err(StorageError::Other(format!(
                "{QUOTA_LIMIT}: the archive holds {} items",
                items.len()
            )));
        }
        items.push(ArchiveItem {
            key: key.to_string(),
            stanza: stanza.clone(),
            when,
            with: with.to_string(),
        });
        Ok(key.to_string())
    }

    fn find(&self, user: Option<&str>, q: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        let data = self.0.lock();
        let Some(items) = data.archive.get(&user_key(user)) else {
            query::check_empty_archive(q)?;
            return Ok(Vec::new());
        };
        let selected = query::select(&metas(items), q)?;
        Ok(selected.into_iter().map(|i| items[i].clone()).collect())
    }

    fn delete(&self, user: Option<&str>, q: &ArchiveQuery) -> StorageResult<usize> {
        let mut data = self.0.lock();
        let key = user_key(user);
        if query::is_empty(q) {
            return Ok(data.archive.remove(&key).map_or(0, |items| items.len()));
        }
        let Some(items) = data.archive.get_mut(&key) else {
            return Ok(0);
        };
        let doomed = query::select(&metas(items), q)?;
        let mut remove = vec![false; items.len()];
        for i in &doomed {
            remove[*i] = true;
        }
        let mut flags = remove.into_iter();
        items.retain(|_| !flags.next().unwrap_or(false));
        Ok(doomed.len())
    }
}
