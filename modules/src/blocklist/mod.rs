//! `blocklist`: Prosody's mod_blocklist — XEP-0191 Blocking Command.
//!
//! - `<blocklist/>` get (to oneself): the blocked JIDs; the session then
//!   gets pushes of changes;
//! - `<block/>` / `<unblock/>` set: every item's JID is prepared (a bad one
//!   is `modify/jid-malformed` and nothing changes; a `<block/>` without
//!   items is `modify/bad-request`; an `<unblock/>` without items empties
//!   the list), stored, answered, then pushed (`id='blocklist-push'`) to
//!   every session that fetched the list. Blocking a contact that receives
//!   the user's presence sends it unavailable presence from each available
//!   resource; blocking one with a pending subscription request drops the
//!   request; unblocking a contact that receives presence probes the user on
//!   its behalf, so it gets the user's presence again.
//!
//! Routing (Prosody's hooks and priorities): from a blocked JID (the JID,
//! its bare JID or its domain on the list) presence and IQ results/errors
//! are dropped, IQ gets/sets bounced `service-unavailable`, messages
//! dropped; chat and normal messages to the bare JID are bounced
//! `service-unavailable` instead when `bounce_blocked_messages` is true
//! (Prosody 13's option, default false; Prosody 0.12 always bounced them).
//! To a blocked JID the user's own stanzas are refused with
//! `cancel/not-acceptable` and `<blocked xmlns='urn:xmpp:blocking:errors'/>`
//! (errors and IQ results silently dropped), presence broadcasts included,
//! so a blocked contact no longer sees the user's presence.
//!
//! Storage: [`store`] (keyval `blocklist`, Prosody's table).

pub mod store;

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server, Value};

use crate::ModuleError;
use crate::roster::manager;
use crate::roster::subscription::{is_contact_pending_in, is_contact_subscribed};
use store::{Blocklist, get_blocklist, set_blocklist};

pub const NS_BLOCKING: &str = "urn:xmpp:blocking";
pub const NS_BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
/// The session attribute of a session that fetched its blocklist.
const INTERESTED: &str = "interested_blocklist";
const PRIO_IN: i32 = 100;
const PRIO_OUT: i32 = 100;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.option_bool("bounce_blocked_messages", false)?;
    host.option_i64("blocklist_cache_size", store::DEFAULT_CACHE_SIZE as i64)?;
    crate::disco::add_feature(host, NS_BLOCKING);

    host.events.hook(
        &format!("iq-get/self/{NS_BLOCKING}:blocklist"),
        -1,
        get_list,
    );
    for action in ["block", "unblock"] {
        host.events
            .hook(&format!("iq-set/self/{NS_BLOCKING}:{action}"), -1, edit);
    }
    host.events
        .hook("iq-error/self/blocklist-push", 0, |_| true);

    for kind in ["bare", "full"] {
        host.events
            .hook(&format!("presence/{kind}"), PRIO_IN, drop_stanza);
        host.events
            .hook(&format!("message/{kind}"), PRIO_IN, bounce_message);
        host.events.hook(&format!("iq/{kind}"), PRIO_IN, bounce_iq);
    }
    for kind in ["bare", "full", "host"] {
        host.events
            .hook(&format!("pre-message/{kind}"), PRIO_OUT, bounce_outgoing);
        host.events
            .hook(&format!("pre-iq/{kind}"), PRIO_OUT, bounce_outgoing);
    }
    host.events.hook("pre-presence/bare", -1, bounce_outgoing);
    host.events.hook("pre-presence/host", -1, bounce_outgoing);
    host.events
        .hook("pre-presence/full", PRIO_OUT, bounce_outgoing);

    let name = host.name.clone();
    _server.events.hook("user-deleted", 0, move |event| {
        if event.field_str("host") == Some(name.as_str())
            && let (Some(user), Some(host)) =
                (event.field_str("username"), event.server.host(&name))
        {
            host.extension::<store::Cache>().forget(user);
        }
        false
    });
    Ok(())
}

fn now(event: &Event) -> f64 {
    event.server.clock.now().floor()
}

fn get_list(event: &mut Event) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let Some(user) = origin.username() else {
        return false;
    };
    let list = get_blocklist(&host, &user, now(event));
    let mut blocklist = Element::new("blocklist", NS_BLOCKING);
    for jid in list.jids() {
        blocklist.push_child(Element::new("item", NS_BLOCKING).attr("jid", jid));
    }
    origin
        .state()
        .attributes
        .insert(INTERESTED, Value::Bool(true));
    let reply = event.stanza().reply().child(blocklist);
    event.reply(reply);
    true
}

fn edit(event: &mut Event) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let Some(user) = origin.username() else {
        return false;
    };
    let server = event.server.clone();
    let now = now(event);
    let stanza = event.stanza().clone();
    let Some(mut action) = stanza.first_child().cloned() else {
        return false;
    };
    let blocking = action.name() == "block";
    let mut new: Vec<String> = Vec::new();
    let mut send_unavailable = Vec::new();
    let mut send_available = Vec::new();
    let mut remove_pending = Vec::new();
    for item in action.children_mut().filter(|c| c.is("item", NS_BLOCKING)) {
        let Some(jid) = item
            .get_attr("jid")
            .and_then(|j| Jid::parse(j).ok())
            .map(|j| j.to_string())
        else {
            event.reply(StanzaError::jid_malformed().reply_to(&stanza));
            return true;
        };
        item.set_attr("jid", Some(jid.clone())); // echoed back prepared
        let subscribed = matches!(is_contact_subscribed(&server, &host, &user, &jid), Ok(true));
        if blocking && subscribed {
            send_unavailable.push(jid.clone());
        } else if blocking && is_contact_pending_in(&server, &host, &user, &jid) {
            remove_pending.push(jid.clone());
        } else if !blocking && subscribed {
            send_available.push(jid.clone());
        }
        new.push(jid);
    }
    if blocking && new.is_empty() {
        event.reply(StanzaError::bad_request().reply_to(&stanza));
        return true;
    }

    let old = get_blocklist(&host, &user, now);
    let mut updated = Blocklist::default();
    let mut meta = match old.table.get("false") {
        Some(Value::Table(t)) => t.clone(),
        _ => {
            let mut t = xmpp_core::value::Table::new();
            t.insert("created", Value::Integer(now as i64));
            t
        }
    };
    if old
        .table
        .get("false")
        .is_some_and(|v| v.as_table().is_some())
    {
        meta.insert("modified", Value::Integer(now as i64));
    }
    updated.table.insert("false", Value::Table(meta));
    if blocking || !new.is_empty() {
        for (jid, when) in old.table.map.iter().filter(|(k, _)| k.as_str() != "false") {
            updated.table.insert(jid.clone(), when.clone());
        }
        for jid in &new {
            if blocking {
                updated
                    .table
                    .insert(jid.clone(), Value::Integer(now as i64));
            } else {
                updated.table.map.remove(jid);
            }
        }
    }
    if let Err(e) = set_blocklist(&host, &user, updated) {
        tracing::error!(host = %host.name, %user, "could not store the blocklist: {e}");
        event.reply(
            StanzaError::new(ErrorType::Wait, "internal-server-error")
                .with_text(e.to_string())
                .reply_to(&stanza),
        );
        return true;
    }
    event.reply(stanza.reply());

    let Ok(bare) = Jid::from_parts(Some(&user), &host.name, None) else {
        return true;
    };
    if blocking {
        for jid in send_unavailable.iter().filter(|j| !old.contains(j)) {
            for session in server.sessions.resources(&bare) {
                if let (true, Some(full)) = (session.is_available(), session.full_jid()) {
                    let p = Element::new("presence", NS_CLIENT)
                        .attr("type", "unavailable")
                        .attr("to", jid.as_str())
                        .attr("from", full.to_string());
                    server.send_from_host(&host, p);
                }
            }
        }
        if !remove_pending.is_empty() {
            manager::with_roster(&server, &host, &user, |r| {
                for jid in &remove_pending {
                    r.pending.remove(jid);
                }
                if let Err(e) = manager::save_roster(&host, &user, r) {
                    tracing::warn!(host = %host.name, %user, "could not save the roster: {e}");
                }
            });
        }
    } else {
        for jid in send_available {
            let probe = Element::new("presence", NS_CLIENT)
                .attr("type", "probe")
                .attr("to", bare.to_string())
                .attr("from", jid);
            server.send_from_host(&host, probe);
        }
    }

    let push = Element::new("iq", NS_CLIENT)
        .attr("type", "set")
        .attr("id", "blocklist-push")
        .child(action);
    for session in server.sessions.resources(&bare) {
        let interested = session
            .state()
            .attributes
            .get(INTERESTED)
            .and_then(Value::as_bool)
            == Some(true);
        if let (true, Some(full)) = (interested, session.full_jid()) {
            let mut push = push.clone();
            push.set_attr("to", Some(full.to_string()));
            session.send(push);
        }
    }
    true
}

/// Is the stanza from a JID its (local) addressee blocked?
fn drop_stanza(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza();
    let (Some(to), Some(from)) = (stanza.to(), stanza.from()) else {
        return false;
    };
    let Some(user) = Jid::parse(to)
        .ok()
        .and_then(|j| j.node().map(str::to_string))
    else {
        return false;
    };
    let from = from.to_string();
    get_blocklist(&host, &user, now(event)).blocks(&from)
}

fn bounce_stanza(event: &mut Event) -> bool {
    if !drop_stanza(event) {
        return false;
    }
    if let Some(origin) = event.origin.clone() {
        let server = event.server.clone();
        server.reply_error(&origin, event.stanza(), StanzaError::service_unavailable());
    }
    true
}

fn bounce_iq(event: &mut Event) -> bool {
    match event.stanza().type_() {
        Some("get") | Some("set") => bounce_stanza(event),
        _ => drop_stanza(event),
    }
}

fn bounce_message(event: &mut Event) -> bool {
    let stanza = event.stanza();
    if matches!(stanza.type_(), None | Some("chat") | Some("normal")) {
        let to_session = stanza
            .to()
            .and_then(|t| Jid::parse(t).ok())
            .filter(|j| j.is_full())
            .and_then(|j| event.server.sessions.get_full(&j));
        if to_session.is_some() {
            return drop_stanza(event);
        }
        let bounce = event
            .host
            .as_ref()
            .is_some_and(|h| matches!(h.option_bool("bounce_blocked_messages", false), Ok(true)));
        if bounce {
            return bounce_stanza(event);
        }
    }
    drop_stanza(event)
}

/// Is the user's own stanza addressed to someone they blocked?
fn drop_outgoing(event: &Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza();
    let user = event
        .origin
        .as_ref()
        .and_then(|o| o.username())
        .or_else(|| {
            stanza
                .from()
                .and_then(|f| Jid::parse(f).ok())
                .and_then(|j| j.node().map(str::to_string))
        });
    let (Some(user), Some(to)) = (user, stanza.to()) else {
        return false; // no `to`: to oneself, never blocked
    };
    get_blocklist(&host, &user, now(event)).blocks(to)
}

fn bounce_outgoing(event: &mut Event) -> bool {
    let stanza = event.stanza();
    let t = stanza.type_();
    if t == Some("error") || (stanza.name() == "iq" && t == Some("result")) {
        return drop_outgoing(event);
    }
    if !drop_outgoing(event) {
        return false;
    }
    let mut reply = StanzaError::new(ErrorType::Cancel, "not-acceptable")
        .with_text("You have blocked this JID")
        .reply_to(event.stanza());
    if let Some(error) = reply.get_child_mut("error", NS_CLIENT) {
        error.push_child(Element::new("blocked", NS_BLOCKING_ERRORS));
    }
    if let Some(origin) = event.origin.clone() {
        origin.send(reply);
    }
    true
}
