//! `external_services`: Prosody's mod_external_services — XEP-0215 External
//! Service Discovery (`urn:xmpp:extdisco:2`, and the v0.6 namespace
//! `urn:xmpp:extdisco:1` answered the same way), with TURN REST credentials
//! (draft-uberti-behave-turn-rest: username `EXPIRY[:USER]`, password
//! `base64(HMAC-SHA1(secret, username))`).
//!
//! Options (host value, else global), as Prosody 0.12/13 reads them:
//! `external_services` (a list of `{ type=, host=, port=, transport=,
//! username=, password=, restricted=, expires=, ttl=, secret=, algorithm= }`),
//! `external_service_host` (default: the host), `external_service_port`,
//! `external_service_secret` (used by `secret = true`), `external_service_ttl`
//! (seconds, default 86400) and `external_service_access` (JIDs or hosts that
//! may ask; empty: any client of this server).
//!
//! Other modules add services as Prosody's `module:add_item("external_service",
//! {...})` with [`add_item`], or change the list per request in the host events
//! `external_service/services` and `external_service/credentials`: the event's
//! field `services` is the list of prepared records (Lua-shaped tables),
//! `requested_type` / `requested_credentials` say what was asked; what a
//! handler leaves in `services` is prepared again (as Prosody's list asserts
//! on insertion) and answered.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server, SessionKind, Table, Value};

use crate::ModuleError;

pub const NS_EXTDISCO_2: &str = "urn:xmpp:extdisco:2";
/// XEP-0215 v0.6, still answered for older clients.
pub const NS_EXTDISCO_1: &str = "urn:xmpp:extdisco:1";
/// Prosody's default `external_service_ttl`: one day.
pub const DEFAULT_TTL: i64 = 86_400;

/// A service as Prosody's `prepare` makes it from a configured item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub type_: String,
    pub transport: Option<String>,
    pub host: String,
    pub port: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub restricted: bool,
    /// Unix time.
    pub expires: Option<i64>,
}

/// The module's host-wide options.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub host: String,
    pub port: Option<i64>,
    pub secret: Option<String>,
    pub ttl: i64,
}

/// TURN REST credentials for a service expiring at `expires` (Unix time):
/// the username is `expires` or `expires:user`, the password the base64 of
/// HMAC-SHA1 keyed with `secret` over that username.
pub fn turn_rest_credentials(secret: &str, expires: i64, user: Option<&str>) -> (String, String) {
    let username = match user {
        Some(u) => format!("{expires}:{u}"),
        None => expires.to_string(),
    };
    // HMAC accepts keys of any length, so this cannot fail.
    let password = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            BASE64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

fn whole(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Number(n) if n.is_finite() => Some(n.floor() as i64),
        _ => None,
    }
}

/// Prosody's `prepare`: an item of the option (or one a module added) as a
/// service record, or `None` (logged) when it is not a table or has no type.
pub fn prepare(item: &Value, defaults: &Defaults, now: i64) -> Option<Service> {
    let Some(t) = item.as_table() else {
        tracing::error!("Service definition is not a table: {item:?}");
        return None;
    };
    let string = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
    let number = |k: &str| t.get(k).and_then(whole);
    let Some(type_) = string("type") else {
        tracing::error!("Service missing mandatory 'type' field: {item:?}");
        return None;
    };
    let mut srv = Service {
        type_,
        transport: string("transport"),
        host: string("host").unwrap_or_else(|| defaults.host.clone()),
        port: number("port").or(defaults.port),
        username: string("username"),
        password: None,
        restricted: false,
        expires: None,
    };
    if let Some(p) = string("password") {
        srv.password = Some(p);
        srv.restricted = true;
    }
    if t.get("restricted") == Some(&Value::Bool(true)) {
        srv.restricted = true;
    }
    srv.expires = number("expires").or_else(|| number("ttl").map(|ttl| now + ttl));
    let secret = match t.get("secret") {
        Some(Value::Bool(true)) => defaults.secret.clone(),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    // The only credential algorithm Prosody has is "turn", chosen by
    // `algorithm` or else by the service type.
    let algorithm = string("algorithm").unwrap_or_else(|| srv.type_.clone());
    if let Some(secret) = secret
        && algorithm == "turn"
    {
        let ttl = number("ttl").unwrap_or(defaults.ttl);
        let expires = srv.expires.unwrap_or(now + ttl);
        let (username, password) =
            turn_rest_credentials(&secret, expires, string("username").as_deref());
        srv.username = Some(username);
        srv.password = Some(password);
        srv.restricted = true;
    }
    Some(srv)
}

impl Service {
    /// The `<service/>` element, attributes as Prosody writes them.
    pub fn to_element(&self, ns: &str) -> Element {
        Element::new("service", ns)
            .attr("type", &self.type_)
            .attr_opt("transport", self.transport.as_deref())
            .attr("host", &self.host)
            .attr_opt("port", self.port.map(|p| p.to_string()))
            .attr_opt("username", self.username.as_deref())
            .attr_opt("password", self.password.as_deref())
            .attr_opt(
                "expires",
                self.expires.map(|e| crate::time::datetime(e as f64)),
            )
            .attr_opt("restricted", self.restricted.then_some("1"))
    }

    /// The record as a Lua-shaped table (for events).
    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        t.insert("type", Value::str(&self.type_));
        t.insert("host", Value::str(&self.host));
        let opt = |t: &mut Table, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                t.insert(k, Value::str(v));
            }
        };
        opt(&mut t, "transport", &self.transport);
        opt(&mut t, "username", &self.username);
        opt(&mut t, "password", &self.password);
        if let Some(p) = self.port {
            t.insert("port", Value::Integer(p));
        }
        if let Some(e) = self.expires {
            t.insert("expires", Value::Integer(e));
        }
        if self.restricted {
            t.insert("restricted", Value::Bool(true));
        }
        Value::Table(t)
    }
}

/// Services other modules added on a host (Prosody's host items
/// `external_service`).
#[derive(Default)]
pub struct ExternalServiceItems(Mutex<Vec<Value>>);

/// Adds a service item (shaped as an `external_services` entry) on `host`.
pub fn add_item(host: &Host, item: Value) {
    let items = host.extension::<ExternalServiceItems>();
    items.0.lock().unwrap_or_else(|e| e.into_inner()).push(item);
}

struct Config {
    defaults: Defaults,
    configured: Vec<Value>,
    access: Vec<String>,
}

/// A list option as Prosody's `get_option_array`: a table's array part, or
/// any other value as a one-item list.
fn option_array(host: &Host, name: &str) -> Vec<Value> {
    match host.option(name) {
        None => Vec::new(),
        Some(Value::Table(t)) => t.seq.clone(),
        Some(v) => vec![v.clone()],
    }
}

fn load_config(host: &Host) -> Result<Config, ModuleError> {
    let port = match host.option("external_service_port") {
        None => None,
        Some(v) => Some(whole(v).ok_or_else(|| {
            host.option_error(
                "external_service_port",
                format!("must be a number, not a {}", v.type_name()),
            )
        })?),
    };
    let ttl = match host.option("external_service_ttl") {
        None => DEFAULT_TTL,
        Some(v) => whole(v).ok_or_else(|| {
            host.option_error(
                "external_service_ttl",
                format!("must be a number of seconds, not a {}", v.type_name()),
            )
        })?,
    };
    let access = option_array(host, "external_service_access")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    Ok(Config {
        defaults: Defaults {
            host: host
                .option_str("external_service_host")
                .unwrap_or(&host.name)
                .to_string(),
            port,
            secret: host
                .option_str("external_service_secret")
                .map(str::to_string),
            ttl,
        },
        configured: option_array(host, "external_services"),
        access,
    })
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let config = Arc::new(load_config(host)?);
    // As Prosody's module.load: report bad items (and none) at start-up.
    let now = server.clock.now() as i64;
    let valid = config
        .configured
        .iter()
        .filter_map(|i| prepare(i, &config.defaults, now))
        .count();
    if valid == 0 {
        tracing::warn!(host = %host.name, "No services configured or all had errors");
    }
    for ns in [NS_EXTDISCO_2, NS_EXTDISCO_1] {
        crate::disco::add_feature(host, ns);
        let c = config.clone();
        host.events
            .hook(&format!("iq-get/host/{ns}:services"), 0, move |ev| {
                handle_services(ev, &c)
            });
        let c = config.clone();
        host.events
            .hook(&format!("iq-get/host/{ns}:credentials"), 0, move |ev| {
                handle_credentials(ev, &c)
            });
    }
    Ok(())
}

/// The configured services and those modules added, prepared now.
fn current_services(host: Option<&Arc<Host>>, config: &Config, now: i64) -> Vec<Service> {
    let extras = host
        .map(|h| {
            h.extension::<ExternalServiceItems>()
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
        .unwrap_or_default();
    config
        .configured
        .iter()
        .chain(extras.iter())
        .filter_map(|i| prepare(i, &config.defaults, now))
        .collect()
}

/// Fires `name` with the services as the event's `services` field and
/// returns what the handlers left there, prepared again.
fn fire_services_event(
    ev: &Event,
    config: &Config,
    name: &str,
    services: Vec<Service>,
    field: (&str, Option<Value>),
    now: i64,
) -> Vec<Service> {
    let Some(host) = ev.host.clone() else {
        return services;
    };
    let list = Table {
        seq: services.iter().map(Service::to_value).collect(),
        ..Table::default()
    };
    let mut event = Event::new(&ev.server, name).with_field("services", Value::Table(list));
    event.stanza = ev.stanza.clone();
    event.origin = ev.origin.clone();
    if let (key, Some(v)) = field {
        event.fields.insert(key.to_string(), v);
    }
    ev.server.fire_on_host(&host, name, &mut event);
    match event.fields.get("services") {
        Some(Value::Table(t)) => t
            .seq
            .iter()
            .filter_map(|i| prepare(i, &config.defaults, now))
            .collect(),
        _ => Vec::new(),
    }
}

fn answer(ev: &Event, services: &[Service]) {
    let stanza = ev.stanza();
    let (name, ns) = stanza
        .first_child()
        .map(|a| (a.name().to_string(), a.ns().to_string()))
        .unwrap_or_else(|| ("services".to_string(), NS_EXTDISCO_2.to_string()));
    let mut payload = Element::new(&name, &ns);
    for s in services {
        payload.push_child(s.to_element(&ns));
    }
    ev.reply(stanza.reply().child(payload));
}

fn may_discover(ev: &Event, access: &[String]) -> bool {
    let from = ev
        .stanza()
        .get_attr("from")
        .and_then(|f| Jid::parse(f).ok());
    let bare = from.as_ref().map(|j| j.to_bare().to_string());
    let domain = from.as_ref().map(|j| j.domain().to_string());
    let is_c2s = ev
        .origin
        .as_ref()
        .is_some_and(|o| o.kind == SessionKind::C2s);
    (access.is_empty() && is_c2s)
        || access
            .iter()
            .any(|a| Some(a) == bare.as_ref() || Some(a) == domain.as_ref())
}

fn handle_services(ev: &mut Event, config: &Config) -> bool {
    if !may_discover(ev, &config.access) {
        ev.reply(StanzaError::forbidden().reply_to(ev.stanza()));
        return true;
    }
    let now = ev.server.clock.now() as i64;
    let requested_type = ev
        .stanza()
        .first_child()
        .and_then(|a| a.get_attr("type"))
        .map(str::to_string);
    let mut services = current_services(ev.host.as_ref(), config, now);
    if let Some(t) = &requested_type {
        services.retain(|s| &s.type_ == t);
    }
    let services = fire_services_event(
        ev,
        config,
        "external_service/services",
        services,
        ("requested_type", requested_type.map(Value::String)),
        now,
    );
    answer(ev, &services);
    true
}

/// `type:host:port` as Prosody keys requested credentials (port 0: any).
fn credential_key(type_: &str, host: &str, port: i64) -> String {
    format!("{type_}:{host}:{port}")
}

fn handle_credentials(ev: &mut Event, config: &Config) -> bool {
    if !ev
        .origin
        .as_ref()
        .is_some_and(|o| o.kind == SessionKind::C2s)
    {
        // Prosody's text, odd as it is.
        let err =
            StanzaError::forbidden().with_text("The 'port' and 'type' attributes are required.");
        ev.reply(err.reply_to(ev.stanza()));
        return true;
    }
    let now = ev.server.clock.now() as i64;
    let mut requested = Vec::new();
    if let Some(action) = ev.stanza().first_child() {
        for s in action.children().filter(|c| c.name() == "service") {
            let (Some(t), Some(h)) = (s.get_attr("type"), s.get_attr("host")) else {
                ev.reply(StanzaError::bad_request().reply_to(ev.stanza()));
                return true;
            };
            let port = s
                .get_attr("port")
                .and_then(|p| p.trim().parse::<f64>().ok())
                .filter(|p| p.is_finite())
                .map(|p| p as i64)
                .unwrap_or(0);
            let key = credential_key(t, h, port);
            if !requested.contains(&key) {
                requested.push(key);
            }
        }
    }
    let mut services = current_services(ev.host.as_ref(), config, now);
    services.retain(|s| s.restricted);
    let requested_value = Value::Table(Table {
        seq: requested.iter().map(Value::str).collect(),
        ..Table::default()
    });
    let mut services = fire_services_event(
        ev,
        config,
        "external_service/credentials",
        services,
        ("requested_credentials", Some(requested_value)),
        now,
    );
    services.retain(|s| {
        let exact = credential_key(&s.type_, &s.host, s.port.unwrap_or(0));
        let portless = credential_key(&s.type_, &s.host, 0);
        requested.contains(&exact) || requested.contains(&portless)
    });
    answer(ev, &services);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, Value)]) -> Value {
        let mut t = Table::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        Value::Table(t)
    }

    fn defaults() -> Defaults {
        Defaults {
            host: "meet.example.com".into(),
            port: None,
            secret: Some("turnsecret-0123456789abcdef".into()),
            ttl: DEFAULT_TTL,
        }
    }

    #[test]
    fn turn_rest_credentials_known_vectors() {
        // Computed independently (Python's hmac + base64).
        assert_eq!(
            turn_rest_credentials("turnsecret-0123456789abcdef", 1_700_000_000, None),
            ("1700000000".into(), "kLQem2QbbletescQ8YtYCHY3Bxo=".into())
        );
        assert_eq!(
            turn_rest_credentials("turnsecret-0123456789abcdef", 1_700_000_000, Some("alice")),
            (
                "1700000000:alice".into(),
                "r8fs24ezDMGwQFPhPuINbwX/1uY=".into()
            )
        );
        assert_eq!(
            turn_rest_credentials("north", 1_433_895_918_506, Some("my_username")).1,
            "Gx/rOncp1ZXBdeBo0S3RrYQnHDA="
        );
    }

    #[test]
    fn prepares_the_jitsi_fixture_items() {
        let now = 1_700_000_000;
        let stun = item(&[
            ("type", "stun".into()),
            ("host", "meet.example.com".into()),
            ("port", 3478i64.into()),
        ]);
        let s = prepare(&stun, &defaults(), now).unwrap();
        assert_eq!(s.port, Some(3478));
        assert!(!s.restricted && s.username.is_none() && s.expires.is_none());
        let el = s.to_element(NS_EXTDISCO_2);
        assert_eq!(el.get_attr("type"), Some("stun"));
        assert_eq!(el.get_attr("host"), Some("meet.example.com"));
        assert_eq!(el.get_attr("port"), Some("3478"));
        for absent in ["transport", "username", "password", "expires", "restricted"] {
            assert_eq!(el.get_attr(absent), None, "{absent}");
        }

        let turns = item(&[
            ("type", "turns".into()),
            ("host", "meet.example.com".into()),
            ("port", 5349i64.into()),
            ("transport", "tcp".into()),
            ("secret", true.into()),
            ("ttl", 86400i64.into()),
            ("algorithm", "turn".into()),
        ]);
        let s = prepare(&turns, &defaults(), now).unwrap();
        let expires = now + 86_400;
        assert_eq!(s.expires, Some(expires));
        let (u, p) = turn_rest_credentials("turnsecret-0123456789abcdef", expires, None);
        assert_eq!(s.username.as_deref(), Some(u.as_str()));
        assert_eq!(s.password.as_deref(), Some(p.as_str()));
        assert!(s.restricted);
        let el = s.to_element(NS_EXTDISCO_2);
        assert_eq!(el.get_attr("expires"), Some("2023-11-15T22:13:20Z"));
        assert_eq!(el.get_attr("restricted"), Some("1"));
    }

    #[test]
    fn prepare_rules() {
        let now = 1000;
        let d = defaults();
        assert!(prepare(&Value::str("stun"), &d, now).is_none());
        assert!(prepare(&item(&[("host", "x".into())]), &d, now).is_none());
        // Defaults fill in host and port; a string port is ignored.
        let d2 = Defaults {
            port: Some(3478),
            ..defaults()
        };
        let s = prepare(
            &item(&[("type", "stun".into()), ("port", "4446".into())]),
            &d2,
            now,
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("meet.example.com", Some(3478)));
        // A password makes a service restricted; so does restricted = true.
        let s = prepare(
            &item(&[
                ("type", "turn".into()),
                ("username", "u".into()),
                ("password", "p".into()),
            ]),
            &d,
            now,
        )
        .unwrap();
        assert!(s.restricted && s.password.as_deref() == Some("p"));
        // secret = true without external_service_secret: no credentials.
        let nosecret = Defaults {
            secret: None,
            ..defaults()
        };
        let s = prepare(
            &item(&[("type", "turn".into()), ("secret", true.into())]),
            &nosecret,
            now,
        )
        .unwrap();
        assert!(!s.restricted && s.password.is_none());
        // A "turns" service without algorithm = "turn" gets no credentials.
        let s = prepare(
            &item(&[("type", "turns".into()), ("secret", "x".into())]),
            &d,
            now,
        )
        .unwrap();
        assert!(s.password.is_none());
        // An item's own secret and username, and the default ttl.
        let s = prepare(
            &item(&[
                ("type", "turn".into()),
                ("secret", "north".into()),
                ("username", "bob".into()),
            ]),
            &d,
            now,
        )
        .unwrap();
        assert_eq!(s.username.as_deref(), Some("87400:bob"));
        assert_eq!(s.expires, None, "expires is only sent when configured");
        // Prepared again (as events do), a record stays the same.
        assert_eq!(prepare(&s.to_value(), &d, now + 5), Some(s));
    }
}
