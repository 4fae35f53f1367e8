//! `message`: Prosody's mod_message, delivery of messages to local users by
//! the rules of RFC 6121 §8.5.
//!
//! To a full JID: that resource, else as to the bare JID. To a bare JID, by
//! type: `error` is dropped; `groupchat` fires `message/bare/groupchat` for an
//! existing account (else `service-unavailable`); `headline` goes to every
//! available resource with a non-negative priority (else is dropped); `chat`
//! and `normal` go to the available resources of highest non-negative
//! priority, else to `message/offline/handle` for an existing account (the
//! offline module stores it), else `service-unavailable`.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server, Session};

use crate::ModuleError;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.events.hook("message/full", -1, |event| {
        let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else {
            return false;
        };
        let server = event.server.clone();
        let stanza = event.stanza().clone();
        let Some(to) = stanza.to().and_then(|t| Jid::parse(t).ok()) else {
            return false;
        };
        if server
            .sessions
            .get_full(&to)
            .is_some_and(|s| s.send(stanza.clone()))
        {
            return true;
        }
        process_to_bare(&server, &host, &origin, &to.to_bare(), stanza)
    });
    host.events.hook("message/bare", -1, |event| {
        let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else {
            return false;
        };
        let server = event.server.clone();
        let stanza = event.stanza().clone();
        let bare = match stanza.to() {
            Some(t) => Jid::parse(t).ok(),
            None => origin.bare_jid(),
        };
        let Some(bare) = bare else { return false };
        process_to_bare(&server, &host, &origin, &bare, stanza)
    });
    Ok(())
}

/// The available resources that get a chat/normal message to the bare JID:
/// those of the highest priority, if it is not negative (Prosody's
/// `top_resources`).
pub fn top_resources(server: &Server, bare: &Jid) -> Vec<Arc<Session>> {
    let mut best = 0;
    let mut out: Vec<Arc<Session>> = Vec::new();
    for s in server.sessions.available_resources(bare) {
        let p = s.priority();
        if p > best {
            best = p;
            out.clear();
            out.push(s);
        } else if p == best {
            out.push(s);
        }
    }
    out
}

fn process_to_bare(
    server: &Arc<Server>,
    host: &Arc<Host>,
    origin: &Arc<Session>,
    bare: &Jid,
    stanza: Element,
) -> bool {
    let user = bare.node().unwrap_or_default().to_string();
    match stanza.type_() {
        Some("error") => {}
        Some("groupchat") => {
            if host.user_exists(&user) {
                let mut ev = Event::new(server, "message/bare/groupchat")
                    .with_origin(origin)
                    .with_stanza(stanza.clone());
                if server.fire_on_host(host, "message/bare/groupchat", &mut ev) {
                    return true;
                }
            }
            server.reply_error(origin, &stanza, StanzaError::service_unavailable());
        }
        Some("headline") => {
            if stanza.to() == Some(bare.to_string().as_str()) {
                for s in server.sessions.available_resources(bare) {
                    if s.priority() >= 0 {
                        s.send(stanza.clone());
                    }
                }
            }
        }
        _ => {
            let mut sent = false;
            for s in top_resources(server, bare) {
                sent = s.send(stanza.clone()) || sent;
            }
            if sent {
                return true;
            }
            let mut stored = false;
            if host.user_exists(&user) {
                let mut ev = Event::new(server, "message/offline/handle")
                    .with_origin(origin)
                    .with_stanza(stanza.clone())
                    .with_field("username", user.as_str());
                stored = server.fire_on_host(host, "message/offline/handle", &mut ev);
            }
            if !stored {
                server.reply_error(origin, &stanza, StanzaError::service_unavailable());
            }
        }
    }
    true
}
