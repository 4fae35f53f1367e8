//! Directory display names in rooms (lilt's addition; Prosody has none):
//! a user who logged in through an LDAP provider whose settings name a
//! display-name attribute (`ldap.user.namefield`, `ldap_namefield`) has it
//! on the session as `ldap_display_name` (see `auth::providers::ldap`).
//! When such a user's join (or later presence) to a room carries no
//! XEP-0172 `<nick/>`, one with that name is added, so the other occupants
//! (Jitsi Meet's web client shows `<nick/>` as the participant's name) see
//! the directory's name instead of an id. A nick the client sends wins.
//!
//! Always hooked, and active exactly when the joining session has that
//! attribute: it is the login that knows whether the name is wanted (the
//! provider is configured with a name field), so no room or component
//! option is needed, and rooms on a host without LDAP users are unaffected.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Value};

/// The session attribute the LDAP providers set (`auth`'s
/// `DISPLAY_NAME_ATTRIBUTE`).
pub const DISPLAY_NAME_ATTRIBUTE: &str = "ldap_display_name";
/// XEP-0172 User Nickname.
pub const NS_NICK: &str = "http://jabber.org/protocol/nick";

fn add_nick(event: &mut Event) -> bool {
    let name = match event.origin.as_ref() {
        Some(origin) => match origin.state().attributes.get(DISPLAY_NAME_ATTRIBUTE) {
            Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
            _ => return false,
        },
        None => return false,
    };
    if let Some(stanza) = event.stanza.as_mut()
        && stanza.get_child("nick", NS_NICK).is_none()
    {
        stanza.push_child(Element::new("nick", NS_NICK).text(name));
    }
    false
}

pub fn register(host: &Arc<Host>) {
    // After the hooks that may refuse the join (lock: -30).
    host.events.hook("muc-occupant-pre-join", -40, add_nick);
    host.events.hook("muc-occupant-pre-change", -40, add_nick);
}
