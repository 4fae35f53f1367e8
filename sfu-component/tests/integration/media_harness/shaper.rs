//! A bottleneck link for the media tests: datagrams leave at most at
//! `rate_bps` (each waits for the ones before it) and whatever would wait
//! longer than `max_delay` is dropped, as a router's tail-drop queue does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

pub struct Shaper {
    pub rate_bps: u64,
    pub max_delay: Duration,
    /// When the link is free for the next datagram.
    next_free: Option<Instant>,
    queue: VecDeque<(Instant, Datagram)>,
    pub dropped: usize,
    pub passed: usize,
}

impl Shaper {
    pub fn new(rate_bps: u64, max_delay: Duration) -> Shaper {
        Shaper {
            rate_bps,
            max_delay,
            next_free: None,
            queue: VecDeque::new(),
            dropped: 0,
            passed: 0,
        }
    }

    pub fn push(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, d: Vec<u8>) {
        let start = self.next_free.map_or(now, |t| t.max(now));
        if start.saturating_duration_since(now) > self.max_delay {
            self.dropped += 1;
            return;
        }
        let bits = (d.len() as u64 + 28) * 8;
        let time = Duration::from_nanos(bits * 1_000_000_000 / self.rate_bps.max(1));
        let done = start + time;
        self.next_free = Some(done);
        self.queue.push_back((done, (source, destination, d)));
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        if self.queue.front().is_some_and(|(t, _)| *t <= now) {
            self.passed += 1;
            return self.queue.pop_front().map(|(_, d)| d);
        }
        None
    }
}
