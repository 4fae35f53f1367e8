//! What the endpoints saw: packets sent per stream and received per
//! endpoint inside the measured window, duplicates (retransmissions)
//! counted once, and the latency of each from its probe (send and receive
//! time are read from the same clock, in the same process).

use std::collections::HashMap;
use std::time::Duration;

use super::payload::Probe;

/// Counting inside `[start, end)` of the driver's epoch.
#[derive(Debug, Default)]
pub struct Tally {
    window: Option<(Duration, Duration)>,
    /// Packets sent inside the window, per stream number.
    sent: HashMap<u32, u64>,
    /// How many endpoints each stream is forwarded to.
    fan_out: HashMap<u32, u64>,
    /// Packets received inside the window (first copies only).
    pub received: u64,
    pub duplicates: u64,
    /// Latencies of those packets, in microseconds.
    latencies_us: Vec<u32>,
    /// Indexes seen, per (receiver, stream): a bitset.
    seen: HashMap<(usize, u32), Vec<u64>>,
    /// Packets received at all (any time), for progress checks.
    pub received_total: u64,
}

/// The figures of one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowFigures {
    pub expected: u64,
    pub received: u64,
    pub loss: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Tally {
    /// Starts counting a window; what was counted before is dropped.
    pub fn open(&mut self, start: Duration, end: Duration, fan_out: HashMap<u32, u64>) {
        *self = Tally {
            window: Some((start, end)),
            fan_out,
            received_total: self.received_total,
            ..Tally::default()
        };
    }

    fn inside(&self, t: Duration) -> bool {
        self.window.is_some_and(|(s, e)| t >= s && t < e)
    }

    /// `count` packets of `stream` were written at `at`.
    pub fn on_sent(&mut self, stream: u32, count: u32, at: Duration) {
        if self.inside(at) {
            *self.sent.entry(stream).or_default() += u64::from(count);
        }
    }

    /// Endpoint `receiver` got a packet with `probe` at `at`.
    pub fn on_received(&mut self, receiver: usize, probe: Probe, at: Duration) {
        self.received_total += 1;
        if !self.inside(probe.sent) {
            return;
        }
        let bits = self.seen.entry((receiver, probe.stream)).or_default();
        let word = (probe.index / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (probe.index % 64);
        if bits[word] & mask != 0 {
            self.duplicates += 1;
            return;
        }
        bits[word] |= mask;
        self.received += 1;
        let us = at.saturating_sub(probe.sent).as_micros();
        self.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }

    /// Packets that should have arrived: sent in the window times fan-out.
    pub fn expected(&self) -> u64 {
        self.sent
            .iter()
            .map(|(s, n)| n * self.fan_out.get(s).copied().unwrap_or(0))
            .sum()
    }

    pub fn figures(&mut self) -> WindowFigures {
        let expected = self.expected();
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.latencies_us.is_empty() {
                return f64::NAN;
            }
            let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
            f64::from(self.latencies_us[i.min(self.latencies_us.len() - 1)]) / 1000.0
        };
        WindowFigures {
            expected,
            received: self.received,
            loss: if expected == 0 {
                0.0
            } else {
                (1.0 - self.received as f64 / expected as f64).max(0.0)
            },
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(stream: u32, index: u32, ms: u64) -> Probe {
        Probe {
            stream,
            index,
            sent: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_inside_the_window_once() {
        let mut t = Tally::default();
        t.open(
            Duration::from_millis(100),
            Duration::from_millis(200),
            HashMap::from([(1, 2)]),
        );
        t.on_sent(1, 1, Duration::from_millis(50));
        t.on_sent(1, 2, Duration::from_millis(150));
        t.on_received(0, probe(1, 0, 50), Duration::from_millis(51));
        t.on_received(0, probe(1, 1, 150), Duration::from_millis(151));
        t.on_received(0, probe(1, 1, 150), Duration::from_millis(160));
        t.on_received(1, probe(1, 1, 150), Duration::from_millis(153));
        let f = t.figures();
        assert_eq!(f.expected, 4);
        assert_eq!(f.received, 2);
        assert_eq!(t.duplicates, 1);
        assert!((f.loss - 0.5).abs() < 1e-9);
        assert!((f.p99_ms - 3.0).abs() < 1e-9);
    }
}
