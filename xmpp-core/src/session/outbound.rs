//! A session's outbound queue: what is sent to a session waits here until
//! its connection task writes it.
//!
//! Two kinds stand behind the same [`OutboundTx`] / [`OutboundRx`]:
//! tokio's unbounded channel (what tests and the HTTP transports create),
//! and a lean queue ([`outbound_queue`]) for TCP connections, whose idle
//! footprint is what thousands of idle clients cost. tokio's channel
//! allocates a block of 32 slots up front (32 × [`Outbound`], about
//! 3 KiB) plus a cache-padded channel state; the lean queue is a `Mutex`
//! around a `VecDeque` that holds no allocation while empty, and a
//! [`Notify`] for the one receiver.
//!
//! The lean queue is bounded in bytes ([`QUEUE_LIMIT`]): a client that
//! stops reading while others send to it (the CVE-shaped attack of issue
//! 21) costs at most that much. Past the bound, items are refused (the
//! sender sees the session as gone: a message falls back to another
//! resource, offline storage or an error, as Prosody's routing does for a
//! session it cannot send to), while the connection task's `send_timeout`
//! drops the stalled connection. A close request is never refused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::SendError, error::TryRecvError};

use super::Outbound;

/// The sending side of a session's outbound queue.
#[derive(Debug)]
pub enum OutboundTx {
    Channel(mpsc::UnboundedSender<Outbound>),
    Queue(QueueTx),
}

/// The receiving side, drained by the connection task.
#[derive(Debug)]
pub enum OutboundRx {
    Channel(mpsc::UnboundedReceiver<Outbound>),
    Queue(QueueRx),
}

/// A new lean queue (see the module's documentation).
pub fn outbound_queue() -> (OutboundTx, OutboundRx) {
    outbound_queue_with_limit(QUEUE_LIMIT)
}

/// Bytes a lean queue holds at most (the serialised size of what waits,
/// about): enough for a large MUC's burst of presence to a joining client
/// (1,000 occupants of a Jitsi room at ~3 KB each), small against the
/// 600 MB one stalled reader reached before the bound.
pub const QUEUE_LIMIT: usize = 4 * 1024 * 1024;

/// A lean queue refusing items past `limit` bytes (one item is always
/// accepted into an empty queue, however large).
pub fn outbound_queue_with_limit(limit: usize) -> (OutboundTx, OutboundRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            bytes: 0,
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            senders: 1,
            closed: false,
            refusing: false,
        }),
        notify: Notify::new(),
    });
    (
        OutboundTx::Queue(QueueTx {
            shared: shared.clone(),
        }),
        OutboundRx::Queue(QueueRx { shared }),
    )
}

impl OutboundTx {
    /// Queues an item; gives it back when the receiver is closed or gone.
    pub fn send(&self, item: Outbound) -> Result<(), SendError<Outbound>> {
        match self {
            OutboundTx::Channel(tx) => tx.send(item),
            OutboundTx::Queue(tx) => tx.send(item),
        }
    }

    /// Is the receiver closed or gone?
    pub fn is_closed(&self) -> bool {
        match self {
            OutboundTx::Channel(tx) => tx.is_closed(),
            OutboundTx::Queue(tx) => tx.shared.lock().closed,
        }
    }
}

impl Clone for OutboundTx {
    fn clone(&self) -> OutboundTx {
        match self {
            OutboundTx::Channel(tx) => OutboundTx::Channel(tx.clone()),
            OutboundTx::Queue(tx) => {
                let mut state = tx.shared.lock();
                state.senders = state.senders.saturating_add(1);
                drop(state);
                OutboundTx::Queue(QueueTx {
                    shared: tx.shared.clone(),
                })
            }
        }
    }
}

impl From<mpsc::UnboundedSender<Outbound>> for OutboundTx {
    fn from(tx: mpsc::UnboundedSender<Outbound>) -> OutboundTx {
        OutboundTx::Channel(tx)
    }
}

impl OutboundRx {
    /// The next item; `None` once every sender is gone (or the queue was
    /// closed) and nothing is left.
    pub async fn recv(&mut self) -> Option<Outbound> {
        match self {
            OutboundRx::Channel(rx) => rx.recv().await,
            OutboundRx::Queue(rx) => rx.recv().await,
        }
    }

    /// The next item if one is there.
    pub fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        match self {
            OutboundRx::Channel(rx) => rx.try_recv(),
            OutboundRx::Queue(rx) => rx.try_recv(),
        }
    }

    /// Refuses further items; those queued can still be received.
    pub fn close(&mut self) {
        match self {
            OutboundRx::Channel(rx) => rx.close(),
            OutboundRx::Queue(rx) => rx.shared.lock().closed = true,
        }
    }
}

impl From<mpsc::UnboundedReceiver<Outbound>> for OutboundRx {
    fn from(rx: mpsc::UnboundedReceiver<Outbound>) -> OutboundRx {
        OutboundRx::Channel(rx)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver (a permit is kept when it is not waiting).
    notify: Notify,
}

#[derive(Debug)]
struct State {
    /// Each item with the bytes it was accounted as.
    items: VecDeque<(Outbound, u32)>,
    /// What the queued items are accounted as, in total (u32s: every
    /// idle session holds these).
    bytes: u32,
    limit: u32,
    /// Live [`QueueTx`]es.
    /// (u32, with `bytes` and `limit`: the state stays 48 bytes, as
    /// before the bound.)
    senders: u32,
    /// The receiver closed the queue or is gone.
    closed: bool,
    /// Items are being refused (logged once per episode).
    refusing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending side of a lean queue.
#[derive(Debug)]
pub struct QueueTx {
    shared: Arc<Shared>,
}

impl QueueTx {
    fn send(&self, item: Outbound) -> Result<(), SendError<Outbound>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(SendError(item));
        }
        let size = u32::try_from(item.queued_size()).unwrap_or(u32::MAX);
        let over = state.bytes.saturating_add(size) > state.limit;
        if over && !state.items.is_empty() && !matches!(item, Outbound::Close(_)) {
            if !state.refusing {
                state.refusing = true;
                tracing::warn!(
                    queued = state.bytes,
                    "outbound queue full ({} bytes): the client is not reading; refusing stanzas to it",
                    state.limit
                );
            }
            return Err(SendError(item));
        }
        state.bytes = state.bytes.saturating_add(size);
        state.items.push_back((item, size));
        drop(state);
        self.shared.notify.notify_one();
        Ok(())
    }
}

impl Drop for QueueTx {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders = state.senders.saturating_sub(1);
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.notify.notify_one();
        }
    }
}

/// The receiving side of a lean queue.
#[derive(Debug)]
pub struct QueueRx {
    shared: Arc<Shared>,
}

impl QueueRx {
    async fn recv(&mut self) -> Option<Outbound> {
        loop {
            match self.try_recv() {
                Ok(item) => return Some(item),
                Err(TryRecvError::Disconnected) => return None,
                // notify_one leaves a permit when nobody waits, so an item
                // queued since try_recv is not missed.
                Err(TryRecvError::Empty) => self.shared.notify.notified().await,
            }
        }
    }

    fn try_recv(&mut self) -> Result<Outbound, TryRecvError> {
        let mut state = self.shared.lock();
        match state.items.pop_front() {
            Some((item, size)) => {
                state.bytes = state.bytes.saturating_sub(size);
                if state.items.is_empty() {
                    state.refusing = false;
                    if state.items.capacity() > 0 {
                        // An idle session keeps no buffer.
                        state.items = VecDeque::new();
                    }
                }
                Ok(item)
            }
            None if state.senders == 0 || state.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.bytes = 0;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock.
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::Element;

    fn stanza(name: &str) -> Outbound {
        Outbound::Stanza(Element::new(name, "jabber:client"))
    }

    fn name(out: Outbound) -> String {
        match out {
            Outbound::Stanza(e) => e.name().to_string(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn queue_delivers_in_order_and_ends_with_the_last_sender() {
        let (tx, mut rx) = outbound_queue();
        let tx2 = tx.clone();
        tx.send(stanza("a")).unwrap();
        tx2.send(stanza("b")).unwrap();
        assert_eq!(name(rx.recv().await.unwrap()), "a");
        assert_eq!(name(rx.try_recv().unwrap()), "b");
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await.map(name);
            let end = rx.recv().await.map(name);
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.send(stanza("c")).unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(waiter.await.unwrap(), (Some("c".into()), None));
    }

    #[tokio::test]
    async fn closing_refuses_new_items_but_keeps_queued_ones() {
        let (tx, mut rx) = outbound_queue();
        tx.send(stanza("a")).unwrap();
        rx.close();
        assert!(tx.is_closed());
        assert!(tx.send(stanza("b")).is_err());
        assert_eq!(name(rx.recv().await.unwrap()), "a");
        assert!(rx.recv().await.is_none());
        let (tx, rx) = outbound_queue();
        drop(rx);
        assert!(tx.send(stanza("x")).is_err());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_stanzas_but_not_a_close() {
        let big = || {
            Outbound::Stanza(
                Element::new("message", "jabber:client")
                    .child(Element::new("body", "jabber:client").text("x".repeat(1000))),
            )
        };
        let (tx, mut rx) = outbound_queue_with_limit(2500);
        // One item always fits into an empty queue.
        let (tx1, mut rx1) = outbound_queue_with_limit(10);
        assert!(tx1.send(big()).is_ok());
        assert!(tx1.send(big()).is_err());
        assert!(rx1.try_recv().is_ok());
        assert!(tx1.send(big()).is_ok());
        assert!(tx.send(big()).is_ok());
        assert!(tx.send(big()).is_ok());
        assert!(
            tx.send(big()).is_err(),
            "a third 1 KB stanza is over 2,500 bytes"
        );
        assert!(
            tx.send(Outbound::Raw(vec![bytes::Bytes::from(vec![b'x'; 600])]))
                .is_err()
        );
        assert!(tx.send(Outbound::Close(None)).is_ok());
        assert!(rx.try_recv().is_ok());
        // Room again for one.
        assert!(tx.send(big()).is_ok());
        assert!(tx.send(big()).is_err());
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 3);
        // Empty again: the accounting went back to zero.
        assert!(tx.send(big()).is_ok());
        assert!(tx.send(big()).is_ok());
    }

    #[test]
    fn an_idle_queue_stays_small() {
        // What every idle session holds for its queue: the bound's
        // accounting fits in the 48 bytes of the unbounded queue.
        assert!(std::mem::size_of::<State>() <= 48);
    }

    #[tokio::test]
    async fn channels_behave_the_same() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (tx, mut rx): (OutboundTx, OutboundRx) = (tx.into(), rx.into());
        tx.clone().send(stanza("a")).unwrap();
        assert_eq!(name(rx.recv().await.unwrap()), "a");
        rx.close();
        assert!(tx.is_closed());
    }
}
