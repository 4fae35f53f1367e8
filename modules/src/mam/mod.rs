//! `mam`: Prosody 0.12's mod_mam — XEP-0313 Message Archive Management for
//! accounts.
//!
//! Start with [`load`] (options and hooks) and [`archive_message`] (what is
//! stored, where); queries and RSM paging are in [`query`], preferences in
//! [`prefs`].
//!
//! Options, Prosody's names and defaults: `archive_store` ("archive"),
//! `max_archive_query_results` (50; a page is 20 unless asked),
//! `dont_archive_namespaces` (chat states), `archive_expires_after` ("1w";
//! "never" keeps everything), `default_archive_policy` (true, false or
//! "roster"), `mam_smart_enable` (false), `mam_include_total` (true, false
//! when nothing expires).
//!
//! Storage is Prosody's: the archive store `archive` (with the `internal`
//! driver `archive/<user>.list`), each message stored with the other
//! party's bare JID as `with`; preferences in `archive_prefs`; the days on
//! which an account got messages in the map store `archive_cleanup` (what
//! Prosody's daily expiry reads). lilt expires lazily: the first message
//! archived for an account on a new day removes what is older than
//! `archive_expires_after`.

pub mod prefs;
pub mod query;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::value::Value;
use xmpp_core::{Event, Host, Jid, Server, SessionKind};

use crate::ModuleError;
use crate::disco::NS_DISCO_INFO;
use crate::roster::manager;

pub const NS_MAM: &str = "urn:xmpp:mam:2";
pub const NS_SID: &str = "urn:xmpp:sid:0";
pub const NS_HINTS: &str = "urn:xmpp:hints";
const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// The session attribute set once a client has queried its archive.
pub const MAM_REQUESTED: &str = "mam_requested";

/// The module's options on one host.
#[derive(Debug, Clone)]
pub struct Options {
    pub archive_store: String,
    pub max_results: usize,
    pub strip_namespaces: Vec<String>,
    /// Seconds; `None`: "never".
    pub expires_after: Option<f64>,
    pub default_policy: prefs::Default,
    pub smart_enable: bool,
    pub include_total: bool,
}

/// Parses `archive_expires_after` ("1w", "2d", "3600", "never").
pub fn parse_expiry(s: &str) -> Option<Option<f64>> {
    let s = s.trim().to_lowercase();
    if s == "never" {
        return Some(None);
    }
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: f64 = digits.parse().ok()?;
    let unit = s[digits.len()..].trim().chars().next();
    let day = 86400.0;
    let m = match unit {
        None => 1.0,
        Some('d') => day,
        Some('w') => day * 7.0,
        Some('m') => 31.0 * day,
        Some('y') => 365.2425 * day,
        Some(_) => 1.0,
    };
    Some(Some(n * m))
}

/// An expiry option of `host` (`archive_expires_after`,
/// `muc_log_expires_after`): seconds, `None` for "never"; a week when unset,
/// as Prosody.
pub fn expiry_option(
    host: &Host,
    option: &str,
) -> Result<Option<f64>, xmpp_core::config::OptionError> {
    match host.option(option) {
        None => Ok(Some(7.0 * 86400.0)),
        Some(Value::String(s)) => parse_expiry(s).ok_or_else(|| {
            host.option_error(
                option,
                format!("could not parse {s:?} (expected e.g. \"1w\" or \"never\")"),
            )
        }),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| host.option_error(option, "expected a string".into())),
    }
}

fn options(host: &Host) -> Result<Options, ModuleError> {
    let expires = expiry_option(host, "archive_expires_after")?;
    let default_policy = match host.option("default_archive_policy") {
        None => prefs::Default::Always,
        Some(v) => prefs::Default::from_value(v).ok_or_else(|| {
            host.option_error(
                "default_archive_policy",
                "expected true, false or \"roster\"".into(),
            )
        })?,
    };
    let max = host.option_i64("max_archive_query_results", 50)?;
    let strip = match host.option("dont_archive_namespaces") {
        None => vec![NS_CHATSTATES.to_string()],
        Some(_) => host.option_list("dont_archive_namespaces"),
    };
    Ok(Options {
        archive_store: host
            .option_str("archive_store")
            .unwrap_or("archive")
            .to_string(),
        max_results: usize::try_from(max.max(0)).unwrap_or(50),
        strip_namespaces: strip,
        expires_after: expires,
        default_policy,
        smart_enable: host.option_bool("mam_smart_enable", false)?,
        include_total: host.option_bool("mam_include_total", expires.is_some())?,
    })
}

/// The last day each account's archive was cleaned (and its day recorded).
#[derive(Default)]
struct LastDay(Mutex<HashMap<String, i64>>);

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let opts = Arc::new(options(host)?);
    let o = opts.clone();
    host.events
        .hook(&format!("iq/self/{NS_MAM}:prefs"), 0, move |e| {
            query::handle_prefs(e, &o)
        });
    let o = opts.clone();
    host.events
        .hook(&format!("iq-get/self/{NS_MAM}:query"), 0, move |e| {
            query::handle_form(e, &o)
        });
    let o = opts.clone();
    host.events
        .hook(&format!("iq-set/self/{NS_MAM}:query"), 0, move |e| {
            query::handle_query(e, &o)
        });
    let o = opts.clone();
    host.events
        .hook(&format!("iq-get/self/{NS_MAM}:metadata"), 0, move |e| {
            query::handle_metadata(e, &o)
        });
    for kind in ["bare", "full"] {
        let o = opts.clone();
        host.events
            .hook(&format!("pre-message/{kind}"), 1, move |e| {
                archive_message(e, &o, true);
                false
            });
        let o = opts.clone();
        host.events.hook(&format!("message/{kind}"), 1, move |e| {
            archive_message(e, &o, false);
            false
        });
        host.events.hook(&format!("pre-message/{kind}"), -1, |e| {
            if let Some(user) = e.origin.as_ref().and_then(|o| o.username())
                && let Some(host) = e.host.clone()
                && let Some(s) = e.stanza.as_mut()
            {
                strip_stanza_id(s, &user, &host.name);
            }
            false
        });
    }
    host.events.hook("message/offline/handle", -2, |e| {
        let (Some(host), Some(user)) = (e.host.clone(), e.field_str("username")) else {
            return false;
        };
        let by = format!("{user}@{}", host.name);
        e.stanza()
            .children()
            .any(|c| c.is("stanza-id", NS_SID) && c.get_attr("by") == Some(by.as_str()))
    });
    host.events.hook("message/offline/broadcast", 0, |e| {
        e.origin
            .as_ref()
            .is_some_and(|o| o.state().attributes.get(MAM_REQUESTED).is_some())
    });
    host.events.hook("account-disco-info", 0, |e| {
        if let Some(q) = e
            .stanza
            .as_mut()
            .and_then(|r| r.get_child_mut("query", NS_DISCO_INFO))
        {
            for var in [NS_MAM, NS_SID] {
                q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
            }
        }
        false
    });
    Ok(())
}

/// Removes `<stanza-id/>` elements that claim to be by `user` (a peer
/// cannot forge the archive's ids).
fn strip_stanza_id(stanza: &mut Element, user: &str, host: &str) {
    let by = format!("{user}@{host}");
    stanza.remove_children(|c| {
        c.is("stanza-id", NS_SID)
            && c.get_attr("by")
                .and_then(|b| Jid::parse(b).ok())
                .is_some_and(|j| !j.is_full() && j.to_string() == by)
    });
}

/// Prosody's `should_store`: is this message worth archiving?
pub fn should_store(stanza: &Element) -> bool {
    match stanza.type_().unwrap_or("normal") {
        "headline" | "groupchat" => return false,
        "error" => {
            return stanza
                .to()
                .and_then(|t| Jid::parse(t).ok())
                .is_some_and(|j| j.is_full());
        }
        _ => {}
    }
    if stanza.get_child("no-store", NS_HINTS).is_some()
        || stanza.get_child("no-permanent-store", NS_HINTS).is_some()
    {
        return false;
    }
    if stanza.get_child("store", NS_HINTS).is_some()
        || stanza.get_child("body", NS_CLIENT).is_some()
        || stanza.get_child("subject", NS_CLIENT).is_some()
        || stanza.get_child("encryption", "urn:xmpp:eme:0").is_some()
        || stanza.get_child("x", "jabber:x:conference").is_some()
    {
        return true;
    }
    let ns_any = |ns: &str| stanza.children().any(|c| c.ns() == ns);
    if ns_any("urn:xmpp:receipts")
        || ns_any("urn:xmpp:chat-markers:0")
        || ns_any("urn:xmpp:jingle-message:0")
        || ns_any("urn:xmpp:jingle-message:1")
    {
        return true;
    }
    stanza
        .get_child("x", "http://jabber.org/protocol/muc#user")
        .is_some_and(|x| {
            x.get_child("invite", "http://jabber.org/protocol/muc#user")
                .is_some()
        })
}

/// `shall_store`: do `user`'s preferences archive messages with `with`?
fn shall_store(
    server: &Arc<Server>,
    host: &Arc<Host>,
    opts: &Options,
    user: &str,
    with: &str,
) -> bool {
    if !host.user_exists(user) {
        return false;
    }
    let p = match prefs::get(host, opts, user, false) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(host = %host.name, %user, "MAM preferences: {e}");
            return false;
        }
    };
    if let Some(rule) = p.rules.get(with) {
        return *rule;
    }
    match p.default {
        Some(prefs::Default::Always) => true,
        Some(prefs::Default::Roster) => manager::contacts(server, host, user, |_| true)
            .iter()
            .any(|(j, _)| j == with),
        _ => false,
    }
}

/// Archives a message sent by a local client (`c2s`) or to a local
/// account, and stamps it with `<stanza-id/>` for later handlers.
pub fn archive_message(event: &mut Event, opts: &Options, c2s: bool) {
    let server = event.server.clone();
    let Some(host) = event.host.clone() else {
        return;
    };
    let Some(stanza) = event.stanza.as_ref() else {
        return;
    };
    if c2s
        && event
            .origin
            .as_ref()
            .is_none_or(|o| o.kind != SessionKind::C2s)
    {
        return;
    }
    let from = stanza.from().and_then(|f| Jid::parse(f).ok());
    let to = match stanza.to() {
        Some(t) => Jid::parse(t).ok(),
        None => from.clone(),
    };
    let (Some(from), Some(to)) = (from, to) else {
        return;
    };
    let store_user = if c2s {
        event.origin.as_ref().and_then(|o| o.username())
    } else {
        to.node().map(str::to_string)
    };
    let Some(store_user) = store_user else {
        return;
    };
    let with = if c2s { to.to_bare() } else { from.to_bare() }.to_string();
    let mut stanza = stanza.clone();
    strip_stanza_id(&mut stanza, &store_user, &host.name);
    if !should_store(&stanza) {
        if let Some(s) = event.stanza.as_mut() {
            *s = stanza;
        }
        return;
    }
    let mut stored = stanza.clone();
    stored.remove_children(|c| opts.strip_namespaces.iter().any(|n| n == c.ns()));
    if stored.children().next().is_none() {
        return;
    }
    if !shall_store(&server, &host, opts, &store_user, &with) {
        return;
    }
    // Whole seconds, as Prosody's `os.time()`: its `datetime()` refuses
    // fractions when it reads the archive.
    let now = server.clock.now().floor();
    expire(&host, opts, &store_user, now);
    let archive = match host.open_archive(&opts.archive_store) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(host = %host.name, "could not open the archive: {e}");
            return;
        }
    };
    let mut result = archive.append(Some(&store_user), &stored, now, &with);
    if let Err(e) = &result
        && e.to_string().contains(crate::storage::QUOTA_LIMIT)
        && let Some(after) = opts.expires_after
    {
        let q = xmpp_core::storage::ArchiveQuery {
            end: Some(now - after),
            ..Default::default()
        };
        if archive.delete(Some(&store_user), &q).is_ok() {
            result = archive.append(Some(&store_user), &stored, now, &with);
        }
    }
    match result {
        Ok(id) => {
            stanza.push_child(
                Element::new("stanza-id", NS_SID)
                    .attr("by", format!("{store_user}@{}", host.name))
                    .attr("id", id),
            );
            if let Some(s) = event.stanza.as_mut() {
                *s = stanza;
            }
        }
        Err(e) => {
            tracing::error!(host = %host.name, user = %store_user, "could not archive stanza: {e}")
        }
    }
}

/// Once a day per account: records the day in `archive_cleanup` (as
/// Prosody's `schedule_cleanup`) and removes what has expired.
fn expire(host: &Arc<Host>, opts: &Options, user: &str, now: f64) {
    if let Some(after) = opts.expires_after {
        expire_daily(
            host,
            &opts.archive_store,
            "archive_cleanup",
            user,
            after,
            now,
        );
    }
}

/// Once a day per archive `user` of `store`: records the day in the map
/// store `cleanup_store` (Prosody's `schedule_cleanup`: the key is the
/// date, the field the user) and removes the items older than `after`
/// seconds. Shared with the MUC archive (`muc_log`, `muc_log_cleanup`).
pub fn expire_daily(
    host: &Arc<Host>,
    store: &str,
    cleanup_store: &str,
    user: &str,
    after: f64,
    now: f64,
) {
    let day = (now / 86400.0).floor() as i64;
    {
        let last = host.extension::<LastDay>();
        let mut map = last.0.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{store}\u{0}{user}");
        if map.get(&key) == Some(&day) {
            return;
        }
        if map.len() >= 1000 {
            map.clear();
        }
        map.insert(key, day);
    }
    let date = lua_compat::datfile::archive::datetime(now);
    let date = date.get(..10).unwrap_or(&date).to_string();
    if let Err(e) = host
        .open_map(cleanup_store)
        .and_then(|m| m.set(Some(&date), user, Some(Value::Bool(true))))
    {
        tracing::warn!(host = %host.name, "{cleanup_store}: {e}");
    }
    let q = xmpp_core::storage::ArchiveQuery {
        end: Some(now - after),
        ..Default::default()
    };
    match host
        .open_archive(store)
        .and_then(|a| a.delete(Some(user), &q))
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(host = %host.name, %user, "deleted {n} expired messages"),
        Err(e) => {
            tracing::error!(host = %host.name, %user, "could not delete expired messages: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_strings() {
        assert_eq!(parse_expiry("1w"), Some(Some(604800.0)));
        assert_eq!(parse_expiry("2d"), Some(Some(172800.0)));
        assert_eq!(parse_expiry("3600"), Some(Some(3600.0)));
        assert_eq!(parse_expiry("never"), Some(None));
        assert_eq!(parse_expiry("soon"), None);
    }

    #[test]
    fn what_is_archived() {
        let m = |t: Option<&str>| {
            Element::new("message", NS_CLIENT)
                .attr("to", "juliet@example.com")
                .attr_opt("type", t)
        };
        let body = Element::new("body", NS_CLIENT).text("hi");
        assert!(should_store(&m(Some("chat")).child(body.clone())));
        assert!(!should_store(&m(Some("chat"))));
        assert!(!should_store(&m(Some("headline")).child(body.clone())));
        assert!(!should_store(&m(Some("groupchat")).child(body.clone())));
        assert!(!should_store(
            &m(Some("chat"))
                .child(body)
                .child(Element::new("no-store", NS_HINTS))
        ));
        assert!(should_store(
            &m(None).child(Element::new("received", "urn:xmpp:receipts"))
        ));
        assert!(!should_store(&m(Some("error"))));
    }
}
