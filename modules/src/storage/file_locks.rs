//! Locks of the `internal` driver, one per file: writers of one file take
//! turns, readers of an appended file (`.list`) wait for the writer of that
//! file, and nothing else waits. Two users' files, or two stores of one
//! user, never share a lock.
//!
//! A table of the paths someone holds or waits for; an entry goes once the
//! last holder and waiter is gone, so the table is as large as the number
//! of files in use at one moment. Waiting writers go before new readers, so
//! a stream of queries cannot starve appends. No I/O happens under the
//! table's own mutex.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Who holds or waits for one path.
#[derive(Default)]
struct Holders {
    readers: usize,
    writer: bool,
    writers_waiting: usize,
    waiting: usize,
}

impl Holders {
    fn idle(&self) -> bool {
        self.readers == 0 && !self.writer && self.waiting == 0
    }
}

/// The per-path lock table.
#[derive(Default)]
pub(super) struct FileLocks {
    table: Mutex<HashMap<PathBuf, Holders>>,
    released: Condvar,
}

/// A held lock on one path; released when dropped.
pub(super) struct FileGuard<'a> {
    locks: &'a FileLocks,
    path: PathBuf,
    exclusive: bool,
}

impl FileLocks {
    fn table(&self) -> MutexGuard<'_, HashMap<PathBuf, Holders>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `path` is free of readers and writers, then holds it alone.
    pub fn write(&self, path: &Path) -> FileGuard<'_> {
        let mut table = self.table();
        let h = table.entry(path.to_path_buf()).or_default();
        if h.writer || h.readers > 0 {
            h.waiting += 1;
            h.writers_waiting += 1;
            loop {
                table = self.released.wait(table).unwrap_or_else(|e| e.into_inner());
                let h = table.entry(path.to_path_buf()).or_default();
                if !h.writer && h.readers == 0 {
                    h.waiting -= 1;
                    h.writers_waiting -= 1;
                    break;
                }
            }
        }
        table.entry(path.to_path_buf()).or_default().writer = true;
        self.guard(path, true)
    }

    /// Waits until no writer holds or waits for `path`, then holds it
    /// together with other readers.
    pub fn read(&self, path: &Path) -> FileGuard<'_> {
        let mut table = self.table();
        let h = table.entry(path.to_path_buf()).or_default();
        if h.writer || h.writers_waiting > 0 {
            h.waiting += 1;
            loop {
                table = self.released.wait(table).unwrap_or_else(|e| e.into_inner());
                let h = table.entry(path.to_path_buf()).or_default();
                if !h.writer && h.writers_waiting == 0 {
                    h.waiting -= 1;
                    break;
                }
            }
        }
        table.entry(path.to_path_buf()).or_default().readers += 1;
        self.guard(path, false)
    }

    /// Holds `path` alone if nobody holds it now.
    #[cfg(test)]
    pub fn try_write(&self, path: &Path) -> Option<FileGuard<'_>> {
        let mut table = self.table();
        let h = table.entry(path.to_path_buf()).or_default();
        if h.writer || h.readers > 0 {
            if h.idle() {
                table.remove(path);
            }
            return None;
        }
        h.writer = true;
        drop(table);
        Some(self.guard(path, true))
    }

    /// How many paths are held or waited for.
    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.table().len()
    }

    fn guard(&self, path: &Path, exclusive: bool) -> FileGuard<'_> {
        FileGuard {
            locks: self,
            path: path.to_path_buf(),
            exclusive,
        }
    }
}

impl Drop for FileGuard<'_> {
    fn drop(&mut self) {
        let mut table = self.locks.table();
        let Some(h) = table.get_mut(&self.path) else {
            return;
        };
        if self.exclusive {
            h.writer = false;
        } else {
            h.readers = h.readers.saturating_sub(1);
        }
        let wake = h.waiting > 0;
        if h.idle() {
            table.remove(&self.path);
        }
        drop(table);
        if wake {
            self.locks.released.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_of_one_path_exclude_each_other_and_no_one_else() {
        let locks = FileLocks::default();
        let a = Path::new("/d/h/s/a.dat");
        let b = Path::new("/d/h/s/b.dat");
        let held = locks.write(a);
        assert!(locks.try_write(a).is_none());
        let other = locks.try_write(b).expect("another path is free");
        drop(other);
        drop(held);
        assert!(locks.try_write(a).is_some());
        assert_eq!(locks.in_use(), 0, "released entries leave the table");
    }

    #[test]
    fn readers_share_and_keep_writers_out() {
        let locks = FileLocks::default();
        let a = Path::new("/d/h/s/a.list");
        let r1 = locks.read(a);
        let r2 = locks.read(a);
        assert!(locks.try_write(a).is_none());
        drop(r1);
        assert!(locks.try_write(a).is_none());
        drop(r2);
        assert!(locks.try_write(a).is_some());
        assert_eq!(locks.in_use(), 0);
    }

    #[test]
    fn a_waiting_writer_gets_the_path_once_released() {
        let locks = std::sync::Arc::new(FileLocks::default());
        let a = PathBuf::from("/d/h/s/a.dat");
        let held = locks.write(&a);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = {
            let locks = locks.clone();
            let a = a.clone();
            std::thread::spawn(move || {
                let _g = locks.write(&a);
                tx.send(()).unwrap();
            })
        };
        // The writer cannot get in while the path is held.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the waiting writer runs once the path is free");
        t.join().unwrap();
        assert_eq!(locks.in_use(), 0);
    }
}
