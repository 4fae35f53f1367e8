//! `vcard`: Prosody's mod_vcard — XEP-0054 vcard-temp, the `<vCard/>` of
//! each account (and of the host) kept whole in the `vcard` keyval store, as
//! Prosody's `st.preserialize` table (so Prosody's `vcard/<user>.dat` files
//! are read and written as they are).
//!
//! - get to an account (or oneself): its stored vCard, `item-not-found`
//!   when there is none; get to the host: the host's vCard (user `nil`);
//! - set without `to` (oneself): stored, answered with an empty result,
//!   then `vcard-updated` fires on the host; set to anyone else: `forbidden`;
//!   a store failure: `internal-server-error`.
//!
//! [`get_vcard`], [`set_vcard`] and [`avatar_hash`] are the same store for
//! other modules (mod_vcard_legacy's presence stamp uses the last one).

use std::sync::Arc;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageResult;
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::roster::item::{deserialize, preserialize};

pub const NS_VCARD: &str = "vcard-temp";
/// The keyval store vCards live in.
pub const STORE: &str = "vcard";

/// The stored vCard of `user` (`None`: the host's).
pub fn get_vcard(host: &Host, user: Option<&str>) -> StorageResult<Option<Element>> {
    let v = host.open_keyval(STORE)?.get(user)?;
    Ok(v.and_then(|v| deserialize(&v, NS_CLIENT)))
}

/// Stores (or, with `None`, removes) the vCard of `user`.
pub fn set_vcard(host: &Host, user: Option<&str>, vcard: Option<&Element>) -> StorageResult<()> {
    host.open_keyval(STORE)?
        .set(user, vcard.map(|v| preserialize(v, NS_CLIENT)))
}

/// The avatar hash of a vCard: the hex SHA-1 of the last `<PHOTO/>`'s
/// decoded `<BINVAL/>` (what Prosody's vCard-to-PEP conversion publishes
/// as the avatar's id).
pub fn avatar_hash(vcard: &Element) -> Option<String> {
    let binval = vcard
        .children()
        .filter(|c| c.is("PHOTO", NS_VCARD))
        .filter_map(|p| p.get_child("BINVAL", NS_VCARD))
        .map(Element::text_content)
        .last()?;
    let compact: String = binval.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    Some(
        Sha1::digest(&raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_VCARD);
    host.events
        .hook("iq/bare/vcard-temp:vCard", 0, |e| handle(e, false));
    host.events
        .hook("iq/host/vcard-temp:vCard", 0, |e| handle(e, false));
    Ok(())
}

/// Whose vCard a get is about: the `to` account, the host (`to` is the
/// host), or the sender.
fn subject(event: &Event) -> Option<Option<String>> {
    match event.stanza().to() {
        Some(to) => Jid::parse(to).ok().map(|j| j.node().map(str::to_string)),
        None => event.origin.as_ref().map(|o| o.username()),
    }
}

/// Answers a vCard get or set. `empty_when_missing`: a get of an account
/// with no vCard answers an empty `<vCard/>` (mod_vcard_legacy) instead of
/// `item-not-found` (mod_vcard).
pub fn handle(event: &mut Event, empty_when_missing: bool) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    match stanza.type_() {
        Some("get") => {
            let Some(user) = subject(event) else {
                event.reply(StanzaError::item_not_found().reply_to(&stanza));
                return true;
            };
            match get_vcard(&host, user.as_deref()) {
                Ok(Some(v)) => event.reply(stanza.reply().child(v)),
                Ok(None) if empty_when_missing && user.is_some() => {
                    event.reply(stanza.reply().child(Element::new("vCard", NS_VCARD)))
                }
                Ok(None) => event.reply(StanzaError::item_not_found().reply_to(&stanza)),
                Err(e) => {
                    tracing::error!(host = %host.name, user = ?user, "could not load vCard: {e}");
                    event.reply(StanzaError::item_not_found().reply_to(&stanza));
                }
            }
        }
        Some("set") => {
            let user = event.origin.as_ref().and_then(|o| o.username());
            let (Some(user), None) = (user, stanza.to()) else {
                event.reply(StanzaError::forbidden().reply_to(&stanza));
                return true;
            };
            let Some(vcard) = stanza.first_child() else {
                return false;
            };
            match set_vcard(&host, Some(&user), Some(vcard)) {
                Ok(()) => {
                    event.reply(stanza.reply());
                    let server = event.server.clone();
                    let mut ev = Event::new(&server, "vcard-updated").with_stanza(stanza);
                    ev.origin = event.origin.clone();
                    server.fire_on_host(&host, "vcard-updated", &mut ev);
                }
                Err(e) => {
                    tracing::error!(host = %host.name, %user, "could not store vCard: {e}");
                    event.reply(
                        StanzaError::new(ErrorType::Wait, "internal-server-error")
                            .reply_to(&stanza),
                    );
                }
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avatar_hash_is_sha1_of_the_last_photo() {
        // "hello" in base64, wrapped as clients do.
        let v = Element::new("vCard", NS_VCARD).child(
            Element::new("PHOTO", NS_VCARD)
                .child(Element::new("TYPE", NS_VCARD).text("image/png"))
                .child(Element::new("BINVAL", NS_VCARD).text("aGVs\nbG8=")),
        );
        assert_eq!(
            avatar_hash(&v).as_deref(),
            Some("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        );
        assert_eq!(avatar_hash(&Element::new("vCard", NS_VCARD)), None);
    }
}
