//! `carbons`: Prosody's mod_carbons — XEP-0280 Message Carbons.
//!
//! A resource turns carbons on with `<enable xmlns='urn:xmpp:carbons:2'/>`
//! (off with `<disable/>`), an IQ set to itself; the choice lives on the
//! session (Prosody's `session.want_carbons`, here the session attribute
//! [`WANT_CARBONS`] holding the namespace) and ends with it.
//!
//! Which messages are copied ([`should_copy`], Prosody 0.12's rules): not
//! those with `<private xmlns='urn:xmpp:carbons:2'/>` (the hint is removed
//! from incoming ones before delivery) nor `<no-copy xmlns='urn:xmpp:hints'/>`,
//! nor MUC private messages (a `muc#user` `<x/>` in an addressed message);
//! of the rest, `chat`, `normal` with a `<body/>`, incoming `error` bounces
//! from a bare JID, Jingle Message Initiation messages, and messages with a
//! `<stanza-id/>` by the user.
//!
//! Sent by a local client (`pre-message/*`): every other resource with
//! carbons on gets `<sent/>`. To a local user (`message/bare`,
//! `message/full`): every resource with carbons on gets `<received/>`, but
//! not the addressed resource, and, for a message to the bare JID, not the
//! top-priority resources that get the message itself. The copy is wrapped
//! in a XEP-0297 `<forwarded/>` in a `<message from='bare' to='full'/>` of
//! the original's type.
//!
//! Prosody hooks these at priority -0.5, between the blocklist (1) and
//! mod_message (-1); lilt's priorities are integers, so 0.

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server, Session, SessionKind, Value};

use crate::ModuleError;

pub const NS_CARBONS: &str = "urn:xmpp:carbons:2";
/// The copying rules of XEP-0280 0.13 (Prosody 0.12 announces them).
pub const NS_CARBONS_RULES: &str = "urn:xmpp:carbons:rules:0";
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
pub const NS_HINTS: &str = "urn:xmpp:hints";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_JINGLE_MESSAGE: [&str; 2] = ["urn:xmpp:jingle-message:0", "urn:xmpp:jingle-message:1"];
/// The session attribute that says a resource enabled carbons (its value is
/// the namespace it enabled, as Prosody's `session.want_carbons`).
pub const WANT_CARBONS: &str = "want_carbons";
/// Prosody's -0.5, rounded towards mod_message's -1 staying after.
const PRIORITY: i32 = 0;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_CARBONS);
    crate::disco::add_feature(host, NS_CARBONS_RULES);
    for payload in ["enable", "disable"] {
        host.events
            .hook(&format!("iq-set/self/{NS_CARBONS}:{payload}"), 10, toggle);
    }
    for kind in ["host", "bare", "full"] {
        host.events
            .hook(&format!("pre-message/{kind}"), PRIORITY, |e| {
                on_message(e, true);
                false
            });
    }
    for kind in ["bare", "full"] {
        host.events.hook(&format!("message/{kind}"), PRIORITY, |e| {
            on_message(e, false);
            false
        });
    }
    Ok(())
}

/// `<enable/>` or `<disable/>`: remembered on the session, answered empty.
fn toggle(event: &mut Event) -> bool {
    let Some(origin) = event.origin.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let enable = stanza.first_child().is_some_and(|c| c.name() == "enable");
    let value = if enable {
        Value::str(NS_CARBONS)
    } else {
        Value::Bool(false)
    };
    origin.state().attributes.insert(WANT_CARBONS, value);
    tracing::debug!(session = %origin.id, "{}d carbons", if enable { "enable" } else { "disable" });
    event.reply(stanza.reply());
    true
}

/// Has this session enabled carbons?
pub fn wants_carbons(session: &Session) -> bool {
    session
        .state()
        .attributes
        .get(WANT_CARBONS)
        .is_some_and(|v| v.as_str().is_some())
}

/// Prosody 0.12's `should_copy`: is this message one to copy? `sent`: it
/// comes from the user's own client; `user` is the user's bare JID. (Prosody
/// 0.12's caller passes neither: `false, None`, which is what lilt passes
/// too, so that the same messages are copied.)
pub fn should_copy(stanza: &Element, sent: bool, user: Option<&str>) -> bool {
    if stanza.get_child("private", NS_CARBONS).is_some()
        || stanza.get_child("no-copy", NS_HINTS).is_some()
    {
        return false;
    }
    if !sent && stanza.to() != user && stanza.get_child("x", NS_MUC_USER).is_some() {
        return false; // a MUC private message
    }
    match stanza.type_().unwrap_or("normal") {
        "chat" => return true,
        "normal" if stanza.get_child("body", NS_CLIENT).is_some() => return true,
        "error"
            if !sent
                && stanza
                    .from()
                    .and_then(|f| Jid::parse(f).ok())
                    .is_some_and(|f| !f.is_full()) =>
        {
            return true;
        }
        _ => {}
    }
    if stanza
        .children()
        .any(|c| NS_JINGLE_MESSAGE.contains(&c.ns()))
    {
        return true;
    }
    stanza
        .children()
        .filter(|c| c.is("stanza-id", NS_SID))
        .any(|c| c.get_attr("by") == user)
}

/// Wraps `stanza` as a carbon for the user `bare`.
pub fn carbon(stanza: &Element, bare: &str, sent: bool) -> Element {
    let mut copy = stanza.clone();
    copy.set_ns(NS_CLIENT);
    Element::new("message", NS_CLIENT)
        .attr("from", bare)
        .attr("type", stanza.type_().unwrap_or("normal"))
        .child(
            Element::new(if sent { "sent" } else { "received" }, NS_CARBONS)
                .child(Element::new("forwarded", NS_FORWARD).child(copy)),
        )
}

fn on_message(event: &mut Event, sent: bool) {
    let server = event.server.clone();
    let Some(stanza) = event.stanza.as_ref() else {
        return;
    };
    let to = stanza.to().and_then(|t| Jid::parse(t).ok());
    // Whose copies: the sender's (sent) or the addressee's (received), and
    // which resource gets the message itself.
    let (user, target) = if sent {
        let Some(origin) = event.origin.as_ref() else {
            return;
        };
        if origin.kind != SessionKind::C2s {
            return;
        }
        let Some(user) = origin.bare_jid() else {
            return;
        };
        (user, Some(origin.clone()))
    } else {
        // To oneself without `to` (the router removed it): the sender.
        let user = match &to {
            Some(j) => j.to_bare(),
            None => match event.origin.as_ref().and_then(|o| o.bare_jid()) {
                Some(j) => j,
                None => return,
            },
        };
        let target = to
            .as_ref()
            .filter(|j| j.is_full())
            .and_then(|j| server.sessions.get_full(j));
        (user, target)
    };
    let sessions = server.sessions.resources(&user);
    if sessions.is_empty() {
        return; // nobody to copy to
    }
    // Prosody 0.12 asks `should_copy` without the direction or the user.
    if !should_copy(stanza, false, None) {
        // An incoming message marked private loses the hint before delivery.
        if !sent && let Some(s) = event.stanza.as_mut() {
            s.remove_children(|c| c.is("private", NS_CARBONS));
        }
        return;
    }
    // To the bare JID: the top resources get the message itself.
    let top_priority = if !sent && target.is_none() {
        crate::message::top_resources(&server, &user)
            .first()
            .map(|s| s.priority())
    } else {
        None
    };
    let mut copy = carbon(stanza, &user.to_string(), sent);
    for session in sessions {
        if !wants_carbons(&session)
            || target.as_ref().is_some_and(|t| Arc::ptr_eq(t, &session))
            || (!sent && top_priority == Some(session.priority()))
        {
            continue;
        }
        let Some(full) = session.full_jid() else {
            continue;
        };
        copy.set_attr("to", Some(full.to_string()));
        tracing::debug!("sending carbon to {full}");
        session.send(copy.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(type_: Option<&str>) -> Element {
        Element::new("message", NS_CLIENT)
            .attr("from", "juliet@example.com/balcony")
            .attr("to", "romeo@example.net")
            .attr_opt("type", type_)
    }

    #[test]
    fn which_messages_are_copied() {
        let u = Some("romeo@example.net");
        assert!(should_copy(&msg(Some("chat")), false, u));
        assert!(!should_copy(&msg(None), false, u), "normal without a body");
        let body = Element::new("body", NS_CLIENT).text("hi");
        assert!(should_copy(&msg(None).child(body.clone()), false, u));
        assert!(should_copy(&msg(Some("normal")).child(body), true, u));
        assert!(!should_copy(&msg(Some("headline")), false, u));
        assert!(!should_copy(&msg(Some("groupchat")), false, u));
        let private = msg(Some("chat")).child(Element::new("private", NS_CARBONS));
        assert!(!should_copy(&private, false, u));
        let hint = msg(Some("chat")).child(Element::new("no-copy", NS_HINTS));
        assert!(!should_copy(&hint, true, u));
        // A MUC private message to a full JID is not copied; to the bare is.
        let pm = msg(Some("chat"))
            .attr("to", "romeo@example.net/phone")
            .child(Element::new("x", NS_MUC_USER));
        assert!(!should_copy(&pm, false, u));
        assert!(should_copy(&pm, true, u));
        // Bounces from a bare JID, incoming only.
        let bounce = msg(Some("error")).attr("from", "juliet@example.com");
        assert!(should_copy(&bounce, false, u));
        assert!(!should_copy(&bounce, true, u));
        assert!(!should_copy(&msg(Some("error")), false, u));
        let jmi = msg(None).child(Element::new("propose", "urn:xmpp:jingle-message:0"));
        assert!(should_copy(&jmi, false, u));
        let archived = msg(Some("headline")).child(
            Element::new("stanza-id", NS_SID)
                .attr("by", "romeo@example.net")
                .attr("id", "1"),
        );
        assert!(should_copy(&archived, false, u));
        assert!(!should_copy(&archived, false, Some("other@example.net")));
        // As Prosody 0.12 calls it: any addressed MUC message is a PM.
        let to_bare = msg(Some("chat")).child(Element::new("x", NS_MUC_USER));
        assert!(!should_copy(&to_bare, false, None));
    }

    #[test]
    fn the_carbon_wraps_the_message() {
        let m = msg(Some("chat")).child(Element::new("body", NS_CLIENT).text("hi"));
        let c = carbon(&m, "romeo@example.net", false);
        assert_eq!(c.get_attr("from"), Some("romeo@example.net"));
        assert_eq!(c.type_(), Some("chat"));
        let inner = c
            .get_child("received", NS_CARBONS)
            .and_then(|r| r.get_child("forwarded", NS_FORWARD))
            .and_then(|f| f.get_child("message", NS_CLIENT))
            .unwrap();
        assert_eq!(inner, &m);
        let c = carbon(&msg(None), "romeo@example.net", true);
        assert!(c.get_child("sent", NS_CARBONS).is_some());
        assert_eq!(c.type_(), Some("normal"));
    }
}
