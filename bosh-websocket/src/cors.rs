//! Cross-origin resource sharing, as Prosody 13's mod_http applies it to
//! every HTTP app: `Access-Control-*` headers on the app's responses and an
//! `OPTIONS` preflight answered with an empty 200.
//!
//! Global options: `access_control_allow_methods` (GET, OPTIONS, plus the
//! app's own methods), `access_control_allow_headers` (Content-Type),
//! `access_control_allow_origins` (any), `access_control_allow_credentials`
//! (false), `access_control_max_age` (7200), `http_default_cors_enabled`
//! (true: for apps that say nothing). BOSH and WebSocket enable CORS
//! themselves. `http_cors_override = { bosh = { enabled = false } }` (or
//! `credentials`, `origins`, `headers = { ["X-Foo"] = true }`) changes one
//! app. `cross_domain_bosh` / `cross_domain_websocket` are deprecated in
//! Prosody and only logged.

use axum::http::{HeaderMap, HeaderValue};
use xmpp_core::config::OptionError;
use xmpp_core::{ServerConfig, Value};

/// The global CORS options.
#[derive(Debug, Clone, PartialEq)]
pub struct CorsOptions {
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    /// `None`: any origin.
    pub origins: Option<Vec<String>>,
    pub credentials: bool,
    pub max_age: u64,
    pub default_enabled: bool,
    overrides: Vec<(String, Value)>,
}

/// What one app's responses carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub origins: Option<Vec<String>>,
    pub credentials: bool,
    pub max_age: u64,
}

impl CorsOptions {
    pub fn from_config(config: &ServerConfig) -> Result<CorsOptions, OptionError> {
        let list = |name: &str, default: &[&str]| -> Vec<String> {
            config
                .get_global(name)
                .and_then(Value::as_string_list)
                .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
        };
        let origins = config
            .get_global("access_control_allow_origins")
            .and_then(Value::as_string_list)
            .filter(|o| !o.is_empty() && !o.iter().any(|x| x == "*"));
        let max_age = match config.get_global("access_control_max_age") {
            None => 7200,
            Some(v) => v
                .as_f64()
                .filter(|n| *n >= 0.0)
                .map(|n| n as u64)
                .ok_or_else(|| OptionError {
                    option: "access_control_max_age".into(),
                    defined_at: config.source_of(None, "access_control_max_age").cloned(),
                    problem: format!("must be a number of seconds, not {v:?}"),
                })?,
        };
        let overrides = match config.get_global("http_cors_override") {
            Some(Value::Table(t)) => t.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        };
        let bool_opt = |name: &str, default: bool| {
            config
                .get_global(name)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        for deprecated in ["cross_domain_bosh", "cross_domain_websocket"] {
            if config.get_global(deprecated).is_some() {
                tracing::info!("The '{deprecated}' option has been deprecated");
            }
        }
        Ok(CorsOptions {
            methods: list("access_control_allow_methods", &["GET", "OPTIONS"]),
            headers: list("access_control_allow_headers", &["Content-Type"]),
            origins,
            credentials: bool_opt("access_control_allow_credentials", false),
            max_age,
            default_enabled: bool_opt("http_default_cors_enabled", true),
            overrides,
        })
    }

    /// The policy of app `name`, whose own setting is `app_enabled` (`None`
    /// when the app says nothing), serving `methods`. `None`: no CORS.
    pub fn policy_for(
        &self,
        name: &str,
        app_enabled: Option<bool>,
        methods: &[String],
    ) -> Option<CorsPolicy> {
        let mut policy = CorsPolicy {
            methods: self.methods.clone(),
            headers: self.headers.clone(),
            origins: self.origins.clone(),
            credentials: self.credentials,
            max_age: self.max_age,
        };
        for m in methods {
            if !policy.methods.contains(m) {
                policy.methods.push(m.clone());
            }
        }
        let override_ = self
            .overrides
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v);
        let enabled = match override_ {
            Some(o) => match o.get("enabled").and_then(Value::as_bool) {
                Some(true) => {
                    apply_override(&mut policy, o);
                    true
                }
                Some(false) => false,
                // An override without `enabled` neither enables nor disables,
                // as in Prosody (it replaces the app's own table).
                None => false,
            },
            None => app_enabled.unwrap_or(self.default_enabled),
        };
        enabled.then_some(policy)
    }
}

fn apply_override(policy: &mut CorsPolicy, o: &Value) {
    if let Some(c) = o.get("credentials").and_then(Value::as_bool) {
        policy.credentials = c;
    }
    if let Some(Value::Table(headers)) = o.get("headers") {
        for (header, enable) in &headers.map {
            let on = enable.as_bool().unwrap_or(false);
            let present = policy
                .headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(header));
            if on && !present {
                policy.headers.push(header.clone());
            } else if !on && present {
                policy.headers.retain(|h| !h.eq_ignore_ascii_case(header));
            }
        }
    }
    if let Some(origins) = o.get("origins") {
        let list = origins.as_string_list().unwrap_or_default();
        policy.origins = if list.first().map(String::as_str) == Some("*") {
            None
        } else {
            Some(list)
        };
    }
}

impl CorsPolicy {
    /// Adds the headers for a request from `origin` (none when the origin
    /// is not allowed).
    pub fn apply(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        if let Some(allowed) = &self.origins
            && !origin.is_some_and(|o| allowed.iter().any(|a| a == o))
        {
            return;
        }
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        set("access-control-allow-methods", &self.methods.join(", "));
        set("access-control-allow-headers", &self.headers.join(", "));
        set("access-control-max-age", &self.max_age.to_string());
        set("access-control-allow-origin", origin.unwrap_or("*"));
        if self.credentials {
            set("access-control-allow-credentials", "true");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::value::Table;

    fn options(set: &[(&str, Value)]) -> CorsOptions {
        let mut cfg = ServerConfig::default();
        for (k, v) in set {
            cfg.global.set(*k, v.clone());
        }
        CorsOptions::from_config(&cfg).unwrap()
    }

    fn table(entries: &[(&str, Value)]) -> Value {
        let mut t = Table::new();
        for (k, v) in entries {
            t.insert(*k, v.clone());
        }
        Value::Table(t)
    }

    #[test]
    fn bosh_gets_prosodys_headers() {
        let p = options(&[])
            .policy_for("bosh", Some(true), &["GET".into(), "POST".into()])
            .unwrap();
        let mut h = HeaderMap::new();
        p.apply(Some("https://meet.example"), &mut h);
        assert_eq!(h["access-control-allow-methods"], "GET, OPTIONS, POST");
        assert_eq!(h["access-control-allow-headers"], "Content-Type");
        assert_eq!(h["access-control-max-age"], "7200");
        assert_eq!(h["access-control-allow-origin"], "https://meet.example");
        assert!(h.get("access-control-allow-credentials").is_none());
        let mut h = HeaderMap::new();
        p.apply(None, &mut h);
        assert_eq!(h["access-control-allow-origin"], "*");
    }

    #[test]
    fn overrides_and_origins() {
        let o = options(&[(
            "http_cors_override",
            table(&[
                ("bosh", table(&[("enabled", Value::Bool(false))])),
                (
                    "websocket",
                    table(&[
                        ("enabled", Value::Bool(true)),
                        ("credentials", Value::Bool(true)),
                        (
                            "origins",
                            Value::Table(Table {
                                seq: vec![Value::str("https://a.example")],
                                ..Table::default()
                            }),
                        ),
                        ("headers", table(&[("X-Token", Value::Bool(true))])),
                    ]),
                ),
            ]),
        )]);
        assert!(o.policy_for("bosh", Some(true), &[]).is_none());
        let ws = o
            .policy_for("websocket", Some(true), &["GET".into()])
            .unwrap();
        let mut h = HeaderMap::new();
        ws.apply(Some("https://b.example"), &mut h);
        assert!(h.is_empty(), "origin not allowed");
        ws.apply(Some("https://a.example"), &mut h);
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-allow-headers"], "Content-Type, X-Token");
        // Apps that say nothing follow http_default_cors_enabled.
        assert!(o.policy_for("health", None, &[]).is_some());
        let off = options(&[("http_default_cors_enabled", Value::Bool(false))]);
        assert!(off.policy_for("health", None, &[]).is_none());
        assert!(off.policy_for("bosh", Some(true), &[]).is_some());
    }
}
