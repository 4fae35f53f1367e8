//! Archive stores of the `internal` driver: Prosody 0.12's `.list` files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lua_compat::datfile::{self, DatValue, archive};
use xmpp_core::stanza::Element;
use xmpp_core::storage::{ArchiveItem, ArchiveQuery, ArchiveStore, StorageError, StorageResult};

use super::internal::{Inner, dat_error};
use super::query::{self, ItemMeta};
use super::{new_id, paths};

/// Error text when an archive is full (Prosody's).
pub const QUOTA_LIMIT: &str = "quota-limit";

pub(super) struct InternalArchive {
    inner: Arc<Inner>,
    host: String,
    store: String,
}

impl InternalArchive {
    pub(super) fn new(inner: Arc<Inner>, host: &str, store: &str) -> InternalArchive {
        InternalArchive {
            inner,
            host: host.to_string(),
            store: store.to_string(),
        }
    }

    fn path(&self, user: Option<&str>) -> PathBuf {
        self.inner.dir.file(&self.host, &self.store, user, "list")
    }

    fn load(&self, path: &Path) -> StorageResult<Option<Vec<DatValue>>> {
        datfile::read_list_file(path, &self.inner.limits).map_err(dat_error)
    }

    fn set_count(&self, path: &Path, count: usize) {
        let mut counts = self
            .inner
            .item_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if counts.len() >= 1000 && !counts.contains_key(path) {
            counts.clear();
        }
        counts.insert(path.to_path_buf(), count);
    }

    fn cached_count(&self, path: &Path) -> Option<usize> {
        self.inner
            .item_counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .copied()
    }
}

fn corrupt(path: &Path, reason: String) -> StorageError {
    StorageError::Corrupt {
        path: path.display().to_string(),
        reason,
    }
}

/// Key, time and peer of each item, for [`query::select`].
fn metas<'a>(items: &'a [DatValue], path: &Path) -> StorageResult<Vec<ItemMeta<'a>>> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let t = item.as_table().ok_or_else(|| {
                corrupt(path, format!("item {} is a {}", i + 1, item.type_name()))
            })?;
            Ok(ItemMeta {
                key: match t.get_str("key").and_then(DatValue::as_str) {
                    Some(k) => k.into(),
                    None => (i + 1).to_string().into(),
                },
                when: archive::item_when(t).unwrap_or(0.0),
                with: t.get_str("with").and_then(DatValue::as_str).unwrap_or(""),
            })
        })
        .collect()
}

impl ArchiveStore for InternalArchive {
    fn append(
        &self,
        user: Option<&str>,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let path = self.path(user);
        let _guard = self.inner.write_guard(&path);
        let count = match self.cached_count(&path) {
            Some(n) => n,
            None => self.load(&path)?.map_or(0, |items| items.len()),
        };
        let limit = self.inner.item_limit(&self.host);
        if count >= limit {
            self.set_count(&path, count);
            return Err(StorageError::Other(format!(
                "{QUOTA_LIMIT}: {} holds {count} items, the limit is {limit}",
                path.display()
            )));
        }
        let key = new_id();
        let item = archive::item_to_dat(stanza, &key, when, with);
        let bytes =
            datfile::list_item_bytes(&item, &path.display().to_string()).map_err(dat_error)?;
        if let Err(e) = self.inner.dir.append(&path, &bytes) {
            self.inner
                .item_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&path);
            return Err(e);
        }
        self.set_count(&path, count + 1);
        Ok(key)
    }

    /// Prosody 0.12's keyed append: the whole list is rewritten without the
    /// key's old item and with the new one at the end.
    fn append_keyed(
        &self,
        user: Option<&str>,
        key: &str,
        stanza: &Element,
        when: f64,
        with: &str,
    ) -> StorageResult<String> {
        let path = self.path(user);
        let _guard = self.inner.write_guard(&path);
        let items = self.load(&path)?.unwrap_or_default();
        let metas = metas(&items, &path)?;
        let keep: Vec<bool> = metas.iter().map(|m| m.key != key).collect();
        drop(metas);
        let mut kept: Vec<DatValue> = items
            .into_iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(item, _)| item)
            .collect();
        let limit = self.inner.item_limit(&self.host);
        if kept.len() >= limit {
            self.set_count(&path, kept.len());
            return Err(StorageError::Other(format!(
                "{QUOTA_LIMIT}: {} holds {} items, the limit is {limit}",
                path.display(),
                kept.len()
            )));
        }
        kept.push(archive::item_to_dat(stanza, key, when, with));
        let bytes = datfile::list_bytes(&kept, &path.display().to_string()).map_err(dat_error)?;
        self.inner.dir.write_atomic(&path, &bytes)?;
        self.set_count(&path, kept.len());
        Ok(key.to_string())
    }

    fn find(&self, user: Option<&str>, q: &ArchiveQuery) -> StorageResult<Vec<ArchiveItem>> {
        let path = self.path(user);
        let items = {
            let _guard = self.inner.read_guard(&path);
            self.load(&path)?
        };
        let Some(items) = items else {
            query::check_empty_archive(q)?;
            return Ok(Vec::new());
        };
        let selected = query::select(&metas(&items, &path)?, q)?;
        selected
            .into_iter()
            .map(|i| {
                archive::item_from_dat(&items[i], i + 1).map_err(|e| corrupt(&path, e.to_string()))
            })
            .collect()
    }

    fn delete(&self, user: Option<&str>, q: &ArchiveQuery) -> StorageResult<usize> {
        let path = self.path(user);
        let _guard = self.inner.write_guard(&path);
        if query::is_empty(q) {
            // Everything goes; a count is given when the file can be read.
            let count = match self.load(&path) {
                Ok(items) => items.map_or(0, |i| i.len()),
                Err(e) => {
                    tracing::warn!("deleting unreadable archive: {e}");
                    0
                }
            };
            paths::remove_if_exists(&path)?;
            self.set_count(&path, 0);
            return Ok(count);
        }
        let Some(items) = self.load(&path)? else {
            return Ok(0);
        };
        let doomed = query::select(&metas(&items, &path)?, q)?;
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut remove = vec![false; items.len()];
        for i in &doomed {
            remove[*i] = true;
        }
        let kept: Vec<DatValue> = items
            .into_iter()
            .zip(remove)
            .filter(|(_, gone)| !gone)
            .map(|(item, _)| item)
            .collect();
        if kept.is_empty() {
            paths::remove_if_exists(&path)?;
        } else {
            let bytes =
                datfile::list_bytes(&kept, &path.display().to_string()).map_err(dat_error)?;
            self.inner.dir.write_atomic(&path, &bytes)?;
        }
        self.set_count(&path, kept.len());
        Ok(doomed.len())
    }
}
