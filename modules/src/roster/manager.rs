//! Prosody's `core/rostermanager.lua`: loading, caching and saving rosters,
//! roster pushes, and the subscription state machine of RFC 6121 §3 as
//! Prosody implements it (with pre-approval, §3.4).
//!
//! Rosters are cached per host ([`RosterCache`], Prosody's `roster_cache`
//! plus `bare_sessions[jid].roster`): a roster stays loaded while its user has
//! bound resources, and up to [`CACHE_SIZE`] rosters of offline users are
//! kept besides. Changes are saved at once; as in Prosody, a user without an
//! account is never saved (their roster lives only in the cache).
//!
//! Locks are never held while stanzas are sent: callers get copies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageError;
use xmpp_core::{Host, Jid, Server};

use super::item::{Roster, RosterItem, Subscription};

/// How many offline users' rosters a host keeps loaded (Prosody: 1024).
pub const CACHE_SIZE: usize = 1024;

/// A loaded roster, shared by everything that uses it.
pub type SharedRoster = Arc<Mutex<Roster>>;

/// The rosters a host has loaded, by username.
#[derive(Default)]
pub struct RosterCache {
    rosters: Mutex<HashMap<String, SharedRoster>>,
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

fn bare_of(user: &str, host: &Host) -> Option<Jid> {
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
    if map.len() >= CACHE_SIZE {
        evict_offline(server, host, &mut map);
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
fn save_logged(host: &Host, user: &str, roster: &mut Roster) -> bool {
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

/// The subscription `user@host` has for `jid` if `user` is online (Prosody's
/// `_get_online_roster_subscription`): `None` when offline.
fn online_subscription(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> Option<Subscription> {
    let bare = bare_of(user, host)?;
    if server.sessions.resources(&bare).is_empty() {
        return None;
    }
    Some(with_roster(server, host, user, |r| {
        r.items
            .get(jid)
            .map(|i| i.subscription)
            .unwrap_or(Subscription::None)
    }))
}

/// The local user a bare JID names, with their host.
fn local_user(server: &Arc<Server>, jid: &str) -> Option<(Arc<Host>, String)> {
    let j = Jid::parse(jid).ok()?;
    let node = j.node()?.to_string();
    let h = server.host(j.domain())?;
    (!h.is_component()).then_some((h, node))
}

/// Does `jid` receive `user`'s presence (item `from`/`both`)? Online rosters
/// of either side answer first, as Prosody does. `Err` when the roster is broken.
pub fn is_contact_subscribed(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> Result<bool, RosterError> {
    if let Some(s) = online_subscription(server, host, user, jid) {
        return Ok(s.has_from());
    }
    let self_jid = bare_of(user, host)
        .map(|j| j.to_string())
        .unwrap_or_default();
    if let Some((ch, cu)) = local_user(server, jid)
        && let Some(s) = online_subscription(server, &ch, &cu, &self_jid)
    {
        return Ok(s.has_to());
    }
    with_roster(server, host, user, |r| {
        if r.broken {
            return Err(RosterError::Broken {
                user: user.into(),
                host: host.name.clone(),
            });
        }
        Ok(r.items.get(jid).is_some_and(|i| i.subscription.has_from()))
    })
}

/// Does `user` receive `jid`'s presence (item `to`/`both`)?
pub fn is_user_subscribed(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &str) -> bool {
    if let Some(s) = online_subscription(server, host, user, jid) {
        return s.has_to();
    }
    let self_jid = bare_of(user, host)
        .map(|j| j.to_string())
        .unwrap_or_default();
    if let Some((ch, cu)) = local_user(server, jid)
        && let Some(s) = online_subscription(server, &ch, &cu, &self_jid)
    {
        return s.has_from();
    }
    with_roster(server, host, user, |r| {
        r.items.get(jid).is_some_and(|i| i.subscription.has_to())
    })
}

pub fn is_contact_pending_in(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| r.pending.contains_key(jid))
}

/// Records an inbound request (kept whole, as Prosody 0.12 keeps it), unless
/// the contact is already subscribed.
pub fn set_contact_pending_in(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
    request: Option<&Element>,
) -> bool {
    with_roster(server, host, user, |r| {
        if r.items.get(jid).is_some_and(|i| i.subscription.has_from()) {
            return false;
        }
        r.pending.insert(jid.to_string(), request.cloned());
        save_logged(host, user, r)
    })
}

pub fn is_contact_pending_out(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        r.items.get(jid).is_some_and(|i| i.ask.is_some())
    })
}

pub fn is_contact_preapproved(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        r.items.get(jid).is_some_and(|i| i.approved)
    })
}

/// The user sent `subscribe`: `ask='subscribe'` (created if needed).
pub fn set_contact_pending_out(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        if r.items
            .get(jid)
            .is_some_and(|i| i.ask.is_some() || i.subscription.has_to())
        {
            return true;
        }
        r.items
            .entry(jid.to_string())
            .or_insert_with(|| RosterItem::new(Subscription::None))
            .ask = Some("subscribe".into());
        save_logged(host, user, r)
    })
}

/// The user sent `unsubscribe`.
pub fn unsubscribe(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &str) -> bool {
    with_roster(server, host, user, |r| {
        let Some(i) = r.items.get_mut(jid) else {
            return false;
        };
        if !i.subscription.has_to() && i.ask.is_none() {
            return true;
        }
        i.ask = None;
        i.subscription = match i.subscription {
            Subscription::Both => Subscription::From,
            Subscription::To => Subscription::None,
            s => s,
        };
        save_logged(host, user, r)
    })
}

/// The user sent `subscribed`: approves a pending request, or stores a
/// pre-approval when there is none (RFC 6121 §3.4).
pub fn subscribed(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &str) -> bool {
    with_roster(server, host, user, |r| {
        if r.pending.contains_key(jid) {
            let i = r
                .items
                .entry(jid.to_string())
                .or_insert_with(|| RosterItem::new(Subscription::None));
            i.subscription = if i.subscription == Subscription::None {
                Subscription::From
            } else {
                Subscription::Both
            };
            r.pending.remove(jid);
            return save_logged(host, user, r);
        }
        let current = r.items.get(jid).map(|i| i.subscription);
        if matches!(
            current,
            None | Some(Subscription::None) | Some(Subscription::To)
        ) {
            r.items
                .entry(jid.to_string())
                .or_insert_with(|| RosterItem::new(Subscription::None))
                .approved = true;
            tracing::debug!(host = %host.name, "storing pre-approval of {jid} for {user}");
            return save_logged(host, user, r);
        }
        false
    })
}

/// What the user's `unsubscribed` changed.
pub struct Unsubscribed {
    pub saved: bool,
    pub was_pending: bool,
    pub was_subscribed: bool,
}

/// The user sent `unsubscribed`: refuses a request or cancels a subscription.
pub fn unsubscribed(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &str) -> Unsubscribed {
    with_roster(server, host, user, |r| {
        let was_pending = r.pending.remove(jid).is_some();
        let mut was_subscribed = false;
        if let Some(i) = r.items.get_mut(jid) {
            match i.subscription {
                Subscription::From => {
                    i.subscription = Subscription::None;
                    was_subscribed = true;
                }
                Subscription::Both => {
                    i.subscription = Subscription::To;
                    was_subscribed = true;
                }
                _ => {}
            }
        }
        let saved = (was_pending || was_subscribed) && save_logged(host, user, r);
        Unsubscribed {
            saved,
            was_pending,
            was_subscribed,
        }
    })
}

/// The contact approved the user's request (`subscribed` came in).
pub fn process_inbound_subscription_approval(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        let Some(i) = r.items.get_mut(jid) else {
            return false;
        };
        if i.ask.is_none() {
            return false;
        }
        i.subscription = if i.subscription == Subscription::None {
            Subscription::To
        } else {
            Subscription::Both
        };
        i.ask = None;
        save_logged(host, user, r)
    })
}

/// The contact cancelled or refused (`unsubscribed` came in).
pub fn process_inbound_subscription_cancellation(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        let Some(i) = r.items.get_mut(jid) else {
            return false;
        };
        let mut changed = i.ask.take().is_some();
        match i.subscription {
            Subscription::To => {
                i.subscription = Subscription::None;
                changed = true;
            }
            Subscription::Both => {
                i.subscription = Subscription::From;
                changed = true;
            }
            _ => {}
        }
        changed && save_logged(host, user, r)
    })
}

/// The contact unsubscribed from the user's presence (`unsubscribe` came in).
pub fn process_inbound_unsubscribe(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    jid: &str,
) -> bool {
    with_roster(server, host, user, |r| {
        let mut changed = r.pending.remove(jid).is_some();
        if let Some(i) = r.items.get_mut(jid) {
            match i.subscription {
                Subscription::From => {
                    i.subscription = Subscription::None;
                    changed = true;
                }
                Subscription::Both => {
                    i.subscription = Subscription::To;
                    changed = true;
                }
                _ => {}
            }
        }
        changed && save_logged(host, user, r)
    })
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
