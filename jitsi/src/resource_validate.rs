//! `muc_resource_validate` (Jitsi's mod_muc_resource_validate): a user's
//! nickname in a room (the occupant JID's resource) must match
//! `^[a-zA-Z0-9][a-zA-Z0-9_]*$` (else `cancel/not-allowed` "Invalid
//! resource"); with `anonymous_strict`, users of hosts whose
//! authentication is in `anonymous_auth_methods` (default `anonymous`,
//! `jitsi-anonymous`, `token`) must use the first 8 characters of their
//! username; and nicknames never change (`muc-occupant-pre-change`).
//! Health-check rooms are exempt.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::{Event, Host, Server};

use super::util::{is_healthcheck_room, split};
use muc::events::{occupant_of, room_of};

/// Is this a valid room nickname for Jitsi?
pub fn is_valid_resource(resource: &str) -> bool {
    let mut chars = resource.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The nickname an anonymous user must use: the first 8 characters of its
/// username.
pub fn anonymous_prefix(username: &str) -> &str {
    match username.char_indices().nth(8) {
        Some((i, _)) => &username[..i],
        None => username,
    }
}

fn refuse(event: &Event, text: &str) -> bool {
    let reply = StanzaError::new(ErrorType::Cancel, "not-allowed")
        .with_text(text)
        .reply_to(event.stanza());
    event.reply(reply);
    true
}

fn is_anonymous_domain(server: &Server, methods: &[String], domain: &str) -> bool {
    server
        .host(domain)
        .and_then(|h| h.auth_provider().map(|a| a.name().to_string()))
        .is_some_and(|name| methods.contains(&name))
}

pub fn register(host: &Arc<Host>) -> Result<(), xmpp_core::config::OptionError> {
    let strict = host.option_bool("anonymous_strict", false)?;
    let methods = if host.option("anonymous_auth_methods").is_some() {
        host.option_list("anonymous_auth_methods")
    } else {
        ["anonymous", "jitsi-anonymous", "token"]
            .map(String::from)
            .to_vec()
    };
    tracing::info!(host = %host.name, "muc_resource_validate loaded (anonymous_strict={strict})");
    host.events.hook("muc-occupant-pre-join", 11, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if is_healthcheck_room(&room.jid) {
            return false;
        }
        let stanza = event.stanza();
        let from = stanza.from().unwrap_or_default().to_string();
        let (user, domain, _) = split(&from);
        let Some(user) = user else {
            return false;
        };
        let (_, _, resource) = split(stanza.to().unwrap_or_default());
        let resource = resource.unwrap_or_default();
        if !is_valid_resource(resource) {
            tracing::warn!(
                "rejecting join with invalid MUC resource from {from} (muc_resource: {resource})"
            );
            return refuse(event, "Invalid resource");
        }
        if strict
            && is_anonymous_domain(&event.server, &methods, domain)
            && resource != anonymous_prefix(user)
        {
            tracing::warn!(
                "rejecting anonymous user {from}: MUC resource {resource} is not its id prefix"
            );
            return refuse(event, "Invalid anonymous user ID");
        }
        false
    });
    host.events.hook("muc-occupant-pre-change", 11, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if is_healthcheck_room(&room.jid) {
            return false;
        }
        let Some(orig) = occupant_of(event, "orig_occupant") else {
            return false;
        };
        let current = split(&orig.nick).2;
        let new = split(event.stanza().to().unwrap_or_default()).2;
        if current != new {
            tracing::warn!("rejecting MUC nick change ({current:?} -> {new:?})");
            return refuse(event, "Nick changes are not allowed");
        }
        false
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources() {
        assert!(is_valid_resource("a"));
        assert!(is_valid_resource("abc_123"));
        assert!(is_valid_resource("0f1e2d3c"));
        assert!(!is_valid_resource(""));
        assert!(!is_valid_resource("_abc"));
        assert!(!is_valid_resource("ab-c"));
        assert!(!is_valid_resource("ab c"));
        assert!(!is_valid_resource("élan"));
        assert!(!is_valid_resource("a.b"));
    }

    #[test]
    fn anonymous_prefixes() {
        assert_eq!(anonymous_prefix("0123456789abcdef"), "01234567");
        assert_eq!(anonymous_prefix("short"), "short");
    }
}
