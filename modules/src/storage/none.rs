//! The `none` storage driver (`mod_storage_none`): stores nothing. As in
//! Prosody, reading a keyval store gives an empty table, writing fails with
//! "Storage disabled", archives are always empty, deleting and purging
//! succeed. Map stores are the (empty) keyval tables: reads find nothing,
//! writes fail.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::storage::{
    ArchiveItem, ArchiveQuery, ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError,
    StorageResult,
};
use xmpp_core::value::{Table, Value};

/// The `none` driver.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoneDriver;

fn disabled() -> StorageError {
    StorageError::Unavailable {
        driver: "none".into(),
        reason: "Storage disabled".into(),
    }
}

impl StorageDriver for NoneDriver {
    fn name(&self) -> &str {
        "none"
    }
    fn open_keyval(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(NoneDriver))
    }
    fn open_map(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Ok(Arc::new(NoneDriver))
    }
    fn open_archive(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Ok(Arc::new(NoneDriver))
    }
    fn purge_user(&self, _host: &str, _user: &str) -> StorageResult<()> {
        Ok(())
    }
}

impl KeyValueStore for NoneDriver {
    fn get(&self, _user: Option<&str>) -> StorageResult<Option<Value>> {
        Ok(Some(Value::Table(Table::new())))
    }
    fn set(&self, _user: Option<&str>, _value: Option<Value>) -> StorageResult<()> {
        Err(disabled())
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        Ok(Vec::new())
    }
}

impl MapStore for NoneDriver {
    fn get(&self, _user: Option<&str>, _key: &str) -> StorageResult<Option<Value>> {
        Ok(None)
    }
    fn set(&self, _user: Option<&str>, _key: &str, _value: Option<Value>) -> StorageResult<()> {
        Err(disabled())
    }
}

impl ArchiveStore for NoneDriver {
    fn append(
        &self,
        _user: Option<&str>,
        _stanza: &Element,
        _when: f64,
        _with: &str,
    ) -> StorageResult<String> {
        Err(disabled())
    }
    fn find(&self, _user: Option<&str>, _query: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        Ok(Vec::new())
    }
    fn delete(&self, _user: Option<&str>, _query: &ArchiveQuery) -> StorageResult<usize> {
        Ok(0)
    }
}
