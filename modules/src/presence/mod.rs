//! `presence`: Prosody's mod_presence (RFC 6121 §3-4).
//!
//! - `pre-presence/*` (outbound, on the sender's host): subscription stanzas
//!   update the sender's roster ([`subscription::handle_outbound`]); other
//!   presence to a JID without a `from`/`both` subscription is tracked as
//!   directed presence;
//! - `presence/bare` with no `to`: the client's broadcast presence
//!   ([`normal::handle_normal_presence`]); with a `to`: inbound subscription
//!   handling, or delivery to the user's available resources;
//! - `presence/full`: inbound subscriptions, or delivery to that resource;
//! - `presence/host`: the server answers probes and subscriptions itself;
//! - `resource-unbind`: a vanishing session's unavailable presence;
//! - `roster-item-removed`: removing a contact unsubscribes both ways.

pub mod normal;
pub mod subscription;

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server, Session};

use crate::ModuleError;
use crate::roster::{manager, removed_item};
use normal::{handle_normal_presence, presence, send_presence_of_available_resources};
use subscription::{handle_inbound, handle_outbound, is_subscription_type};

pub const NS_PRE_APPROVAL_FEATURE: &str = "urn:xmpp:features:pre-approval";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    // Validate the option now so a typo is reported at start-up.
    host.option_bool("ignore_presence_priority", false)?;

    host.events.hook("stream-features", 0, |event| {
        if event.origin.as_ref().and_then(|o| o.username()).is_some()
            && let Some(features) = event.stanza.as_mut()
        {
            features.push_child(Element::new("sub", NS_PRE_APPROVAL_FEATURE));
        }
        false
    });

    for name in [
        "pre-presence/full",
        "pre-presence/bare",
        "pre-presence/host",
    ] {
        host.events.hook(name, 0, outbound_presence_handler);
    }
    host.events.hook("presence/bare", 0, |event| {
        let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else {
            return false;
        };
        let server = event.server.clone();
        let stanza = event.stanza().clone();
        let t = stanza.type_();
        match stanza.to().and_then(|t| Jid::parse(t).ok()) {
            Some(to) => {
                if is_subscription_type(t) {
                    return inbound(&server, &host, &origin, &stanza, &to);
                }
                for s in server.sessions.available_resources(&to) {
                    s.send(stanza.clone());
                }
            }
            None if matches!(t, None | Some("unavailable")) => {
                handle_normal_presence(&server, &host, &origin, stanza)
            }
            None => server.reply_error(
                &origin,
                &stanza,
                StanzaError::bad_request().with_text("Invalid presence type"),
            ),
        }
        true
    });
    host.events.hook("presence/full", 0, |event| {
        let (Some(origin), Some(host)) = (event.origin.clone(), event.host.clone()) else {
            return false;
        };
        let server = event.server.clone();
        let stanza = event.stanza().clone();
        let Some(to) = stanza.to().and_then(|t| Jid::parse(t).ok()) else {
            return true;
        };
        if is_subscription_type(stanza.type_()) {
            return inbound(&server, &host, &origin, &stanza, &to);
        }
        if let Some(s) = server.sessions.get_full(&to) {
            s.send(stanza);
        }
        true
    });
    host.events.hook("presence/host", 0, |event| {
        let Some(host) = event.host.clone() else {
            return false;
        };
        let server = event.server.clone();
        let stanza = event.stanza().clone();
        let Some(from_bare) = stanza
            .from()
            .and_then(|f| Jid::parse(f).ok())
            .map(|j| j.to_bare().to_string())
        else {
            return true;
        };
        let mut reply = presence(&[("from", &host.name), ("to", &from_bare)]);
        reply.set_attr("id", stanza.id().map(str::to_string));
        match stanza.type_() {
            Some("probe") => server.post_stanza(&host.local_session, reply, true),
            Some("subscribe") => {
                let mut subscribed = reply.clone();
                subscribed.set_attr("type", Some("subscribed".into()));
                server.post_stanza(&host.local_session, subscribed, true);
                server.post_stanza(&host.local_session, reply, true);
            }
            _ => {}
        }
        true
    });
    host.events.hook("resource-unbind", 0, |event| {
        let Some(session) = event.origin.clone() else {
            return false;
        };
        let error = event.field_str("error").map(str::to_string);
        on_session_end(&event.server, &session, error.as_deref());
        false
    });
    host.events.hook("roster-item-removed", -1, |event| {
        let Some(host) = event.host.clone() else {
            return false;
        };
        let server = event.server.clone();
        on_roster_item_removed(&server, &host, event);
        false
    });
    Ok(())
}

fn bare_from(stanza: &Element) -> Option<Jid> {
    stanza
        .from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare())
}

fn inbound(
    server: &Arc<Server>,
    host: &Arc<Host>,
    origin: &Arc<Session>,
    stanza: &Element,
    to: &Jid,
) -> bool {
    let Some(from_bare) = bare_from(stanza) else {
        return true;
    };
    handle_inbound(server, host, origin, stanza, &from_bare, &to.to_bare())
}

/// `pre-presence/*`: subscriptions from the user, and directed presence.
fn outbound_presence_handler(event: &mut Event) -> bool {
    let Some(origin) = event.origin.clone() else {
        return false;
    };
    let server = event.server.clone();
    let stanza = event.stanza();
    let Some(to) = stanza.to().and_then(|t| Jid::parse(t).ok()) else {
        return false;
    };
    let t = stanza.type_();
    if is_subscription_type(t) {
        let Some(from_bare) = bare_from(stanza) else {
            return false;
        };
        let stanza = stanza.clone();
        return handle_outbound(&server, &origin, &stanza, &from_bare, &to.to_bare());
    }
    // Only client sessions have a roster (and directed presence).
    let Some(user) = origin.username() else {
        return false;
    };
    let Some(host) = server.host(&origin.host) else {
        return false;
    };
    let to_bare = to.to_bare().to_string();
    let subscribed = manager::with_roster(&server, &host, &user, |r| {
        r.items
            .get(&to_bare)
            .is_some_and(|i| i.subscription.has_from())
    });
    if !subscribed {
        let is_typed = t.is_some();
        let mut st = origin.state();
        if is_typed {
            st.directed.remove(&to);
        } else {
            st.directed.insert(to);
        }
    }
    false
}

/// A session ends: its unavailable presence goes to everyone who had its
/// presence (broadcast or directed). Hooked on `resource-unbind`; callable
/// directly by a transport that does not fire that event.
pub fn on_session_end(server: &Arc<Server>, session: &Arc<Session>, error: Option<&str>) {
    let mut pres = presence(&[("type", "unavailable")]);
    if let Some(err) = error {
        pres.push_child(Element::new("status", NS_CLIENT).text(format!("Disconnected: {err}")));
    }
    if session.is_available() {
        server.process_stanza(session, pres);
        return;
    }
    let directed = std::mem::take(&mut session.state().directed);
    if directed.is_empty() {
        return;
    }
    pres.set_attr("from", session.full_jid().map(|j| j.to_string()));
    for jid in directed {
        let mut p = pres.clone();
        p.set_attr("to", Some(jid.to_string()));
        server.post_stanza(session, p, true);
    }
}

/// A contact leaves the roster: unsubscribe both ways (mod_presence's
/// `roster-item-removed` handler).
fn on_roster_item_removed(server: &Arc<Server>, host: &Arc<Host>, event: &Event) {
    let (Some(user), Some(jid)) = (event.field_str("username"), event.field_str("jid")) else {
        return;
    };
    let item = removed_item(event);
    let origin = event
        .origin
        .clone()
        .unwrap_or_else(|| host.local_session.clone());
    let from_jid = origin
        .full_jid()
        .map(|j| j.to_string())
        .or_else(|| {
            Jid::from_parts(Some(user), &host.name, None)
                .ok()
                .map(|j| j.to_string())
        })
        .unwrap_or_default();
    let subscription = item.as_ref().map(|i| i.subscription);
    let ask = item.as_ref().is_some_and(|i| i.ask.is_some());
    let pending = manager::is_contact_pending_in(server, host, user, jid);
    if subscription.is_some_and(|s| s.has_from()) || pending {
        server.post_stanza(
            &origin,
            presence(&[("type", "unsubscribed"), ("from", &from_jid), ("to", jid)]),
            false,
        );
    }
    if subscription.is_some_and(|s| s.has_to()) || ask {
        let unavailable = presence(&[("type", "unavailable")]);
        send_presence_of_available_resources(server, host, user, jid, Some(&unavailable));
        server.post_stanza(
            &origin,
            presence(&[("type", "unsubscribe"), ("from", &from_jid), ("to", jid)]),
            false,
        );
    }
}
