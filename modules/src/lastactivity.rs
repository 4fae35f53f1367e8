//! `lastactivity`: Prosody's mod_lastactivity — XEP-0012 Last Activity of
//! accounts.
//!
//! When a resource goes offline (unavailable presence without `to`), the
//! time and its `<status/>` are remembered per account, in memory only, as
//! Prosody keeps them (a restart forgets them). A get to an account answers
//! `<query xmlns='jabber:iq:last' seconds='N'>status</query>`: the seconds
//! since that, or `0` and no text when nothing is known; only to the account
//! itself or a contact subscribed to its presence, else `auth/forbidden`.
//! (Last activity of the host is mod_uptime's.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::roster::subscription::is_contact_subscribed;
use crate::uptime::NS_LAST;

/// When each account last went offline (Unix seconds), and its status.
#[derive(Default)]
pub struct LastSeen {
    map: Mutex<HashMap<String, (i64, Option<String>)>>,
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_LAST);
    host.events.hook("pre-presence/bare", 10, |event| {
        let (Some(host), Some(user)) = (
            event.host.clone(),
            event.origin.as_ref().and_then(|o| o.username()),
        ) else {
            return false;
        };
        let stanza = event.stanza();
        if stanza.to().is_none() && stanza.type_() == Some("unavailable") {
            let status = stanza.get_child_text("status", NS_CLIENT);
            let now = event.server.clock.now().floor() as i64;
            host.extension::<LastSeen>()
                .map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user, (now, status));
        }
        false
    });
    host.events
        .hook(&format!("iq-get/bare/{NS_LAST}:query"), 0, answer);
    Ok(())
}

fn answer(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let to = stanza.to().and_then(|t| Jid::parse(t).ok());
    let user = match &to {
        Some(j) => j.node().map(str::to_string),
        None => event.origin.as_ref().and_then(|o| o.username()),
    };
    let Some(user) = user else {
        return false;
    };
    let from = stanza
        .from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default();
    let allowed = to.is_none()
        || matches!(
            is_contact_subscribed(&event.server, &host, &user, &from),
            Ok(true)
        );
    if !allowed {
        event.reply(StanzaError::new(ErrorType::Auth, "forbidden").reply_to(&stanza));
        return true;
    }
    let seen = host
        .extension::<LastSeen>()
        .map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&user)
        .cloned();
    let now = event.server.clock.now().floor() as i64;
    let (seconds, text) = match seen {
        Some((t, status)) => ((now - t).max(0), status.unwrap_or_default()),
        None => (0, String::new()),
    };
    let mut query = Element::new("query", NS_LAST).attr("seconds", seconds.to_string());
    if !text.is_empty() {
        query = query.text(text);
    }
    event.reply(stanza.reply().child(query));
    true
}
