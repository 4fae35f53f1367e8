//! `tombstones`: Prosody 13's mod_tombstones — a deleted account leaves a
//! tombstone, and stanzas to its JID are answered as for an account that
//! is gone rather than one that never was.
//!
//! On `user-deleted` for this host the time of deletion is stored in the
//! map store `tombstones` (no user, keyed by the username, as Prosody's
//! `module:open_store(nil, "map")`); registering the name again removes it.
//! While the tombstone has not expired (`user_tombstone_expiry`,
//! seconds; unset: never), a stanza to its bare or full JID is answered
//! with a `gone` error ("User deleted"), and a presence also with
//! `unsubscribed`, so that former contacts drop the subscription; both go
//! straight back to the session that sent the stanza (a contact's roster
//! need not list the account any more for it to arrive). Replies (results
//! and errors) are dropped.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::value::Value;
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;

/// The map store of tombstones.
pub const STORE: &str = "tombstones";

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let expiry = match host.option("user_tombstone_expiry") {
        None => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| {
            host.option_error(
                "user_tombstone_expiry",
                format!("must be a number of seconds, not a {}", v.type_name()),
            )
        })?),
    };
    let name = host.name.clone();
    server.events.hook("user-deleted", 0, move |event| {
        if event.field_str("host") == Some(name.as_str())
            && let (Some(host), Some(user)) =
                (event.server.host(&name), event.field_str("username"))
        {
            let now = event.server.clock.now().floor();
            let stored = host
                .open_map(STORE)
                .and_then(|m| m.set(None, user, Some(Value::Integer(now as i64))));
            if let Err(e) = stored {
                tracing::error!(host = %name, "could not store a tombstone for {user}: {e}");
            }
        }
        false
    });
    host.events.hook("user-registered", 0, |event| {
        if let (Some(host), Some(user)) = (event.host.clone(), event.field_str("username")) {
            let removed = host.open_map(STORE).and_then(|m| m.set(None, user, None));
            if let Err(e) = removed {
                tracing::error!(host = %host.name, "could not remove the tombstone of {user}: {e}");
            }
        }
        false
    });
    for kind in ["presence", "message", "iq"] {
        for to in ["bare", "full"] {
            host.events.hook(&format!("{kind}/{to}"), 1, move |event| {
                on_stanza(event, expiry)
            });
        }
    }
    Ok(())
}

/// Does `user` of `host` have a live tombstone? (Not whether the account
/// exists: some auth providers, `insecure` among them, say every account
/// does; registering the name again removes the tombstone.)
pub fn has_tombstone(server: &Server, host: &Host, user: &str, expiry: Option<f64>) -> bool {
    let when = match host.open_map(STORE).and_then(|m| m.get(None, user)) {
        Ok(Some(v)) => v.as_f64().unwrap_or(0.0),
        Ok(None) => return false,
        Err(e) => {
            tracing::error!(host = %host.name, "could not read the tombstone of {user}: {e}");
            return false;
        }
    };
    expiry.is_none_or(|ttl| server.clock.now() < when + ttl)
}

fn on_stanza(event: &mut Event, expiry: Option<f64>) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza();
    let Some(to) = stanza.to().and_then(|t| Jid::parse(t).ok()) else {
        return false;
    };
    let Some(user) = to.node() else {
        return false;
    };
    if !has_tombstone(&event.server, &host, user, expiry) {
        return false;
    }
    let stanza = stanza.clone();
    let is_reply = matches!(stanza.type_(), Some("error" | "result"));
    if is_reply {
        return true;
    }
    let error = StanzaError::new(ErrorType::Cancel, "gone")
        .with_text("User deleted")
        .reply_to(&stanza);
    event.reply(error);
    if stanza.name() == "presence"
        && let Some(from) = stanza.from()
    {
        let unsubscribed = Element::new("presence", NS_CLIENT)
            .attr("type", "unsubscribed")
            .attr("from", to.to_bare().to_string())
            .attr(
                "to",
                Jid::parse(from).map_or(from.to_string(), |f| f.to_bare().to_string()),
            );
        event.reply(unsubscribed);
    }
    true
}
