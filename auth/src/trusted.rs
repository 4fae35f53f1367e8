//! The addresses an account has logged in from (sans-IO): the per-account
//! login throttle (`limit_auth_account_max`, see [`crate::throttle`]) does
//! not refuse them, so an attacker who keeps failing against an account
//! from other addresses slows the attack down without locking the owner
//! out (issue 21).
//!
//! Why this and not the alternatives: letting a correct password through
//! from any address while the account is over its limit would let the
//! attack go on (each refused guess would then be a tested guess), and
//! only delaying the answers does not bound a distributed attack that
//! opens many connections at once. The owner's own addresses are the one
//! thing the attacker does not control: the address of a recent
//! successful login of the account (an IPv6 address counts by its /64,
//! which privacy addresses stay within) is trusted for
//! [`TRUST_PERIOD`]. A new address of the owner's, during an attack, is
//! refused as before until the attack's failures leave the window; the
//! per-IP limit (`limit_auth_max`) applies to trusted addresses too.
//!
//! The memory is bounded: at most [`PER_ACCOUNT`] addresses per account,
//! and only accounts that logged in successfully are kept. It is lost at
//! restart (the owner's next login from anywhere restores it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// How long the address of a successful login stays trusted.
pub const TRUST_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);
/// Addresses remembered per account (the most recent).
pub const PER_ACCOUNT: usize = 8;

/// An address as trust goes: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Network {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Network {
    fn from(ip: IpAddr) -> Network {
        match ip {
            IpAddr::V4(v4) => Network::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Network::V4(u32::from(v4)),
                None => Network::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Where each account last logged in from.
#[derive(Debug, Default)]
pub struct TrustedAddresses {
    accounts: HashMap<String, Vec<(Network, Duration)>>,
}

impl TrustedAddresses {
    pub fn new() -> TrustedAddresses {
        TrustedAddresses::default()
    }

    /// `account` logged in from `ip` at `now`.
    pub fn record_success(&mut self, account: &str, ip: IpAddr, now: Duration) {
        let net = Network::from(ip);
        let list = self.accounts.entry(account.to_string()).or_default();
        list.retain(|(n, at)| *n != net && now.saturating_sub(*at) < TRUST_PERIOD);
        list.push((net, now));
        if list.len() > PER_ACCOUNT {
            let excess = list.len() - PER_ACCOUNT;
            list.drain(..excess);
        }
    }

    /// Did `account` log in from `ip`'s network within the trust period?
    pub fn is_trusted(&self, account: &str, ip: IpAddr, now: Duration) -> bool {
        let net = Network::from(ip);
        self.accounts.get(account).is_some_and(|list| {
            list.iter()
                .any(|(n, at)| *n == net && now.saturating_sub(*at) < TRUST_PERIOD)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_login_address_is_trusted_for_its_account_only_and_for_a_while() {
        let mut t = TrustedAddresses::new();
        let now = Duration::from_secs(100);
        t.record_success("alice", ip("192.0.2.1"), now);
        assert!(t.is_trusted("alice", ip("192.0.2.1"), now));
        assert!(!t.is_trusted("alice", ip("192.0.2.2"), now));
        assert!(!t.is_trusted("bob", ip("192.0.2.1"), now));
        assert!(!t.is_trusted("alice", ip("192.0.2.1"), now + TRUST_PERIOD));
    }

    #[test]
    fn ipv6_counts_by_its_64_and_the_list_is_bounded() {
        let mut t = TrustedAddresses::new();
        let now = Duration::ZERO;
        t.record_success("alice", ip("2001:db8:1:2::10"), now);
        assert!(t.is_trusted("alice", ip("2001:db8:1:2:abcd::1"), now));
        assert!(!t.is_trusted("alice", ip("2001:db8:1:3::10"), now));
        t.record_success("bob", ip("::ffff:192.0.2.7"), now);
        assert!(t.is_trusted("bob", ip("192.0.2.7"), now));
        for i in 0..20u8 {
            t.record_success("carol", IpAddr::from([198, 51, 100, i]), now);
        }
        assert_eq!(t.accounts["carol"].len(), PER_ACCOUNT);
        assert!(t.is_trusted("carol", IpAddr::from([198, 51, 100, 19]), now));
        assert!(!t.is_trusted("carol", IpAddr::from([198, 51, 100, 0]), now));
    }
}
