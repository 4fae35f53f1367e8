//! Who gets PEP notifications: mod_pep's `+notify` filtering by entity
//! capabilities (XEP-0115).
//!
//! An available presence reaching an account (from one of its own
//! resources, or from a contact subscribed to its presence) that carries
//! `<c xmlns='http://jabber.org/protocol/caps'/>` names a `ver` hash. A hash
//! seen before maps to the nodes its disco#info listed as `<node>+notify`;
//! an unknown one is asked about (`<iq type='get' id='disco'/>` from the
//! account's bare JID) and the result fills the map. The recipient (a full
//! JID) is then interested in those nodes of that account, and gets the
//! last item of each node newly of interest (`send_last_published_item =
//! on_sub_and_presence`). Unavailable presence ends the interest; an
//! `unsubscribe` ends that of every resource of the contact.
//!
//! A presence without caps keeps what the recipient had (caps optimisation,
//! as Prosody): nothing is asked again.
//!
//! The maps live in memory only, as in Prosody (they are rebuilt from the
//! next presences after a restart).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server};

use crate::disco::NS_DISCO_INFO;
use crate::disco::caps::{self, NS_CAPS};
use crate::roster::manager;
use crate::roster::subscription::is_contact_subscribed;

use super::node::{self, Item, Node};

pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

#[derive(Default)]
struct Recipient {
    hash: Option<String>,
    nodes: BTreeSet<String>,
}

/// Interest per host: account → recipient (full JID) → what it wants.
#[derive(Default)]
pub struct Interest {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recipients: HashMap<String, HashMap<String, Recipient>>,
    hash_map: HashMap<String, BTreeSet<String>>,
}

fn lock(i: &Interest) -> MutexGuard<'_, State> {
    i.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The recipients of `user`'s notifications for `node`.
pub fn interested(host: &Host, user: &str, node: &str) -> Vec<String> {
    let interest = host.extension::<Interest>();
    let state = lock(&interest);
    state
        .recipients
        .get(user)
        .map(|r| {
            r.iter()
                .filter(|(_, r)| r.nodes.contains(node))
                .map(|(j, _)| j.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Forgets every recipient and every known caps hash of `host` (as
/// reloading Prosody's mod_pep empties its caches).
pub fn reset(host: &Host) {
    *lock(&host.extension::<Interest>()) = State::default();
}

pub fn forget_user(host: &Host, user: &str) {
    lock(&host.extension::<Interest>()).recipients.remove(user);
}

/// Is `jid` subscribed to `user`'s presence (or `user` itself)?
pub fn subscribed(server: &Arc<Server>, host: &Arc<Host>, user: &str, jid: &Jid) -> bool {
    if jid.node() == Some(user) && jid.domain() == host.name {
        return true;
    }
    matches!(
        is_contact_subscribed(server, host, user, &jid.to_bare().to_string()),
        Ok(true)
    )
}

/// `ver` and the disco node to ask, from a presence's caps.
fn caps_of(stanza: &Element) -> Option<(String, String)> {
    let c = stanza.get_child("c", NS_CAPS)?;
    let (node, ver) = (c.get_attr("node")?, c.get_attr("ver")?);
    match c.get_attr("hash") {
        Some("sha-1") => Some((ver.to_string(), format!("{node}#{ver}"))),
        Some(_) => None,
        None => Some((
            format!("{node}#{ver}#{}", c.get_attr("ext").unwrap_or_default()),
            format!("{node}#{ver}"),
        )),
    }
}

/// Sends one notification of `user`'s `node` to each of `to`.
pub fn broadcast(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    to: &[String],
    event: Element,
) {
    let from = format!("{user}@{}", host.name);
    for jid in to {
        let msg = Element::new("message", NS_CLIENT)
            .attr("from", &from)
            .attr("to", jid)
            .attr("type", "headline")
            .attr("id", crate::roster::manager::new_id())
            .child(Element::new("event", NS_PUBSUB_EVENT).child(event.clone()));
        tracing::debug!(
            "PEP notification to {jid} from {from} for {}",
            event.get_attr("node").unwrap_or("")
        );
        server.send_from_host(host, msg);
    }
}

/// The `<items/>` of a notification carrying `item`.
pub fn items_event(node: &Node, item: &Item) -> Element {
    // The publisher is named only when the node's `itemreply` is
    // "publisher" (Prosody 13, as its scansion scripts expect).
    let publisher = node.get("itemreply").as_str() == Some("publisher");
    let mut el = item.to_element(NS_PUBSUB_EVENT, publisher);
    if node.get("include_payload").as_bool() == Some(false) {
        el.nodes_mut().clear();
    }
    Element::new("items", NS_PUBSUB_EVENT)
        .attr("node", &node.name)
        .child(el)
}

/// `recipient` now wants `nodes` of `user`: the last item of each new one.
fn update(
    server: &Arc<Server>,
    host: &Arc<Host>,
    user: &str,
    recipient: &str,
    hash: Option<String>,
    nodes: BTreeSet<String>,
) {
    let new: Vec<String> = {
        let interest = host.extension::<Interest>();
        let mut state = lock(&interest);
        let per_user = state.recipients.entry(user.to_string()).or_default();
        let current = per_user.remove(recipient).unwrap_or_default();
        let new = nodes.difference(&current.nodes).cloned().collect();
        if !nodes.is_empty() || hash.is_some() {
            per_user.insert(recipient.to_string(), Recipient { hash, nodes });
        }
        if per_user.is_empty() {
            state.recipients.remove(user);
        }
        new
    };
    if new.is_empty() {
        return;
    }
    let Ok(rjid) = Jid::parse(recipient) else {
        return;
    };
    let Ok(owner) = Jid::parse(&format!("{user}@{}", host.name)) else {
        return;
    };
    if !host.user_exists(user) {
        return;
    }
    let Ok(nodes) = node::load_nodes(host, user) else {
        return;
    };
    for name in new {
        let Some(n) = nodes.get(&name) else { continue };
        if n.get("send_last_published_item").as_str() != Some("on_sub_and_presence") {
            continue;
        }
        let aff = node::affiliation(&owner, Some(n), Some(&rjid), || {
            subscribed(server, host, user, &rjid)
        });
        if !aff.may_get_items() || !n.persist_items() {
            continue;
        }
        if let Ok(items) = node::items(host, user, &name, 1)
            && let Some(last) = items.first()
        {
            broadcast(
                server,
                host,
                user,
                &[recipient.to_string()],
                items_event(n, last),
            );
        }
    }
}

/// `presence/bare` (priority 10): a presence reaching an account.
pub fn on_presence(event: &mut Event) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let server = event.server.clone();
    let stanza = event.stanza().clone();
    let to = stanza.to().and_then(|t| Jid::parse(t).ok());
    let is_self = to.is_none();
    let Some(user) = (match &to {
        Some(j) => j.node().map(str::to_string),
        None => origin.username(),
    }) else {
        return false;
    };
    let Some(from) = stanza.from().and_then(|f| Jid::parse(f).ok()) else {
        return false;
    };
    let recipient = from.to_string();
    match stanza.type_() {
        None => {
            if !is_self && !subscribed(&server, &host, &user, &from) {
                return false;
            }
            let Some((hash, query_node)) = caps_of(&stanza) else {
                return false; // no caps: keep what there was
            };
            let known = {
                let interest = host.extension::<Interest>();
                let state = lock(&interest);
                let current = state
                    .recipients
                    .get(&user)
                    .and_then(|r| r.get(&recipient))
                    .and_then(|r| r.hash.clone());
                if current.as_deref() == Some(hash.as_str()) {
                    return false;
                }
                state.hash_map.get(&hash).cloned()
            };
            match known {
                Some(nodes) => update(&server, &host, &user, &recipient, Some(hash), nodes),
                None => {
                    // Remember the hash asked about; the result maps it.
                    let interest = host.extension::<Interest>();
                    lock(&interest)
                        .recipients
                        .entry(user.clone())
                        .or_default()
                        .entry(recipient.clone())
                        .or_default()
                        .hash = Some(hash);
                    let iq = Element::new("iq", NS_CLIENT)
                        .attr("from", format!("{user}@{}", host.name))
                        .attr("to", &recipient)
                        .attr("id", "disco")
                        .attr("type", "get")
                        .child(Element::new("query", NS_DISCO_INFO).attr("node", query_node));
                    origin.send(iq);
                }
            }
        }
        Some("unavailable") => update(&server, &host, &user, &recipient, None, BTreeSet::new()),
        Some("unsubscribe") if !is_self => {
            let bare = from.to_bare().to_string();
            let gone: Vec<String> = {
                let interest = host.extension::<Interest>();
                let state = lock(&interest);
                state
                    .recipients
                    .get(&user)
                    .map(|r| {
                        r.keys()
                            .filter(|j| {
                                Jid::parse(j).is_ok_and(|j| j.to_bare().to_string() == bare)
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for j in gone {
                update(&server, &host, &user, &j, None, BTreeSet::new());
            }
        }
        _ => {}
    }
    false
}

/// `iq-result/bare/disco`: the answer to a caps query.
pub fn on_disco_result(event: &mut Event) -> bool {
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return false;
    };
    let server = event.server.clone();
    let stanza = event.stanza().clone();
    let Some(query) = stanza.get_child("query", NS_DISCO_INFO) else {
        return false;
    };
    let Some(from) = stanza.from().and_then(|f| Jid::parse(f).ok()) else {
        return false;
    };
    let to = stanza.to().and_then(|t| Jid::parse(t).ok());
    let Some(user) = (match &to {
        Some(j) => j.node().map(str::to_string),
        None => origin.username(),
    }) else {
        return false;
    };
    let is_self = from.node() == Some(user.as_str()) && from.domain() == host.name;
    let ver = caps::hash(query);
    let notify: BTreeSet<String> = query
        .children()
        .filter(|c| c.is("feature", NS_DISCO_INFO))
        .filter_map(|c| c.get_attr("var"))
        .filter_map(|v| v.strip_suffix("+notify"))
        .map(str::to_string)
        .collect();
    let asked = lock(&host.extension::<Interest>())
        .recipients
        .get(&user)
        .and_then(|r| r.get(&from.to_string()))
        .and_then(|r| r.hash.clone());
    {
        let interest = host.extension::<Interest>();
        let mut state = lock(&interest);
        state.hash_map.insert(ver.clone(), notify.clone());
        if let Some(a) = &asked {
            state.hash_map.insert(a.clone(), notify.clone());
        }
    }
    if is_self {
        // The account's own caps say what it wants of its local contacts.
        let user_bare = format!("{user}@{}", host.name);
        let contacts = manager::contacts(&server, &host, &user, |i| i.subscription.has_from());
        for (jid, _) in contacts {
            if let Ok(j) = Jid::parse(&jid)
                && j.domain() == host.name
                && let Some(contact) = j.node()
            {
                update(&server, &host, contact, &user_bare, None, notify.clone());
            }
        }
    }
    update(
        &server,
        &host,
        &user,
        &from.to_string(),
        asked.or(Some(ver)),
        notify,
    );
    true
}
