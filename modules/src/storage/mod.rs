//! The storage drivers lilt has built in, by Prosody name:
//!
//! - [`internal`]: Prosody's data directory (`.dat` and `.list` files),
//!   byte-compatible, used in place;
//! - [`memory`]: in RAM, per driver instance;
//! - [`none`]: stores nothing.
//!
//! A host picks a driver per store with the `storage` option
//! (`xmpp_core::Host::open_keyval` and friends); [`register_builtin_drivers`]
//! makes the three known to a server. Archive queries follow Prosody's
//! semantics ([`query`]), including its `item-not-found` and `quota-limit`
//! errors (as [`StorageError::Other`] texts starting with those words).

use std::path::PathBuf;
use std::sync::Arc;

use rand::RngCore;
use xmpp_core::Server;
use xmpp_core::storage::StorageError;

mod dat_cache;
mod file_locks;
pub mod flusher;
pub mod internal;
mod internal_archive;
pub mod memory;
pub mod none;
pub mod paths;
pub mod query;

pub use flusher::SyncMode;
pub use internal::InternalDriver;
pub use internal_archive::QUOTA_LIMIT;
pub use memory::MemoryDriver;
pub use none::NoneDriver;
pub use query::{ITEM_NOT_FOUND, is_item_not_found};

/// Registers `internal` (over `data_path`, with the `umask` and
/// `storage_archive_item_limit` options of the server's configuration),
/// `memory` and `none` on `server.storage`.
pub fn register_builtin_drivers(server: &Server, data_path: PathBuf) {
    server
        .storage
        .register(Arc::new(InternalDriver::with_config(
            data_path,
            &server.config,
        )));
    let memory_limit = server
        .config
        .get_global("storage_archive_item_limit")
        .and_then(|v| v.as_i64())
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(memory::DEFAULT_ARCHIVE_ITEM_LIMIT);
    server
        .storage
        .register(Arc::new(MemoryDriver::with_item_limit(memory_limit)));
    server.storage.register(Arc::new(NoneDriver));
}

/// Is this the `quota-limit` error of an archive append?
pub fn is_quota_limit(e: &StorageError) -> bool {
    matches!(e, StorageError::Other(m) if m.starts_with(QUOTA_LIMIT))
}

/// A new archive item key as Prosody's `util.id.medium`: 18 random bytes
/// in URL-safe base64 (24 characters).
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(24);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod internal_concurrency_tests;
#[cfg(test)]
mod tests;
