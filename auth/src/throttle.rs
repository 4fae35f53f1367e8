//! Brute-force protection for logins (sans-IO): failed authentications are
//! counted per client IP and per claimed account over a sliding window, and
//! a source over its limit is refused until its oldest counted failure
//! leaves the window.
//!
//! The options are those of prosody-modules' `mod_limit_auth`:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `limit_auth_period` | 30 | the window, in seconds |
//! | `limit_auth_max` | 5 | failures per IP within the window (at least 1) |
//! | `limit_auth_account_max` | 10 | failures per account within the window (lilt's addition, same style; at least 1) |
//!
//! Throttling is on for a host that loads `limit_auth` (global or host
//! `modules_enabled`), as Prosody with the community module, or that sets
//! any of these options; otherwise failed logins are only logged, as in
//! Prosody without the module.
//!
//! As in `mod_limit_auth`, only failures decided by a SASL exchange count
//! (wrong password, unknown user, malformed data), not the refusals of the
//! throttle itself, and a refused attempt is answered
//! `<temporary-auth-failure/>`. `mod_limit_auth` uses a token bucket
//! (`util.throttle`) that, once empty, lets one attempt through every
//! `period / max` seconds; lilt's window lets the whole allowance through
//! again once `period` has passed since the failures, which is what an
//! administrator reading "5 per 30 seconds" expects.
//!
//! The per-account limit does not lock the owner out: an address the
//! account recently logged in from is not refused by it (see
//! [`crate::trusted`] for why this choice).
//!
//! Accounts are keyed by the name the client claims, prepared as a SASL
//! username, whether or not the account exists: an attacker sees the same
//! answer, at the same moment, for a missing account and an existing one.
//!
//! Times are [`Duration`]s since any fixed origin the caller picks; nothing
//! here reads a clock.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use xmpp_core::Host;
use xmpp_core::config::OptionError;

/// `limit_auth_period` default (seconds).
pub const DEFAULT_PERIOD: f64 = 30.0;
/// `limit_auth_max` default.
pub const DEFAULT_MAX: u32 = 5;
/// `limit_auth_account_max` default.
pub const DEFAULT_ACCOUNT_MAX: u32 = 10;

/// How many tracked sources trigger a sweep of the expired ones.
const SWEEP_AT: usize = 4096;

/// The throttle's settings for one host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleSettings {
    pub period: Duration,
    pub max_per_ip: u32,
    pub max_per_account: u32,
}

impl Default for ThrottleSettings {
    fn default() -> ThrottleSettings {
        ThrottleSettings {
            period: Duration::from_secs_f64(DEFAULT_PERIOD),
            max_per_ip: DEFAULT_MAX,
            max_per_account: DEFAULT_ACCOUNT_MAX,
        }
    }
}

impl ThrottleSettings {
    /// Reads `limit_auth_period`, `limit_auth_max` and
    /// `limit_auth_account_max` (host value, else global). As
    /// `mod_limit_auth`, a negative period counts as 0 (no throttling) and a
    /// maximum below 1 as 1.
    pub fn from_host(host: &Host) -> Result<ThrottleSettings, OptionError> {
        if !Self::enabled_on(host) {
            return Ok(ThrottleSettings::disabled());
        }
        let period = match host.option("limit_auth_period") {
            None => DEFAULT_PERIOD,
            Some(v) => v.as_f64().ok_or_else(|| {
                host.option_error(
                    "limit_auth_period",
                    format!("must be a number of seconds, not a {}", v.type_name()),
                )
            })?,
        };
        if !period.is_finite() {
            return Err(host.option_error("limit_auth_period", "must be finite".into()));
        }
        let max = |name: &str, default: u32| -> Result<u32, OptionError> {
            let n = host.option_i64(name, i64::from(default))?;
            Ok(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
        };
        Ok(ThrottleSettings {
            period: Duration::from_secs_f64(period.max(0.0)),
            max_per_ip: max("limit_auth_max", DEFAULT_MAX)?,
            max_per_account: max("limit_auth_account_max", DEFAULT_ACCOUNT_MAX)?,
        })
    }
}

impl ThrottleSettings {
    /// No throttling (a zero period).
    pub fn disabled() -> ThrottleSettings {
        ThrottleSettings {
            period: Duration::ZERO,
            ..ThrottleSettings::default()
        }
    }

    /// Does `host` load `limit_auth` or set a `limit_auth_*` option?
    pub fn enabled_on(host: &Host) -> bool {
        let config = host.config();
        let lists = [
            config.get_global("modules_enabled"),
            config
                .host(&host.name)
                .and_then(|h| h.section.get("modules_enabled")),
        ];
        let loaded = lists
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_string_list())
            .any(|l| l.iter().any(|m| m == "limit_auth"));
        loaded
            || [
                "limit_auth_period",
                "limit_auth_max",
                "limit_auth_account_max",
            ]
            .iter()
            .any(|o| host.option(o).is_some())
    }
}

/// Why an attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many failures from this IP.
    Ip,
    /// Too many failures for this account.
    Account,
}

/// The throttle's answer for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse; an attempt is allowed again after `retry_after`.
    Refuse {
        limited: Limited,
        retry_after: Duration,
    },
}

/// Failure times of one source, oldest first, at most `max` of them.
#[derive(Debug, Default)]
struct Window(VecDeque<Duration>);

impl Window {
    fn expire(&mut self, now: Duration, period: Duration) {
        while self
            .0
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= period)
        {
            self.0.pop_front();
        }
    }

    /// `None` when another attempt is allowed, else how long until it is.
    fn wait(&mut self, now: Duration, period: Duration, max: u32) -> Option<Duration> {
        self.expire(now, period);
        if self.0.len() < max as usize {
            return None;
        }
        let oldest = *self.0.front()?;
        Some((oldest + period).saturating_sub(now))
    }

    fn record(&mut self, now: Duration, period: Duration, max: u32) {
        self.expire(now, period);
        self.0.push_back(now);
        while self.0.len() > max as usize {
            self.0.pop_front();
        }
    }
}

/// Failure windows of every source of one kind.
#[derive(Debug)]
struct Windows<K: Hash + Eq> {
    map: HashMap<K, Window>,
}

impl<K: Hash + Eq> Windows<K> {
    fn new() -> Windows<K> {
        Windows {
            map: HashMap::new(),
        }
    }

    fn wait(&mut self, key: &K, now: Duration, period: Duration, max: u32) -> Option<Duration> {
        self.map.get_mut(key)?.wait(now, period, max)
    }

    fn record(&mut self, key: K, now: Duration, period: Duration, max: u32) {
        if self.map.len() >= SWEEP_AT {
            self.map.retain(|_, w| {
                w.expire(now, period);
                !w.0.is_empty()
            });
        }
        self.map.entry(key).or_default().record(now, period, max);
    }
}

/// Failed-login counts for one host.
#[derive(Debug)]
pub struct AuthThrottle {
    settings: ThrottleSettings,
    ips: Windows<IpAddr>,
    accounts: Windows<String>,
    /// Where accounts logged in from: not refused by the account limit.
    trusted: crate::trusted::TrustedAddresses,
}

impl AuthThrottle {
    pub fn new(settings: ThrottleSettings) -> AuthThrottle {
        AuthThrottle {
            settings,
            ips: Windows::new(),
            accounts: Windows::new(),
            trusted: crate::trusted::TrustedAddresses::new(),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn enabled(&self) -> bool {
        !self.settings.period.is_zero()
    }

    /// May a client at `ip` start an authentication now?
    pub fn check_ip(&mut self, ip: Option<IpAddr>, now: Duration) -> Verdict {
        let (Some(ip), true) = (ip, self.enabled()) else {
            return Verdict::Allow;
        };
        let s = self.settings;
        match self.ips.wait(&ip, now, s.period, s.max_per_ip) {
            None => Verdict::Allow,
            Some(retry_after) => Verdict::Refuse {
                limited: Limited::Ip,
                retry_after,
            },
        }
    }

    /// May `ip` try to authenticate as `account` (a prepared username, which
    /// need not exist) now? The IP is checked as well.
    pub fn check(&mut self, ip: Option<IpAddr>, account: Option<&str>, now: Duration) -> Verdict {
        if let refused @ Verdict::Refuse { .. } = self.check_ip(ip, now) {
            return refused;
        }
        let (Some(account), true) = (account, self.enabled()) else {
            return Verdict::Allow;
        };
        let s = self.settings;
        match self
            .accounts
            .wait(&account.to_string(), now, s.period, s.max_per_account)
        {
            None => Verdict::Allow,
            // The owner's own address gets in during an attack on the
            // account (the per-IP limit above still applies to it).
            Some(_) if ip.is_some_and(|ip| self.trusted.is_trusted(account, ip, now)) => {
                Verdict::Allow
            }
            Some(retry_after) => Verdict::Refuse {
                limited: Limited::Account,
                retry_after,
            },
        }
    }

    /// `account` logged in from `ip`: that address is trusted by the
    /// account limit from now on (see [`crate::trusted`]).
    pub fn record_success(&mut self, ip: Option<IpAddr>, account: &str, now: Duration) {
        if let (Some(ip), true) = (ip, self.enabled()) {
            self.trusted.record_success(account, ip, now);
        }
    }

    /// A SASL exchange failed for `ip` claiming `account`.
    pub fn record_failure(&mut self, ip: Option<IpAddr>, account: Option<&str>, now: Duration) {
        if !self.enabled() {
            return;
        }
        let s = self.settings;
        if let Some(ip) = ip {
            self.ips.record(ip, now, s.period, s.max_per_ip);
        }
        if let Some(account) = account {
            self.accounts
                .record(account.to_string(), now, s.period, s.max_per_account);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    fn throttle(max_ip: u32, max_account: u32) -> AuthThrottle {
        AuthThrottle::new(ThrottleSettings {
            period: secs(30.0),
            max_per_ip: max_ip,
            max_per_account: max_account,
        })
    }

    #[test]
    fn an_ip_is_refused_after_max_failures_until_the_period_passes() {
        let mut t = throttle(5, 100);
        for i in 0..5 {
            assert_eq!(
                t.check(ip(1), Some("alice"), secs(i as f64)),
                Verdict::Allow
            );
            t.record_failure(ip(1), Some("alice"), secs(i as f64));
        }
        assert_eq!(
            t.check_ip(ip(1), secs(10.0)),
            Verdict::Refuse {
                limited: Limited::Ip,
                retry_after: secs(20.0)
            }
        );
        // Another IP is not affected, nor is another account from it.
        assert_eq!(t.check(ip(2), Some("alice"), secs(10.0)), Verdict::Allow);
        // The first failure leaves the window at 30 s: one more attempt.
        assert_eq!(t.check_ip(ip(1), secs(30.0)), Verdict::Allow);
        t.record_failure(ip(1), None, secs(30.0));
        assert!(matches!(
            t.check_ip(ip(1), secs(30.5)),
            Verdict::Refuse { retry_after, .. } if retry_after == secs(0.5)
        ));
        // Once every failure has left the window, the whole allowance is back.
        for i in 0..5 {
            let now = secs(61.0 + i as f64);
            assert_eq!(t.check_ip(ip(1), now), Verdict::Allow);
            t.record_failure(ip(1), None, now);
        }
        assert!(matches!(
            t.check_ip(ip(1), secs(66.0)),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn an_account_is_refused_from_any_ip_whether_it_exists_or_not() {
        let mut t = throttle(100, 3);
        for (i, account) in ["alice", "nobody-here"].iter().enumerate() {
            for n in 0..3u8 {
                let now = secs(f64::from(n));
                assert_eq!(t.check(ip(n), Some(account), now), Verdict::Allow);
                t.record_failure(ip(n + 10 * i as u8), Some(account), now);
            }
        }
        // Both accounts get the same answer with the same delay; the
        // throttle never asked whether either exists.
        let refused = |t: &mut AuthThrottle, account| t.check(ip(99), Some(account), secs(5.0));
        let expected = Verdict::Refuse {
            limited: Limited::Account,
            retry_after: secs(25.0),
        };
        assert_eq!(refused(&mut t, "alice"), expected);
        assert_eq!(refused(&mut t, "nobody-here"), expected);
        assert_eq!(t.check(ip(99), Some("bob"), secs(5.0)), Verdict::Allow);
        assert_eq!(t.check(ip(99), Some("alice"), secs(30.0)), Verdict::Allow);
    }

    #[test]
    fn the_ip_limit_is_checked_before_the_account() {
        let mut t = throttle(1, 1);
        t.record_failure(ip(1), Some("alice"), secs(0.0));
        assert!(matches!(
            t.check(ip(1), Some("alice"), secs(1.0)),
            Verdict::Refuse {
                limited: Limited::Ip,
                ..
            }
        ));
    }

    #[test]
    fn a_zero_period_disables_throttling_and_unknown_ips_pass() {
        let mut t = AuthThrottle::new(ThrottleSettings {
            period: Duration::ZERO,
            max_per_ip: 1,
            max_per_account: 1,
        });
        for i in 0..10 {
            t.record_failure(ip(1), Some("alice"), secs(i as f64));
        }
        assert_eq!(t.check(ip(1), Some("alice"), secs(10.0)), Verdict::Allow);
        let mut t = throttle(1, 5);
        t.record_failure(None, None, secs(0.0));
        assert_eq!(t.check(None, None, secs(0.0)), Verdict::Allow);
    }

    fn host_with(global: &[(&str, xmpp_core::Value)]) -> std::sync::Arc<Host> {
        let mut config = xmpp_core::ServerConfig::default();
        for (name, value) in global {
            config.global.set(*name, value.clone());
        }
        config.hosts.push(xmpp_core::HostConfig {
            name: "example.org".into(),
            kind: xmpp_core::HostKind::VirtualHost,
            section: Default::default(),
            defined_at: Default::default(),
        });
        let server = xmpp_core::Server::new(config, xmpp_core::Clock::Fixed(0.0));
        server.host("example.org").expect("the host")
    }

    #[test]
    fn on_with_limit_auth_or_its_options_only() {
        let off = ThrottleSettings::from_host(&host_with(&[])).expect("settings");
        assert!(off.period.is_zero());
        let modules = xmpp_core::Value::Table(xmpp_core::Table {
            seq: vec![
                xmpp_core::Value::str("roster"),
                xmpp_core::Value::str("limit_auth"),
            ],
            ..Default::default()
        });
        let on = ThrottleSettings::from_host(&host_with(&[("modules_enabled", modules)]));
        assert_eq!(on.expect("settings"), ThrottleSettings::default());
        let set = host_with(&[
            ("limit_auth_period", xmpp_core::Value::Number(2.5)),
            ("limit_auth_max", xmpp_core::Value::Integer(0)),
        ]);
        let s = ThrottleSettings::from_host(&set).expect("settings");
        assert_eq!((s.period, s.max_per_ip), (secs(2.5), 1));
        let bad = host_with(&[("limit_auth_period", xmpp_core::Value::str("soon"))]);
        let e = ThrottleSettings::from_host(&bad).expect_err("a bad option");
        assert!(e.to_string().contains("limit_auth_period"), "{e}");
    }

    #[test]
    fn expired_sources_are_swept() {
        let mut t = throttle(1, 1);
        for i in 0..SWEEP_AT as u32 {
            t.record_failure(Some(IpAddr::from(i.to_be_bytes())), None, secs(0.0));
        }
        t.record_failure(ip(1), None, secs(40.0));
        assert_eq!(t.ips.map.len(), 1);
    }

    #[test]
    fn the_account_limit_spares_the_owners_own_address() {
        let mut t = AuthThrottle::new(ThrottleSettings {
            period: Duration::from_secs(60),
            max_per_ip: 100,
            max_per_account: 3,
        });
        let owner = Some(IpAddr::from([192, 0, 2, 1]));
        let now = Duration::from_secs(1);
        t.record_success(owner, "alice", now);
        for i in 0..5u8 {
            t.record_failure(Some(IpAddr::from([203, 0, 113, i])), Some("alice"), now);
        }
        let elsewhere = Some(IpAddr::from([198, 51, 100, 9]));
        assert!(matches!(
            t.check(elsewhere, Some("alice"), now),
            Verdict::Refuse {
                limited: Limited::Account,
                ..
            }
        ));
        assert_eq!(t.check(owner, Some("alice"), now), Verdict::Allow);
        // The owner's address is not trusted for another account.
        for _ in 0..3 {
            t.record_failure(elsewhere, Some("bob"), now);
        }
        assert!(matches!(
            t.check(owner, Some("bob"), now),
            Verdict::Refuse { .. }
        ));
    }
}
