//! `announce`: Prosody's mod_announce — server announcements to every
//! online user of a host.
//!
//! A message from an admin (`admins`, global or host) to
//! `<host>/announce/online` is sent to each account with a session on the
//! host, as a `headline` from the host (one message to each bare JID, as
//! Prosody does, so each of its resources gets it by the headline rules).
//! From anyone else it is left to the usual handling (and refused).
//! (Prosody also offers this as the ad-hoc command
//! `http://jabber.org/protocol/admin#announce`; lilt does not yet.)

use std::collections::BTreeSet;
use std::sync::Arc;

use xmpp_core::{Host, Jid, Server};

use crate::ModuleError;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    // Prosody's router fires `message/host` for `host/resource`; lilt's
    // fires `message/full`, so both are hooked (the check below needs a JID
    // without a node either way).
    for name in ["message/host", "message/full"] {
        host.events.hook(name, 0, announce);
    }
    Ok(())
}

fn announce(event: &mut xmpp_core::Event) -> bool {
    {
        let Some(host) = event.host.clone() else {
            return false;
        };
        let stanza = event.stanza();
        let Some(to) = stanza.to().and_then(|t| Jid::parse(t).ok()) else {
            return false;
        };
        if to.node().is_some() || to.resource() != Some("announce/online") {
            return false;
        }
        let from = stanza.from().and_then(|f| Jid::parse(f).ok());
        if !from.is_some_and(|f| crate::disco::is_admin(&host, &f)) {
            tracing::warn!(
                host = %host.name,
                "Non-admin '{}' tried to send server announcement",
                stanza.from().unwrap_or_default()
            );
            return false;
        }
        tracing::info!(host = %host.name, "Sending server announcement to all online users");
        let mut message = stanza.clone();
        message.set_attr("type", Some("headline".into()));
        message.set_attr("from", Some(host.name.clone()));
        let server = event.server.clone();
        let users: BTreeSet<String> = server
            .sessions
            .all()
            .into_iter()
            .filter(|s| s.host == host.name)
            .filter_map(|s| s.bare_jid())
            .map(|j| j.to_string())
            .collect();
        for user in &users {
            message.set_attr("to", Some(user.clone()));
            server.send_from_host(&host, message.clone());
        }
        tracing::info!(host = %host.name, "Announcement sent to {} online users", users.len());
        true
    }
}
