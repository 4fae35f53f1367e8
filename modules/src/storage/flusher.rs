//! When the files the `internal` driver writes reach the disk
//! (`internal_storage_sync`).
//!
//! Every write is done (written, renamed into place) before the operation
//! returns, so a killed lilt (SIGKILL, a panic) loses nothing acknowledged:
//! the kernel has the bytes. What remains is a crash of the machine, and
//! for that the mode says how much an `fsync` may cost:
//!
//! - `"batched"` (the default): a background thread `fsync`s the files
//!   written and their directories at most `internal_storage_sync_interval`
//!   seconds (1) after the write, many files in one go. A machine crash
//!   loses at most the writes of that last interval; writers never wait
//!   for the disk.
//! - `"always"`: each write `fsync`s its file (and, after a rename or a new
//!   file, the directory) before it returns; nothing acknowledged is lost
//!   even to a power cut, at one or two disk flushes per write.
//! - `"never"`: as Prosody 0.12 (`util.datamanager` never `fsync`s): the
//!   kernel writes back when it likes (ext4: within about 30 s).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use xmpp_core::config::ServerConfig;
use xmpp_core::value::Value;

/// How long `"batched"` lets written files wait for their `fsync`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The `internal_storage_sync` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fsync` before each write returns.
    Always,
    /// `fsync` in the background, within this interval of the write.
    Batched(Duration),
    /// No `fsync` (Prosody's behaviour).
    Never,
}

impl Default for SyncMode {
    fn default() -> Self {
        SyncMode::Batched(DEFAULT_SYNC_INTERVAL)
    }
}

impl SyncMode {
    /// From `internal_storage_sync` (`"batched"`, `"always"`, `"never"`)
    /// and `internal_storage_sync_interval` (seconds, above 0, at most
    /// 3600); anything else is warned about and the default used.
    pub fn from_config(config: &ServerConfig) -> SyncMode {
        let interval = match config.get_global("internal_storage_sync_interval") {
            None => DEFAULT_SYNC_INTERVAL,
            Some(v) => match seconds(v) {
                Some(d) => d,
                None => {
                    tracing::warn!(
                        "internal_storage_sync_interval {v:?} is not a number of seconds \
                         above 0 and at most 3600; using 1"
                    );
                    DEFAULT_SYNC_INTERVAL
                }
            },
        };
        match config.get_global("internal_storage_sync") {
            None => SyncMode::Batched(interval),
            Some(Value::String(s)) if s == "batched" => SyncMode::Batched(interval),
            Some(Value::String(s)) if s == "always" => SyncMode::Always,
            Some(Value::String(s)) if s == "never" => SyncMode::Never,
            Some(v) => {
                tracing::warn!(
                    "internal_storage_sync {v:?} is not \"batched\", \"always\" or \"never\"; \
                     using \"batched\""
                );
                SyncMode::Batched(interval)
            }
        }
    }
}

fn seconds(v: &Value) -> Option<Duration> {
    let s = match v {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        _ => return None,
    };
    (s > 0.0 && s <= 3600.0).then(|| Duration::from_secs_f64(s))
}

/// Files and directories written and not yet synced.
#[derive(Default)]
struct Pending {
    files: HashSet<PathBuf>,
    dirs: HashSet<PathBuf>,
    /// A batch taken out of the sets is being synced.
    syncing: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Something was written, or stop.
    wake: Condvar,
    /// A batch was synced.
    synced: Condvar,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Syncs what the driver wrote, as its [`SyncMode`] says.
pub(super) struct Flusher {
    mode: SyncMode,
    shared: Arc<Shared>,
    /// The background thread of `Batched`, started at the first write.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Flusher {
    pub fn new(mode: SyncMode) -> Flusher {
        Flusher {
            mode,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    /// Does each write `fsync` itself before returning?
    pub fn inline(&self) -> bool {
        self.mode == SyncMode::Always
    }

    /// `file` was written; `dir` too when an entry in it appeared or was
    /// renamed. Only `Batched` keeps them, for the background thread.
    pub fn written(&self, file: &Path, dir: Option<&Path>) {
        let SyncMode::Batched(interval) = self.mode else {
            return;
        };
        {
            let mut p = self.shared.pending();
            p.files.insert(file.to_path_buf());
            if let Some(d) = dir {
                p.dirs.insert(d.to_path_buf());
            }
        }
        self.shared.wake.notify_one();
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            let shared = self.shared.clone();
            match std::thread::Builder::new()
                .name("storage-sync".into())
                .spawn(move || run(&shared, interval))
            {
                Ok(handle) => *thread = Some(handle),
                Err(e) => {
                    // Not fatal: the data is written; sync it here instead.
                    tracing::warn!("cannot start the storage sync thread ({e}); syncing inline");
                    drop(thread);
                    self.flush();
                }
            }
        }
    }

    /// Syncs everything written so far, now, and returns once it is on disk
    /// (also a batch the background thread is syncing).
    pub fn flush(&self) {
        let (files, dirs) = {
            let mut p = self.shared.pending();
            (std::mem::take(&mut p.files), std::mem::take(&mut p.dirs))
        };
        sync_batch(files, dirs);
        let mut p = self.shared.pending();
        while p.syncing {
            p = self
                .shared
                .synced
                .wait(p)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// How many files wait for their sync.
    #[cfg(test)]
    pub fn pending_files(&self) -> usize {
        self.shared.pending().files.len()
    }
}

impl Drop for Flusher {
    /// Syncs what is left and ends the thread.
    fn drop(&mut self) {
        self.shared.pending().stop = true;
        self.shared.wake.notify_all();
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = thread.take() {
            let _ = handle.join();
        }
        self.flush();
    }
}

/// The background thread: waits for a write, lets the interval pass (so
/// that the writes of that interval go in one batch), syncs them.
fn run(shared: &Shared, interval: Duration) {
    loop {
        let mut p = shared.pending();
        while p.files.is_empty() && p.dirs.is_empty() && !p.stop {
            p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        let deadline = Instant::now() + interval;
        while !p.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            p = shared
                .wake
                .wait_timeout(p, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let files = std::mem::take(&mut p.files);
        let dirs = std::mem::take(&mut p.dirs);
        let stop = p.stop;
        p.syncing = true;
        drop(p);
        sync_batch(files, dirs);
        shared.pending().syncing = false;
        shared.synced.notify_all();
        if stop {
            return;
        }
    }
}

/// Files first, then the directories whose entries point at them.
fn sync_batch(files: HashSet<PathBuf>, dirs: HashSet<PathBuf>) {
    for path in files.iter().chain(dirs.iter()) {
        match File::open(path).and_then(|f| f.sync_all()) {
            Ok(()) => {}
            // Deleted (or renamed away) since: nothing left to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("syncing {}: {e}", path.display()),
        }
    }
}

/// `fsync` of a directory, so that a new or renamed entry in it survives a
/// machine crash.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}
