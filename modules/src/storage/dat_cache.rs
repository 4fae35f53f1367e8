//! The parsed `.dat` files of the `internal` driver, kept while the file
//! on disk is the one they were parsed from.
//!
//! Reading a `.dat` file costs a Lua evaluation (`lua_compat::datfile`
//! checks its literal parse against Lua's), and a keyval or map write reads
//! the file first (the shape to keep, the table to change). An entry is
//! keyed by path and holds the identity of the file it came from (device,
//! inode, length, modification time): a file replaced by anyone (lilt, a
//! `lilt` command, Prosody) is a new inode, so a stale entry is never used,
//! only missed. After its own write the driver keeps the literal parse of
//! the bytes it wrote (its serializer's output, which the literal parser
//! reads as Lua does) under the new file's identity.

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use lua_compat::datfile::{self, DatValue, Limits, literal};
use xmpp_core::storage::StorageResult;

use super::internal::dat_error;
use super::paths::io_error;

/// Entries kept at most; the table starts over when full.
const MAX_ENTRIES: usize = 1000;

/// Which file on disk a parse came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

#[derive(Default)]
pub(super) struct DatCache {
    entries: Mutex<HashMap<PathBuf, (FileId, Arc<DatValue>)>>,
}

impl DatCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<PathBuf, (FileId, Arc<DatValue>)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, path: &Path, id: FileId, value: Arc<DatValue>) {
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(path) {
            entries.clear();
        }
        entries.insert(path.to_path_buf(), (id, value));
    }

    /// The file at `path` parsed (`None`: no such file), from the cache if
    /// the file is still the one parsed.
    pub fn read(&self, path: &Path, limits: &Limits) -> StorageResult<Option<Arc<DatValue>>> {
        // The identity is taken before reading: if the file is replaced in
        // between, the entry pairs an older identity with newer contents,
        // which the path never has again, so it is only a miss.
        let id = match std::fs::metadata(path) {
            Ok(meta) => FileId::of(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.forget(path);
                return Ok(None);
            }
            Err(e) => return Err(io_error(path, e)),
        };
        if let Some((cached_id, value)) = self.entries().get(path)
            && *cached_id == id
        {
            return Ok(Some(value.clone()));
        }
        match datfile::read_dat_file(path, limits).map_err(dat_error)? {
            None => {
                self.forget(path);
                Ok(None)
            }
            Some(v) => {
                let v = Arc::new(v);
                self.insert(path, id, v.clone());
                Ok(Some(v))
            }
        }
    }

    /// `bytes` were just written to `path`, the file `id`. A file too
    /// large to read is not kept: reading it is an error.
    pub fn wrote(&self, path: &Path, id: FileId, bytes: &[u8], limits: &Limits) {
        if bytes.len() as u64 > limits.max_file_size {
            self.forget(path);
            return;
        }
        match literal::parse_dat(bytes) {
            Ok(Some(v)) => self.insert(path, id, Arc::new(v)),
            _ => self.forget(path),
        }
    }

    pub fn forget(&self, path: &Path) {
        self.entries().remove(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn table(n: i64) -> DatValue {
        let mut t = datfile::DatTable::default();
        t.insert_str("n", DatValue::Integer(n));
        DatValue::Table(t)
    }

    #[test]
    fn a_file_replaced_behind_the_cache_is_read_again() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("u.dat");
        let limits = Limits::default();
        let cache = DatCache::default();
        std::fs::write(&path, datfile::dat_bytes(&table(1), "u").unwrap()).unwrap();
        let first = cache.read(&path, &limits).unwrap().unwrap();
        assert_eq!(*first, table(1));
        // Another writer (Prosody, a lilt command) renames a new file in.
        let scratch = tmp.path().join("u.dat~");
        std::fs::write(&scratch, datfile::dat_bytes(&table(2), "u").unwrap()).unwrap();
        std::fs::rename(&scratch, &path).unwrap();
        assert_eq!(*cache.read(&path, &limits).unwrap().unwrap(), table(2));
        std::fs::remove_file(&path).unwrap();
        assert!(cache.read(&path, &limits).unwrap().is_none());
    }
}
