//! [`LoginGuard`]: the [`AuthThrottle`] of one host applied to its SASL
//! exchanges, and the log line of every failed login.
//!
//! - When `<auth/>` arrives, a client IP over its limit is answered
//!   `<temporary-auth-failure/>` before any exchange starts (as
//!   `mod_limit_auth` does at that point).
//! - The account is known from the client's first message (PLAIN's
//!   authcid, SCRAM's `n=`): an account over its limit gets the same answer
//!   before anything is looked up, so a missing account and an existing one
//!   are refused alike, at once.
//! - A failure decided by the exchange (not an abort) is counted for the IP
//!   and the claimed account, and logged once at INFO:
//!   `Failed authentication attempt (<condition>) for user <user>@<host> from IP: <ip>`,
//!   exactly prosody-modules' `mod_log_auth` line, which fail2ban's filter
//!   for Prosody matches (`\(not-authorized\) for user .* from IP: <HOST>`);
//!   the mechanism and the SASL text follow at DEBUG. The client's data,
//!   and so the password, is never logged.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xmpp_core::auth::{SaslContext, SaslExchange, SaslFailure, SaslStep};
use xmpp_core::{Host, Table};

use crate::sasl::prepare_username;
use crate::sasl::scram_msg::{ClientFirst, unescape_saslname};
use crate::throttle::{AuthThrottle, Limited, ThrottleSettings, Verdict};

/// The throttle of one host, with the clock it reads.
#[derive(Debug)]
pub struct LoginGuard {
    host: String,
    throttle: Mutex<AuthThrottle>,
    origin: Instant,
}

impl LoginGuard {
    pub fn new(host: &str, settings: ThrottleSettings) -> LoginGuard {
        LoginGuard {
            host: host.to_string(),
            throttle: Mutex::new(AuthThrottle::new(settings)),
            origin: Instant::now(),
        }
    }

    /// The guard with the host's `limit_auth_*` options.
    pub fn from_host(host: &Host) -> Result<LoginGuard, xmpp_core::config::OptionError> {
        Ok(LoginGuard::new(
            &host.name,
            ThrottleSettings::from_host(host)?,
        ))
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, AuthThrottle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal(
        &self,
        verdict: Verdict,
        ctx: &SaslContext,
        user: Option<&str>,
    ) -> Option<SaslFailure> {
        let Verdict::Refuse {
            limited,
            retry_after,
        } = verdict
        else {
            return None;
        };
        let ip = ip_text(ctx.ip);
        let host = &self.host;
        let session = &ctx.session_id;
        let retry = retry_after.as_secs_f64().ceil();
        match limited {
            Limited::Ip => {
                tracing::warn!(%host, %session, "Too many authentication attempts for ip {ip}; refused for {retry}s")
            }
            Limited::Account => {
                tracing::warn!(%host, %session, "Too many authentication attempts for user {}@{host} (this attempt from IP: {ip}); refused for {retry}s", user.unwrap_or("?"))
            }
        }
        Some(SaslFailure::new("temporary-auth-failure"))
    }

    /// Before an exchange starts: `Err` when the client's IP is throttled.
    pub fn check_start(&self, ctx: &SaslContext) -> Result<(), SaslFailure> {
        let verdict = self.throttle().check_ip(ctx.ip, self.now());
        match self.refusal(verdict, ctx, None) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// The exchange, throttled per account and with its failures counted
    /// and logged.
    pub fn wrap(
        self: &Arc<Self>,
        mechanism: &str,
        ctx: &SaslContext,
        inner: Box<dyn SaslExchange>,
    ) -> Box<dyn SaslExchange> {
        Box::new(GuardedExchange {
            inner,
            guard: self.clone(),
            mechanism: mechanism.to_string(),
            ctx: ctx.clone(),
            account: None,
            first: true,
        })
    }

    fn failed(&self, mechanism: &str, ctx: &SaslContext, account: Option<&str>, f: &SaslFailure) {
        self.throttle().record_failure(ctx.ip, account, self.now());
        tracing::info!(
            host = %self.host,
            session = %ctx.session_id,
            "Failed authentication attempt ({}) for user {}@{} from IP: {}",
            f.condition,
            account.unwrap_or("?"),
            self.host,
            ip_text(ctx.ip),
        );
        tracing::debug!(
            host = %self.host,
            session = %ctx.session_id,
            "SASL {mechanism} failed: {}{}",
            f.condition,
            f.text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        );
    }
}

fn ip_text(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string()).unwrap_or_else(|| "?".into())
}

/// The account a client's first SASL message claims, prepared as Prosody
/// prepares SASL usernames (so `Alice` and `alice` are one account); what
/// cannot be prepared is kept as sent, so it is still counted.
pub fn claimed_account(mechanism: &str, first: Option<&[u8]>) -> Option<String> {
    let data = first?;
    let raw = if mechanism == "PLAIN" {
        let mut parts = data.split(|b| *b == 0);
        let _authzid = parts.next()?;
        String::from_utf8_lossy(parts.next()?).into_owned()
    } else if mechanism.starts_with("SCRAM-") {
        let msg = ClientFirst::parse(data).ok()?;
        unescape_saslname(msg.username)?.into_owned()
    } else {
        return None;
    };
    if raw.is_empty() {
        return None;
    }
    Some(prepare_username(&raw).unwrap_or(raw))
}

struct GuardedExchange {
    inner: Box<dyn SaslExchange>,
    guard: Arc<LoginGuard>,
    mechanism: String,
    ctx: SaslContext,
    account: Option<String>,
    first: bool,
}

impl SaslExchange for GuardedExchange {
    fn step(&mut self, input: Option<&[u8]>) -> SaslStep {
        if std::mem::take(&mut self.first) {
            self.account = claimed_account(&self.mechanism, input);
            if let Some(account) = self.account.as_deref() {
                let verdict =
                    self.guard
                        .throttle()
                        .check(self.ctx.ip, Some(account), self.guard.now());
                if let Some(failure) = self.guard.refusal(verdict, &self.ctx, Some(account)) {
                    return SaslStep::Failure(failure);
                }
            }
        }
        let step = self.inner.step(input);
        if self.account.is_none() {
            self.account = self.inner.authcid();
        }
        match &step {
            SaslStep::Failure(f) if f.condition != "aborted" => {
                self.guard
                    .failed(&self.mechanism, &self.ctx, self.account.as_deref(), f);
            }
            SaslStep::Success { username, .. } => {
                let now = self.guard.now();
                self.guard
                    .throttle()
                    .record_success(self.ctx.ip, username, now);
            }
            _ => {}
        }
        step
    }

    fn authcid(&self) -> Option<String> {
        self.account.clone().or_else(|| self.inner.authcid())
    }

    fn session_attributes(&mut self) -> Table {
        self.inner.session_attributes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fails;
    impl SaslExchange for Fails {
        fn step(&mut self, _input: Option<&[u8]>) -> SaslStep {
            SaslStep::Failure(SaslFailure::new("not-authorized"))
        }
    }

    fn ctx(last: u8) -> SaslContext {
        SaslContext {
            ip: Some(IpAddr::from([198, 51, 100, last])),
            ..SaslContext::default()
        }
    }

    #[test]
    fn accounts_are_read_from_plain_and_scram() {
        assert_eq!(
            claimed_account("PLAIN", Some(b"\0Alice\0secret")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            claimed_account("SCRAM-SHA-1", Some(b"n,,n=Bob=2Cx,r=abc")).as_deref(),
            Some("bob,x")
        );
        assert_eq!(claimed_account("PLAIN", Some(b"garbage")), None);
        assert_eq!(claimed_account("ANONYMOUS", Some(b"trace")), None);
        assert_eq!(claimed_account("PLAIN", None), None);
    }

    #[test]
    fn failures_throttle_the_ip_then_any_account() {
        let guard = Arc::new(LoginGuard::new(
            "example.org",
            ThrottleSettings {
                period: Duration::from_secs(60),
                max_per_ip: 2,
                max_per_account: 3,
            },
        ));
        for _ in 0..2 {
            assert!(guard.check_start(&ctx(1)).is_ok());
            let mut ex = guard.wrap("PLAIN", &ctx(1), Box::new(Fails));
            let step = ex.step(Some(b"\0nobody\0wrong"));
            assert!(matches!(step, SaslStep::Failure(f) if f.condition == "not-authorized"));
        }
        assert_eq!(
            guard.check_start(&ctx(1)),
            Err(SaslFailure::new("temporary-auth-failure"))
        );
        // From another IP: one more failure for "nobody" reaches its limit,
        // then the account is refused before the exchange runs.
        let mut ex = guard.wrap("PLAIN", &ctx(2), Box::new(Fails));
        ex.step(Some(b"\0nobody\0wrong"));
        let mut ex = guard.wrap("PLAIN", &ctx(3), Box::new(Fails));
        assert_eq!(
            ex.step(Some(b"\0Nobody\0right")),
            SaslStep::Failure(SaslFailure::new("temporary-auth-failure"))
        );
        assert_eq!(ex.authcid().as_deref(), Some("nobody"));
        assert!(
            guard.check_start(&ctx(3)).is_ok(),
            "refusals are not counted"
        );
    }
}
