//! The server's configuration as it is now: a config reload puts a new
//! [`ServerConfig`] snapshot in force, and every option read after that
//! ([`crate::Host::option`], `server.config.get_global(...)`) sees it.
//!
//! Readers borrow options (`Option<&Value>`) for as long as they hold the
//! server or host, as they did when the config never changed. So a
//! replaced snapshot is kept, not freed: the snapshots form a chain that
//! only grows, and the current one is its last. A reload that changes
//! nothing adds nothing (the reloader only calls [`LiveConfig::replace`]
//! when an option or host differs), so the chain is as long as the number
//! of reloads that changed the config, each a few kilobytes.

use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::ServerConfig;

struct Snapshot {
    config: Arc<ServerConfig>,
    next: OnceLock<Box<Snapshot>>,
}

/// A swappable configuration: dereferences to the snapshot in force.
pub struct LiveConfig {
    first: Snapshot,
    /// Serialises writers (readers take no lock).
    writing: Mutex<()>,
}

impl LiveConfig {
    pub fn new(config: Arc<ServerConfig>) -> LiveConfig {
        LiveConfig {
            first: Snapshot {
                config,
                next: OnceLock::new(),
            },
            writing: Mutex::new(()),
        }
    }

    fn last(&self) -> &Snapshot {
        let mut at = &self.first;
        while let Some(next) = at.next.get() {
            at = next;
        }
        at
    }

    /// The snapshot in force.
    pub fn current(&self) -> &Arc<ServerConfig> {
        &self.last().config
    }

    /// Puts `config` in force for every read from now on.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut pending = Box::new(Snapshot {
            config,
            next: OnceLock::new(),
        });
        // Only writers set `next`, and they hold the lock: the first try
        // succeeds; the loop is for the type, not for a race.
        loop {
            match self.last().next.set(pending) {
                Ok(()) => return,
                Err(back) => pending = back,
            }
        }
    }

    /// How many snapshots have been in force (1 + changing reloads).
    pub fn generations(&self) -> usize {
        let mut n = 1;
        let mut at = &self.first;
        while let Some(next) = at.next.get() {
            at = next;
            n += 1;
        }
        n
    }
}

impl Deref for LiveConfig {
    type Target = ServerConfig;
    fn deref(&self) -> &ServerConfig {
        self.current()
    }
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig")
            .field("generations", &self.generations())
            .field("current", self.current())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn with(name: &str, v: i64) -> Arc<ServerConfig> {
        let mut c = ServerConfig::default();
        c.global.set(name, Value::Integer(v));
        Arc::new(c)
    }

    #[test]
    fn reads_see_the_latest_snapshot_and_old_borrows_stay_valid() {
        let live = LiveConfig::new(with("a", 1));
        let before = live.get_global("a");
        assert_eq!(before, Some(&Value::Integer(1)));
        live.replace(with("a", 2));
        live.replace(with("a", 3));
        assert_eq!(live.get_global("a"), Some(&Value::Integer(3)));
        // A value borrowed before the reloads is still the old one.
        assert_eq!(before, Some(&Value::Integer(1)));
        assert_eq!(live.generations(), 3);
    }

    #[test]
    fn concurrent_writers_all_land() {
        let live = Arc::new(LiveConfig::new(with("a", 0)));
        let threads: Vec<_> = (1..=8)
            .map(|i| {
                let live = live.clone();
                std::thread::spawn(move || live.replace(with("a", i)))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(live.generations(), 9);
    }
}
