//! The unacknowledged-stanza queue of one stream, as Prosody's
//! `util.smqueue`: `head` counts stanzas sent, `tail` counts stanzas the
//! client acknowledged, both modulo 2^32 as XEP-0198 §4 wants of `h`.
//!
//! The queue keeps at most `capacity` stanzas (`smacks_max_queue_size`);
//! once more are unacknowledged, the oldest are dropped and the stream can
//! no longer be resumed ([`SmQueue::resumable`]), as in Prosody.

use std::collections::VecDeque;

/// Why an `<a h='...'/>` (or the `h` of a `<resume/>`) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The client acknowledged more stanzas than were sent.
    #[error("client acknowledged {h}, but only {head} stanzas were sent")]
    Head { h: u32, head: u32 },
    /// The client acknowledged fewer stanzas than it already had.
    #[error("client acknowledged {h}, less than the {tail} it already acknowledged")]
    Tail { h: u32, tail: u32 },
}

impl AckError {
    /// The stream error Prosody closes with (`undefined-condition` and
    /// its texts).
    pub fn text(&self) -> &'static str {
        match self {
            AckError::Head { .. } => "Client acknowledged more stanzas than sent by server",
            AckError::Tail { .. } => "Client acknowledged less stanzas than already acknowledged",
        }
    }
}

/// Sent-but-unacknowledged items and the counters.
#[derive(Debug, Clone)]
pub struct SmQueue<T> {
    head: u32,
    tail: u32,
    items: VecDeque<T>,
    capacity: usize,
}

impl<T> SmQueue<T> {
    /// An empty queue keeping up to `capacity` items (at least one).
    pub fn new(capacity: usize) -> SmQueue<T> {
        SmQueue {
            head: 0,
            tail: 0,
            items: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// A stanza was sent.
    pub fn push(&mut self, item: T) {
        self.head = self.head.wrapping_add(1);
        if self.items.len() >= self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    /// How many stanzas were sent (mod 2^32).
    pub fn count_sent(&self) -> u32 {
        self.head
    }

    /// How many the client acknowledged (mod 2^32): the last good `h`.
    pub fn count_acked(&self) -> u32 {
        self.tail
    }

    /// Sent and not acknowledged.
    pub fn count_unacked(&self) -> u32 {
        self.head.wrapping_sub(self.tail)
    }

    /// The client handled `h` stanzas in all: drops those from the queue
    /// and returns how many were newly acknowledged.
    pub fn ack(&mut self, h: u32) -> Result<u32, AckError> {
        let newly = h.wrapping_sub(self.tail);
        if newly > self.count_unacked() {
            // Behind the tail by less than half the counter space: a step
            // back; otherwise ahead of the head.
            let behind = self.tail.wrapping_sub(h);
            return Err(if behind <= u32::MAX / 2 {
                AckError::Tail { h, tail: self.tail }
            } else {
                AckError::Head { h, head: self.head }
            });
        }
        self.tail = h;
        let keep = self.count_unacked() as usize;
        while self.items.len() > keep {
            self.items.pop_front();
        }
        Ok(newly)
    }

    /// Does the queue still hold every unacknowledged stanza?
    pub fn resumable(&self) -> bool {
        self.items.len() >= self.count_unacked() as usize
    }

    /// The unacknowledged stanzas, oldest first.
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Takes every queued item out (the counters stay).
    pub fn take_all(&mut self) -> Vec<T> {
        self.items.drain(..).collect()
    }

    /// Starts counting from `h` (for tests and for a queue built around
    /// an existing counter).
    pub fn with_counters(capacity: usize, h: u32) -> SmQueue<T> {
        SmQueue {
            head: h,
            tail: h,
            ..SmQueue::new(capacity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_remove_from_the_front() {
        let mut q = SmQueue::new(10);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.count_unacked(), 5);
        assert_eq!(q.ack(2), Ok(2));
        assert_eq!(q.items().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(q.count_acked(), 2);
        // The same h again acknowledges nothing new.
        assert_eq!(q.ack(2), Ok(0));
        assert_eq!(q.ack(5), Ok(3));
        assert_eq!(q.count_unacked(), 0);
        assert!(q.items().next().is_none());
    }

    #[test]
    fn acking_more_than_sent_or_less_than_acked_is_refused() {
        let mut q = SmQueue::new(10);
        for i in 0..3 {
            q.push(i);
        }
        assert_eq!(q.ack(4), Err(AckError::Head { h: 4, head: 3 }));
        assert_eq!(q.ack(2), Ok(2));
        assert_eq!(q.ack(1), Err(AckError::Tail { h: 1, tail: 2 }));
        // Nothing changed by the refused acks.
        assert_eq!(q.count_unacked(), 1);
        assert_eq!(q.items().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn counters_wrap_at_two_to_the_32() {
        let mut q = SmQueue::with_counters(10, u32::MAX - 1);
        for i in 0..4 {
            q.push(i);
        }
        assert_eq!(q.count_sent(), 2, "MAX-1 + 4 wraps to 2");
        assert_eq!(q.count_unacked(), 4);
        assert_eq!(q.ack(u32::MAX), Ok(1));
        assert_eq!(q.ack(0), Ok(1));
        assert_eq!(q.items().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(q.ack(3), Err(AckError::Head { h: 3, head: 2 }));
        assert_eq!(
            q.ack(u32::MAX - 5),
            Err(AckError::Tail {
                h: u32::MAX - 5,
                tail: 0
            })
        );
        assert_eq!(q.ack(2), Ok(2));
        assert_eq!(q.count_unacked(), 0);
    }

    #[test]
    fn overflow_keeps_the_newest_and_is_not_resumable() {
        let mut q = SmQueue::new(3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.count_unacked(), 5);
        assert!(!q.resumable());
        assert_eq!(q.items().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        // Once the client acknowledged what was dropped, it is whole again.
        assert_eq!(q.ack(2), Ok(2));
        assert!(q.resumable());
        assert_eq!(q.take_all(), vec![2, 3, 4]);
    }
}
