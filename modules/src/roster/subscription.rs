//! The subscription state machine of `core/rostermanager.lua` (RFC 6121 §3,
//! with pre-approval, §3.4): what each subscription stanza does to the
//! rosters of the user who sends it and of the contact who receives it, and
//! the subscription questions mod_presence and mod_disco ask. Re-exported by
//! [`super::manager`], as Prosody keeps them in one library.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Jid, Server};

use super::item::{RosterItem, Subscription};
use super::manager::{RosterError, bare_of, save_logged, with_roster};

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
