//! The `internal` storage driver: Prosody's data directory, file for file
//! (`mod_storage_internal` over `util.datamanager`), so a Prosody data
//! directory is used in place and Prosody can read what lilt writes.
//!
//! - keyval: `DATA/host/store/user.dat` (`DATA/host/store.dat` without a
//!   user), a Lua table; setting nil or an empty table deletes the file;
//! - map: as in Prosody, the keys of the user's keyval table (storagemanager's
//!   map shim), read-modify-write;
//! - archive: `DATA/host/store/user.list`, one `item({...});` per item,
//!   appended; queries and deletions read the whole file (Prosody 0.12 keeps
//!   no index); at most `storage_archive_item_limit` (10000) items.
//!
//! Rewrites are atomic (scratch file, rename); appends are one write, cut
//! back on failure (`paths`). Rewriting a file keeps the key order and key
//! types it had, so unchanged data keeps its bytes.
//!
//! Locking ([`super::file_locks`]): one lock per file. Writers of one file
//! take turns; readers of a `.list` wait for its writer (an append is not
//! atomic to a reader); `.dat` readers take no lock (a rename is). Writes of
//! different users or stores never wait on each other. The files are shared
//! with nothing else while lilt runs (as with Prosody); parsed `.dat` files
//! are kept while the file on disk is unchanged ([`super::dat_cache`]), so a
//! file replaced from outside is read again.
//!
//! Durability (`internal_storage_sync`, [`super::flusher`]): an operation
//! returns once its bytes are written or renamed into place, so killing
//! lilt loses nothing acknowledged. By default (`"batched"`) a background
//! thread `fsync`s the files written within a second, many at once, for a
//! machine crash; `"always"` syncs before returning (one or two disk
//! flushes per write: at most a few hundred writes a second on an ordinary
//! disk, and all users' writes queue for it), `"never"` is Prosody 0.12's
//! behaviour (no `fsync` at all).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lua_compat::datfile::{self, DatError, DatValue, Limits};
use xmpp_core::config::ServerConfig;
use xmpp_core::storage::{
    ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError, StorageResult,
};
use xmpp_core::value::{Table, Value};

use super::dat_cache::DatCache;
use super::file_locks::{FileGuard, FileLocks};
use super::flusher::SyncMode;
use super::internal_archive::InternalArchive;
use super::paths::{self, DEFAULT_UMASK, DataDir};

/// Prosody's default `storage_archive_item_limit` for this driver.
pub const DEFAULT_ARCHIVE_ITEM_LIMIT: usize = 10_000;

/// State shared by the driver and the stores it opened.
pub(super) struct Inner {
    pub dir: DataDir,
    pub limits: Limits,
    /// One lock per file: writers take it exclusively, readers of
    /// appended files shared.
    pub locks: FileLocks,
    /// Parsed `.dat` files, while unchanged on disk.
    pub dat_cache: DatCache,
    /// Items per `.list` file, to check quotas without reading the file.
    pub item_counts: Mutex<HashMap<PathBuf, usize>>,
    umask: u32,
    default_item_limit: usize,
    host_item_limits: HashMap<String, usize>,
}

impl Inner {
    pub fn item_limit(&self, host: &str) -> usize {
        self.host_item_limits
            .get(host)
            .copied()
            .unwrap_or(self.default_item_limit)
    }

    /// Holds `path` alone (its other writers and readers wait).
    pub fn write_guard(&self, path: &Path) -> FileGuard<'_> {
        self.locks.write(path)
    }

    /// Holds `path` against its writers (other readers go on).
    pub fn read_guard(&self, path: &Path) -> FileGuard<'_> {
        self.locks.read(path)
    }
}

/// Maps a data file error to a storage error naming the file.
pub(super) fn dat_error(e: DatError) -> StorageError {
    match e {
        DatError::Io { path, source } => StorageError::Io { path, source },
        DatError::Serialize { path, reason } => {
            StorageError::Other(format!("cannot write {path}: {reason}"))
        }
        other => StorageError::Corrupt {
            path: other.path().to_string(),
            reason: other.reason(),
        },
    }
}

/// The `internal` driver over a data directory.
pub struct InternalDriver {
    inner: Arc<Inner>,
}

impl InternalDriver {
    /// A driver over `data_path`, with Prosody's defaults (`umask` 027,
    /// 10000 archive items) and batched syncs.
    pub fn new(data_path: PathBuf) -> InternalDriver {
        InternalDriver::build(
            data_path,
            DEFAULT_UMASK,
            DEFAULT_ARCHIVE_ITEM_LIMIT,
            HashMap::new(),
            Limits::default(),
            SyncMode::default(),
        )
    }

    /// A driver taking `umask` (global), `storage_archive_item_limit`
    /// (per host, else global) and `internal_storage_sync` (global) from the
    /// configuration.
    pub fn with_config(data_path: PathBuf, config: &ServerConfig) -> InternalDriver {
        let umask = match config.get_global("umask") {
            None => DEFAULT_UMASK,
            Some(v) => parse_umask(v).unwrap_or_else(|| {
                tracing::warn!("umask option {v:?} is not an octal mask; using 027");
                DEFAULT_UMASK
            }),
        };
        let default_limit = item_limit_option(config, None).unwrap_or(DEFAULT_ARCHIVE_ITEM_LIMIT);
        let hosts = config
            .hosts
            .iter()
            .filter_map(|h| item_limit_option(config, Some(&h.name)).map(|l| (h.name.clone(), l)))
            .collect();
        InternalDriver::build(
            data_path,
            umask,
            default_limit,
            hosts,
            Limits::default(),
            SyncMode::from_config(config),
        )
    }

    /// Changes the largest file the driver reads.
    pub fn with_limits(self, limits: Limits) -> InternalDriver {
        let inner = &self.inner;
        InternalDriver::build(
            inner.dir.root().to_path_buf(),
            inner.umask,
            inner.default_item_limit,
            inner.host_item_limits.clone(),
            limits,
            inner.dir.sync_mode(),
        )
    }

    /// Changes when writes reach the disk.
    pub fn with_sync(self, sync: SyncMode) -> InternalDriver {
        let inner = &self.inner;
        InternalDriver::build(
            inner.dir.root().to_path_buf(),
            inner.umask,
            inner.default_item_limit,
            inner.host_item_limits.clone(),
            inner.limits,
            sync,
        )
    }

    /// Syncs every write not yet on disk now (`"batched"` does it within
    /// its interval anyway, and when the driver is dropped).
    pub fn flush(&self) {
        self.inner.dir.flush();
    }

    #[cfg(test)]
    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    fn build(
        root: PathBuf,
        umask: u32,
        default_item_limit: usize,
        hosts: HashMap<String, usize>,
        limits: Limits,
        sync: SyncMode,
    ) -> Self {
        InternalDriver {
            inner: Arc::new(Inner {
                dir: DataDir::new(root, umask, sync),
                limits,
                locks: FileLocks::default(),
                dat_cache: DatCache::default(),
                item_counts: Mutex::new(HashMap::new()),
                umask,
                default_item_limit,
                host_item_limits: hosts,
            }),
        }
    }

    /// The data directory.
    pub fn data_path(&self) -> &Path {
        self.inner.dir.root()
    }
}

fn parse_umask(v: &Value) -> Option<u32> {
    match v {
        Value::String(s) => u32::from_str_radix(s.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o777),
        _ => None,
    }
}

fn item_limit_option(config: &ServerConfig, host: Option<&str>) -> Option<usize> {
    let v = config.get(host, "storage_archive_item_limit")?;
    v.as_i64().and_then(|n| usize::try_from(n).ok())
}

fn check_host(host: &str) -> StorageResult<()> {
    if host.is_empty() {
        return Err(StorageError::Other(
            "storage opened for an empty host name".into(),
        ));
    }
    Ok(())
}

impl StorageDriver for InternalDriver {
    fn name(&self) -> &str {
        "internal"
    }

    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        check_host(host)?;
        Ok(Arc::new(InternalKeyval::new(
            self.inner.clone(),
            host,
            store,
        )))
    }

    fn open_map(&self, host: &str, store: &str) -> StorageResult<Arc<dyn MapStore>> {
        check_host(host)?;
        Ok(Arc::new(InternalMap {
            kv: InternalKeyval::new(self.inner.clone(), host, store),
        }))
    }

    fn open_archive(&self, host: &str, store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        check_host(host)?;
        Ok(Arc::new(InternalArchive::new(
            self.inner.clone(),
            host,
            store,
        )))
    }

    /// As `datamanager.purge`: the user's `.dat` and `.list` in every store
    /// directory of the host.
    fn purge_user(&self, host: &str, user: &str) -> StorageResult<()> {
        check_host(host)?;
        let file_base = paths::encode(user);
        let mut first_error = None;
        for dir in paths::subdirs(&self.inner.dir.host_dir(host))? {
            for ext in ["dat", "list"] {
                let path = dir.join(format!("{file_base}.{ext}"));
                let _guard = self.inner.write_guard(&path);
                self.inner.dat_cache.forget(&path);
                if let Err(e) = paths::remove_if_exists(&path) {
                    tracing::warn!("purging {user}@{host}: {e}");
                    first_error.get_or_insert(e);
                }
                self.inner
                    .item_counts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&path);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A keyval store: one `.dat` file per user.
pub(super) struct InternalKeyval {
    inner: Arc<Inner>,
    host: String,
    store: String,
}

impl InternalKeyval {
    fn new(inner: Arc<Inner>, host: &str, store: &str) -> InternalKeyval {
        InternalKeyval {
            inner,
            host: host.to_string(),
            store: store.to_string(),
        }
    }

    fn path(&self, user: Option<&str>) -> PathBuf {
        self.inner.dir.file(&self.host, &self.store, user, "dat")
    }

    fn load(&self, path: &Path) -> StorageResult<Option<Arc<DatValue>>> {
        self.inner.dat_cache.read(path, &self.inner.limits)
    }

    /// Removes the file (the file's write lock held).
    fn remove_at(&self, path: &Path) -> StorageResult<()> {
        self.inner.dat_cache.forget(path);
        paths::remove_if_exists(path)
    }

    fn get_at(&self, path: &Path) -> StorageResult<Option<Value>> {
        match self.load(path)? {
            None => Ok(None),
            Some(d) => to_value(&d, path).map(Some),
        }
    }

    /// Writes (the file's write lock held). Nil or an empty table removes the file.
    fn store_at(&self, path: &Path, value: Option<&Value>) -> StorageResult<()> {
        let value = match value {
            None => return self.remove_at(path),
            Some(Value::Table(t)) if t.is_empty() => return self.remove_at(path),
            Some(v) => v,
        };
        // The file's current shape, so rewriting keeps key order and types.
        let template = match self.load(path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("overwriting unreadable {}: {e}", path.display());
                None
            }
        };
        self.write_at(path, value, template.as_deref())
    }

    /// Writes `value` (not empty) shaped after `template`, the file as it
    /// is now (the file's write lock held).
    fn write_at(
        &self,
        path: &Path,
        value: &Value,
        template: Option<&DatValue>,
    ) -> StorageResult<()> {
        let data = DatValue::from_value(value, template);
        let bytes = datfile::dat_bytes(&data, &path.display().to_string()).map_err(dat_error)?;
        self.inner.dat_cache.forget(path);
        let id = self.inner.dir.write_atomic(path, &bytes)?;
        self.inner
            .dat_cache
            .wrote(path, id, &bytes, &self.inner.limits);
        Ok(())
    }
}

fn to_value(d: &DatValue, path: &Path) -> StorageResult<Value> {
    d.to_value().map_err(|e| StorageError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl KeyValueStore for InternalKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        self.get_at(&self.path(user))
    }

    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let path = self.path(user);
        let _guard = self.inner.write_guard(&path);
        self.store_at(&path, value.as_ref())
    }

    fn users(&self) -> StorageResult<Vec<String>> {
        paths::list_names(&self.inner.dir.store_dir(&self.host, &self.store), "dat")
    }

    /// The whole file appears at once, and only if there was none, also
    /// against another process writing the same store (`lilt adduser`
    /// beside a running server).
    fn create(&self, user: Option<&str>, value: Value) -> StorageResult<bool> {
        let path = self.path(user);
        let _guard = self.inner.write_guard(&path);
        let data = DatValue::from_value(&value, None);
        let bytes = datfile::dat_bytes(&data, &path.display().to_string()).map_err(dat_error)?;
        self.inner.dat_cache.forget(&path);
        self.inner.dir.create_exclusive(&path, &bytes)
    }
}

/// A map store: the keys of the user's keyval table.
struct InternalMap {
    kv: InternalKeyval,
}

impl MapStore for InternalMap {
    fn get(&self, user: Option<&str>, key: &str) -> StorageResult<Option<Value>> {
        let path = self.kv.path(user);
        match self.kv.get_at(&path)? {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(t.map.get(key).cloned()),
            Some(other) => Err(not_a_table(&path, &other)),
        }
    }

    fn set(&self, user: Option<&str>, key: &str, value: Option<Value>) -> StorageResult<()> {
        let path = self.kv.path(user);
        let _guard = self.kv.inner.write_guard(&path);
        // Read once: the table to change and the shape to keep.
        let current = self.kv.load(&path)?;
        let mut table = match current.as_deref().map(|d| to_value(d, &path)).transpose()? {
            None => Table::new(),
            Some(Value::Table(t)) => t,
            Some(other) => return Err(not_a_table(&path, &other)),
        };
        match value {
            Some(v) => table.insert(key, v),
            None => {
                table.map.remove(key);
            }
        }
        if table.is_empty() {
            return self.kv.remove_at(&path);
        }
        self.kv
            .write_at(&path, &Value::Table(table), current.as_deref())
    }
}

fn not_a_table(path: &Path, v: &Value) -> StorageError {
    StorageError::Corrupt {
        path: path.display().to_string(),
        reason: format!(
            "a map store needs a table, this file holds a {}",
            v.type_name()
        ),
    }
}
