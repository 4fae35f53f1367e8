//! `limits`: Prosody's mod_limits — incoming bytes of client connections are
//! throttled to a rate — and `limits_exception`, Jitsi Meet's module that
//! exempts trusted accounts (the focus, the bridge) from it and raises their
//! stanza size limit.
//!
//! `limits` (a global module in Prosody) reads the global option `limits =
//! { c2s = { rate = "10kb/s", burst = "2s" }, s2sin = { ... } }` into the
//! server's [`ConnectionLimits`]; loaded without it, Prosody 0.12's defaults
//! apply (c2s 10 KiB/s, s2sin 30 KiB/s, 2 s burst). The c2s listener gives
//! each new TCP connection a [`xmpp_core::limits::Throttle`] from it and
//! pauses reading while the connection is over its rate. `limits_resolution`
//! is accepted; lilt computes the exact pause instead of polling at that
//! interval. On each host, accounts listed in `unlimited_jids` (the host's
//! list together with the global one) lose the rate limit once they
//! authenticate.
//!
//! `limits_exception` does the same for `unlimited_jids` on the hosts it is
//! loaded on, and raises their stanza size limit to `unlimited_size` bytes
//! (default 10 MiB) instead of `c2s_stanza_size_limit`.
//!
//! Neither applies to BOSH or WebSocket sessions yet (their bytes come
//! through HTTP requests, which lilt does not throttle), nor to s2s, which
//! lilt does not have.

use std::collections::BTreeSet;
use std::sync::Arc;

use xmpp_core::limits::{ConnectionLimits, RateLimit, SESSION_LIMITS, SessionLimits};
use xmpp_core::{Event, Host, Server, Value};

use crate::ModuleError;

/// Jitsi's default `unlimited_size`: 10 MiB.
pub const DEFAULT_UNLIMITED_SIZE: i64 = 10 * 1024 * 1024;

/// Prosody 0.12's limits when the module is loaded without a `limits` entry.
fn default_limits() -> [(&'static str, RateLimit); 2] {
    [
        (
            "c2s",
            RateLimit {
                bytes_per_second: 10.0 * 1024.0,
                burst_seconds: 2.0,
            },
        ),
        (
            "s2sin",
            RateLimit {
                bytes_per_second: 30.0 * 1024.0,
                burst_seconds: 2.0,
            },
        ),
    ]
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let limits = server.extension::<ConnectionLimits>();
    for (kind, limit) in default_limits() {
        limits.set(kind, limit);
    }
    match server.config.get_global("limits") {
        None => {}
        Some(Value::Table(t)) => {
            for (kind, entry) in &t.map {
                limits.set(kind, RateLimit::from_option(kind, entry));
            }
        }
        Some(v) => {
            return Err(ModuleError::Option(xmpp_core::config::OptionError {
                option: "limits".to_string(),
                defined_at: server.config.source_of(None, "limits").cloned(),
                problem: format!(
                    "must be a table of session types ({{ c2s = {{ rate = \"10kb/s\" }} }}), not a {}",
                    v.type_name()
                ),
            }));
        }
    }
    let unlimited = unlimited_jids(host);
    if !unlimited.is_empty() {
        host.events
            .hook("authentication-success", 0, move |ev: &mut Event| {
                if let Some(limits) = exempted(ev, &unlimited) {
                    limits.set_unlimited();
                }
                false
            });
    }
    Ok(())
}

pub fn load_exception(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let unlimited = unlimited_jids(host);
    if unlimited.is_empty() {
        return Ok(());
    }
    let size = host.option_i64("unlimited_size", DEFAULT_UNLIMITED_SIZE)?;
    let size = usize::try_from(size).map_err(|_| {
        host.option_error(
            "unlimited_size",
            "must be a positive number of bytes".to_string(),
        )
    })?;
    tracing::info!(host = %host.name, "loaded; unlimited_jids={unlimited:?} unlimited_size={size}");
    host.events
        .hook("authentication-success", 0, move |ev: &mut Event| {
            if let Some(limits) = exempted(ev, &unlimited) {
                limits.set_unlimited();
                if let Some(o) = &ev.origin {
                    tracing::info!(session = %o.id, "Setting stanza size limits for {} to {size}", account(ev).unwrap_or_default());
                }
                limits.set_stanza_size_limit(size);
            }
            false
        });
    Ok(())
}

/// `user@host` of the session that authenticated.
fn account(ev: &Event) -> Option<String> {
    let origin = ev.origin.as_ref()?;
    let username = origin.username()?;
    Some(format!("{username}@{}", origin.host))
}

/// The stream's switches, when the account that authenticated is listed.
fn exempted(ev: &Event, unlimited: &BTreeSet<String>) -> Option<Arc<SessionLimits>> {
    let jid = account(ev)?;
    if !unlimited.contains(&jid) {
        return None;
    }
    ev.object::<SessionLimits>(SESSION_LIMITS)
}

/// `unlimited_jids` as Prosody's `get_option_inherited_set`: the host's list
/// and the global one together.
fn unlimited_jids(host: &Host) -> BTreeSet<String> {
    let config = host.config();
    let mut set = BTreeSet::new();
    let lists = [
        config
            .host(&host.name)
            .and_then(|h| h.section.get("unlimited_jids")),
        config.get_global("unlimited_jids"),
    ];
    for v in lists.into_iter().flatten() {
        match v {
            Value::Table(t) => {
                set.extend(t.seq.iter().filter_map(Value::as_str).map(str::to_string))
            }
            Value::String(s) => {
                set.insert(s.clone());
            }
            _ => {}
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::HostKind;
    use xmpp_core::config::{HostConfig, Section, ServerConfig};
    use xmpp_core::{Clock, Session, SessionKind, Table};

    fn list(items: &[&str]) -> Value {
        Value::Table(Table {
            seq: items.iter().map(|s| Value::str(*s)).collect(),
            ..Table::default()
        })
    }

    fn server(limits: Option<Value>) -> Arc<Server> {
        let mut config = ServerConfig::default();
        if let Some(l) = limits {
            config.global.set("limits", l);
        }
        config
            .global
            .set("unlimited_jids", list(&["focus@auth.example.com"]));
        let mut section = Section::default();
        section.set("unlimited_jids", list(&["jvb@auth.example.com"]));
        config.hosts.push(HostConfig {
            name: "auth.example.com".into(),
            kind: HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        });
        Server::new(config, Clock::System)
    }

    fn authenticate(server: &Arc<Server>, host: &Arc<Host>, user: &str) -> Arc<SessionLimits> {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let session = Arc::new(Session::new(SessionKind::C2sUnauthed, &host.name, None, tx));
        session.state().username = Some(user.to_string());
        let limits = Arc::new(SessionLimits::new());
        let mut ev = Event::new(server, "authentication-success")
            .with_origin(&session)
            .with_object(SESSION_LIMITS, limits.clone());
        server.fire_on_host(host, "authentication-success", &mut ev);
        limits
    }

    #[test]
    fn limits_option_and_defaults() {
        let mut c2s = Table::new();
        c2s.insert("rate", Value::str("10kb/s"));
        let mut t = Table::new();
        t.insert("c2s", Value::Table(c2s));
        let server = server(Some(Value::Table(t)));
        let host = server.host("auth.example.com").unwrap();
        load(&server, &host).unwrap();
        let limits = server.extension::<ConnectionLimits>();
        assert_eq!(
            limits.get("c2s"),
            Some(RateLimit {
                bytes_per_second: 10_000.0,
                burst_seconds: 2.0
            })
        );
        assert_eq!(
            limits.get("s2sin").map(|l| l.bytes_per_second),
            Some(30_720.0)
        );
        assert!(load(&self::server(Some(Value::str("10kb/s"))), &host).is_err());
    }

    #[test]
    fn unlimited_jids_lose_the_rate_limit() {
        let server = server(None);
        let host = server.host("auth.example.com").unwrap();
        load(&server, &host).unwrap();
        for (user, exempt) in [("focus", true), ("jvb", true), ("jibri", false)] {
            let l = authenticate(&server, &host, user);
            assert_eq!(l.is_unlimited(), exempt, "{user}");
            assert_eq!(l.stanza_size_limit(), None, "{user}");
        }
    }

    #[test]
    fn limits_exception_raises_the_stanza_size() {
        let server = server(None);
        let host = server.host("auth.example.com").unwrap();
        load_exception(&server, &host).unwrap();
        let l = authenticate(&server, &host, "jvb");
        assert!(l.is_unlimited());
        assert_eq!(l.stanza_size_limit(), Some(10 * 1024 * 1024));
        let l = authenticate(&server, &host, "someone");
        assert!(!l.is_unlimited() && l.stanza_size_limit().is_none());
    }
}
