//! `private`: Prosody's mod_private — XEP-0049 private XML storage.
//!
//! An account keeps XML fragments under their qualified name: a get or set
//! to oneself (`iq/self`, so another account's storage is unreachable) with
//! `<query xmlns='jabber:iq:private'>` holding exactly one element.
//!
//! Storage is Prosody's: the map store `private`, one entry per fragment
//! under the key `<name>:<namespace>` (for example
//! `storage:storage:bookmarks`), holding the element as `st.preserialize`
//! makes it; with the `internal` driver that is the user's
//! `private/<user>.dat` table, so a data directory Prosody wrote is read in
//! place and the reverse.
//!
//! - get: the stored element inside the query, or the query as asked when
//!   there is none;
//! - set: stored (an empty element removes the entry), answered empty;
//! - not exactly one element in the query: `modify/bad-format`;
//! - a store failure: `wait/internal-server-error`.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::StorageResult;
use xmpp_core::{Event, Host, Server};

use crate::ModuleError;
use crate::roster::item::{deserialize, preserialize};

pub const NS_PRIVATE: &str = "jabber:iq:private";
/// The map store the fragments live in.
pub const STORE: &str = "private";

/// The map key of a fragment: `<name>:<namespace>`, as Prosody's.
pub fn key(name: &str, ns: &str) -> String {
    format!("{name}:{ns}")
}

/// The stored fragment `name` in `ns` of `user`.
pub fn get_private(
    host: &Host,
    user: &str,
    name: &str,
    ns: &str,
) -> StorageResult<Option<Element>> {
    let v = host.open_map(STORE)?.get(Some(user), &key(name, ns))?;
    Ok(v.and_then(|v| deserialize(&v, NS_CLIENT)))
}

/// Stores `element` for `user` under its name and namespace (an element
/// without children or text removes the entry, as Prosody does).
pub fn set_private(host: &Host, user: &str, element: &Element) -> StorageResult<()> {
    let value = (!element.nodes().is_empty()).then(|| preserialize(element, NS_CLIENT));
    host.open_map(STORE)?
        .set(Some(user), &key(element.name(), element.ns()), value)
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_PRIVATE);
    host.events
        .hook(&format!("iq/self/{NS_PRIVATE}:query"), 0, handle);
    Ok(())
}

fn handle(event: &mut Event) -> bool {
    let (Some(host), Some(user)) = (
        event.host.clone(),
        event.origin.as_ref().and_then(|o| o.username()),
    ) else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(query) = stanza.first_child() else {
        return false;
    };
    let mut tags = query.children();
    let (Some(tag), None) = (tags.next(), tags.next()) else {
        event.reply(StanzaError::new(ErrorType::Modify, "bad-format").reply_to(&stanza));
        return true;
    };
    let failed = |e: &dyn std::fmt::Display| {
        tracing::error!(host = %host.name, %user, "private storage: {e}");
        StanzaError::new(ErrorType::Wait, "internal-server-error")
            .with_text(e.to_string())
            .reply_to(&stanza)
    };
    let reply = match stanza.type_() {
        Some("get") => match get_private(&host, &user, tag.name(), tag.ns()) {
            Ok(Some(data)) => stanza
                .reply()
                .child(Element::new("query", NS_PRIVATE).child(data)),
            Ok(None) => stanza.reply().child(query.clone()),
            Err(e) => failed(&e),
        },
        Some("set") => match set_private(&host, &user, tag) {
            Ok(()) => stanza.reply(),
            Err(e) => failed(&e),
        },
        _ => return false,
    };
    event.reply(reply);
    true
}
