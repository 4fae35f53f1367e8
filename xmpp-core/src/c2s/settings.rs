//! The c2s options a new connection is negotiated with, read from the
//! config in force when it connects (so a reload's
//! `c2s_stanza_size_limit`, `c2s_timeout` or
//! `c2s_unauthed_stanza_size_limit` applies to the next connection).

use std::time::Duration;

use crate::config::{OptionError, ServerConfig};
use crate::stream::StreamLimits;

use super::negotiation::C2sSettings;

/// A global number option, or `default`; a value of another type is an
/// error naming the option.
pub fn global_i64(config: &ServerConfig, name: &str, default: i64) -> Result<i64, OptionError> {
    match config.get_global(name) {
        None => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| OptionError {
            option: name.to_string(),
            defined_at: config.source_of(None, name).cloned(),
            problem: format!("must be a number, not a {}", v.type_name()),
        }),
    }
}

/// Prosody's c2s options with its defaults: `c2s_stanza_size_limit`
/// (256 KiB, at least 1 KiB), `c2s_timeout` (300 s),
/// `c2s_unauthed_stanza_size_limit` (10,000 bytes, at least 512).
pub fn from_config(config: &ServerConfig, tls_available: bool) -> Result<C2sSettings, OptionError> {
    let size = global_i64(config, "c2s_stanza_size_limit", 256 * 1024)?.max(1024);
    let unauthed = global_i64(config, "c2s_unauthed_stanza_size_limit", 10_000)?.max(512);
    let timeout = global_i64(config, "c2s_timeout", 300)?.max(1);
    Ok(C2sSettings {
        tls_available,
        direct_tls: false,
        unauthed_timeout: Duration::from_secs(timeout.unsigned_abs()),
        limits: StreamLimits {
            max_stanza_size: usize::try_from(size).unwrap_or(usize::MAX),
            ..StreamLimits::default()
        },
        max_unauthed_stanza_size: Some(usize::try_from(unauthed).unwrap_or(usize::MAX)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn defaults_floors_and_bad_types() {
        let mut c = ServerConfig::default();
        let s = from_config(&c, true).unwrap();
        assert_eq!(s.limits.max_stanza_size, 256 * 1024);
        assert_eq!(s.max_unauthed_stanza_size, Some(10_000));
        assert_eq!(s.unauthed_timeout, Duration::from_secs(300));
        c.global.set("c2s_stanza_size_limit", Value::Integer(10));
        assert_eq!(from_config(&c, true).unwrap().limits.max_stanza_size, 1024);
        c.global.set("c2s_stanza_size_limit", Value::str("big"));
        let e = from_config(&c, true).unwrap_err();
        assert_eq!(e.option, "c2s_stanza_size_limit");
    }
}
