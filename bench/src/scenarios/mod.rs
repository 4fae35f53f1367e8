//! The scenarios, each run against a started server from the generator's
//! core. A run returns named figures; the driver takes medians over runs.

pub mod idle;
pub mod join_storm;
pub mod login;
pub mod lua_filter;
pub mod mam;
pub mod muc_fanout;
pub mod one_to_one;
pub mod s2s;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::accounts;
use crate::client::{ClientError, Conn, Target};

/// Named figures from one run of a scenario (keys are [`crate::report`]'s).
#[derive(Debug, Default, Clone)]
pub struct Figures(pub Vec<(&'static str, f64)>);

impl Figures {
    pub fn push(&mut self, key: &'static str, value: f64) {
        self.0.push((key, value));
    }
}

/// A scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{scenario}: {what}")]
    Failed {
        scenario: &'static str,
        what: String,
    },
}

/// Logs accounts `first..first+count` in (with initial presence), at most
/// `concurrency` at a time; the connections come back in account order.
pub async fn login_many(
    target: &Target,
    first: usize,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Conn>, ClientError> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for i in first..first + count {
        let target = target.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let user = accounts::username(i);
            let conn = Conn::login(&target, &user, accounts::PASSWORD, true).await;
            (i, conn)
        });
    }
    let mut out: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        let Ok((i, conn)) = joined else { continue };
        match conn {
            Ok(c) => out[i - first] = Some(c),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(out.into_iter().flatten().collect())
}

/// Registers accounts (name, password) over XMPP, for servers that cannot
/// use the account files.
pub async fn register_all(
    target: &Target,
    accounts: Vec<(String, String)>,
    concurrency: usize,
) -> Result<(), ClientError> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for (name, password) in accounts {
        let target = target.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            Conn::register(&target, &name, &password).await
        });
    }
    while let Some(joined) = set.join_next().await {
        if let Ok(Err(e)) = joined {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// Closes connections concurrently (each waits briefly for the server).
pub async fn close_all(conns: Vec<Conn>) {
    let mut set = JoinSet::new();
    for c in conns {
        set.spawn(c.close());
    }
    while set.join_next().await.is_some() {}
}

/// Nanoseconds since `base`, for timestamps carried in message bodies.
pub fn stamp(base: Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Latency in microseconds of a message stamped `sent` and read now.
pub fn latency_us(base: Instant, sent: u64) -> u32 {
    let now = stamp(base);
    (now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32
}

/// Parses the decimal number after `key` in a body like `s=3 t=123`.
pub fn field(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// Measurement phases shared by a scenario's tasks.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Deliveries before this are warm-up.
    pub measure_from: Instant,
    /// No new sends after this; deliveries after it are not counted.
    pub measure_until: Instant,
}

impl Window {
    pub fn new(warmup: Duration, duration: Duration) -> Window {
        let measure_from = Instant::now() + warmup;
        Window {
            measure_from,
            measure_until: measure_from + duration,
        }
    }

    pub fn contains(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.measure_until
    }

    pub fn sending(&self, t: Instant) -> bool {
        t < self.measure_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(field(b"s=3 t=12345 pad", b"t="), Some(12345));
        assert_eq!(field(b"s=3 t=12345", b"s="), Some(3));
        assert_eq!(field(b"nothing", b"t="), None);
    }
}
