//! `offline`: Prosody's mod_offline (XEP-0160). Messages that
//! mod_message could not deliver (`message/offline/handle`: chat and normal
//! messages to an existing account with no available resource of
//! non-negative priority) are appended to the user's `offline` archive as
//! they arrived; when the user sends initial presence with a non-negative
//! priority (`message/offline/broadcast`) they are delivered with a
//! `<delay xmlns='urn:xmpp:delay' from='host' stamp='...'/>` (XEP-0203) and
//! the archive is emptied.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::storage::ArchiveQuery;
use xmpp_core::{Host, Jid, Server};

use crate::ModuleError;
use crate::time::datetime;

pub const NS_DELAY: &str = "urn:xmpp:delay";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, "msgoffline");

    host.events.hook("message/offline/handle", -1, |event| {
        let Some(host) = event.host.clone() else { return false };
        let stanza = event.stanza().clone();
        let user = match stanza.to() {
            Some(to) => Jid::parse(to).ok().and_then(|j| j.node().map(str::to_string)),
            None => event.origin.as_ref().and_then(|o| o.username()),
        };
        let Some(user) = user else { return false };
        // Prosody stamps with os.time(): whole seconds.
        let when = event.server.clock.now().floor();
        match host.open_archive("offline").and_then(|a| a.append(Some(&user), &stanza, when, "")) {
            Ok(key) => {
                tracing::debug!(host = %host.name, "saved to offline storage for {user} ({key})");
                true
            }
            Err(e) => {
                tracing::warn!(host = %host.name, "could not store offline message for {user}: {e}");
                false
            }
        }
    });

    host.events.hook("message/offline/broadcast", -1, |event| {
        let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else { return false };
        let Some(user) = origin.username() else { return false };
        let archive = match host.open_archive("offline") {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(host = %host.name, "offline messages of {user} unavailable: {e}");
                return true;
            }
        };
        let items = match archive.find(Some(&user), &ArchiveQuery::default()) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(host = %host.name, "could not read offline messages of {user}: {e}");
                return true;
            }
        };
        if items.is_empty() {
            return true;
        }
        for item in items {
            let mut stanza = item.stanza;
            stanza.push_child(Element::new("delay", NS_DELAY).attr("from", host.name.as_str()).attr("stamp", datetime(item.when)));
            origin.send(stanza);
        }
        match archive.delete(Some(&user), &ArchiveQuery::default()) {
            Ok(n) => tracing::debug!(host = %host.name, "{n} offline messages of {user} consumed"),
            Err(e) => tracing::warn!(host = %host.name, "could not delete offline messages of {user}: {e}"),
        }
        true
    });
    Ok(())
}
