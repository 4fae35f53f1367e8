//! The storage API, with Prosody's three store kinds:
//!
//! - **keyval**: one value per user (or per host when `user` is `None`), e.g.
//!   `accounts`, `roster`;
//! - **map**: many keys per user, e.g. per-item settings;
//! - **archive**: an ordered log of stanzas per user, e.g. `offline`, MAM.
//!
//! Drivers (`internal`, `memory`, `none`, later `sql`) implement
//! [`StorageDriver`]; a host picks one per store with the `storage` option
//! (see `host::Host::open_keyval`). Calls are synchronous, as Prosody's are
//! from a module's point of view; drivers keep them short.

use std::sync::Arc;

use crate::stanza::Element;
use crate::value::Value;

/// A storage failure, with enough context to log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("storage driver {driver:?} is not available ({reason})")]
    Unavailable { driver: String, reason: String },
    #[error("storage error: {0}")]
    Other(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One value per user.
pub trait KeyValueStore: Send + Sync {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>>;
    /// `None` deletes.
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()>;
    /// The users that have a value in this store (for `accounts`: the user list).
    fn users(&self) -> StorageResult<Vec<String>>;
    /// Stores `value` for `user` only when there is none; `false` when
    /// there was (nothing written). Drivers that can make this one step
    /// (`internal`: an exclusive link of the whole file; `memory`: under
    /// its lock); the default reads, then writes.
    fn create(&self, user: Option<&str>, value: Value) -> StorageResult<bool> {
        if self.get(user)?.is_some() {
            return Ok(false);
        }
        self.set(user, Some(value))?;
        Ok(true)
    }
}

/// Many keys per user.
pub trait MapStore: Send + Sync {
    fn get(&self, user: Option<&str>, key: &str) -> StorageResult<Option<Value>>;
    fn set(&self, user: Option<&str>, key: &str, value: Option<Value>) -> StorageResult<()>;
}

/// One archived stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveItem {
    /// Unique id within the archive.
    pub key: String,
    pub stanza: Element,
    /// Unix time (seconds).
    pub when: f64,
    /// The other party (bare JID), or a type tag such as `message<chat`.
    pub with: String,
}

/// A query on an archive (Prosody's archive query table); all fields optional.
#[derive(Debug, Clone, Default)]
pub struct ArchiveQuery {
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub with: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
    pub limit: Option<usize>,
    pub reverse: bool,
}

/// An ordered log of stanzas per user.
pub trait ArchiveStore: Send + Sync {
    /// Appends; returns the new item's key.
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String>;
    /// Appends under the given key, first removing any item that has it
    /// (Prosody's `archive:append` with a key, as PEP item stores use it).
    /// Drivers that cannot keep a caller's key say so.
    fn append_keyed(
        &self,
        user: Option<&str>,
        key: &str,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let _ = (user, key, stanza, when, with);
        Err(StorageError::Other(
            "this archive driver cannot store items under a given key".into(),
        ))
    }
    fn find(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>>;
    /// Deletes what matches; returns how many went.
    fn delete(&self, user: Option<&str>, query: &ArchiveQuery) -> StorageResult<usize>;
}

/// A storage backend that can open stores for a host.
pub trait StorageDriver: Send + Sync {
    fn name(&self) -> &str;
    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>>;
    fn open_map(&self, host: &str, store: &str) -> StorageResult<Arc<dyn MapStore>>;
    fn open_archive(&self, host: &str, store: &str) -> StorageResult<Arc<dyn ArchiveStore>>;
    /// Removes everything a user has in every store of this driver (account deletion).
    fn purge_user(&self, host: &str, user: &str) -> StorageResult<()>;
}

/// Applies an [`ArchiveQuery`] to items in archive order (for simple drivers).
pub fn filter_archive(items: &[ArchiveItem], q: &ArchiveQuery) -> Vec<ArchiveItem> {
    let mut selected: Vec<&ArchiveItem> = items
        .iter()
        .filter(|i| q.start.is_none_or(|s| i.when >= s))
        .filter(|i| q.end.is_none_or(|e| i.when <= e))
        .filter(|i| q.with.as_deref().is_none_or(|w| i.with == w))
        .collect();
    if let Some(after) = &q.after
        && let Some(pos) = selected.iter().position(|i| &i.key == after)
    {
        selected.drain(..=pos);
    }
    if let Some(before) = &q.before
        && let Some(pos) = selected.iter().position(|i| &i.key == before)
    {
        selected.truncate(pos);
    }
    if q.reverse {
        selected.reverse();
    }
    if let Some(limit) = q.limit {
        selected.truncate(limit);
    }
    selected.into_iter().cloned().collect()
}
