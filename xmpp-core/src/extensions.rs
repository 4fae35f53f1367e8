//! Typed slots for state that modules share through a host or the server
//! (Prosody keeps such state as fields on `hosts[host]` or `prosody`, e.g.
//! `roster_cache`): one value per type, created on first use.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One shared value per type.
#[derive(Default)]
pub struct Extensions {
    map: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// The value of type `T`, created with `T::default()` on first use.
    pub fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        match entry.clone().downcast::<T>() {
            Ok(v) => v,
            Err(_) => {
                // Unreachable: the key is T's TypeId. Replace rather than panic.
                let fresh = Arc::new(T::default());
                *entry = fresh.clone();
                fresh
            }
        }
    }
}
