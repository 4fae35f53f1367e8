//! `register`: Prosody 0.12's mod_register — XEP-0077 In-Band
//! Registration, which is two modules there, both here:
//!
//! - **user_account_management** (always): an authenticated account asks
//!   `jabber:iq:register` of itself (or, with `registration_compat`, default
//!   true, of its server): get → `<registered/>` with its username; set with
//!   `<username/>` (its own) and `<password/>` → the password changes; set
//!   with `<remove/>` → the account is deleted (its data purged,
//!   `user-deleted` fired), the reply sent and every session of it closed
//!   with `not-authorized` "Account deleted", as Prosody.
//! - **register_ibr** (when `allow_registration = true`): before
//!   authentication, the `<register/>` stream feature (only on encrypted
//!   streams while `c2s_require_encryption`, default true) and the IQ
//!   (`stanza/iq/jabber:iq:register:query`): get → instructions, the legacy
//!   fields and a data form (`registration_title`,
//!   `registration_instructions`); set → the account is created (username
//!   nodeprepped; `conflict` when it exists; `not-acceptable` for missing
//!   fields), its details stored in `account_details` (`registered` = Unix
//!   time), `user-registered` fired. `user-registering` is fired before
//!   (handlers may refuse, or allow a password reset: `invites_register`
//!   does both); `invites_register` also loads this part without
//!   `allow_registration` (see [`load_ibr`]).
//! - **register_limits**: `registration_blocklist` (`registration_blacklist`)
//!   IPs or CIDR ranges are refused (`forbidden`), with
//!   `allowlist_registration_only` (`whitelist_registration_only`) only
//!   `registration_allowlist` (`registration_whitelist`, default 127.0.0.1
//!   and ::1) may register; `min_seconds_between_registrations` (or
//!   `registration_throttle_max` per `registration_throttle_period`) limits
//!   registrations per IP (`wait/policy-violation`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use xmpp_core::error::{ErrorType, StanzaError, StreamError, StreamErrorCondition};
use xmpp_core::stanza::Element;
use xmpp_core::value::{Table, Value};
use xmpp_core::{Event, Host, Jid, Server, SessionKind};

use crate::ModuleError;

pub const NS_REGISTER: &str = "jabber:iq:register";
pub const NS_FEATURE: &str = "http://jabber.org/features/iq-register";
const NS_DATA: &str = "jabber:x:data";
const DEFAULT_TITLE: &str = "Creating a new account";
const DEFAULT_INSTRUCTIONS: &str = "Choose a username and password for use with this service.";

/// register_limits' settings.
#[derive(Debug, Clone)]
struct Limits {
    blocklist: Vec<String>,
    allowlist: Vec<String>,
    allowlist_only: bool,
    /// (registrations, seconds) per IP.
    throttle: Option<(u32, f64)>,
}

/// Recent registrations per IP.
#[derive(Default)]
struct Recent(Mutex<HashMap<IpAddr, Vec<f64>>>);

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_REGISTER);
    host.events
        .hook(&format!("iq/self/{NS_REGISTER}:query"), 0, manage_account);
    if host.option_bool("registration_compat", true)? {
        host.events
            .hook(&format!("iq/host/{NS_REGISTER}:query"), 0, |e| {
                let ok = e
                    .origin
                    .as_ref()
                    .is_some_and(|o| o.kind == SessionKind::C2s && o.username().is_some())
                    && e.stanza()
                        .to()
                        .is_none_or(|t| e.host.as_ref().is_some_and(|h| h.name == t));
                ok && manage_account(e)
            });
    }
    if host.option_bool("allow_registration", false)? {
        load_ibr(server, host)?;
    }
    Ok(())
}

/// register_ibr is on this host (loaded by `register` with
/// `allow_registration`, or by `invites_register`).
#[derive(Default)]
struct IbrLoaded(std::sync::atomic::AtomicBool);

/// Loads register_ibr on `host` (once; Prosody's `module:depends("register_ibr")`):
/// the `<register/>` stream feature and the registration IQ. Registrations
/// fire `user-registering` first: a handler refuses one by setting the
/// field `allowed` to false (with `reason`, `error_type`,
/// `error_condition`), or lets an existing account's password be set by
/// setting `allow_reset` to its username (then `user-password-reset` fires).
pub fn load_ibr(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    use std::sync::atomic::Ordering;
    let loaded = host.extension::<IbrLoaded>();
    if loaded.0.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    xmpp_core::module::scope::on_unload(move || loaded.0.store(false, Ordering::SeqCst));
    let require_encryption = host.option_bool(
        "c2s_require_encryption",
        host.option_bool("require_encryption", true)?,
    )?;
    let limits = Arc::new(limits(host)?);
    let title = host
        .option_str("registration_title")
        .unwrap_or(DEFAULT_TITLE)
        .to_string();
    let instructions = host
        .option_str("registration_instructions")
        .unwrap_or(DEFAULT_INSTRUCTIONS)
        .to_string();
    host.events.hook("stream-features", 0, move |e| {
        let Some(origin) = e.origin.clone() else {
            return false;
        };
        if origin.kind != SessionKind::C2s
            || origin.username().is_some()
            || (require_encryption && !origin.state().secure)
        {
            return false;
        }
        if let Some(f) = e.stanza.as_mut() {
            f.push_child(Element::new("register", NS_FEATURE));
        }
        false
    });
    host.events
        .hook(&format!("stanza/iq/{NS_REGISTER}:query"), 0, move |e| {
            register(e, require_encryption, &limits, &title, &instructions)
        });
    Ok(())
}

fn limits(host: &Host) -> Result<Limits, ModuleError> {
    let list = |names: [&str; 2], default: &[&str]| -> Vec<String> {
        for n in names {
            if host.option(n).is_some() {
                return host.option_list(n);
            }
        }
        default.iter().map(|s| s.to_string()).collect()
    };
    let min = host
        .option("min_seconds_between_registrations")
        .and_then(Value::as_f64);
    let max = host
        .option("registration_throttle_max")
        .and_then(Value::as_i64)
        .or(min.map(|_| 1));
    let period = host
        .option("registration_throttle_period")
        .and_then(Value::as_f64)
        .or(min);
    let allowlist_only = match host.option("allowlist_registration_only") {
        Some(_) => host.option_bool("allowlist_registration_only", false)?,
        None => host.option_bool("whitelist_registration_only", false)?,
    };
    Ok(Limits {
        blocklist: list(["registration_blocklist", "registration_blacklist"], &[]),
        allowlist: list(
            ["registration_allowlist", "registration_whitelist"],
            &["127.0.0.1", "::1"],
        ),
        allowlist_only,
        throttle: match (max, period) {
            (Some(m), Some(p)) => Some((u32::try_from(m.max(0)).unwrap_or(u32::MAX), p)),
            _ => None,
        },
    })
}

/// Does `ip` match an address or `addr/bits` range of `set`?
fn ip_in(set: &[String], ip: IpAddr) -> bool {
    set.iter().any(|entry| {
        let (addr, bits) = match entry.split_once('/') {
            Some((a, b)) => (a, b.parse::<u32>().ok()),
            None => (entry.as_str(), None),
        };
        let Ok(net) = addr.trim().parse::<IpAddr>() else {
            return false;
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let b = bits.unwrap_or(32).min(32);
                let mask = if b == 0 { 0 } else { u32::MAX << (32 - b) };
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let b = bits.unwrap_or(128).min(128);
                let mask = if b == 0 { 0 } else { u128::MAX << (128 - b) };
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    })
}

/// register_limits' check; `Err` is the refusal.
fn check_limits(
    host: &Host,
    limits: &Limits,
    ip: Option<IpAddr>,
    now: f64,
) -> Result<(), StanzaError> {
    let Some(ip) = ip else {
        tracing::warn!("IP not known; can't apply blocklist/allowlist");
        return Ok(());
    };
    if ip_in(&limits.blocklist, ip) {
        return Err(StanzaError::new(ErrorType::Auth, "forbidden")
            .with_text("Your IP address is blocklisted"));
    }
    if limits.allowlist_only && !ip_in(&limits.allowlist, ip) {
        return Err(StanzaError::new(ErrorType::Auth, "forbidden")
            .with_text("Your IP address is not allowlisted"));
    }
    if let Some((max, period)) = limits.throttle
        && !ip_in(&limits.allowlist, ip)
    {
        let recent = host.extension::<Recent>();
        let mut map = recent.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 1000 {
            map.clear();
        }
        let times = map.entry(ip).or_default();
        times.retain(|t| now - t < period);
        if times.len() >= max as usize {
            return Err(StanzaError::new(ErrorType::Wait, "policy-violation")
                .with_text("Too many registrations from this IP address recently"));
        }
        times.push(now);
    }
    Ok(())
}

fn registration_query(title: &str, instructions: &str) -> Element {
    let field = |var: &str, type_: &str, label: &str| {
        Element::new("field", NS_DATA)
            .attr("var", var)
            .attr("type", type_)
            .attr("label", label)
            .child(Element::new("required", NS_DATA))
    };
    let form = Element::new("x", NS_DATA)
        .attr("type", "form")
        .child(Element::new("title", NS_DATA).text(title))
        .child(Element::new("instructions", NS_DATA).text(instructions))
        .child(
            Element::new("field", NS_DATA)
                .attr("var", "FORM_TYPE")
                .attr("type", "hidden")
                .child(Element::new("value", NS_DATA).text(NS_REGISTER)),
        )
        .child(field("username", "text-single", "Username"))
        .child(field("password", "text-private", "Password"));
    Element::new("query", NS_REGISTER)
        .child(Element::new("instructions", NS_REGISTER).text(instructions))
        .child(Element::new("username", NS_REGISTER))
        .child(Element::new("password", NS_REGISTER))
        .child(form)
}

/// The username and password of a registration, from the form or the
/// legacy fields; `Err`: the not-acceptable text.
fn parse_registration(query: &Element) -> Result<(String, String), String> {
    let mut values: HashMap<String, String> = HashMap::new();
    if let Some(x) = query.get_child("x", NS_DATA) {
        for f in x.children().filter(|f| f.is("field", NS_DATA)) {
            if let (Some(var), Some(v)) = (f.get_attr("var"), f.get_child("value", NS_DATA)) {
                values.insert(var.to_string(), v.text_content());
            }
        }
    } else {
        for name in ["username", "password"] {
            if let Some(v) = query.get_child_text(name, NS_REGISTER) {
                values.insert(name.to_string(), v);
            }
        }
    }
    let mut errors = Vec::new();
    for (name, label) in [("username", "Username"), ("password", "Password")] {
        if values.get(name).is_none_or(String::is_empty) {
            errors.push(format!("{label}: Required value missing"));
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok((
        values.remove("username").unwrap_or_default(),
        values.remove("password").unwrap_or_default(),
    ))
}

/// mod_register_ibr: an IQ on an unauthenticated stream.
fn register(
    event: &mut Event,
    require_encryption: bool,
    limits: &Limits,
    title: &str,
    instructions: &str,
) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let err = |e: StanzaError| e.reply_to(&stanza);
    if origin.username().is_some() {
        event.reply(err(StanzaError::service_unavailable()));
        return true;
    }
    if require_encryption && !origin.state().secure {
        event.reply(err(StanzaError::new(ErrorType::Modify, "policy-violation")
            .with_text("Encryption is required")));
        return true;
    }
    let Some(query) = stanza.first_child() else {
        return false;
    };
    match stanza.type_() {
        Some("get") => {
            event.reply(
                stanza
                    .reply()
                    .child(registration_query(title, instructions)),
            );
            return true;
        }
        Some("set") => {}
        _ => return false,
    }
    if query.first_child().is_some_and(|c| c.name() == "remove") {
        event.reply(err(StanzaError::new(
            ErrorType::Auth,
            "registration-required",
        )));
        return true;
    }
    let (username, password) = match parse_registration(query) {
        Ok(v) => v,
        Err(text) => {
            event.reply(err(
                StanzaError::new(ErrorType::Modify, "not-acceptable").with_text(text)
            ));
            return true;
        }
    };
    let username = match xmpp_core::jid::nodeprep(&username) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            event.reply(err(StanzaError::new(ErrorType::Modify, "not-acceptable")
                .with_text("The requested username is invalid.")));
            return true;
        }
    };
    let now = event.server.clock.now();
    if let Err(e) = check_limits(&host, limits, origin.peer.map(|p| p.ip()), now) {
        tracing::debug!(host = %host.name, "registration disallowed: {e:?}");
        event.reply(err(e));
        return true;
    }
    let provider = match auth::provider_for_host(&host) {
        Ok(p) => p,
        Err(e) => {
            event.reply(err(
                StanzaError::feature_not_implemented().with_text(e.to_string())
            ));
            return true;
        }
    };
    let server = event.server.clone();
    let mut registering = Event::new(&server, "user-registering")
        .with_origin(&origin)
        .with_field("username", username.as_str())
        .with_field("host", host.name.as_str())
        .with_field("allowed", true);
    if let Some(ip) = origin.peer.map(|p| p.ip().to_string()) {
        registering = registering.with_field("ip", ip.as_str());
    }
    server.fire_on_host(&host, "user-registering", &mut registering);
    if let Some(e) = refusal(&registering) {
        tracing::debug!("Registration disallowed by module: {e}");
        event.reply(err(e));
        return true;
    }
    if host.user_exists(&username) {
        if registering.field_str("allow_reset") == Some(username.as_str()) {
            let reply = match provider.set_password(&username, &password) {
                Ok(()) => {
                    let mut ev = Event::new(&server, "user-password-reset")
                        .with_origin(&origin)
                        .with_field("username", username.as_str())
                        .with_field("host", host.name.as_str());
                    server.fire_on_host(&host, "user-password-reset", &mut ev);
                    stanza.reply()
                }
                Err(e) => {
                    tracing::error!("Unable to reset password for {username}@{}: {e}", host.name);
                    err(StanzaError::new(ErrorType::Wait, "internal-server-error"))
                }
            };
            event.reply(reply);
            return true;
        }
        event.reply(err(StanzaError::new(ErrorType::Cancel, "conflict")
            .with_text("The requested username already exists.")));
        return true;
    }
    match provider.add_user(&username, &password) {
        Ok(true) => {}
        Ok(false) => {
            event.reply(err(StanzaError::new(ErrorType::Cancel, "conflict")
                .with_text("The requested username already exists.")));
            return true;
        }
        Err(e) => {
            event.reply(err(
                StanzaError::feature_not_implemented().with_text(e.to_string())
            ));
            return true;
        }
    }
    let mut details = Table::new();
    details.insert("registered", Value::Integer(now.floor() as i64));
    if let Err(e) = host
        .open_keyval("account_details")
        .and_then(|kv| kv.set(Some(&username), Some(Value::Table(details))))
    {
        tracing::debug!("could not store extra details: {e}");
        let _ = provider.delete_user(&username);
        event.reply(err(StanzaError::new(
            ErrorType::Wait,
            "internal-server-error",
        )
        .with_text("Failed to write data to disk.")));
        return true;
    }
    event.reply(stanza.reply());
    tracing::info!("User account created: {username}@{}", host.name);
    let mut ev = Event::new(&server, "user-registered")
        .with_origin(&origin)
        .with_field("username", username.as_str())
        .with_field("host", host.name.as_str())
        .with_field("source", "mod_register");
    server.fire_on_host(&host, "user-registered", &mut ev);
    true
}

/// The error a `user-registering` handler refused with (`allowed` false).
fn refusal(event: &Event) -> Option<StanzaError> {
    if event.fields.get("allowed").and_then(Value::as_bool) != Some(false) {
        return None;
    }
    let type_ = match event.field_str("error_type") {
        Some("auth") => ErrorType::Auth,
        Some("cancel") => ErrorType::Cancel,
        Some("wait") => ErrorType::Wait,
        _ => ErrorType::Modify,
    };
    let condition = match event.field_str("error_condition") {
        Some("forbidden") => "forbidden",
        Some("not-allowed") => "not-allowed",
        Some("policy-violation") => "policy-violation",
        Some("conflict") => "conflict",
        Some("resource-constraint") => "resource-constraint",
        _ => "not-acceptable",
    };
    let e = StanzaError::new(type_, condition);
    Some(match event.field_str("reason") {
        Some(r) => e.with_text(r),
        None => e,
    })
}

/// mod_user_account_management: the account's own registration.
fn manage_account(event: &mut Event) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let Some(user) = origin.username() else {
        return false;
    };
    let server = event.server.clone();
    let stanza = event.stanza().clone();
    let Some(query) = stanza.first_child() else {
        return false;
    };
    if stanza.type_() == Some("get") {
        let reply = stanza.reply().child(
            Element::new("query", NS_REGISTER)
                .child(Element::new("registered", NS_REGISTER))
                .child(Element::new("username", NS_REGISTER).text(user.as_str()))
                .child(Element::new("password", NS_REGISTER)),
        );
        event.reply(reply);
        return true;
    }
    let provider = match auth::provider_for_host(&host) {
        Ok(p) => p,
        Err(e) => {
            event.reply(
                StanzaError::service_unavailable()
                    .with_text(e.to_string())
                    .reply_to(&stanza),
            );
            return true;
        }
    };
    if query.first_child().is_some_and(|c| c.name() == "remove") {
        if let Err(e) = provider.delete_user(&user) {
            tracing::debug!("removing user account {user}@{} failed: {e}", host.name);
            event.reply(
                StanzaError::service_unavailable()
                    .with_text(e.to_string())
                    .reply_to(&stanza),
            );
            return true;
        }
        tracing::info!("User removed their account: {user}@{}", host.name);
        event.reply(stanza.reply());
        let mut ev = Event::new(&server, "user-deleted")
            .with_origin(&origin)
            .with_field("username", user.as_str())
            .with_field("host", host.name.as_str());
        server.fire_global("user-deleted", &mut ev);
        let mut ev = Event::new(&server, "user-deregistered")
            .with_origin(&origin)
            .with_field("username", user.as_str())
            .with_field("host", host.name.as_str())
            .with_field("source", "mod_register");
        server.fire_on_host(&host, "user-deregistered", &mut ev);
        if let Ok(bare) = Jid::parse(&format!("{user}@{}", host.name)) {
            let mut sessions = server.sessions.resources(&bare);
            if !sessions.iter().any(|s| Arc::ptr_eq(s, &origin)) {
                sessions.push(origin.clone());
            }
            for s in sessions {
                s.close(Some(StreamError::with_text(
                    StreamErrorCondition::NotAuthorized,
                    "Account deleted",
                )));
            }
        }
        return true;
    }
    let username = query.get_child_text("username", NS_REGISTER);
    let password = query.get_child_text("password", NS_REGISTER);
    let reply = match (username, password) {
        (Some(u), Some(p))
            if xmpp_core::jid::nodeprep(&u).ok().as_deref() == Some(user.as_str()) =>
        {
            match provider.set_password(&user, &p) {
                Ok(()) => stanza.reply(),
                Err(e) => {
                    tracing::error!("could not change the password of {user}: {e}");
                    StanzaError::new(ErrorType::Wait, "internal-server-error").reply_to(&stanza)
                }
            }
        }
        _ => StanzaError::bad_request().reply_to(&stanza),
    };
    event.reply(reply);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_sets() {
        let set = vec![
            "127.0.0.1".to_string(),
            "10.0.0.0/8".into(),
            "fd00::/8".into(),
        ];
        assert!(ip_in(&set, "127.0.0.1".parse().unwrap()));
        assert!(ip_in(&set, "10.1.2.3".parse().unwrap()));
        assert!(!ip_in(&set, "11.0.0.1".parse().unwrap()));
        assert!(ip_in(&set, "fd12::1".parse().unwrap()));
        assert!(!ip_in(&set, "::1".parse().unwrap()));
    }

    #[test]
    fn registration_fields() {
        let q = Element::new("query", NS_REGISTER)
            .child(Element::new("username", NS_REGISTER).text("Alice"))
            .child(Element::new("password", NS_REGISTER).text("pw"));
        assert_eq!(
            parse_registration(&q).unwrap(),
            ("Alice".into(), "pw".into())
        );
        let missing = Element::new("query", NS_REGISTER)
            .child(Element::new("username", NS_REGISTER).text("a"));
        assert_eq!(
            parse_registration(&missing).unwrap_err(),
            "Password: Required value missing"
        );
    }
}
