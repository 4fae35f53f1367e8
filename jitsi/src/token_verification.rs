//! `token_verification` (Jitsi's mod_token_verification), loaded on the
//! conference component: a session that logged in with a token may create
//! and join only the room its `room` claim names (`*` for any, a Lua
//! pattern when `context.room.regex` is true), on the domain or tenant its
//! `sub` claim names (`enable_domain_verification`, default false as in
//! Jitsi's `token/util.lib.lua`, with
//! `muc_mapper_domain_base`/`_prefix` for `[tenant]room` addresses).
//! Admins and `token_verification_allowlist` (domains or bare JIDs) are not
//! checked. A refused create or join gets Jitsi's
//! `<error type='cancel'><not-allowed/><text>Room and token mismatched`.
//! With `token_verification_require_token_for_moderation`, sessions without
//! a token cannot submit room configuration.
//!
//! The token options (`app_id`, `allow_empty_token`,
//! `asap_require_room_claim`, `enable_domain_verification`,
//! `muc_mapper_domain_*`) are read from the parent host
//! (`conference.meet.example.com` → `meet.example.com`, with global
//! fallback), as Jitsi's `module:context(parentHostName)`; without
//! `app_id` there the module stays inactive, as Jitsi's does.

use std::sync::Arc;

use xmpp_core::config::OptionError;
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Session, Table, Value};

use super::lua_pattern::lua_match;
use super::util::{extract_subdomain, is_admin, split};

/// Session fields written by token authentication (see `auth::token`).
const AUTH_TOKEN: &str = "auth_token";
const ROOM: &str = "jitsi_meet_room";
const DOMAIN: &str = "jitsi_meet_domain";
const CONTEXT_ROOM: &str = "jitsi_meet_context_room";
const STR_TENANT: &str = "jitsi_meet_str_tenant";
const WEB_QUERY_PREFIX: &str = "jitsi_web_query_prefix";

/// Why a room was refused (Jitsi's `verify_room` reasons; for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidRoomAddress,
    RoomMismatch,
    RoomNameDoesNotMatch,
    MissingDomain,
    ServerMissingConfig,
    DomainMismatch,
}

/// The settings `verify_room` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomVerifier {
    pub allow_empty_token: bool,
    pub require_room_claim: bool,
    pub enable_domain_verification: bool,
    /// `muc_mapper_domain_prefix`, default `conference`.
    pub muc_domain_prefix: String,
    /// `muc_mapper_domain_base`.
    pub muc_domain_base: Option<String>,
    /// `muc_mapper_domain`, default prefix + "." + base (only with a base).
    pub muc_domain: Option<String>,
}

fn text(attrs: &Table, name: &str) -> Option<String> {
    attrs.get(name).and_then(Value::as_str).map(str::to_string)
}

impl RoomVerifier {
    /// Jitsi's `Util:verify_room(session, room_address)`.
    pub fn verify_room(&self, attrs: &Table, room_address: &str) -> Result<(), Refusal> {
        let (node, _, _) = split(room_address);
        let Some(room) = node else {
            return Err(Refusal::InvalidRoomAddress);
        };
        if self.allow_empty_token && attrs.get(AUTH_TOKEN).is_none() {
            return Ok(());
        }
        let auth_room = text(attrs, ROOM).map(|r| r.to_lowercase());
        if !self.enable_domain_verification {
            return match &auth_room {
                Some(a) if a != "*" && room != a && !room.ends_with(&format!("]{a}")) => {
                    Err(Refusal::RoomMismatch)
                }
                _ => Ok(()),
            };
        }
        let bare = room_address.split('/').next().unwrap_or_default();
        let (target_subdomain, target_room) = match extract_subdomain(room) {
            Some((sub, name)) => (Some(sub), Some(name)),
            None => (None, None),
        };
        let room_to_check = match auth_room.as_deref() {
            Some("*") => Some(target_room.unwrap_or(room).to_string()),
            Some(claim) => {
                let regex = attrs
                    .get(CONTEXT_ROOM)
                    .and_then(Value::as_table)
                    .and_then(|t| t.get("regex"))
                    .is_some_and(|v| matches!(v, Value::Bool(true)) || v.as_str() == Some("true"));
                if regex {
                    lua_match(target_room.unwrap_or(room), claim).map(str::to_string)
                } else {
                    Some(claim.to_string())
                }
            }
            None => None,
        };
        let Some(room_to_check) = room_to_check else {
            if !self.require_room_claim {
                return Ok(());
            }
            return Err(Refusal::RoomNameDoesNotMatch);
        };
        if let Some(tenant) = text(attrs, STR_TENANT) {
            let prefix = text(attrs, WEB_QUERY_PREFIX);
            if Some(tenant.to_lowercase()) != prefix {
                tracing::warn!(
                    "Tenant differs for user: url_tenant:{} token_tenant:{tenant}",
                    prefix.unwrap_or_default()
                );
            }
        }
        let auth_domain = text(attrs, DOMAIN)
            .map(|d| d.to_lowercase())
            .ok_or(Refusal::MissingDomain)?;
        let expected = match target_subdomain {
            Some(sub) => {
                let sub = if auth_domain == "*" {
                    sub
                } else {
                    &auth_domain
                };
                if self.muc_domain_base.is_none() {
                    tracing::warn!("No 'muc_domain_base' option set, denying access!");
                    return Err(Refusal::ServerMissingConfig);
                }
                let domain = self.muc_domain.clone().unwrap_or_default();
                format!("[{sub}]{room_to_check}@{domain}")
            }
            None => {
                let domain = if auth_domain == "*" {
                    match &self.muc_domain {
                        Some(d) => d.clone(),
                        None => return Err(Refusal::DomainMismatch),
                    }
                } else {
                    format!("{}.{auth_domain}", self.muc_domain_prefix)
                };
                format!("{room_to_check}@{domain}")
            }
        };
        if bare == expected {
            Ok(())
        } else {
            Err(Refusal::DomainMismatch)
        }
    }
}

/// The parent host of a component (`conference.x.y` → `x.y`), as Jitsi's
/// pattern `%w+.(%w.+)`.
pub fn parent_host(component: &str) -> Option<&str> {
    let (_, rest) = component.split_once('.')?;
    (!rest.is_empty()).then_some(rest)
}

/// The verifier configured for a component's parent host; `None` when the
/// parent has no token configuration (`app_id`).
pub fn verifier_for(host: &Host) -> Result<Option<RoomVerifier>, OptionError> {
    let Some(parent) = parent_host(&host.name) else {
        return Ok(None);
    };
    verifier_on(host, parent)
}

/// The verifier configured on the host named `parent` (with global
/// fallback); `None` without `app_id` there. `muc_size` uses its own host.
pub fn verifier_on(host: &Host, parent: &str) -> Result<Option<RoomVerifier>, OptionError> {
    verifier_in(host.config(), parent)
}

fn verifier_in(
    config: &xmpp_core::config::ServerConfig,
    parent: &str,
) -> Result<Option<RoomVerifier>, OptionError> {
    let get = |name: &str| config.get(Some(parent), name);
    let err = |name: &str, problem: &str| OptionError {
        option: name.to_string(),
        defined_at: config.source_of(Some(parent), name).cloned(),
        problem: problem.to_string(),
    };
    let boolean = |name: &str, default: bool| -> Result<bool, OptionError> {
        match get(name) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| err(name, "must be true or false")),
        }
    };
    let string = |name: &str| -> Result<Option<String>, OptionError> {
        match get(name) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| err(name, "must be a string")),
        }
    };
    if string("app_id")?.is_none() {
        return Ok(None);
    }
    let prefix = string("muc_mapper_domain_prefix")?.unwrap_or_else(|| "conference".into());
    let base = string("muc_mapper_domain_base")?;
    let muc_domain = match &base {
        Some(b) => Some(string("muc_mapper_domain")?.unwrap_or_else(|| format!("{prefix}.{b}"))),
        None => None,
    };
    Ok(Some(RoomVerifier {
        allow_empty_token: boolean("allow_empty_token", false)?,
        require_room_claim: boolean("asap_require_room_claim", true)?,
        // Jitsi's util.lib.lua defaults it to false (docker-jitsi-meet sets
        // false too): only the room claim is checked unless asked.
        enable_domain_verification: boolean("enable_domain_verification", false)?,
        muc_domain_prefix: prefix,
        muc_domain_base: base,
        muc_domain,
    }))
}

/// Is `from` in the allowlist, by domain or bare JID?
fn allowlisted(allowlist: &[String], from: &str) -> bool {
    let (node, domain, _) = split(from);
    let bare = node.map(|n| format!("{n}@{domain}"));
    allowlist
        .iter()
        .any(|a| a == domain || Some(a) == bare.as_ref())
}

fn verify_user(
    host: &Host,
    verifier: &RoomVerifier,
    allowlist: &[String],
    origin: Option<&Arc<Session>>,
    stanza: &Element,
) -> bool {
    let from = stanza.from().unwrap_or_default();
    if is_admin(host, from) || allowlisted(allowlist, from) {
        return true;
    }
    let to = stanza.to().unwrap_or_default();
    let attrs = origin
        .map(|o| o.state().attributes.clone())
        .unwrap_or_default();
    match verifier.verify_room(&attrs, to) {
        Ok(()) => true,
        Err(reason) => {
            tracing::error!(
                "Token not allowed to join: {to} ({from}, {reason:?}, room claim {:?})",
                text(&attrs, ROOM)
            );
            if let Some(origin) = origin {
                origin.send(
                    StanzaError::not_allowed()
                        .with_text("Room and token mismatched")
                        .reply_to(stanza),
                );
            }
            false
        }
    }
}

/// Loads `token_verification` on a MUC component.
pub fn register(host: &Arc<Host>) -> Result<(), OptionError> {
    let Some(verifier) = verifier_for(host)? else {
        tracing::error!(host = %host.name, "token_verification: no token configuration (app_id) on the parent host; not verifying rooms");
        return Ok(());
    };
    let verifier = Arc::new(verifier);
    let allowlist = Arc::new(host.option_list("token_verification_allowlist"));
    for event in ["muc-room-pre-create", "muc-occupant-pre-join"] {
        let (weak, verifier, allowlist) =
            (Arc::downgrade(host), verifier.clone(), allowlist.clone());
        host.events.hook(event, 99, move |event| {
            let (Some(host), Some(stanza)) = (weak.upgrade(), event.stanza.as_ref()) else {
                return false;
            };
            !verify_user(&host, &verifier, &allowlist, event.origin.as_ref(), stanza)
        });
    }
    if host.option_bool("token_verification_require_token_for_moderation", false)? {
        for event in [
            "iq-set/bare/http://jabber.org/protocol/muc#owner:query",
            "iq-set/host/http://jabber.org/protocol/muc#owner:query",
        ] {
            let weak = Arc::downgrade(host);
            host.events.hook(event, -1, move |event| {
                let (Some(host), Some(stanza), Some(origin)) =
                    (weak.upgrade(), event.stanza.as_ref(), event.origin.as_ref())
                else {
                    return false;
                };
                if is_admin(&host, stanza.from().unwrap_or_default()) {
                    return false;
                }
                let attrs = origin.state().attributes.clone();
                if attrs.get(AUTH_TOKEN).is_some() && attrs.get(ROOM).is_some() {
                    return false;
                }
                origin.send(
                    StanzaError::not_allowed()
                        .with_text("Room modification disabled for guests")
                        .reply_to(stanza),
                );
                true
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(domain_verification: bool, base: Option<&str>) -> RoomVerifier {
        RoomVerifier {
            allow_empty_token: false,
            require_room_claim: true,
            enable_domain_verification: domain_verification,
            muc_domain_prefix: "conference".into(),
            muc_domain_base: base.map(String::from),
            muc_domain: base.map(|b| format!("conference.{b}")),
        }
    }

    fn session(room: &str, sub: &str) -> Table {
        let mut t = Table::new();
        t.insert(AUTH_TOKEN, Value::str("x.y.z"));
        t.insert(ROOM, Value::str(room));
        t.insert(DOMAIN, Value::str(sub));
        t
    }

    #[test]
    fn domain_verification_is_off_unless_configured() {
        let mut config = xmpp_core::config::ServerConfig::default();
        config.global.set("app_id", Value::str("jitsi"));
        let v = verifier_in(&config, "meet.example.com").unwrap().unwrap();
        assert!(!v.enable_domain_verification);
        // A token for the room (or any room) whose `sub` is not the
        // domain, as Jitsi deployments issue them, is let in.
        let s = session("daily", "other.example.com");
        assert_eq!(
            v.verify_room(&s, "daily@conference.meet.example.com/n"),
            Ok(())
        );
        assert_eq!(
            v.verify_room(&session("*", "*"), "r@conference.meet.example.com"),
            Ok(())
        );
        assert_eq!(
            v.verify_room(&s, "nightly@conference.meet.example.com"),
            Err(Refusal::RoomMismatch)
        );
        config
            .global
            .set("enable_domain_verification", Value::Bool(true));
        let strict = verifier_in(&config, "meet.example.com").unwrap().unwrap();
        assert!(
            strict
                .verify_room(&s, "daily@conference.meet.example.com/n")
                .is_err()
        );
    }

    #[test]
    fn room_claim_with_domain_verification() {
        let v = verifier(true, None);
        let s = session("Allowed", "meet.example.com");
        assert_eq!(
            v.verify_room(&s, "allowed@conference.meet.example.com/nick"),
            Ok(())
        );
        assert_eq!(
            v.verify_room(&s, "other@conference.meet.example.com/nick"),
            Err(Refusal::DomainMismatch)
        );
        assert_eq!(
            v.verify_room(&s, "allowed@conference.elsewhere.com/nick"),
            Err(Refusal::DomainMismatch)
        );
        let any = session("*", "meet.example.com");
        assert_eq!(
            v.verify_room(&any, "whatever@conference.meet.example.com"),
            Ok(())
        );
        // sub '*' needs muc_mapper_domain_base.
        assert!(
            v.verify_room(&session("*", "*"), "r@conference.meet.example.com")
                .is_err()
        );
        let based = verifier(true, Some("meet.example.com"));
        assert_eq!(
            based.verify_room(&session("*", "*"), "r@conference.meet.example.com"),
            Ok(())
        );
    }

    #[test]
    fn tenants_in_room_addresses() {
        let v = verifier(true, Some("meet.example.com"));
        let s = session("daily", "acme");
        assert_eq!(
            v.verify_room(&s, "[acme]daily@conference.meet.example.com/n"),
            Ok(())
        );
        assert!(
            v.verify_room(&s, "[other]daily@conference.meet.example.com/n")
                .is_err()
        );
        assert_eq!(
            v.verify_room(
                &session("daily", "*"),
                "[other]daily@conference.meet.example.com"
            ),
            Ok(())
        );
        assert_eq!(
            verifier(true, None).verify_room(&s, "[acme]daily@conference.meet.example.com"),
            Err(Refusal::ServerMissingConfig)
        );
    }

    #[test]
    fn regex_rooms_and_no_domain_verification() {
        let v = verifier(true, None);
        let mut s = session("^sales%d+$", "meet.example.com");
        let mut ctx = Table::new();
        ctx.insert("regex", Value::Bool(true));
        s.insert(CONTEXT_ROOM, Value::Table(ctx));
        assert_eq!(
            v.verify_room(&s, "sales12@conference.meet.example.com"),
            Ok(())
        );
        assert_eq!(
            v.verify_room(&s, "support@conference.meet.example.com"),
            Err(Refusal::RoomNameDoesNotMatch)
        );
        let lax = verifier(false, None);
        let s = session("daily", "ignored");
        assert_eq!(lax.verify_room(&s, "daily@anything"), Ok(()));
        assert_eq!(lax.verify_room(&s, "[t]daily@anything"), Ok(()));
        assert_eq!(
            lax.verify_room(&s, "nightly@anything"),
            Err(Refusal::RoomMismatch)
        );
        // No token at all: let through without domain verification.
        assert_eq!(lax.verify_room(&Table::new(), "x@y"), Ok(()));
    }

    #[test]
    fn empty_tokens_and_allowlists() {
        let mut v = verifier(true, None);
        assert!(
            v.verify_room(&Table::new(), "x@conference.meet.example.com")
                .is_err()
        );
        v.allow_empty_token = true;
        assert_eq!(
            v.verify_room(&Table::new(), "x@conference.meet.example.com"),
            Ok(())
        );
        let list = vec![
            "recorder.meet.example.com".to_string(),
            "focus@auth.x".to_string(),
        ];
        assert!(allowlisted(&list, "abc@recorder.meet.example.com/r"));
        assert!(allowlisted(&list, "focus@auth.x/focus"));
        assert!(!allowlisted(&list, "other@auth.x"));
        assert_eq!(
            parent_host("conference.meet.example.com"),
            Some("meet.example.com")
        );
    }
}
