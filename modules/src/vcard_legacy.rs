//! `vcard_legacy`: Prosody 13's mod_vcard_legacy, as far as it goes without
//! PEP.
//!
//! **What it does.**
//! - The XEP-0153 presence stamp, as Prosody: on the sender's host, at
//!   priority 1 of `pre-presence/full`, `pre-presence/bare` and
//!   `pre-presence/host`, every available presence (no `type`) that an
//!   account sends loses any `<x xmlns='vcard-temp:x:update'/>` it carried
//!   and gets the server's own at the end: `<photo>hash</photo>`, or an
//!   empty `<photo/>` when the account has no avatar. Unavailable,
//!   subscription and error presences, and presences from components or
//!   other servers, are left alone.
//! - XEP-0054 vcard-temp for accounts: a get (of oneself or of another
//!   account) answers the stored vCard, or an empty `<vCard/>` when there is
//!   none (as mod_vcard_legacy, which always answers); a set to oneself
//!   stores the vCard (see [`crate::vcard`]: the `vcard` keyval store, as
//!   mod_vcard keeps it) and fires `vcard-updated`.
//!
//! The avatar hash is the hex SHA-1 of the stored vCard's last `<PHOTO/>`
//! `<BINVAL/>`: the id Prosody gives the avatar when it converts a vcard-temp
//! set into PEP, so clients see the same hash either way.
//!
//! **What is not there (needs mod_pep, which lilt does not have yet):** the
//! PEP bridge itself — vcard-temp gets built from the `urn:xmpp:vcard4` and
//! `urn:xmpp:avatar:*` PEP nodes, sets published to them, the avatar hash
//! taken from `urn:xmpp:avatar:metadata`, the migration of stored vCards to
//! PEP at `resource-bind` (`upgrade_legacy_vcards`), and the account's
//! `urn:xmpp:pep-vcard-conversion:0` disco feature (not advertised, since
//! no conversion happens). Until then the vCard is kept whole in the
//! `vcard` store, like mod_vcard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server};

use crate::ModuleError;
use crate::vcard::{self, NS_VCARD};

pub const NS_VCARD_UPDATE: &str = "vcard-temp:x:update";

/// Avatar hashes by user, so presences do not read storage each time.
#[derive(Default)]
struct Hashes(Mutex<HashMap<String, Option<String>>>);

fn lock(h: &Hashes) -> MutexGuard<'_, HashMap<String, Option<String>>> {
    h.0.lock().unwrap_or_else(|p| p.into_inner())
}

/// The avatar hash of `user` (`None`: no avatar).
pub fn user_avatar_hash(host: &Host, user: &str) -> Option<String> {
    let cache = host.extension::<Hashes>();
    if let Some(h) = lock(&cache).get(user) {
        return h.clone();
    }
    let h = match vcard::get_vcard(host, Some(user)) {
        Ok(v) => v.as_ref().and_then(vcard::avatar_hash),
        Err(e) => {
            tracing::warn!(host = %host.name, %user, "could not load vCard for the avatar hash: {e}");
            return None;
        }
    };
    lock(&cache).insert(user.to_string(), h.clone());
    h
}

/// Replaces the presence's `vcard-temp:x:update` with the server's.
fn inject_xep153(event: &mut Event) -> bool {
    let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else {
        return false;
    };
    let Some(username) = origin.username() else {
        return false;
    };
    if event.stanza.as_ref().is_none_or(|s| s.type_().is_some()) {
        return false;
    }
    let hash = user_avatar_hash(&host, &username);
    let mut photo = Element::new("photo", NS_VCARD_UPDATE);
    if let Some(h) = hash {
        photo.append_text(h);
    }
    if let Some(stanza) = event.stanza.as_mut() {
        stanza.remove_children(|c| c.is("x", NS_VCARD_UPDATE));
        stanza.push_child(Element::new("x", NS_VCARD_UPDATE).child(photo));
    }
    false
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_VCARD);
    for name in [
        "pre-presence/full",
        "pre-presence/bare",
        "pre-presence/host",
    ] {
        host.events.hook(name, 1, inject_xep153);
    }
    host.events.hook("iq-get/bare/vcard-temp:vCard", 1, |e| {
        vcard::handle(e, true)
    });
    host.events.hook("iq-set/self/vcard-temp:vCard", 1, |e| {
        vcard::handle(e, true)
    });
    host.events.hook("vcard-updated", 0, |event| {
        if let (Some(host), Some(user)) = (
            event.host.clone(),
            event.origin.as_ref().and_then(|o| o.username()),
        ) {
            lock(&host.extension::<Hashes>()).remove(&user);
        }
        false
    });
    Ok(())
}
