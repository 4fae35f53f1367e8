//! Connection rate limits as Prosody's mod_limits, sans-IO: the option's
//! rate and burst strings, a token bucket driven by explicit times, and the
//! per-stream switches modules flip when a client authenticates.
//!
//! - [`parse_rate`] / [`parse_burst`] read `limits = { c2s = { rate =
//!   "10kb/s", burst = "2s" } }` exactly as Prosody does (decimal units:
//!   `10kb/s` is 10,000 bytes a second; only the unit's first letter counts).
//! - [`ConnectionLimits`] (a server extension) holds the rate per session type
//!   (`c2s`, `s2sin`, ...); the `limits` module fills it, listeners read it
//!   when a connection arrives.
//! - [`Throttle`] is the bucket: `burst_seconds` worth of bytes may arrive at
//!   once, then `bytes_per_second`. The connection task asks it, before
//!   reading, how long to wait ([`Throttle::wait`]), and charges what it read
//!   ([`Throttle::charge`]); a read may overdraw the bucket, and reading then
//!   pauses until the debt is paid, as Prosody pauses the connection.
//! - [`SessionLimits`] is handed to `authentication-success` handlers as the
//!   event object [`SESSION_LIMITS`]: `set_stanza_size_limit` (Prosody's
//!   `session.stream:set_stanza_size_limit`) and `set_unlimited` (mod_limits'
//!   `unlimited(session)`), which the stream applies once the event returns.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::value::Value;

/// The rate used when a `rate` cannot be parsed (Prosody's default).
pub const DEFAULT_BYTES_PER_SECOND: f64 = 3000.0;
/// The burst used when none is given or it cannot be parsed.
pub const DEFAULT_BURST_SECONDS: f64 = 2.0;
/// The event object name of [`SessionLimits`] in `authentication-success`.
pub const SESSION_LIMITS: &str = "session_limits";

/// Bytes per second from a rate string: digits, an optional space, a unit
/// whose first letter is `b`, `k`, `m`, `g` or `t` (any case; powers of
/// 1000), then `/s` (Lua pattern `^(%d+) ?([^/]+)/s$`).
pub fn parse_rate(rate: &str) -> Option<f64> {
    let rest = rate.strip_suffix("/s")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let quantity: f64 = rest[..digits].parse().ok()?;
    let unit = rest[digits..].strip_prefix(' ').unwrap_or(&rest[digits..]);
    if unit.is_empty() || unit.contains('/') {
        return None;
    }
    let exp = match unit.chars().next()?.to_ascii_lowercase() {
        'b' => 0,
        'k' => 3,
        'm' => 6,
        'g' => 9,
        't' => 12,
        _ => return None,
    };
    Some(quantity * 10f64.powi(exp))
}

/// Burst seconds from a number or a string `N s` / `Ns` (Lua pattern
/// `^(%d+) ?s$`).
pub fn parse_burst(burst: &Value) -> Option<f64> {
    match burst {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => {
            let digits = s.strip_suffix('s')?;
            let digits = digits.strip_suffix(' ').unwrap_or(digits);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        }
        _ => None,
    }
}

/// A rate limit for one kind of connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub bytes_per_second: f64,
    pub burst_seconds: f64,
}

impl RateLimit {
    /// One entry of the `limits` option (`{ rate = ..., burst = ... }`);
    /// what cannot be parsed falls back to the defaults, logged as Prosody
    /// logs it.
    pub fn from_option(session_type: &str, entry: &Value) -> RateLimit {
        let rate = entry.get("rate");
        let bytes_per_second = match rate.and_then(Value::as_str).and_then(parse_rate) {
            Some(r) => r,
            None => {
                tracing::error!(
                    "Error parsing rate for {session_type}: {rate:?}, using default rate ({DEFAULT_BYTES_PER_SECOND} bytes/s)"
                );
                DEFAULT_BYTES_PER_SECOND
            }
        };
        let burst = entry.get("burst");
        let burst_seconds = match burst {
            None => DEFAULT_BURST_SECONDS,
            Some(b) => parse_burst(b).unwrap_or_else(|| {
                tracing::error!(
                    "Unable to parse burst for {session_type}: {b:?}, using default burst interval ({DEFAULT_BURST_SECONDS}s)"
                );
                DEFAULT_BURST_SECONDS
            }),
        };
        RateLimit {
            bytes_per_second,
            burst_seconds,
        }
    }
}

/// The rate limits in force, by session type (`c2s`, `s2sin`, `s2sout`);
/// a server extension.
#[derive(Debug, Default)]
pub struct ConnectionLimits {
    by_type: RwLock<HashMap<String, RateLimit>>,
}

impl ConnectionLimits {
    pub fn set(&self, session_type: &str, limit: RateLimit) {
        let mut map = self.by_type.write().unwrap_or_else(|e| e.into_inner());
        map.insert(session_type.to_string(), limit);
    }
    pub fn get(&self, session_type: &str) -> Option<RateLimit> {
        let map = self.by_type.read().unwrap_or_else(|e| e.into_inner());
        map.get(session_type).copied()
    }
    /// A throttle for a new connection of this type, if it is limited.
    pub fn throttle(&self, session_type: &str, now: Instant) -> Option<Throttle> {
        self.get(session_type).map(|l| Throttle::new(l, now))
    }
}

/// A token bucket of bytes (Prosody's `util.throttle`): it holds at most
/// `bytes_per_second * burst_seconds` and refills at `bytes_per_second`.
#[derive(Debug, Clone)]
pub struct Throttle {
    rate: f64,
    max: f64,
    /// May be negative: bytes read beyond what the bucket held.
    balance: f64,
    t: Instant,
}

impl Throttle {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Throttle {
        let rate = limit.bytes_per_second.max(1.0);
        let max = (rate * limit.burst_seconds).max(1.0);
        Throttle {
            rate,
            max,
            balance: max,
            t: now,
        }
    }

    fn update(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.t).as_secs_f64();
        self.t = now.max(self.t);
        self.balance = (self.balance + self.rate * elapsed).min(self.max);
    }

    /// Bytes that may be read now without waiting (0 when in debt).
    pub fn available(&mut self, now: Instant) -> usize {
        self.update(now);
        self.balance.max(0.0) as usize
    }

    /// Could `cost` bytes be taken now? (Prosody's `peek`.)
    pub fn peek(&mut self, cost: usize, now: Instant) -> bool {
        self.update(now);
        self.balance >= cost as f64
    }

    /// Takes `cost` bytes if the bucket holds them (Prosody's `poll`).
    pub fn poll(&mut self, cost: usize, now: Instant) -> bool {
        if self.peek(cost, now) {
            self.balance -= cost as f64;
            true
        } else {
            false
        }
    }

    /// Takes `bytes` that were read, whether the bucket held them or not.
    pub fn charge(&mut self, bytes: usize, now: Instant) {
        self.update(now);
        self.balance -= bytes as f64;
    }

    /// How long to wait before reading again: `None` while the bucket holds
    /// anything, else the time until the debt is paid and a byte is back.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.update(now);
        if self.balance >= 1.0 {
            return None;
        }
        let missing = 1.0 - self.balance;
        Some(Duration::from_secs_f64(missing / self.rate))
    }
}

/// What `authentication-success` handlers may change about the stream that
/// authenticated; the stream applies it when the event returns.
#[derive(Debug, Default)]
pub struct SessionLimits {
    /// 0: unchanged.
    stanza_size_limit: AtomicUsize,
    unlimited: AtomicBool,
}

impl SessionLimits {
    pub fn new() -> SessionLimits {
        SessionLimits::default()
    }
    /// Raises (or lowers) the stream's stanza size limit, in bytes.
    pub fn set_stanza_size_limit(&self, bytes: usize) {
        self.stanza_size_limit
            .store(bytes.max(1), Ordering::Relaxed);
    }
    /// The limit a handler set, if any.
    pub fn stanza_size_limit(&self) -> Option<usize> {
        match self.stanza_size_limit.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
    /// Lifts the connection's rate limit.
    pub fn set_unlimited(&self) {
        self.unlimited.store(true, Ordering::Relaxed);
    }
    pub fn is_unlimited(&self) -> bool {
        self.unlimited.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_prosody_parses_them() {
        assert_eq!(parse_rate("10kb/s"), Some(10_000.0));
        assert_eq!(parse_rate("30kb/s"), Some(30_000.0));
        assert_eq!(parse_rate("10 kb/s"), Some(10_000.0));
        assert_eq!(parse_rate("512b/s"), Some(512.0));
        assert_eq!(parse_rate("1MB/s"), Some(1_000_000.0));
        assert_eq!(parse_rate("2 Kilobytes/s"), Some(2_000.0));
        assert_eq!(parse_rate("1gb/s"), Some(1e9));
        for bad in [
            "", "kb/s", "10kb", "10kb/m", "10  kb/s", "10 /s", "10xb/s", "1.5kb/s", "10kb/s/s",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bursts_as_prosody_parses_them() {
        assert_eq!(parse_burst(&Value::str("2s")), Some(2.0));
        assert_eq!(parse_burst(&Value::str("5 s")), Some(5.0));
        assert_eq!(parse_burst(&Value::Integer(3)), Some(3.0));
        assert_eq!(parse_burst(&Value::Number(0.5)), Some(0.5));
        assert_eq!(parse_burst(&Value::str("2")), None);
        assert_eq!(parse_burst(&Value::str("s")), None);
        assert_eq!(parse_burst(&Value::Bool(true)), None);
    }

    fn entry(rate: Option<&str>, burst: Option<Value>) -> Value {
        let mut t = crate::value::Table::new();
        if let Some(r) = rate {
            t.insert("rate", Value::str(r));
        }
        if let Some(b) = burst {
            t.insert("burst", b);
        }
        Value::Table(t)
    }

    #[test]
    fn option_entries_fall_back_to_defaults() {
        let l = RateLimit::from_option("c2s", &entry(Some("10kb/s"), None));
        assert_eq!((l.bytes_per_second, l.burst_seconds), (10_000.0, 2.0));
        let l = RateLimit::from_option("c2s", &entry(Some("fast"), Some(Value::str("1s"))));
        assert_eq!((l.bytes_per_second, l.burst_seconds), (3000.0, 1.0));
        let l = RateLimit::from_option("s2sin", &entry(None, Some(Value::str("x"))));
        assert_eq!((l.bytes_per_second, l.burst_seconds), (3000.0, 2.0));
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let limit = RateLimit {
            bytes_per_second: 10_000.0,
            burst_seconds: 2.0,
        };
        let mut th = Throttle::new(limit, t0);
        assert_eq!(th.available(t0), 20_000);
        assert!(th.wait(t0).is_none());
        // A 16 KiB read, then another: 12,768 bytes of debt.
        th.charge(16_384, t0);
        assert!(th.wait(t0).is_none());
        th.charge(16_384, t0);
        let w = th.wait(t0).expect("in debt");
        assert!((w.as_secs_f64() - 1.2769).abs() < 0.001, "{w:?}");
        // Paid back after that long, and not before.
        assert!(th.wait(at(1_000)).is_some());
        assert!(th.wait(at(1_300)).is_none());
        // The bucket never holds more than the burst.
        assert_eq!(th.available(at(60_000)), 20_000);
        assert!(th.poll(20_000, at(60_000)));
        assert!(!th.poll(1, at(60_000)));
        assert!(th.peek(5_000, at(60_500)));
        assert!(!th.peek(5_001, at(60_500)));
        // Time going backwards changes nothing.
        assert_eq!(th.available(at(10)), 5_000);
    }

    #[test]
    fn bucket_rate_over_a_long_transfer() {
        let t0 = Instant::now();
        let limit = RateLimit {
            bytes_per_second: 50_000.0,
            burst_seconds: 2.0,
        };
        let mut th = Throttle::new(limit, t0);
        let (mut now, mut sent) = (t0, 0usize);
        while sent < 1_000_000 {
            if let Some(w) = th.wait(now) {
                now += w;
                continue;
            }
            th.charge(8192, now);
            sent += 8192;
        }
        // 100,000 bytes of burst, the rest at 50,000 a second.
        let secs = now.duration_since(t0).as_secs_f64();
        assert!((17.5..18.5).contains(&secs), "{secs}");
    }

    #[test]
    fn session_limits_switches() {
        let s = SessionLimits::new();
        assert_eq!(s.stanza_size_limit(), None);
        assert!(!s.is_unlimited());
        s.set_stanza_size_limit(10 * 1024 * 1024);
        s.set_unlimited();
        assert_eq!(s.stanza_size_limit(), Some(10 * 1024 * 1024));
        assert!(s.is_unlimited());
    }

    #[test]
    fn connection_limits_by_type() {
        let c = ConnectionLimits::default();
        assert!(c.throttle("c2s", Instant::now()).is_none());
        c.set(
            "c2s",
            RateLimit {
                bytes_per_second: 1.0,
                burst_seconds: 1.0,
            },
        );
        assert!(c.throttle("c2s", Instant::now()).is_some());
        assert!(c.get("s2sin").is_none());
    }
}
