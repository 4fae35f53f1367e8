//! `disco`: Prosody's mod_disco — XEP-0030 service discovery for the host and
//! for accounts, and the XEP-0115 caps stream feature.
//!
//! **How modules announce features.** The host's disco#info is assembled on
//! each request by firing the host event `host-disco-info` with
//! `event.stanza` set to the `<iq type='result'>` being built: handlers append
//! `<identity/>`, `<feature/>` or extension elements (data forms) to its
//! `<query/>` and return `false`. [`add_feature`], [`add_identity`] and
//! [`add_extension`] hook such a handler (Prosody's `module:add_feature` and
//! friends); any crate can do the same with `xmpp-core` alone. The result lists
//! identities, then features, then extensions, in the order they were added,
//! without duplicates. Modules may be loaded before or after `disco`.
//!
//! The other events follow Prosody's names, with the reply being built in
//! `event.stanza` (as Prosody's `event.reply`; handlers add to its `<query/>`):
//! `host-disco-items`, `account-disco-info`, `account-disco-items`; a handler
//! returning `true` has answered itself. For a `node`, `host-disco-info-node`,
//! `host-disco-items-node`, `account-disco-info-node` and
//! `account-disco-items-node` carry the request in `event.stanza` (field
//! `node`); a handler that knows the node answers and returns `true`, else
//! the answer is `item-not-found`.
//!
//! Options: `name` (the server identity's name), `disco_items` (extra items,
//! `{ {"jid", "name"}, ... }`), `disco_hidden` (on a child host: not listed),
//! `disco_expose_admins`.

pub mod caps;

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, HostKind, Jid, Server, SessionKind, Value};

use crate::ModuleError;
use crate::roster::manager;

pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// The default `name` of the server identity.
pub const DEFAULT_NAME: &str = "lilt";

/// Announces a feature in the host's disco#info.
pub fn add_feature(host: &Host, var: &str) {
    add_extension(
        host,
        Element::new("feature", NS_DISCO_INFO).attr("var", var),
    );
}

/// Announces an identity in the host's disco#info.
pub fn add_identity(host: &Host, category: &str, type_: &str, name: Option<&str>) {
    let identity = Element::new("identity", NS_DISCO_INFO)
        .attr("category", category)
        .attr("type", type_)
        .attr_opt("name", name);
    add_extension(host, identity);
}

/// Adds any element (a data form, usually) to the host's disco#info.
pub fn add_extension(host: &Host, element: Element) {
    xmpp_core::module::context::add_disco_info(host, element);
}

/// The host's disco#info `<query/>`, ordered and deduplicated as Prosody's.
pub fn server_disco_info(server: &Arc<Server>, host: &Arc<Host>) -> Element {
    let skeleton = Element::new("iq", NS_CLIENT)
        .attr("type", "result")
        .child(Element::new("query", NS_DISCO_INFO));
    let mut ev = Event::new(server, "host-disco-info").with_stanza(skeleton);
    server.fire_on_host(host, "host-disco-info", &mut ev);
    let added: Vec<Element> = ev
        .stanza
        .as_ref()
        .and_then(|iq| iq.get_child("query", NS_DISCO_INFO))
        .map(|q| q.children().cloned().collect())
        .unwrap_or_default();
    let mut query = Element::new("query", NS_DISCO_INFO);
    let mut seen = std::collections::HashSet::new();
    let is_identity = |e: &Element| e.is("identity", NS_DISCO_INFO);
    let is_feature = |e: &Element| e.is("feature", NS_DISCO_INFO);
    for e in added.iter().filter(|e| is_identity(e)) {
        let key = format!(
            "identity\0{}\0{}",
            e.get_attr("category").unwrap_or_default(),
            e.get_attr("type").unwrap_or_default()
        );
        if seen.insert(key) {
            query.push_child(e.clone());
        }
    }
    for e in added.iter().filter(|e| is_feature(e)) {
        if seen.insert(format!(
            "feature\0{}",
            e.get_attr("var").unwrap_or_default()
        )) {
            query.push_child(e.clone());
        }
    }
    for e in added.iter().filter(|e| !is_identity(e) && !is_feature(e)) {
        if seen.insert(format!("x\0{}", e.to_xml())) {
            query.push_child(e.clone());
        }
    }
    query
}

/// `disco_items`, validated as Prosody does (all or nothing).
fn disco_items_option(host: &Host) -> Vec<(String, Option<String>)> {
    let Some(v) = host.option("disco_items") else {
        return Vec::new();
    };
    let Some(t) = v.as_table() else {
        tracing::error!(host = %host.name, "option disco_items is malformed: not a list");
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in &t.seq {
        let parts = item
            .as_table()
            .map(|i| i.seq.as_slice())
            .unwrap_or_default();
        let jid = parts.first().and_then(Value::as_str);
        let name = parts.get(1);
        let err = if item.as_table().is_none() {
            Some("item is not a table")
        } else if jid.is_none() {
            Some("item jid is not a string")
        } else if name.is_some_and(|n| n.as_str().is_none()) {
            Some("item name is not a string")
        } else {
            None
        };
        if let Some(err) = err {
            tracing::error!(host = %host.name, "option disco_items is malformed: {err}");
            return Vec::new();
        }
        out.push((
            jid.unwrap_or_default().to_string(),
            name.and_then(Value::as_str).map(str::to_string),
        ));
    }
    out
}

/// Hosts listed as this host's items: `sub.host` for each served `sub`,
/// unless it sets `disco_hidden`.
fn child_hosts(server: &Server, host: &Host) -> Vec<(String, Option<String>)> {
    server
        .hosts()
        .into_iter()
        .filter(|h| {
            h.name
                .split_once('.')
                .is_some_and(|(_, parent)| parent == host.name)
        })
        .filter(|h| !h.option_bool("disco_hidden", false).unwrap_or(false))
        .map(|h| (h.name.clone(), h.option_str("name").map(str::to_string)))
        .collect()
}

/// Is this JID an admin of the host (`admins`, global and host)?
pub fn is_admin(host: &Host, jid: &Jid) -> bool {
    xmpp_core::adhoc::is_admin(host, jid)
}

fn node_of(stanza: &Element) -> Option<String> {
    stanza
        .first_child()
        .and_then(|q| q.get_attr("node"))
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// Fires a node event; answers `item-not-found` when nobody knows the node.
fn node_request(event: &mut Event, host: &Arc<Host>, name: &str, node: &str) -> bool {
    let server = event.server.clone();
    let stanza = event.stanza().clone();
    let mut ev = Event::new(&server, name)
        .with_stanza(stanza.clone())
        .with_field("node", node);
    ev.origin = event.origin.clone();
    if !server.fire_on_host(host, name, &mut ev) {
        event.reply(
            StanzaError::item_not_found()
                .with_text("Node does not exist")
                .reply_to(&stanza),
        );
    }
    true
}

/// Fires a collecting event on `reply`; `None` if a handler answered itself.
fn collect(event: &Event, host: &Arc<Host>, name: &str, reply: Element) -> Option<Element> {
    let server = event.server.clone();
    let mut ev = Event::new(&server, name).with_stanza(reply);
    ev.origin = event.origin.clone();
    if let Some(from) = event.stanza().from() {
        ev.fields.insert("from".into(), Value::str(from));
    }
    if server.fire_on_host(host, name, &mut ev) {
        return None;
    }
    ev.stanza
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.option_bool("disco_expose_admins", false)?;
    if host.kind == HostKind::VirtualHost {
        let name = host.option_str("name").unwrap_or(DEFAULT_NAME).to_string();
        add_identity(host, "server", "im", Some(&name));
    }
    add_feature(host, NS_DISCO_INFO);
    add_feature(host, NS_DISCO_ITEMS);

    host.events.hook(
        "iq-get/host/http://jabber.org/protocol/disco#info:query",
        0,
        |event| {
            let Some(host) = event.host.clone() else {
                return false;
            };
            let info = server_disco_info(&event.server, &host);
            if let Some(node) = node_of(event.stanza()) {
                if node != format!("{}#{}", caps::CAPS_NODE, caps::hash(&info)) {
                    return node_request(event, &host, "host-disco-info-node", &node);
                }
                let reply = event.stanza().reply().child(info.attr("node", node));
                event.reply(reply);
                return true;
            }
            let reply = event.stanza().reply().child(info);
            event.reply(reply);
            true
        },
    );

    host.events.hook(
        "iq-get/host/http://jabber.org/protocol/disco#items:query",
        0,
        |event| {
            let Some(host) = event.host.clone() else {
                return false;
            };
            if let Some(node) = node_of(event.stanza()) {
                return node_request(event, &host, "host-disco-items-node", &node);
            }
            let reply = event
                .stanza()
                .reply()
                .child(Element::new("query", NS_DISCO_ITEMS));
            let Some(mut reply) = collect(event, &host, "host-disco-items", reply) else {
                return true;
            };
            if let Some(q) = reply.get_child_mut("query", NS_DISCO_ITEMS) {
                for (jid, name) in child_hosts(&event.server, &host)
                    .into_iter()
                    .chain(disco_items_option(&host))
                {
                    q.push_child(
                        Element::new("item", NS_DISCO_ITEMS)
                            .attr("jid", jid)
                            .attr_opt("name", name),
                    );
                }
            }
            event.reply(reply);
            true
        },
    );

    host.events.hook("stream-features", 0, |event| {
        let Some(host) = event.host.clone() else {
            return false;
        };
        if event
            .origin
            .as_ref()
            .is_some_and(|o| o.kind == SessionKind::C2s)
        {
            let c = caps::caps_element(&server_disco_info(&event.server, &host));
            if let Some(features) = event.stanza.as_mut() {
                features.push_child(c);
            }
        }
        false
    });

    if host.kind != HostKind::VirtualHost {
        return Ok(());
    }
    host.events.hook(
        "iq-get/bare/http://jabber.org/protocol/disco#info:query",
        0,
        account_disco_info,
    );
    host.events.hook(
        "iq-get/bare/http://jabber.org/protocol/disco#items:query",
        0,
        account_disco_items,
    );
    Ok(())
}

/// Who the account disco is about, and may the requester see it?
fn account_access(event: &Event, host: &Arc<Host>, check_admin: bool) -> Option<(String, bool)> {
    let stanza = event.stanza();
    let origin = event.origin.as_ref()?;
    let to = stanza.to().and_then(|t| Jid::parse(t).ok());
    let username = match &to {
        Some(j) => j.node()?.to_string(),
        None => origin.username()?,
    };
    let subject = to.clone().or_else(|| origin.full_jid());
    let is_admin = check_admin && subject.is_some_and(|j| is_admin(host, &j));
    let expose_admins = host
        .option_bool("disco_expose_admins", false)
        .unwrap_or(false);
    let from_bare = stanza
        .from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default();
    let allowed = to.is_none()
        || (expose_admins && is_admin)
        || matches!(
            manager::is_contact_subscribed(&event.server, host, &username, &from_bare),
            Ok(true)
        );
    allowed.then_some((username, is_admin))
}

/// The reply skeleton, `from` the account even when asked of oneself (Prosody's COMPAT for Psi).
fn account_reply(event: &Event, ns: &str, node: Option<&str>) -> Element {
    let mut reply = event
        .stanza()
        .reply()
        .child(Element::new("query", ns).attr_opt("node", node));
    if reply.from().is_none() {
        reply.set_attr(
            "from",
            event
                .origin
                .as_ref()
                .and_then(|o| o.bare_jid())
                .map(|j| j.to_string()),
        );
    }
    reply
}

fn account_disco_info(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let Some((_, is_admin)) = account_access(event, &host, true) else {
        return false;
    };
    if let Some(node) = node_of(event.stanza()) {
        return node_request(event, &host, "account-disco-info-node", &node);
    }
    let mut reply = account_reply(event, NS_DISCO_INFO, None);
    let account_type = if is_admin {
        "admin"
    } else if host
        .auth_provider()
        .is_some_and(|a| a.name() == "anonymous")
    {
        "anonymous"
    } else {
        "registered"
    };
    if let Some(q) = reply.get_child_mut("query", NS_DISCO_INFO) {
        q.push_child(
            Element::new("identity", NS_DISCO_INFO)
                .attr("category", "account")
                .attr("type", account_type),
        );
        for var in [NS_DISCO_INFO, NS_DISCO_ITEMS] {
            q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
        }
    }
    if let Some(reply) = collect(event, &host, "account-disco-info", reply) {
        event.reply(reply);
    }
    true
}

fn account_disco_items(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    if account_access(event, &host, false).is_none() {
        return false;
    }
    if let Some(node) = node_of(event.stanza()) {
        return node_request(event, &host, "account-disco-items-node", &node);
    }
    let reply = account_reply(event, NS_DISCO_ITEMS, None);
    if let Some(reply) = collect(event, &host, "account-disco-items", reply) {
        event.reply(reply);
    }
    true
}
