//! `vcard4`: Prosody's mod_vcard4 — XEP-0292 vCard4 over XMPP, kept in the
//! account's PEP node `urn:xmpp:vcard4` (item `current`), so it is stored
//! where Prosody 0.12 keeps it (`pep_urn%3axmpp%3avcard4/<user>.list`).
//!
//! - get (to an account, or oneself): the node's last item's `<vcard/>`, as
//!   the node's access model allows (`forbidden`), `item-not-found` when
//!   there is none;
//! - set (to oneself): published as item `current`.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::disco::NS_DISCO_INFO;
use crate::pep::node::{Item, PepError};
use crate::pep::owner;

pub const NS_VCARD4: &str = "urn:ietf:params:xml:ns:vcard-4.0";
pub const NODE: &str = "urn:xmpp:vcard4";

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::load_module(server, host, "pep")?;
    host.events.hook("account-disco-info", 0, |e| {
        if let Some(q) = e
            .stanza
            .as_mut()
            .and_then(|r| r.get_child_mut("query", NS_DISCO_INFO))
        {
            q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", NS_VCARD4));
        }
        false
    });
    host.events
        .hook(&format!("iq-get/bare/{NS_VCARD4}:vcard"), 0, get);
    host.events
        .hook(&format!("iq-set/self/{NS_VCARD4}:vcard"), 0, set);
    Ok(())
}

fn get(event: &mut Event) -> bool {
    let server = event.server.clone();
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let user = match stanza.to().and_then(|t| Jid::parse(t).ok()) {
        Some(j) => j.node().map(str::to_string),
        None => origin.username(),
    };
    let Some(user) = user else {
        return false;
    };
    let actor = stanza.from().and_then(|f| Jid::parse(f).ok());
    let reply = match owner::last_item_for(&server, &host, &user, NODE, actor.as_ref()) {
        Ok(Some(item)) => stanza.reply().child(item.payload),
        Ok(None) | Err(PepError::ItemNotFound) => {
            StanzaError::new(ErrorType::Cancel, "item-not-found").reply_to(&stanza)
        }
        Err(PepError::Forbidden) => {
            StanzaError::new(ErrorType::Auth, "forbidden").reply_to(&stanza)
        }
        Err(e) => StanzaError::new(ErrorType::Modify, "undefined-condition")
            .with_text(e.to_string())
            .reply_to(&stanza),
    };
    event.reply(reply);
    true
}

fn set(event: &mut Event) -> bool {
    let server = event.server.clone();
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(vcard) = stanza.first_child().cloned() else {
        return false;
    };
    let item = Item {
        id: "current".into(),
        publisher: Some(format!("{user}@{}", host.name)),
        payload: vcard,
    };
    let reply = match owner::publish_default(&server, &host, &user, NODE, &item) {
        Ok(()) => stanza.reply(),
        Err(PepError::Forbidden) => {
            StanzaError::new(ErrorType::Auth, "forbidden").reply_to(&stanza)
        }
        Err(e) => StanzaError::new(ErrorType::Modify, "undefined-condition")
            .with_text(e.to_string())
            .reply_to(&stanza),
    };
    event.reply(reply);
    true
}
