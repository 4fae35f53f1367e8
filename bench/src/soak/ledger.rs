//! What the soak's sessions did, and the one check that matters: every
//! message sent arrived exactly once, or came back once as an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default, Clone, Copy)]
struct Fate {
    sent: bool,
    /// The recipient, and when it was sent (seconds into the soak).
    to: u32,
    at: f32,
    arrived: u32,
    bounced: u32,
}

/// Counters and the message ledger, shared by every session.
#[derive(Debug, Default)]
pub struct Ledger {
    messages: Mutex<HashMap<u64, Fate>>,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub disconnects: AtomicU64,
    pub reconnects: AtomicU64,
    pub presences_sent: AtomicU64,
    pub presences_received: AtomicU64,
    pub muc_joins: AtomicU64,
    pub muc_joined: AtomicU64,
    pub muc_leaves: AtomicU64,
    pub online: AtomicU64,
    pub sent: AtomicU64,
    pub arrived: AtomicU64,
    pub bounced: AtomicU64,
    /// Messages whose id names no message sent (should stay 0).
    pub strangers: AtomicU64,
}

/// The ledger's verdict.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub sent: u64,
    pub arrived_once: u64,
    pub bounced_once: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub examples: Vec<String>,
}

/// A message id: the sender and its sequence number.
pub fn message_id(sender: usize, seq: u64) -> String {
    format!("soak-{}", ((sender as u64) << 32) | seq)
}

fn parse_id(id: &[u8]) -> Option<u64> {
    std::str::from_utf8(id.strip_prefix(b"soak-")?)
        .ok()?
        .parse()
        .ok()
}

impl Ledger {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn sent(&self, sender: usize, seq: u64, to: usize, at: f32) {
        if let Ok(mut m) = self.messages.lock() {
            let fate = m.entry(((sender as u64) << 32) | seq).or_default();
            fate.sent = true;
            fate.to = u32::try_from(to).unwrap_or(u32::MAX);
            fate.at = at;
        }
        Ledger::add(&self.sent, 1);
    }

    /// A message arrived (`error` false) or came back as an error.
    pub fn received(&self, id: &[u8], error: bool) {
        let Some(key) = parse_id(id) else {
            Ledger::add(&self.strangers, 1);
            return;
        };
        if let Ok(mut m) = self.messages.lock() {
            let fate = m.entry(key).or_default();
            if error {
                fate.bounced += 1;
            } else {
                fate.arrived += 1;
            }
        }
        Ledger::add(if error { &self.bounced } else { &self.arrived }, 1);
    }

    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict::default();
        let Ok(m) = self.messages.lock() else {
            return v;
        };
        let mut keys: Vec<&u64> = m.keys().collect();
        keys.sort();
        for key in keys {
            let fate = m[key];
            let id = format!(
                "soak-{key} (sender {}, #{}, to {} at {:.1} s)",
                key >> 32,
                key & 0xffff_ffff,
                fate.to,
                fate.at
            );
            if !fate.sent {
                v.duplicated += 1;
                if v.examples.len() < 30 {
                    v.examples.push(format!("{id}: received but never sent"));
                }
                continue;
            }
            v.sent += 1;
            match (fate.arrived, fate.bounced) {
                (1, 0) => v.arrived_once += 1,
                (0, 1) => v.bounced_once += 1,
                (0, 0) => {
                    v.lost += 1;
                    if v.examples.len() < 30 {
                        v.examples.push(format!("{id}: lost"));
                    }
                }
                (a, b) => {
                    v.duplicated += 1;
                    if v.examples.len() < 30 {
                        v.examples
                            .push(format!("{id}: arrived {a} times, bounced {b} times"));
                    }
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_once_or_bounced_once() {
        let l = Ledger::default();
        l.sent(1, 1, 2, 0.0);
        l.sent(1, 2, 2, 0.0);
        l.sent(2, 1, 1, 0.0);
        l.sent(2, 2, 1, 0.0);
        l.received(message_id(1, 1).as_bytes(), false);
        l.received(message_id(1, 2).as_bytes(), true);
        l.received(message_id(2, 1).as_bytes(), false);
        l.received(message_id(2, 1).as_bytes(), false);
        let v = l.verdict();
        assert_eq!((v.sent, v.arrived_once, v.bounced_once), (4, 1, 1));
        assert_eq!((v.lost, v.duplicated), (1, 1));
    }
}
