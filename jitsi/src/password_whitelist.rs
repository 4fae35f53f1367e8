//! `muc_password_whitelist` (Jitsi's mod_muc_password_whitelist): users
//! and domains listed in `muc_password_whitelist` (Jicofo, recorders) join
//! password-protected rooms without knowing the password: their join
//! presence is given the room's password before the password check (-20),
//! after the lobby (-4) and members-only (-5) checks.

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::stanza::Element;

use super::util::split;
use muc::events::room_of;
use muc::util::NS_MUC;

/// Is `from` (a real JID) listed, by bare JID or by domain?
pub fn is_listed(whitelist: &[String], from: &str) -> bool {
    let (node, domain, _) = split(from);
    let Some(node) = node else {
        return false;
    };
    let bare = format!("{node}@{domain}");
    whitelist.iter().any(|w| *w == domain || *w == bare)
}

pub fn register(host: &Arc<Host>) {
    let whitelist = host.option_list("muc_password_whitelist");
    if host.option("muc_password_whitelist").is_none() {
        return;
    }
    host.events.hook("muc-occupant-pre-join", -7, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let Some(stanza) = event.stanza.as_mut() else {
            return false;
        };
        if !is_listed(&whitelist, stanza.from().unwrap_or_default()) {
            return false;
        }
        if stanza.get_child("x", NS_MUC).is_none() {
            stanza.push_child(Element::new("x", NS_MUC));
        }
        if let Some(x) = stanza.get_child_mut("x", NS_MUC) {
            x.remove_children(|c| c.name() == "password");
            x.push_child(
                Element::new("password", NS_MUC).text(room.get_password().unwrap_or_default()),
            );
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_by_jid_or_domain() {
        let list = vec!["focus@auth.x".to_string(), "hidden.x".to_string()];
        assert!(is_listed(&list, "focus@auth.x/res"));
        assert!(is_listed(&list, "recorder@hidden.x/r"));
        assert!(!is_listed(&list, "user@auth.x/r"));
        assert!(!is_listed(&list, "hidden.x"));
    }
}
