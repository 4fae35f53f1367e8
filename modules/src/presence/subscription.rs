//! Presence subscriptions and probes (RFC 6121 §3 and §4.3), as mod_presence's
//! `handle_outbound_presence_subscriptions_and_probes` and
//! `handle_inbound_presence_subscriptions_and_probes`.
//!
//! Outbound: the user's own roster changes, then the stanza is routed with
//! bare `from` and `to`. Inbound: the contact's roster changes, and the
//! server answers for the user where the RFC says so.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Jid, Server, Session};

use super::normal::{
    presence, send_presence_of_available_resources, send_to_available_resources,
    send_to_interested_resources,
};
use crate::roster::manager;

/// Is this a subscription-management or probe type (not available,
/// unavailable or error)?
pub fn is_subscription_type(t: Option<&str>) -> bool {
    !matches!(t, None | Some("unavailable") | Some("error"))
}

fn with_bare_addresses(stanza: &Element, from_bare: &str, to_bare: &str) -> Element {
    let mut s = stanza.clone();
    s.set_attr("from", Some(from_bare.to_string()));
    s.set_attr("to", Some(to_bare.to_string()));
    s
}

fn invalid_type(server: &Arc<Server>, origin: &Arc<Session>, stanza: &Element) {
    let e = StanzaError::bad_request().with_text("Invalid presence type");
    server.reply_error(origin, stanza, e);
}

/// A user sends a subscription stanza or a probe. `false` lets the stanza
/// go on unchanged (probes, and stanzas to oneself).
pub fn handle_outbound(
    server: &Arc<Server>,
    origin: &Arc<Session>,
    stanza: &Element,
    from_bare: &Jid,
    to_bare: &Jid,
) -> bool {
    if from_bare == to_bare {
        return false;
    }
    let (Some(user), Some(host)) = (from_bare.node(), server.host(from_bare.domain())) else {
        return false;
    };
    let (from_s, to_s) = (from_bare.to_string(), to_bare.to_string());
    let routed = with_bare_addresses(stanza, &from_s, &to_s);
    tracing::debug!(host = %host.name, "outbound presence {:?} from {from_s} for {to_s}", stanza.type_());
    match stanza.type_() {
        Some("probe") => return false,
        Some("subscribe") => {
            if manager::set_contact_pending_out(server, &host, user, &to_s) {
                manager::roster_push(server, &host, user, &to_s);
            }
            server.post_stanza(origin, routed, false);
        }
        Some("unsubscribe") => {
            if manager::unsubscribe(server, &host, user, &to_s) {
                manager::roster_push(server, &host, user, &to_s);
            }
            server.post_stanza(origin, routed, false);
        }
        Some("subscribed") => {
            if manager::subscribed(server, &host, user, &to_s) {
                manager::roster_push(server, &host, user, &to_s);
            }
            if matches!(
                manager::is_contact_subscribed(server, &host, user, &to_s),
                Ok(true)
            ) {
                server.post_stanza(origin, routed, false);
                send_presence_of_available_resources(server, &host, user, &to_s, None);
            }
            if manager::is_user_subscribed(server, &host, user, &to_s) {
                server.post_stanza(
                    origin,
                    presence(&[("type", "probe"), ("from", &from_s), ("to", &to_s)]),
                    false,
                );
            }
        }
        Some("unsubscribed") => {
            let result = manager::unsubscribed(server, &host, user, &to_s);
            if result.saved {
                if result.was_subscribed {
                    manager::roster_push(server, &host, user, &to_s);
                }
                server.post_stanza(origin, routed, false);
                if result.was_subscribed {
                    let unavailable = presence(&[("type", "unavailable")]);
                    send_presence_of_available_resources(
                        server,
                        &host,
                        user,
                        &to_s,
                        Some(&unavailable),
                    );
                }
            }
        }
        _ => invalid_type(server, origin, &routed),
    }
    true
}

/// A subscription stanza or probe arrives for the local user `to_bare`.
pub fn handle_inbound(
    server: &Arc<Server>,
    host: &Arc<Host>,
    origin: &Arc<Session>,
    stanza: &Element,
    from_bare: &Jid,
    to_bare: &Jid,
) -> bool {
    let Some(user) = to_bare.node() else {
        return true;
    };
    let (from_s, to_s) = (from_bare.to_string(), to_bare.to_string());
    let original_from = stanza.from().unwrap_or(&from_s).to_string();
    let incoming = with_bare_addresses(stanza, &from_s, &to_s);
    let from_host = |p: Element| server.post_stanza(&host.local_session, p, true);
    tracing::debug!(host = %host.name, "inbound presence {:?} from {from_s} for {to_s}", stanza.type_());
    match stanza.type_() {
        Some("probe") => match manager::is_contact_subscribed(server, host, user, &from_s) {
            Ok(true) => {
                if send_presence_of_available_resources(server, host, user, &original_from, None)
                    == 0
                {
                    from_host(presence(&[
                        ("from", &to_s),
                        ("to", &original_from),
                        ("type", "unavailable"),
                    ]));
                }
            }
            Ok(false) => from_host(presence(&[
                ("from", &to_s),
                ("to", &from_s),
                ("type", "unsubscribed"),
            ])),
            Err(e) => tracing::debug!(host = %host.name, "not answering probe: {e}"),
        },
        Some("subscribe") => {
            if matches!(
                manager::is_contact_subscribed(server, host, user, &from_s),
                Ok(true)
            ) {
                // Already subscribed: say so again, with current presence.
                from_host(presence(&[
                    ("from", &to_s),
                    ("to", &from_s),
                    ("type", "subscribed"),
                ]));
                if send_presence_of_available_resources(server, host, user, &from_s, None) == 0 {
                    from_host(presence(&[
                        ("from", &to_s),
                        ("to", &from_s),
                        ("type", "unavailable"),
                    ]));
                }
            } else if manager::is_contact_preapproved(server, host, user, &from_s) {
                if !manager::is_contact_pending_in(server, host, user, &from_s)
                    && manager::set_contact_pending_in(server, host, user, &from_s, Some(&incoming))
                {
                    from_host(presence(&[
                        ("from", &to_s),
                        ("to", &from_s),
                        ("type", "subscribed"),
                    ]));
                }
            } else {
                // Acknowledge receipt, then ask the user.
                from_host(presence(&[
                    ("from", &to_s),
                    ("to", &from_s),
                    ("type", "unavailable"),
                ]));
                if !manager::is_contact_pending_in(server, host, user, &from_s)
                    && manager::set_contact_pending_in(server, host, user, &from_s, Some(&incoming))
                {
                    send_to_available_resources(server, to_bare, &incoming);
                }
            }
        }
        Some("unsubscribe") => {
            if manager::process_inbound_unsubscribe(server, host, user, &from_s) {
                send_to_interested_resources(server, to_bare, &incoming);
                manager::roster_push(server, host, user, &from_s);
            }
        }
        Some("subscribed") => {
            if manager::process_inbound_subscription_approval(server, host, user, &from_s) {
                send_to_interested_resources(server, to_bare, &incoming);
                manager::roster_push(server, host, user, &from_s);
            }
        }
        Some("unsubscribed") => {
            if manager::process_inbound_subscription_cancellation(server, host, user, &from_s) {
                send_to_interested_resources(server, to_bare, &incoming);
                manager::roster_push(server, host, user, &from_s);
            }
        }
        _ => invalid_type(server, origin, &incoming),
    }
    true
}
