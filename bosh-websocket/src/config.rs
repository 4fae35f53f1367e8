//! The HTTP server's options, read as Prosody's mod_http, portmanager,
//! net.http.server, mod_bosh and mod_websocket read them.
//!
//! | option | default |
//! |---|---|
//! | `http_ports` / `http_interfaces` | 5280 / `local_interfaces`, else 127.0.0.1 and ::1 |
//! | `https_ports` / `https_interfaces` | 5281 / `interfaces`, else all |
//! | `http_default_host` | none |
//! | `http_max_content_size` | 10 MiB |
//! | `trusted_proxies` | 127.0.0.1, ::1 (addresses or CIDR ranges) |
//! | `access_control_*`, `http_default_cors_enabled`, `http_cors_override` | see [`crate::cors`] |
//! | `bosh_max_inactivity`, `bosh_max_polling`, `bosh_max_wait`, `bosh_max_pause` | 60, 5, 120, 300 s |
//! | `consider_bosh_secure`, `consider_websocket_secure` | false |
//! | `c2s_stanza_size_limit` | 256 KiB |
//! | `websocket_frame_buffer_limit` / `websocket_frame_fragment_limit` | 2 × stanza limit / 8 |
//! | `network_settings.send_timeout` / `.read_timeout` | 180 s / 840 s |

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xmpp_core::config::OptionError;
use xmpp_core::listen;
use xmpp_core::{Server, ServerConfig, Value};

use crate::cors::CorsOptions;
use crate::proxy::TrustedProxies;

/// Everything the HTTP service needs from the config: the listeners' ports
/// at start, the rest per request and per new BOSH or WebSocket session
/// from the config in force ([`in_force`]), so a reload applies it.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub http_ports: Vec<u16>,
    pub http_interfaces: Vec<IpAddr>,
    pub https_ports: Vec<u16>,
    pub https_interfaces: Vec<IpAddr>,
    pub default_host: Option<String>,
    pub max_content_size: usize,
    pub trusted_proxies: TrustedProxies,
    pub cors: CorsOptions,
    pub bosh: BoshOptions,
    pub websocket: WebSocketOptions,
    /// How long a write may wait for the peer to read
    /// (`network_settings.send_timeout`).
    pub send_timeout: Duration,
    /// Idle time after which a WebSocket is pinged
    /// (`network_settings.read_timeout`).
    pub read_timeout: Duration,
    /// `c2s_timeout`: how long a stream may stay unauthenticated.
    pub unauthed_timeout: Duration,
}

/// mod_bosh's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoshOptions {
    pub max_inactivity: Duration,
    pub max_polling: Duration,
    pub max_wait: Duration,
    /// Longest `pause` a client may ask for (XEP-0124 §12; advertised as
    /// `maxpause`).
    pub max_pause: Duration,
    pub consider_secure: bool,
    pub stanza_size_limit: usize,
}

/// mod_websocket's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketOptions {
    pub consider_secure: bool,
    pub stanza_size_limit: usize,
    pub frame_buffer_limit: usize,
    pub frame_fragment_limit: usize,
    /// `c2s_close_timeout`: how long to wait for the client's `<close/>`
    /// after ours.
    pub close_timeout: Duration,
}

impl HttpConfig {
    /// Reads the options from the global section.
    pub fn from_config(config: &ServerConfig) -> Result<HttpConfig, OptionError> {
        let stanza_size_limit = number(config, "c2s_stanza_size_limit", 256 * 1024)?.max(1024);
        let http_interfaces = match config.get_global("http_interfaces") {
            Some(_) => listen::interfaces(config, "http_interfaces", &[])?,
            None => match config.get_global("local_interfaces") {
                Some(_) => listen::interfaces(config, "local_interfaces", &[])?,
                None => listen::interfaces(config, "http_interfaces", &["127.0.0.1", "::1"])?,
            },
        };
        let https_interfaces = match config.get_global("https_interfaces") {
            Some(_) => listen::interfaces(config, "https_interfaces", &[])?,
            None => listen::interfaces(config, "interfaces", &["*", "::"])?,
        };
        let network = config.get_global("network_settings");
        let network_secs = |name: &str, default: u64| {
            network
                .and_then(|n| n.get(name))
                .and_then(Value::as_f64)
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
                .unwrap_or(Duration::from_secs(default))
        };
        Ok(HttpConfig {
            http_ports: listen::ports(config, "http_ports", &[5280])?,
            http_interfaces,
            https_ports: listen::ports(config, "https_ports", &[5281])?,
            https_interfaces,
            default_host: config
                .get_global("http_default_host")
                .and_then(Value::as_str)
                .map(str::to_string),
            max_content_size: number(config, "http_max_content_size", 10 * 1024 * 1024)?,
            trusted_proxies: TrustedProxies::from_config(config)?,
            cors: CorsOptions::from_config(config)?,
            bosh: BoshOptions {
                max_inactivity: seconds(config, "bosh_max_inactivity", 60)?,
                max_polling: seconds(config, "bosh_max_polling", 5)?,
                max_wait: seconds(config, "bosh_max_wait", 120)?,
                max_pause: seconds(config, "bosh_max_pause", 300)?,
                consider_secure: boolean(config, "consider_bosh_secure")?,
                stanza_size_limit,
            },
            websocket: WebSocketOptions {
                consider_secure: boolean(config, "consider_websocket_secure")?,
                stanza_size_limit,
                frame_buffer_limit: number(
                    config,
                    "websocket_frame_buffer_limit",
                    2 * stanza_size_limit,
                )?,
                frame_fragment_limit: number(config, "websocket_frame_fragment_limit", 8)?,
                close_timeout: seconds(config, "c2s_close_timeout", 5)?,
            },
            send_timeout: network_secs("send_timeout", 180),
            read_timeout: network_secs("read_timeout", 840),
            unauthed_timeout: seconds(config, "c2s_timeout", 300)?,
        })
    }
}

/// The options of the config in force, read again after a reload put a
/// new config in force (a server extension: [`in_force`]).
#[derive(Default)]
pub struct LiveHttpConfig {
    /// The snapshot read (its address: snapshots live as long as the
    /// server) and what was read from it.
    read: Mutex<Option<(usize, Arc<HttpConfig>)>>,
}

/// The HTTP options of the config in force, for a new request or session:
/// read once per config snapshot. A reloaded config whose HTTP options do
/// not read (a reload checks them first) keeps the previous ones, logged.
/// `None` only if no config ever read.
pub fn in_force(server: &Server) -> Option<Arc<HttpConfig>> {
    let current = server.config.current();
    let key = Arc::as_ptr(current) as usize;
    let live = server.extension::<LiveHttpConfig>();
    let mut read = live.read.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, config)) = read.as_ref()
        && *at == key
    {
        return Some(config.clone());
    }
    match HttpConfig::from_config(current) {
        Ok(config) => {
            let config = Arc::new(config);
            // Routes made before keep their app's CORS wish; the policy
            // follows the options now in force.
            server
                .extension::<crate::routes::HttpRoutes>()
                .refresh_cors(&config.cors);
            *read = Some((key, config.clone()));
            Some(config)
        }
        Err(e) => {
            tracing::warn!("HTTP options not applied, the previous ones stay in force: {e}");
            let previous = read.as_ref().map(|(_, c)| c.clone());
            if let Some(c) = &previous {
                *read = Some((key, c.clone()));
            }
            previous
        }
    }
}

fn option_error(config: &ServerConfig, name: &str, problem: String) -> OptionError {
    OptionError {
        option: name.to_string(),
        defined_at: config.source_of(None, name).cloned(),
        problem,
    }
}

/// A non-negative integer option.
fn number(config: &ServerConfig, name: &str, default: usize) -> Result<usize, OptionError> {
    match config.get_global(name) {
        None => Ok(default),
        Some(v) => v
            .as_i64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                option_error(
                    config,
                    name,
                    format!("must be a non-negative integer, not {v:?}"),
                )
            }),
    }
}

/// A period in seconds (Prosody 13's `get_option_period` also takes
/// fractions).
fn seconds(config: &ServerConfig, name: &str, default: u64) -> Result<Duration, OptionError> {
    match config.get_global(name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                option_error(
                    config,
                    name,
                    format!("must be a number of seconds, not {v:?}"),
                )
            }),
    }
}

fn boolean(config: &ServerConfig, name: &str) -> Result<bool, OptionError> {
    match config.get_global(name) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| option_error(config, name, format!("must be true or false, not {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::value::Table;

    fn config(options: &[(&str, Value)]) -> ServerConfig {
        let mut cfg = ServerConfig::default();
        for (k, v) in options {
            cfg.global.set(*k, v.clone());
        }
        cfg
    }

    fn list(items: &[Value]) -> Value {
        Value::Table(Table {
            seq: items.to_vec(),
            ..Table::default()
        })
    }

    #[test]
    fn prosody_defaults() {
        let c = HttpConfig::from_config(&config(&[])).unwrap();
        assert_eq!(c.http_ports, vec![5280]);
        assert_eq!(c.https_ports, vec![5281]);
        assert_eq!(
            c.http_interfaces,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(c.https_interfaces.len(), 2);
        assert_eq!(c.bosh.max_inactivity, Duration::from_secs(60));
        assert_eq!(c.bosh.max_wait, Duration::from_secs(120));
        assert_eq!(c.websocket.frame_buffer_limit, 512 * 1024);
        assert_eq!(c.websocket.frame_fragment_limit, 8);
        assert_eq!(c.send_timeout, Duration::from_secs(180));
        assert!(!c.bosh.consider_secure);
    }

    #[test]
    fn options_are_read() {
        let mut net = Table::new();
        net.insert("send_timeout", Value::Integer(3));
        let c = HttpConfig::from_config(&config(&[
            ("http_ports", list(&[Value::Integer(0)])),
            ("https_ports", list(&[])),
            ("interfaces", list(&[Value::str("127.0.0.1")])),
            ("http_default_host", Value::str("meet.jitsi")),
            ("bosh_max_wait", Value::Integer(5)),
            ("consider_bosh_secure", Value::Bool(true)),
            ("c2s_stanza_size_limit", Value::Integer(10_000)),
            ("network_settings", Value::Table(net)),
        ]))
        .unwrap();
        assert_eq!(c.http_ports, vec![0]);
        assert!(c.https_ports.is_empty());
        assert_eq!(
            c.https_interfaces,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(c.default_host.as_deref(), Some("meet.jitsi"));
        assert_eq!(c.bosh.max_wait, Duration::from_secs(5));
        assert!(c.bosh.consider_secure);
        assert_eq!(c.websocket.frame_buffer_limit, 20_000);
        assert_eq!(c.send_timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_reloaded_config_is_read_once_and_refreshes_cors() {
        use crate::routes::{HttpApp, HttpResponse, HttpRoutes, Resolution, handler, provide};
        use axum::http::{Method, StatusCode};
        let server = Server::for_tests();
        let host = server.host("localhost").unwrap();
        let ok = handler(|_req| async { HttpResponse::new(StatusCode::OK) });
        let app = HttpApp {
            name: "thing".into(),
            default_path: None,
            cors: Some(true),
            routes: vec![("GET".into(), ok)],
        };
        provide(&server, Some(&host), app).unwrap();
        let origins = || match server.extension::<HttpRoutes>().resolve(
            &Method::GET,
            Some("localhost"),
            "/thing",
            None,
        ) {
            Resolution::Route { route, .. } => route.cors.and_then(|c| c.origins.clone()),
            _ => panic!("no route"),
        };
        let first = in_force(&server).unwrap();
        assert!(Arc::ptr_eq(&first, &in_force(&server).unwrap()));
        assert_eq!(first.bosh.max_wait, Duration::from_secs(120));
        assert_eq!(origins(), None);

        let mut next = (**server.config.current()).clone();
        next.global.set("bosh_max_wait", Value::Integer(7));
        next.global.set(
            "access_control_allow_origins",
            list(&[Value::str("https://meet.example")]),
        );
        server.config.replace(Arc::new(next));
        let second = in_force(&server).unwrap();
        assert_eq!(second.bosh.max_wait, Duration::from_secs(7));
        assert_eq!(origins(), Some(vec!["https://meet.example".to_string()]));

        // Options that do not read: the previous ones stay in force.
        let mut bad = (**server.config.current()).clone();
        bad.global.set("bosh_max_wait", Value::str("long"));
        server.config.replace(Arc::new(bad));
        assert!(Arc::ptr_eq(&second, &in_force(&server).unwrap()));
    }

    #[test]
    fn bad_options_name_themselves() {
        let e =
            HttpConfig::from_config(&config(&[("http_ports", Value::str("many"))])).unwrap_err();
        assert_eq!(e.option, "http_ports");
        let e = HttpConfig::from_config(&config(&[("http_interfaces", Value::str("nowhere"))]))
            .unwrap_err();
        assert_eq!(e.option, "http_interfaces");
        let e =
            HttpConfig::from_config(&config(&[("bosh_max_wait", Value::str("long"))])).unwrap_err();
        assert_eq!(e.option, "bosh_max_wait");
    }
}
