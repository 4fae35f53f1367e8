//! Prosody's `core/rostermanager.lua`: loading, caching and saving rosters,
//! and roster pushes. The subscription state machine is in
//! [`super::subscription`], re-exported here as Prosody keeps both in one place.
//!
//! Rosters are cached per host ([`RosterCache`], Prosody's `roster_cache`
//! plus `bare_sessions[jid].roster`): a roster stays loaded while its user has
//! bound resources, and up to [`CACHE_SIZE`] rosters of offline users are
//! kept besides. Changes are saved at once; as in Prosody, a user without an
//! account is never saved (their roster lives only in the cache).
//!
//! Locks are never held while stanzas are sent: callers get copies.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageError;
use xmpp_core::{Host, Jid, Server};

use super::item::{Roster, RosterItem};
pub use super::subscription::*;

/// How many offline users' rosters a host keeps loaded (Prosody: 1024).
pub const CACHE_SIZE: usize = 1024;

/// A loaded roster, shared by everything that uses it.
pub type SharedRoster = Arc<Mutex<Roster>>;

/// The rosters a host has loaded, by username.
#[derive(Default)]
pub struct RosterCache {
    rosters: Mutex<HashMap<String, SharedRoster>>,
    /// Size at which offline users' rosters are next looked for (at least
    /// [`CACHE_SIZE`]): online users' rosters stay, so with many users online
    /// the scan waits for [`CACHE_SIZE`] more loads instead of running at
    /// every one (it walks every cached roster).
    next_eviction: AtomicUsize,
}

/// Why a roster was not saved.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("not saving roster of {user}@{host}: the user does not exist")]
    NoSuchUser { user: String, host: String },
    #[error("not saving broken roster of {user}@{host} (it failed to load)")]
    Broken { user: String, host: String },
    #[error("saving roster of {user}@{host}: {source}")]
    Storage {
        user: String,
        host: String,
        #[source]
        source: StorageError,
    },
}

/// Locks a roster (a poisoned lock still holds a usable roster).
pub fn lock(r: &SharedRoster) -> MutexGuard<'_, Roster> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn bare_of(user: &str, host: &Host) -> Option<Jid> {
    Jid::from_parts(Some(user), &host.name, None).ok()
}

/// Prosody's `load_roster`: the cached roster, else the stored one.
pub fn load_roster(server: &Arc<Server>, host: &Arc<Host>, user: &str) -> SharedRoster {
    let cache = host.extension::<RosterCache>();
    if let Some(r) = cache
        .rosters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(user)
    {
        return r.clone();
    }
    let self_jid = bare_of(user, host)
        .map(|j| j.to_string())
        .unwrap_or_default();
    let (mut roster, legacy_pending, loaded) =
        match host.open_keyval("roster").and_then(|s| s.get(Some(user))) {
            Ok(v) => {
                let (r, legacy) = Roster::from_value(v.as_ref());
                (r, legacy, true)
            }
            Err(e) => {
                tracing::error!(host = %host.name, "could not load roster of {user}: {e}");
                (
                    Roster {
                        broken: true,
                        ..Roster::default()
                    },
                    false,
                    false,
                )
            }
        };
    // Two separate saves, as Prosody makes them (each bumps the version).
    if legacy_pending {
        tracing::debug!(host = %host.name, "removing legacy 'pending' entry from the roster of {user}");
        if let Err(e) = save_roster(host, user, &mut roster) {
            tracing::warn!(host = %host.name, "could not remove legacy 'pending' entry: {e}");
        }
    }
    if roster.items.remove(&self_jid).is_some() {
        tracing::debug!(host = %host.name, "roster of {user} had a self-contact, removing");
        if let Err(e) = save_roster(host, user, &mut roster) {
            tracing::warn!(host = %host.name, "could not remove self-contact: {e}");
        }
    }
    let shared = Arc::new(Mutex::new(roster));
    let mut map = cache.rosters.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = map.get(user) {
        // Loaded concurrently: keep the first.
        return r.clone();
    }
    if map.len() >= cache.next_eviction.load(Ordering::Relaxed).max(CACHE_SIZE) {
        evict_offline(server, host, &mut map);
        cache
            .next_eviction
            .store(map.len() + CACHE_SIZE, Ordering::Relaxed);
    }
    map.insert(user.to_string(), shared.clone());
    drop(map);
    if loaded {
        let mut ev = xmpp_core::Event::new(server, "roster-load")
            .with_field("username", user)
            .with_field("host", host.name.as_str());
        server.fire_on_host(host, "roster-load", &mut ev);
    }
    shared
}

fn evict_offline(server: &Server, host: &Host, map: &mut HashMap<String, SharedRoster>) {
    map.retain(|user, _| {
        bare_of(user, host).is_some_and(|j| !server.sessions.resources(&j).is_empty())
    });
}

/// Prosody's `save_roster`: bumps the version and stores the whole roster.
pub fn save_roster(host: &Host, user: &str, roster: &mut Roster) -> Result<(), RosterError> {
    if !host.user_exists(user) {
        return Err(RosterError::NoSuchUser {
            user: user.into(),
            host: host.name.clone(),
        });
    }
    roster.bump_version();
    if roster.broken {
        return Err(RosterError::Broken {
            user: user.into(),
            host: host.name.clone(),
        });
    }
    let store = host
        .open_keyval("roster")
        .map_err(|source| RosterError::Storage {
            user: user.into(),
            host: host.name.clone(),
            source,
        })?;
    store
        .set(Some(user), Some(roster.to_value()))
        .map_err(|source| RosterError::Storage {
            user: user.into(),
            host: host.name.clone(),
            source,
        })
}

/// Saves and logs a failure; `true` when saved (Prosody's truthy result).
pub(super) fn save_logged(host: &Host, user: &str, roster: &mut Roster) -> bool {
    match save_roster(host, user, roster) {
        Ok(()) => true,
        Err(e @ RosterError::NoSuchUser { .. }) => {
            tracing::debug!(host = %host.name, "{e}");
            false
        }
        Err(e) => {
            tracing::warn!(host = %host.name, "{e}");
            false
        }
    }
}

/// Runs `f` on the loaded roster of `user` under its lock.
pub fn with_roster<T>(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    f: impl FnOnce(&mut Roster) -> T,
) -> T {
    let shared = load_roster(server, host, user);
    let mut guard = lock(&shared);
    f(&mut guard)
}

/// Sets (or with `None` removes) an item and saves; on failure the old item
/// is restored (Prosody's `add_to_roster`/`remove_from_roster`).
pub fn set_item(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
    item: Option<RosterItem>,
) -> Result<(), RosterError> {
    with_roster(server, host, user, |r| {
        let old = match item {
            Some(i) => r.items.insert(jid.to_string(), i),
            None => r.items.remove(jid),
        };
        let result = save_roster(host, user, r);
        if result.is_err() {
            match old {
                Some(o) => r.items.insert(jid.to_string(), o),
                None => r.items.remove(jid),
            };
        }
        result
    })
}

/// A fresh id for a server-generated IQ (Prosody's `util.id.short`).
pub fn new_id() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| {
            char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
                    [rng.gen_range(0..64)],
            )
        })
        .collect()
}

/// Prosody's `roster_push`: tells the user's interested resources that the
/// item for `jid` changed (or went: `subscription='remove'`).
pub fn roster_push(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &str) {
    let Some(bare) = bare_of(user, host) else {
        return;
    };
    let sessions = server.sessions.resources(&bare);
    if sessions.is_empty() {
        return;
    }
    let (item, ver) = with_roster(server, host, user, |r| {
        (r.items.get(jid).cloned(), r.version_string())
    });
    let item_el = match item {
        Some(i) => i.to_element(jid),
        None => Element::new("item", super::NS_ROSTER)
            .attr("jid", jid)
            .attr("subscription", "remove"),
    };
    let push = Element::new("iq", NS_CLIENT)
        .attr("type", "set")
        .attr("id", new_id())
        .child(
            Element::new("query", super::NS_ROSTER)
                .attr("ver", ver)
                .child(item_el),
        );
    for s in sessions {
        if s.state().interested {
            s.send(push.clone());
        }
    }
}

/// Contacts whose item matches `pred`, with the item (a copy).
pub fn contacts(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    pred: impl Fn(&RosterItem) -> bool,
) -> Vec<(String, RosterItem)> {
    with_roster(server, host, user, |r| {
        r.items
            .iter()
            .filter(|(_, i)| pred(i))
            .map(|(j, i)| (j.clone(), i.clone()))
            .collect()
    })
}

/// The pending inbound requests (a copy).
pub fn pending_in(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
) -> Vec<(String, Option<Element>)> {
    with_roster(server, host, user, |r| {
        r.pending
            .iter()
            .map(|(j, s)| (j.clone(), s.clone()))
            .collect()
    })
}

/// Forgets a user's cached roster (after account deletion).
pub fn forget(host: &Host, user: &str) {
    host.extension::<RosterCache>()
        .rosters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(user);
}
