//! Resumable sessions by resumption id (Prosody's
//! `/*/smacks/resumption-tokens`), hibernation, and taking a session over.
//!
//! A resumable stream registers its session under its id at `<enable/>`.
//! When its connection drops, the connection task hands the stream's
//! outbound receiver and smacks state over ([`hibernate`]): the session
//! stays bound and available, what is sent to it waits (and is counted
//! into the unacknowledged queue by a watchdog that also ends the session
//! after `smacks_hibernation_time`). A new stream of the same user that
//! sends `<resume previd=.../>` takes it all back ([`claim`]). If the old
//! connection is still up (the client noticed the failure first), it is
//! closed and asked to hand over; once it did, the resuming stream is woken
//! with an internal marker on its own outbound channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::StanzaError;
use crate::hooks::Event;
use crate::host::Host;
use crate::jid::Jid;
use crate::server::Server;
use crate::session::{Outbound, OutboundRx, OutboundTx, Session};
use crate::stanza::{Element, NS_CLIENT};
use crate::stream::{StreamEvent, StreamLimits, XmlStream};
use crate::value::{Table, Value};

use super::STORE_SMACKS_H;
use super::state::{Queued, SmacksState};

/// The namespace of the marker that wakes a resuming stream (never written).
pub(crate) const NS_TAKEOVER: &str = "urn:xmpp:lilt:smacks-takeover";

/// How often a hibernating session's outbound channel is moved into its
/// queue (and its deadline checked).
const WATCHDOG_TICK: Duration = Duration::from_secs(1);

/// What a hibernating session keeps.
pub struct Hibernated {
    pub jid: Jid,
    pub host: Arc<Host>,
    pub state: SmacksState,
    pub rx: OutboundRx,
    generation: u64,
}

impl Hibernated {
    pub fn new(
        jid: Jid,
        host: Arc<Host>,
        state: SmacksState,
        rx: impl Into<OutboundRx>,
    ) -> Hibernated {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Hibernated {
            jid,
            host,
            state,
            rx: rx.into(),
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Moves what waits in the outbound channel into the queue; true if
    /// the session was asked to close meanwhile.
    fn drain(&mut self, now: f64) -> bool {
        let from = self.jid.to_bare().to_string();
        let mut closed = false;
        while let Ok(out) = self.rx.try_recv() {
            match out {
                Outbound::Stanza(e) if e.ns() == NS_TAKEOVER => {}
                Outbound::Stanza(e) => self.state.sent(Queued::Stanza(e), &from, now),
                Outbound::Raw(parts) => self.state.sent(Queued::Raw(parts, now), &from, now),
                Outbound::Close(_) => closed = true,
            }
        }
        closed
    }
}

enum Slot {
    /// Its connection is up.
    Live,
    Hibernating(Box<Hibernated>),
    /// A new stream resumes it; wake that stream through this sender once
    /// the old connection handed over.
    Takeover(OutboundTx),
}

struct Entry {
    host: String,
    username: String,
    session: Arc<Session>,
    slot: Slot,
}

/// The resumable sessions of a server.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

/// What a `<resume/>` found.
pub enum Claim {
    NotFound,
    /// The session and what it kept; the caller owns them now.
    Hibernating(Arc<Session>, Box<Hibernated>),
    /// Its connection is still up and was asked to close and hand over.
    Live,
}

impl Registry {
    pub fn of(server: &Server) -> Arc<Registry> {
        server.extension::<Registry>()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream enabled resumption.
    pub fn register(&self, token: &str, host: &str, username: &str, session: &Arc<Session>) {
        self.lock().insert(
            token.to_string(),
            Entry {
                host: host.to_string(),
                username: username.to_string(),
                session: session.clone(),
                slot: Slot::Live,
            },
        );
    }

    /// The session ended for good: its id is no longer resumable.
    pub fn revoke(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Is a takeover of this id under way?
    pub fn takeover_requested(&self, token: &str) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|e| matches!(e.slot, Slot::Takeover(_)))
    }

    pub fn hibernating_count(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| matches!(e.slot, Slot::Hibernating(_)))
            .count()
    }

    /// Takes the hibernated state after a takeover woke the resumer.
    pub fn take_hibernated(&self, token: &str) -> Option<(Arc<Session>, Box<Hibernated>)> {
        let mut entries = self.lock();
        let entry = entries.get_mut(token)?;
        match std::mem::replace(&mut entry.slot, Slot::Live) {
            Slot::Hibernating(h) => Some((entry.session.clone(), h)),
            other => {
                entry.slot = other;
                None
            }
        }
    }
}

/// The username of the session resumable with id `previd` on `host`, if
/// there is one (hibernating or connected). `jitsi-anonymous` gives a
/// reconnecting client the account it had.
pub fn username_of_resumable(server: &Server, host: &str, previd: &str) -> Option<String> {
    Registry::of(server)
        .lock()
        .get(previd)
        .filter(|e| e.host == host)
        .map(|e| e.username.clone())
}

/// A `<resume previd=.../>` from `username` on `host`. A live connection
/// is closed and will wake the resumer through `poke`.
pub fn claim(server: &Server, token: &str, host: &str, username: &str, poke: &OutboundTx) -> Claim {
    let registry = Registry::of(server);
    let mut entries = registry.lock();
    let Some(entry) = entries
        .get_mut(token)
        .filter(|e| e.host == host && e.username == username)
    else {
        return Claim::NotFound;
    };
    match std::mem::replace(&mut entry.slot, Slot::Live) {
        Slot::Hibernating(h) => Claim::Hibernating(entry.session.clone(), h),
        Slot::Live | Slot::Takeover(_) => {
            entry.slot = Slot::Takeover(poke.clone());
            tracing::debug!(session = %entry.session.id, "closing the old connection of a resumed session");
            entry.session.close(None);
            Claim::Live
        }
    }
}

/// The connection of a resumable session dropped: keep the session for
/// `smacks_hibernation_time`. Gives the state back if the id was revoked.
pub fn hibernate(
    server: &Arc<Server>,
    token: &str,
    hibernated: Hibernated,
) -> Result<(), Box<Hibernated>> {
    // The watchdog needs a runtime (connection tasks always run in one).
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(Box::new(hibernated));
    };
    let registry = Registry::of(server);
    let mut entries = registry.lock();
    let Some(entry) = entries.get_mut(token) else {
        return Err(Box::new(hibernated));
    };
    let deadline = Instant::now() + hibernated.state.settings.hibernation;
    let generation = hibernated.generation;
    tracing::debug!(session = %entry.session.id, "hibernating for up to {:?}", hibernated.state.settings.hibernation);
    let previous = std::mem::replace(&mut entry.slot, Slot::Hibernating(Box::new(hibernated)));
    if let Slot::Takeover(poke) = previous {
        let _ = poke.send(Outbound::Stanza(Element::new("takeover", NS_TAKEOVER)));
    }
    let session = entry.session.clone();
    let host = server.host(&entry.host);
    drop(entries);
    if let Some(host) = host {
        let mut ev = Event::new(server, "smacks-hibernation-start").with_origin(&session);
        server.fire_on_host(&host, "smacks-hibernation-start", &mut ev);
    }
    let server = server.clone();
    let token = token.to_string();
    runtime.spawn(async move { watchdog(server, token, generation, deadline).await });
    Ok(())
}

/// Moves what is sent to a hibernating session into its queue, and ends
/// the session at its deadline (or when it was asked to close).
async fn watchdog(server: Arc<Server>, token: String, generation: u64, deadline: Instant) {
    loop {
        let wake = deadline.min(Instant::now() + WATCHDOG_TICK);
        tokio::time::sleep_until(wake.into()).await;
        let registry = Registry::of(&server);
        let ended = {
            let mut entries = registry.lock();
            let Some(entry) = entries.get_mut(&token) else {
                return;
            };
            let Slot::Hibernating(h) = &mut entry.slot else {
                return;
            };
            if h.generation != generation {
                return;
            }
            let closed = h.drain(server.clock.now());
            if closed || Instant::now() >= deadline {
                entries.remove(&token).map(|e| (e, closed))
            } else {
                None
            }
        };
        if let Some((entry, closed)) = ended {
            let reason = if closed {
                "Closed while hibernating"
            } else {
                "Hibernating too long"
            };
            expire(&server, &token, entry, reason, !closed);
            return;
        }
    }
}

/// A hibernating session is over: keep its `h` for a later `<failed/>`,
/// deal with its unacknowledged stanzas and unbind it (which broadcasts
/// its unavailable presence).
fn expire(server: &Arc<Server>, token: &str, entry: Entry, reason: &str, keep_h: bool) {
    let Entry {
        username,
        session,
        slot: Slot::Hibernating(mut h),
        ..
    } = entry
    else {
        return;
    };
    let session = &session;
    tracing::debug!(session = %session.id, "destroying session: {reason}");
    // Whatever reached its outbound channel since the last tick counts too
    // (closed first, so that nothing slips in after the drain).
    h.rx.close();
    h.drain(server.clock.now());
    if keep_h {
        remember_h(server, &h.host, &username, token, h.state.handled);
    }
    handle_unacked(server, &h.host, session, h.state.queue.take_all());
    if server.sessions.unbind(&h.jid, session) {
        let mut ev = Event::new(server, "resource-unbind")
            .with_origin(session)
            .with_field("error", reason);
        server.fire_on_host(&h.host, "resource-unbind", &mut ev);
    }
}

/// A bind of the same resource replaces `session`: if it hibernates, it
/// ends now (its id revoked, its unacknowledged stanzas handled, unbound
/// with `resource-unbind`), as Prosody's `pre-session-close` cancels the
/// watchdog at once. False if it was not hibernating.
pub fn destroy_hibernating(server: &Arc<Server>, session: &Arc<Session>, reason: &str) -> bool {
    let registry = Registry::of(server);
    let found = {
        let mut entries = registry.lock();
        let token = entries
            .iter()
            .find(|(_, e)| {
                Arc::ptr_eq(&e.session, session) && matches!(e.slot, Slot::Hibernating(_))
            })
            .map(|(t, _)| t.clone());
        token.and_then(|t| entries.remove(&t).map(|e| (t, e)))
    };
    let Some((token, entry)) = found else {
        return false;
    };
    expire(server, &token, entry, reason, false);
    true
}

/// The server stops (Prosody's `server-stopping`): every hibernating
/// session ends, its `h` kept in `smacks_h` for the `<failed h=.../>` a
/// client resuming after the restart gets, its unacknowledged stanzas
/// stored offline or bounced first.
pub fn server_stopping(server: &Arc<Server>) {
    let registry = Registry::of(server);
    let hibernating: Vec<(String, Entry)> = {
        let mut entries = registry.lock();
        let tokens: Vec<String> = entries
            .iter()
            .filter(|(_, e)| matches!(e.slot, Slot::Hibernating(_)))
            .map(|(t, _)| t.clone())
            .collect();
        tokens
            .into_iter()
            .filter_map(|t| entries.remove(&t).map(|e| (t, e)))
            .collect()
    };
    for (token, entry) in hibernating {
        expire(server, &token, entry, "Server is shutting down", true);
    }
}

/// Stores `{ h = ..., t = ... }` under the user and id in `smacks_h`.
pub(crate) fn remember_h(server: &Server, host: &Host, username: &str, token: &str, handled: u32) {
    let mut record = Table::new();
    record.insert("h", Value::Integer(i64::from(handled)));
    record.insert("t", Value::Integer(server.clock.now().floor() as i64));
    if let Err(e) = host
        .open_map(STORE_SMACKS_H)
        .and_then(|m| m.set(Some(username), token, Some(Value::Table(record))))
    {
        tracing::warn!(host = %host.name, "could not store the smacks counter of {username}: {e}");
    }
}

/// The `h` an expired session of `username` had under `token`, forgotten
/// as it is read (Prosody answers it once).
pub fn take_old_h(host: &Host, username: &str, token: &str) -> Option<u32> {
    let map = host.open_map(STORE_SMACKS_H).ok()?;
    let record = map.get(Some(username), token).ok()??;
    let _ = map.set(Some(username), token, None);
    let h = record.get("h")?.as_i64()?;
    u32::try_from(h).ok()
}

/// Keeps only the `max` newest `h` records of a user (at `<enable/>`).
pub fn prune_old_sessions(host: &Host, username: &str, max: usize) {
    let Ok(store) = host.open_keyval(STORE_SMACKS_H) else {
        return;
    };
    let Ok(Some(Value::Table(all))) = store.get(Some(username)) else {
        return;
    };
    if all.map.len() <= max {
        return;
    }
    let mut records: Vec<(&String, &Value)> = all.map.iter().collect();
    let time = |v: &Value| v.get("t").and_then(Value::as_i64).unwrap_or(0);
    records.sort_by_key(|(_, v)| std::cmp::Reverse(time(v)));
    let mut keep = Table::new();
    for (k, v) in records.into_iter().take(max) {
        keep.insert(k.clone(), v.clone());
    }
    let value = (!keep.is_empty()).then_some(Value::Table(keep));
    if let Err(e) = store.set(Some(username), value) {
        tracing::warn!(host = %host.name, "could not prune old smacks counters of {username}: {e}");
    }
}

/// Unacknowledged stanzas of a session that ends for good, as Prosody's
/// `delivery/failure`: modules may claim each one (the event); chat and
/// normal messages go to offline storage when this was the user's last
/// resource; everything else not an error is bounced with
/// `recipient-unavailable`.
pub fn handle_unacked(
    server: &Arc<Server>,
    host: &Arc<Host>,
    session: &Arc<Session>,
    items: Vec<Queued>,
) {
    if items.is_empty() {
        return;
    }
    tracing::debug!(session = %session.id, "{} unacknowledged stanzas left", items.len());
    let full_jid = session.full_jid().map(|j| j.to_string());
    for item in items {
        let Some(stanza) = queued_element(item) else {
            continue;
        };
        let mut ev = Event::new(server, "delivery/failure")
            .with_origin(session)
            .with_stanza(stanza.clone());
        if server.fire_on_host(host, "delivery/failure", &mut ev) {
            continue;
        }
        if to_offline(server, host, session, &stanza) {
            continue;
        }
        if stanza.type_() != Some("error") && stanza.from() != full_jid.as_deref() {
            let reply = StanzaError::recipient_unavailable().reply_to(&stanza);
            server.send_from_host(host, reply);
        }
    }
}

fn to_offline(
    server: &Arc<Server>,
    host: &Arc<Host>,
    session: &Arc<Session>,
    stanza: &Element,
) -> bool {
    let is_chat_or_normal = matches!(stanza.type_().unwrap_or("normal"), "chat" | "normal");
    if stanza.name() != "message" || !is_chat_or_normal {
        return false;
    }
    if stanza.get_child("result", "urn:xmpp:mam:2").is_some() {
        return true;
    }
    let (Some(user), Some(bare)) = (session.username(), session.bare_jid()) else {
        return false;
    };
    let resources = server.sessions.resources(&bare);
    let last = resources.len() == 1 && Arc::ptr_eq(&resources[0], session);
    if !last {
        return false;
    }
    let mut ev = Event::new(server, "message/offline/handle")
        .with_origin(session)
        .with_field("username", user)
        .with_stanza(stanza.clone());
    server.fire_on_host(host, "message/offline/handle", &mut ev)
}

/// A kept stanza as an element (pre-serialised ones parsed back).
pub fn queued_element(item: Queued) -> Option<Element> {
    match item {
        Queued::Stanza(e) => Some(e),
        Queued::Raw(parts, _) => parse_raw(&parts),
    }
}

/// Parses a pre-serialised stanza ([`Outbound::Raw`]).
pub fn parse_raw(parts: &[Bytes]) -> Option<Element> {
    let mut xml = XmlStream::new(StreamLimits {
        max_stanza_size: usize::MAX / 2,
        ..StreamLimits::default()
    });
    let mut events = Vec::new();
    let header = format!(
        "<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    );
    xml.feed(header.as_bytes(), &mut events).ok()?;
    for p in parts {
        xml.feed(p, &mut events).ok()?;
    }
    events.into_iter().find_map(|e| match e {
        StreamEvent::Stanza(s) => Some(s),
        _ => None,
    })
}
