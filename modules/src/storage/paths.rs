//! Prosody's data directory layout (`util.datamanager`): where a store's
//! files are, how names are encoded into paths, and writing files so that a
//! crash never leaves half of one (when they reach the disk is
//! [`super::flusher`]'s part).
//!
//! ```text
//! DATA/<encode(host)>/<store_encode(store)>/<encode(user)>.dat   keyval, map
//! DATA/<encode(host)>/<store_encode(store)>/<encode(user)>.list  archive
//! DATA/<encode(host)>/<store_encode(store)>.dat                  no user
//! ```
//!
//! `encode` turns every byte that is not an ASCII letter or digit into
//! `%xx` (lowercase hex); `store_encode` keeps `_` as well. An encoded name
//! is never empty of meaning to the file system: it has no `/`, no NUL and
//! is never `.` or `..`, so no name can leave the data directory.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use xmpp_core::storage::StorageError;

use super::dat_cache::FileId;
use super::flusher::{self, Flusher, SyncMode};

/// Prosody's default `umask` option ("027"): directories 0750, files 0640.
pub const DEFAULT_UMASK: u32 = 0o027;

fn encode_with(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// `datamanager.path_encode`: user and host names.
pub fn encode(s: &str) -> String {
    encode_with(s, |b| b.is_ascii_alphanumeric())
}

/// Store names: as [`encode`], keeping underscores.
pub fn store_encode(s: &str) -> String {
    encode_with(s, |b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `datamanager.path_decode`: `%xx` back to bytes (other `%` stay).
/// `None` when the result is not UTF-8.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Maps an I/O error on `path` to a storage error.
pub fn io_error(path: &Path, source: io::Error) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The data directory, the permissions of what is created in it and when
/// what is written reaches the disk.
#[derive(Clone)]
pub struct DataDir {
    root: PathBuf,
    dir_mode: u32,
    file_mode: u32,
    flusher: Arc<Flusher>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("root", &self.root)
            .field("dir_mode", &self.dir_mode)
            .field("file_mode", &self.file_mode)
            .field("sync", &self.flusher.mode())
            .finish()
    }
}

impl DataDir {
    pub fn new(root: PathBuf, umask: u32, sync: SyncMode) -> DataDir {
        DataDir {
            root,
            dir_mode: 0o777 & !umask,
            file_mode: 0o666 & !umask,
            flusher: Arc::new(Flusher::new(sync)),
        }
    }

    /// When writes reach the disk.
    pub fn sync_mode(&self) -> SyncMode {
        self.flusher.mode()
    }

    /// Syncs every write not yet on disk (of `"batched"`) now.
    pub fn flush(&self) {
        self.flusher.flush();
    }

    /// How many written files wait for the background sync.
    #[cfg(test)]
    pub(super) fn pending_syncs(&self) -> usize {
        self.flusher.pending_files()
    }

    /// Writes `bytes` to a new file at `path`, synced if the mode says so.
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<FileId> {
        let mut f = self
            .open_options()
            .write(true)
            .create_new(true)
            .open(path)?;
        f.write_all(bytes)?;
        if self.flusher.inline() {
            f.sync_all()?;
        }
        Ok(FileId::of(&f.metadata()?))
    }

    /// After a new entry in `dir` for `path` (created or renamed): synced now
    /// or later, as the mode says.
    fn entry_written(&self, path: &Path, dir: &Path) -> Result<(), StorageError> {
        if self.flusher.inline() {
            flusher::sync_dir(dir).map_err(|e| io_error(dir, e))
        } else {
            self.flusher.written(path, Some(dir));
            Ok(())
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.root.join(encode(host))
    }

    pub fn store_dir(&self, host: &str, store: &str) -> PathBuf {
        self.host_dir(host).join(store_encode(store))
    }

    /// The file of `user` (or of the host) in a store; `ext` is `dat` or `list`.
    pub fn file(&self, host: &str, store: &str, user: Option<&str>, ext: &str) -> PathBuf {
        match user {
            Some(u) => self
                .store_dir(host, store)
                .join(format!("{}.{ext}", encode(u))),
            None => self
                .host_dir(host)
                .join(format!("{}.{ext}", store_encode(store))),
        }
    }

    fn ensure_dir(&self, dir: &Path) -> Result<(), StorageError> {
        let mut builder = DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, self.dir_mode);
        builder.create(dir).map_err(|e| io_error(dir, e))
    }

    fn open_options(&self) -> OpenOptions {
        let mut o = OpenOptions::new();
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, self.file_mode);
        o
    }

    /// Replaces `path` with `bytes`: written to a scratch file of this
    /// writer's own (`path~PID-N-RANDOM`), renamed over `path` (readers see
    /// the old file or the new, never part of one); file and directory
    /// synced as the [`SyncMode`] says. Returns the new file's identity.
    ///
    /// Prosody writes to `path~`; one fixed scratch name let one writer
    /// remove another's scratch file and rename it into place (issue 21:
    /// two `lilt register` of the same new account, or a running server and
    /// a `lilt` command, left the password of the one that failed). With a
    /// scratch file per writer, each write is whole and the last rename
    /// wins. The name ends in neither `.dat` nor `.list`, so no listing
    /// takes a leftover for data.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<FileId, StorageError> {
        let dir = parent(path);
        self.ensure_dir(dir)?;
        let scratch = scratch_name(path);
        let written = self
            .write_new(&scratch, bytes)
            .and_then(|id| fs::rename(&scratch, path).map(|()| id));
        let id = match written {
            Ok(id) => id,
            Err(e) => {
                let _ = fs::remove_file(&scratch);
                return Err(io_error(path, e));
            }
        };
        self.entry_written(path, dir)?;
        Ok(id)
    }

    /// Creates `path` with `bytes` unless it exists (`false` then): written
    /// to this writer's scratch file, then hard-linked to `path`,
    /// which fails if `path` exists, so the file appears whole and only
    /// once whoever else tries.
    pub fn create_exclusive(&self, path: &Path, bytes: &[u8]) -> Result<bool, StorageError> {
        let dir = parent(path);
        self.ensure_dir(dir)?;
        let scratch = scratch_name(path);
        let written = self.write_new(&scratch, bytes);
        let linked = written.and_then(|_| match fs::hard_link(&scratch, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        });
        let _ = fs::remove_file(&scratch);
        let created = linked.map_err(|e| io_error(path, e))?;
        if created {
            self.entry_written(path, dir)?;
        }
        Ok(created)
    }

    /// Appends `bytes` to `path` (created if missing) in one write, synced as
    /// the [`SyncMode`] says; on failure the file is cut back to its
    /// previous length, so no torn item is left for Prosody to choke on.
    /// Writers of one file must take turns (the caller's lock).
    pub fn append(&self, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        let dir = parent(path);
        self.ensure_dir(dir)?;
        let mut f = self
            .open_options()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let before = f.metadata().map_err(|e| io_error(path, e))?.len();
        let inline = self.flusher.inline();
        let written = f
            .write_all(bytes)
            .and_then(|()| if inline { f.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            let _ = f.set_len(before);
            return Err(io_error(path, e));
        }
        match (inline, before == 0) {
            (true, true) => flusher::sync_dir(dir).map_err(|e| io_error(dir, e)),
            (true, false) => Ok(()),
            (false, new) => {
                self.flusher.written(path, new.then_some(dir));
                Ok(())
            }
        }
    }
}

/// A scratch file name no other writer uses: the process id, a counter of
/// this process and 32 random bits (for another process that reuses a pid
/// of a crashed one).
fn scratch_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        "~{}-{n}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    PathBuf::from(name)
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Removes a file; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Names in `dir` ending in `.ext`, decoded, sorted; none if `dir` is missing.
pub fn list_names(dir: &Path, ext: &str) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let suffix = format!(".{ext}");
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(&suffix) {
            match decode(stem) {
                Some(n) => names.push(n),
                None => tracing::warn!(
                    "ignoring {}: name is not UTF-8 once decoded",
                    entry.path().display()
                ),
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The subdirectories of `dir` (raw, encoded names); none if `dir` is missing.
pub fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        if entry
            .file_type()
            .map_err(|e| io_error(&entry.path(), e))?
            .is_dir()
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_as_prosody() {
        assert_eq!(encode("example.com"), "example%2ecom");
        assert_eq!(encode("e.ve"), "e%2eve");
        assert_eq!(
            store_encode("pep_urn:xmpp:vcard4"),
            "pep_urn%3axmpp%3avcard4"
        );
        assert_eq!(encode("a_b"), "a%5fb");
        assert_eq!(encode("é"), "%c3%a9");
        assert_eq!(encode("../x"), "%2e%2e%2fx");
        assert_eq!(encode("a\0b"), "a%00b");
        assert_eq!(decode("e%2eve").as_deref(), Some("e.ve"));
        assert_eq!(decode("%c3%a9").as_deref(), Some("é"));
        assert_eq!(decode("100%").as_deref(), Some("100%"));
        assert_eq!(decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decode("%ff"), None);
    }

    #[test]
    fn paths_stay_inside_the_data_directory() {
        let d = DataDir::new(PathBuf::from("/data"), DEFAULT_UMASK, SyncMode::Never);
        for hostile in [
            "../../etc/passwd",
            "/etc/passwd",
            "..",
            ".",
            "a\0b",
            "x/../../y",
            "~",
            "",
        ] {
            let p = d.file(hostile, hostile, Some(hostile), "dat");
            assert!(p.starts_with("/data"), "{p:?}");
            let rel = p.strip_prefix("/data").unwrap();
            assert!(
                rel.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{p:?}"
            );
        }
    }
}
