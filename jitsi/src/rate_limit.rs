//! `muc_rate_limit` (Jitsi's mod_muc_rate_limit), on the conference MUC:
//! at most `muc_rate_joins` joins (default 3) per room and second; joins
//! beyond that wait in the room's queue (up to 1000; a full queue lets the
//! join through rather than lose it) and are handled, in order, that many
//! per second. Leaves likewise: beyond `muc_rate_leaves` (default 5) per
//! second, the occupant is taken out of the room at once (so the presences
//! of a mass departure are not all broadcast to everyone still there) and
//! its unavailable presence and `muc-occupant-left` wait in the room's
//! leave queue, handled in order that many per second. As in Jitsi, only
//! leaves the throttle refuses wait (one it allows is handled at once even
//! while others wait). A room's queues are emptied with the room.
//!
//! The queue is sans-IO ([`RateQueue`]: times come in, what to release
//! comes out); [`register`] drives it with a one-second tokio timer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Session};

use super::meeting_id::still_connected;
use muc::Role;
use muc::events::{lock, occupant_of, room_of};
use muc::occupant::Occupant;
use muc::room::{Method, Room, XTemplates};
use muc::util::NS_MUC_USER;

/// The most joins one room's queue holds.
pub const PRESENCE_QUEUE_MAX_SIZE: usize = 1000;

/// Prosody's `util.throttle`: `max` tokens, refilled at `max` per `period`
/// seconds.
#[derive(Debug, Clone)]
pub struct Throttle {
    max: f64,
    rate: f64,
    balance: f64,
    last: f64,
}

impl Throttle {
    pub fn new(max: f64, period: f64, now: f64) -> Throttle {
        Throttle {
            max,
            rate: max / period,
            balance: max,
            last: now,
        }
    }

    /// Takes `cost` tokens if there are that many.
    pub fn poll(&mut self, now: f64, cost: f64) -> bool {
        let elapsed = (now - self.last).max(0.0);
        self.last = now;
        self.balance = (self.balance + elapsed * self.rate).min(self.max);
        if self.balance >= cost {
            self.balance -= cost;
            true
        } else {
            false
        }
    }
}

/// What to do with an offered item.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Handle it now.
    Pass(T),
    /// Queued; `start_timer` when the caller must arrange a [`RateQueue::tick`]
    /// in one second.
    Queued { start_timer: bool },
}

/// One room's rate limit for joins: a throttle and the queue of what came
/// over it.
#[derive(Debug)]
pub struct RateQueue<T> {
    rate: usize,
    throttle: Throttle,
    queue: VecDeque<T>,
    timer: bool,
    max_size: usize,
}

impl<T> RateQueue<T> {
    pub fn new(rate: usize, now: f64, max_size: usize) -> RateQueue<T> {
        RateQueue {
            rate,
            throttle: Throttle::new(rate as f64, 1.0, now),
            queue: VecDeque::new(),
            timer: false,
            max_size,
        }
    }

    /// An item arrives at `now`.
    pub fn offer(&mut self, now: f64, item: T) -> Offer<T> {
        if !self.throttle.poll(now, 1.0) {
            if self.queue.len() >= self.max_size {
                return Offer::Pass(item);
            }
            self.queue.push_back(item);
            let start_timer = !self.timer;
            self.timer = true;
            return Offer::Queued { start_timer };
        }
        if self.timer {
            // Keep the order: others are waiting.
            if self.queue.len() >= self.max_size {
                return Offer::Pass(item);
            }
            self.queue.push_back(item);
            return Offer::Queued { start_timer: false };
        }
        Offer::Pass(item)
    }

    /// An item arrives at `now` and waits only if the throttle refuses it
    /// (Jitsi's leaves: no ordering with what already waits).
    pub fn offer_throttled(&mut self, now: f64, item: T) -> Offer<T> {
        if self.throttle.poll(now, 1.0) || self.queue.len() >= self.max_size {
            return Offer::Pass(item);
        }
        self.queue.push_back(item);
        let start_timer = !self.timer;
        self.timer = true;
        Offer::Queued { start_timer }
    }

    /// The timer fired: up to `rate` items to handle now, and whether to
    /// tick again in a second.
    pub fn tick(&mut self) -> (Vec<T>, bool) {
        let n = self.rate.min(self.queue.len());
        let out: Vec<T> = self.queue.drain(..n).collect();
        let again = !self.queue.is_empty();
        if !again {
            self.timer = false;
        }
        (out, again)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

struct Held {
    origin: Arc<Session>,
    stanza: Element,
}

/// A leave waiting: the occupant (already out of the room) and its role
/// before (Lua's `event.orig_role`).
struct Leave {
    occupant: Occupant,
    orig_role: Option<Role>,
    origin: Option<Arc<Session>>,
    stanza: Option<Element>,
}

#[derive(Default)]
struct State {
    joins: HashMap<String, RateQueue<Held>>,
    leaves: HashMap<String, RateQueue<Leave>>,
    /// Real JIDs whose next pre-join is one we released (Lua's
    /// `stanza.delayed_join_skip`).
    skip: HashSet<(String, String)>,
}

#[derive(Default)]
struct Shared(Mutex<State>);

pub fn register(host: &Arc<Host>) -> Result<(), xmpp_core::config::OptionError> {
    let joins = host.option_i64("muc_rate_joins", 3)?.max(1) as usize;
    let leaves = host.option_i64("muc_rate_leaves", 5)?.max(1) as usize;
    let shared = host.extension::<Shared>();

    let s = shared.clone();
    host.events.hook("muc-occupant-pre-join", 9, move |event| {
        pre_join(&s, joins, event)
    });
    let s = shared.clone();
    host.events.hook("muc-occupant-pre-leave", 0, move |event| {
        pre_leave(&s, leaves, event)
    });
    host.events.hook("muc-room-destroyed", 1, move |event| {
        if let Some(room) = room_of(event) {
            let mut state = lock(&shared.0);
            state.joins.remove(&room.jid);
            state.leaves.remove(&room.jid);
        }
        false
    });
    Ok(())
}

fn pre_join(shared: &Arc<Shared>, rate: usize, event: &mut Event) -> bool {
    let (Some(room), Some(origin), Some(stanza)) =
        (room_of(event), event.origin.clone(), event.stanza.as_ref())
    else {
        return false;
    };
    let from = stanza.from().unwrap_or_default().to_string();
    let now = event.server.clock.now();
    let mut state = lock(&shared.0);
    if state.skip.remove(&(room.jid.clone(), from.clone())) {
        return false;
    }
    let queue = state
        .joins
        .entry(room.jid.clone())
        .or_insert_with(|| RateQueue::new(rate, now, PRESENCE_QUEUE_MAX_SIZE));
    let held = Held {
        origin,
        stanza: stanza.clone(),
    };
    match queue.offer(now, held) {
        Offer::Pass(_) => {
            if queue.len() >= PRESENCE_QUEUE_MAX_SIZE {
                tracing::error!(room = %room.jid, "error pushing item in join queue for {from}");
            }
            false
        }
        Offer::Queued { start_timer } => {
            drop(state);
            if start_timer {
                start(shared.clone(), room, event.server.clone());
            }
            true
        }
    }
}

fn pre_leave(shared: &Arc<Shared>, rate: usize, event: &mut Event) -> bool {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return false;
    };
    let now = event.server.clock.now();
    // Its role is gone: the presence published later is an unavailable one.
    let mut gone = (*occupant).clone();
    gone.role = None;
    let leave = Leave {
        occupant: gone.clone(),
        orig_role: occupant.role,
        origin: event.origin.clone(),
        stanza: event.stanza.clone(),
    };
    let offer = {
        let mut state = lock(&shared.0);
        let queue = state
            .leaves
            .entry(room.jid.clone())
            .or_insert_with(|| RateQueue::new(rate, now, PRESENCE_QUEUE_MAX_SIZE));
        let full = queue.len() >= PRESENCE_QUEUE_MAX_SIZE;
        let offer = queue.offer_throttled(now, leave);
        if full {
            let from = event
                .stanza
                .as_ref()
                .and_then(|s| s.from())
                .unwrap_or_default();
            tracing::error!(room = %room.jid, "error pushing item in leave queue for {from}");
        }
        offer
    };
    match offer {
        Offer::Pass(_) => false,
        Offer::Queued { start_timer } => {
            // Out of the room now; the presence and the event come later.
            room.save_occupant(&gone);
            if start_timer {
                start_leaves(shared.clone(), room);
            }
            true
        }
    }
}

/// Handles `rate` queued leaves a second until the room's queue is empty.
fn start_leaves(shared: Arc<Shared>, room: Arc<Room>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(room = %room.jid, "no runtime for the leave queue timer");
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !room.is_live() {
                lock(&shared.0).leaves.remove(&room.jid);
                return;
            }
            let (released, again) = {
                let mut state = lock(&shared.0);
                let Some(queue) = state.leaves.get_mut(&room.jid) else {
                    return;
                };
                queue.tick()
            };
            let Some(ctx) = room.ctx() else { return };
            for leave in released {
                // The room went away with an earlier leave: the rest is
                // dropped, as Jitsi's emptied queue.
                if !lock(&shared.0).leaves.contains_key(&room.jid) {
                    return;
                }
                let x = XTemplates::single(Element::new("x", NS_MUC_USER));
                room.publicise_occupant_status(
                    &ctx,
                    &leave.occupant,
                    &x,
                    None,
                    None,
                    None,
                    leave.orig_role,
                    false,
                    None,
                );
                room.fire_left(
                    &ctx,
                    &leave.occupant,
                    leave.origin.as_ref(),
                    leave.stanza.as_ref(),
                );
            }
            if !again {
                return;
            }
        }
    });
}

/// Releases `rate` joins a second until the room's queue is empty.
fn start(shared: Arc<Shared>, room: Arc<Room>, server: Arc<xmpp_core::Server>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(room = %room.jid, "no runtime for the join queue timer");
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if !room.is_live() || room.state().destroying.is_some() {
                lock(&shared.0).joins.remove(&room.jid);
                return;
            }
            let (released, again) = {
                let mut state = lock(&shared.0);
                let Some(queue) = state.joins.get_mut(&room.jid) else {
                    return;
                };
                let (released, again) = queue.tick();
                for h in &released {
                    state.skip.insert((
                        room.jid.clone(),
                        h.stanza.from().unwrap_or_default().to_string(),
                    ));
                }
                (released, again)
            };
            for h in released {
                if still_connected(&server, &h.origin) {
                    room.submit(&h.origin, h.stanza, Method::PresenceToOccupant);
                } else {
                    let from = h.stanza.from().unwrap_or_default().to_string();
                    lock(&shared.0).skip.remove(&(room.jid.clone(), from));
                }
            }
            if !again {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_refills_over_time() {
        let mut t = Throttle::new(3.0, 1.0, 100.0);
        assert!(t.poll(100.0, 1.0));
        assert!(t.poll(100.0, 1.0));
        assert!(t.poll(100.0, 1.0));
        assert!(!t.poll(100.0, 1.0));
        assert!(!t.poll(100.2, 1.0));
        assert!(t.poll(100.4, 1.0));
        assert!(t.poll(110.0, 1.0));
    }

    #[test]
    fn joins_beyond_the_rate_wait_in_order_and_none_is_lost() {
        let mut q = RateQueue::new(3, 0.0, 1000);
        let mut passed = vec![];
        let mut starts = 0;
        for i in 0..10 {
            match q.offer(0.0, i) {
                Offer::Pass(i) => passed.push(i),
                Offer::Queued { start_timer } => starts += start_timer as usize,
            }
        }
        assert_eq!(passed, vec![0, 1, 2]);
        assert_eq!(starts, 1);
        assert_eq!(q.len(), 7);
        // While the timer runs, even a join the throttle would allow waits.
        assert_eq!(q.offer(5.0, 10), Offer::Queued { start_timer: false });
        let mut released = vec![];
        let mut ticks = 0;
        loop {
            let (out, again) = q.tick();
            ticks += 1;
            assert!(out.len() <= 3);
            released.extend(out);
            if !again {
                break;
            }
        }
        assert_eq!(released, (3..=10).collect::<Vec<_>>());
        assert_eq!(ticks, 3);
        assert!(q.is_empty());
        // After the queue drained, joins pass again within the rate.
        assert_eq!(q.offer(20.0, 11), Offer::Pass(11));
    }

    #[test]
    fn leaves_wait_only_when_the_throttle_refuses() {
        let mut q = RateQueue::new(2, 0.0, 1000);
        assert_eq!(q.offer_throttled(0.0, 0), Offer::Pass(0));
        assert_eq!(q.offer_throttled(0.0, 1), Offer::Pass(1));
        assert_eq!(
            q.offer_throttled(0.0, 2),
            Offer::Queued { start_timer: true }
        );
        assert_eq!(
            q.offer_throttled(0.1, 3),
            Offer::Queued { start_timer: false }
        );
        // A token came back: this one passes although others wait.
        assert_eq!(q.offer_throttled(0.6, 4), Offer::Pass(4));
        assert_eq!(q.tick(), (vec![2, 3], false));
        assert_eq!(
            q.offer_throttled(0.6, 5),
            Offer::Queued { start_timer: true }
        );
    }

    #[test]
    fn a_full_queue_lets_joins_through() {
        let mut q = RateQueue::new(1, 0.0, 2);
        assert_eq!(q.offer(0.0, 0), Offer::Pass(0));
        assert_eq!(q.offer(0.0, 1), Offer::Queued { start_timer: true });
        assert_eq!(q.offer(0.0, 2), Offer::Queued { start_timer: false });
        assert_eq!(q.offer(0.0, 3), Offer::Pass(3));
    }
}
