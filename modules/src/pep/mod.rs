//! `pep`: Prosody 0.12's mod_pep — XEP-0163 Personal Eventing Protocol, a
//! PubSub service (XEP-0060) on every account's bare JID.
//!
//! Start with [`handle_iq`] (the PubSub requests), then [`node`] (nodes,
//! access, storage) and [`notify`] (who gets notifications: `+notify` by
//! entity caps).
//!
//! Supported, as Prosody: publish (auto-creating the node, with
//! `publish-options` preconditions), items (all, by id, `max_items`),
//! retract (with `notify`), create (with `configure`), owner delete, purge
//! and configure (get/set), and the account's disco info/items. Access
//! models `presence` (default), `open` and `whitelist`; `pep_max_items`
//! (256) caps a node's `max_items`. Storage: the map store `pep` (node
//! data) and the archive stores `pep_<node>` (items), so Prosody's data is
//! used in place and the reverse.
//!
//! Not there: explicit subscriptions (`<subscribe/>`; interest comes from
//! caps, as clients use PEP), owner affiliation and subscription lists.

pub mod config_form;
pub mod node;
pub mod notify;
pub mod owner;

use std::collections::BTreeMap;
use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::value::{Table, Value};
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::disco::NS_DISCO_INFO;
use node::{Affiliation, Item, NS_PUBSUB, Node, PepError};

pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const NS_DATA: &str = "jabber:x:data";

/// The features the account's disco#info lists (`pubsub#<feature>`).
const FEATURES: &[&str] = &[
    "access-open",
    "access-presence",
    "access-whitelist",
    "auto-create",
    "auto-subscribe",
    "config-node",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "filtered-notifications",
    "item-ids",
    "last-published",
    "persistent-items",
    "presence-notifications",
    "presence-subscribe",
    "publish",
    "publish-options",
    "purge-nodes",
    "retract-items",
    "retrieve-items",
];

/// `pep_max_items` of the host.
fn max_max_items(host: &Host) -> i64 {
    host.option_i64("pep_max_items", node::DEFAULT_MAX_MAX_ITEMS)
        .unwrap_or(node::DEFAULT_MAX_MAX_ITEMS)
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.option_i64("pep_max_items", node::DEFAULT_MAX_MAX_ITEMS)?;
    for ns in [NS_PUBSUB, NS_PUBSUB_OWNER] {
        host.events
            .hook(&format!("iq/bare/{ns}:pubsub"), 0, handle_iq);
    }
    host.events.hook("presence/bare", 10, notify::on_presence);
    host.events
        .hook("iq-result/bare/disco", 0, notify::on_disco_result);
    host.events.hook("account-disco-info", 0, disco_info);
    host.events.hook("account-disco-items", 0, disco_items);
    let name = host.name.clone();
    // mod_debug_reset: the caches go with the module's reload.
    _server.events.hook("server-resetting", 0, move |event| {
        if let Some(host) = event.server.host(&name) {
            notify::reset(&host);
        }
        false
    });
    let name = host.name.clone();
    _server.events.hook("user-deleted", 0, move |event| {
        if event.field_str("host") == Some(name.as_str())
            && let (Some(host), Some(user)) =
                (event.server.host(&name), event.field_str("username"))
        {
            notify::forget_user(&host, user);
        }
        false
    });
    Ok(())
}

/// Whose service and who asks.
struct Request {
    host: Arc<Host>,
    user: String,
    owner: Jid,
    actor: Option<Jid>,
}

impl Request {
    fn affiliation(&self, server: &Arc<Server>, node: Option<&Node>) -> Affiliation {
        if !self.host.user_exists(&self.user) {
            return Affiliation::Outcast; // Prosody's nobody_service
        }
        node::affiliation(&self.owner, node, self.actor.as_ref(), || {
            self.actor
                .as_ref()
                .is_some_and(|a| notify::subscribed(server, &self.host, &self.user, a))
        })
    }
}

fn request(event: &Event) -> Option<Request> {
    let host = event.host.clone()?;
    let stanza = event.stanza();
    let user = match stanza.to().and_then(|t| Jid::parse(t).ok()) {
        Some(to) => to.node()?.to_string(),
        None => event.origin.as_ref()?.username()?,
    };
    let owner = Jid::parse(&format!("{user}@{}", host.name)).ok()?;
    let actor = stanza.from().and_then(|f| Jid::parse(f).ok());
    Some(Request {
        host,
        user,
        owner,
        actor,
    })
}

/// `pubsub_error_reply`: a [`PepError`] as Prosody words it.
pub(crate) fn error_reply(stanza: &Element, e: &PepError) -> Element {
    let (t, cond, pubsub) = match e {
        PepError::Forbidden => (ErrorType::Auth, "forbidden", None),
        PepError::ItemNotFound => (ErrorType::Cancel, "item-not-found", None),
        PepError::Conflict => (ErrorType::Cancel, "conflict", None),
        PepError::NotAcceptable => (ErrorType::Modify, "not-acceptable", None),
        PepError::PreconditionNotMet(_) => {
            (ErrorType::Cancel, "conflict", Some("precondition-not-met"))
        }
        PepError::PersistentItemsUnsupported => (
            ErrorType::Cancel,
            "feature-not-implemented",
            Some("persistent-items"),
        ),
        PepError::NotSubscribed => (
            ErrorType::Cancel,
            "unexpected-request",
            Some("not-subscribed"),
        ),
        PepError::InvalidJid => (ErrorType::Modify, "bad-request", Some("invalid-jid")),
        PepError::Internal(_) => (ErrorType::Wait, "internal-server-error", None),
    };
    let mut err = StanzaError::new(t, cond);
    if let PepError::PreconditionNotMet(field) = e {
        err = err.with_text(format!("Field does not match: {field}"));
    }
    let mut reply = err.reply_to(stanza);
    if let Some(p) = pubsub
        && let Some(error) = reply.get_child_mut("error", xmpp_core::stanza::NS_CLIENT)
    {
        error.push_child(Element::new(p, NS_PUBSUB_ERRORS));
    }
    reply
}

pub(crate) fn bad_request(stanza: &Element, text: &str, pubsub: Option<&str>) -> Element {
    let mut reply = StanzaError::new(ErrorType::Modify, "bad-request")
        .with_text(text)
        .reply_to(stanza);
    if let Some(p) = pubsub
        && let Some(error) = reply.get_child_mut("error", xmpp_core::stanza::NS_CLIENT)
    {
        error.push_child(Element::new(p, NS_PUBSUB_ERRORS));
    }
    reply
}

/// The PubSub IQ handler (`iq/bare/…:pubsub`).
pub fn handle_iq(event: &mut Event) -> bool {
    let Some(req) = request(event) else {
        return false;
    };
    let server = event.server.clone();
    let stanza = event.stanza().clone();
    let Some(pubsub) = stanza.first_child() else {
        return false;
    };
    let Some(action) = pubsub.first_child() else {
        event.reply(StanzaError::new(ErrorType::Cancel, "bad-request").reply_to(&stanza));
        return true;
    };
    let owner_ns = pubsub.ns() == NS_PUBSUB_OWNER;
    let Some(node_name) = action.get_attr("node").map(str::to_string) else {
        let known = matches!(
            (owner_ns, stanza.type_(), action.name()),
            (false, Some("get"), "items")
                | (false, Some("set"), "publish" | "retract")
                | (true, Some("set"), "delete" | "purge" | "configure")
                | (true, Some("get"), "configure")
        );
        if !known {
            return false;
        }
        event.reply(bad_request(&stanza, "", Some("nodeid-required")));
        return true;
    };
    let result = match (owner_ns, stanza.type_(), action.name()) {
        (false, Some("get"), "items") => get_items(&server, &req, &stanza, action, &node_name),
        (false, Some("set"), "publish") => {
            publish(&server, &req, &stanza, pubsub, action, &node_name)
        }
        (false, Some("set"), "retract") => retract(&server, &req, &stanza, action, &node_name),
        (false, Some("set"), "create") => create(&server, &req, &stanza, pubsub, &node_name),
        (true, Some("set"), "delete") => delete(&server, &req, &stanza, &node_name, false),
        (true, Some("set"), "purge") => delete(&server, &req, &stanza, &node_name, true),
        (true, Some("get"), "configure") => get_configure(&server, &req, &stanza, &node_name),
        (true, Some("set"), "configure") => {
            set_configure(&server, &req, &stanza, action, &node_name)
        }
        _ => return false,
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            if let PepError::Internal(why) = &e {
                tracing::error!(host = %req.host.name, user = %req.user, "PEP: {why}");
            }
            error_reply(&stanza, &e)
        }
    };
    event.reply(reply);
    true
}

fn nodes(req: &Request) -> Result<BTreeMap<String, Node>, PepError> {
    if !req.host.user_exists(&req.user) {
        return Ok(BTreeMap::new());
    }
    node::load_nodes(&req.host, &req.user)
}

fn get_items(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    items_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let nodes = nodes(req)?;
    let node = nodes.get(name);
    if !req.affiliation(server, node).may_get_items() {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    if !node.persist_items() {
        return Err(PepError::PersistentItemsUnsupported);
    }
    let max = max_max_items(&req.host);
    let stored = node::items(&req.host, &req.user, name, node.max_items(max))?;
    let selected = node::requested_items(items_el, &stored);
    let mut items = Element::new("items", NS_PUBSUB).attr("node", name);
    for item in selected {
        items.push_child(item.to_element(NS_PUBSUB, false));
    }
    Ok(stanza
        .reply()
        .child(Element::new("pubsub", NS_PUBSUB).child(items)))
}

fn publish(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    pubsub: &Element,
    publish_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let required = match pubsub
        .get_child("publish-options", NS_PUBSUB)
        .and_then(|p| p.get_child("x", NS_DATA))
    {
        Some(x) => match config_form::parse(x) {
            Ok(c) => Some(c),
            Err(text) => return Ok(bad_request(stanza, &text, None)),
        },
        None => None,
    };
    let item_el = publish_el.get_child("item", NS_PUBSUB);
    let id = item_el
        .and_then(|i| i.get_attr("id"))
        .map(str::to_string)
        .unwrap_or_else(node::uuid);
    let payload = match item_el.map(|i| i.children().collect::<Vec<_>>()) {
        Some(children) if children.len() == 1 => children[0].clone(),
        _ => {
            // Access is checked before the item, as Prosody does.
            let nodes = nodes(req)?;
            let existing = nodes.get(name);
            let open = existing.is_some_and(|n| n.get("publish_model").as_str() == Some("open"));
            if !req.affiliation(server, existing).may_publish() && !open {
                return Err(PepError::Forbidden);
            }
            return Ok(bad_request(stanza, "invalid item", None));
        }
    };
    let item = Item {
        id: id.clone(),
        publisher: req.actor.as_ref().map(|a| a.to_bare().to_string()),
        payload,
    };
    publish_item(server, req, name, &item, required)?;
    Ok(stanza.reply().child(
        Element::new("pubsub", NS_PUBSUB).child(
            Element::new("publish", NS_PUBSUB)
                .attr("node", name)
                .child(Element::new("item", NS_PUBSUB).attr("id", id)),
        ),
    ))
}

/// `service:publish`: access, auto-creation with `required` as the new
/// node's configuration, preconditions, storage and notification.
fn publish_item(
    server: &Arc<Server>,
    req: &Request,
    name: &str,
    item: &Item,
    required: Option<Table>,
) -> Result<(), PepError> {
    let mut nodes = nodes(req)?;
    let existing = nodes.get(name);
    let aff = req.affiliation(server, existing);
    let open = existing.is_some_and(|n| n.get("publish_model").as_str() == Some("open"));
    if !aff.may_publish() && !open {
        return Err(PepError::Forbidden);
    }
    let max = max_max_items(&req.host);
    let node = match nodes.remove(name) {
        None => {
            let node = Node::new(name, required.unwrap_or_default());
            if !node::check_config(&node, max) {
                return Err(PepError::NotAcceptable);
            }
            node::save_node(&req.host, &req.user, &node)?;
            node
        }
        Some(node) => {
            if let Some(required) = &required {
                for (field, want) in &required.map {
                    if &node.get(field) != want {
                        return Err(PepError::PreconditionNotMet(field.clone()));
                    }
                }
            }
            node
        }
    };
    if node.persist_items() {
        node::store_item(
            &req.host,
            &req.user,
            name,
            item,
            node.max_items(max),
            server.clock.now().floor(),
        )?;
    }
    if node.get("notify_items").as_bool() != Some(false) {
        let to = recipients(server, req, &node);
        notify::broadcast(
            server,
            &req.host,
            &req.user,
            &to,
            notify::items_event(&node, item),
        );
    }
    Ok(())
}

/// Who a notification of `node` goes to: the interested recipients the
/// node's access model lets see it, and its stored subscribers.
fn recipients(server: &Arc<Server>, req: &Request, node: &Node) -> Vec<String> {
    let mut to: Vec<String> = node.subscribers.map.keys().cloned().collect();
    for r in notify::interested(&req.host, &req.user, &node.name) {
        let Ok(j) = Jid::parse(&r) else { continue };
        let aff = node::affiliation(&req.owner, Some(node), Some(&j), || {
            notify::subscribed(server, &req.host, &req.user, &j)
        });
        if aff.may_get_items() && !to.contains(&r) {
            to.push(r);
        }
    }
    to
}

fn retract(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    retract_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let Some(id) = retract_el
        .get_child("item", NS_PUBSUB)
        .and_then(|i| i.get_attr("id"))
    else {
        return Err(PepError::ItemNotFound);
    };
    let notify_attr = matches!(retract_el.get_attr("notify"), Some("1" | "true"));
    let nodes = nodes(req)?;
    let node = nodes.get(name);
    if !req.affiliation(server, node).may_publish() {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    if node.persist_items() && !node::remove_item(&req.host, &req.user, name, id)? {
        return Err(PepError::ItemNotFound);
    }
    if notify_attr && node.get("notify_retract").as_bool() != Some(false) {
        let to = recipients(server, req, node);
        let event = Element::new("items", notify::NS_PUBSUB_EVENT)
            .attr("node", name)
            .child(Element::new("retract", notify::NS_PUBSUB_EVENT).attr("id", id));
        notify::broadcast(server, &req.host, &req.user, &to, event);
    }
    Ok(stanza.reply())
}

fn create(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    pubsub: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let config = match pubsub.get_child("configure", NS_PUBSUB) {
        Some(c) => match c.get_child("x", NS_DATA).map(config_form::parse) {
            Some(Ok(config)) => config,
            Some(Err(text)) => return Ok(bad_request(stanza, &text, None)),
            None => return Ok(bad_request(stanza, "Missing dataform", None)),
        },
        None => Table::new(),
    };
    let nodes = nodes(req)?;
    if req.affiliation(server, nodes.get(name)) != Affiliation::Owner {
        return Err(PepError::Forbidden);
    }
    if nodes.contains_key(name) {
        return Err(PepError::Conflict);
    }
    let mut node = Node::new(name, config);
    if !node::check_config(&node, max_max_items(&req.host)) {
        return Err(PepError::NotAcceptable);
    }
    if let Some(actor) = &req.actor {
        node.affiliations
            .insert(actor.to_bare().to_string(), Value::str("owner"));
    }
    node::save_node(&req.host, &req.user, &node)?;
    Ok(stanza.reply())
}

/// Owner `<delete/>` (`purge`: `<purge/>`, the items only).
fn delete(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    name: &str,
    purge: bool,
) -> Result<Element, PepError> {
    let nodes = nodes(req)?;
    let node = nodes.get(name);
    if req.affiliation(server, node) != Affiliation::Owner {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    let to = recipients(server, req, node);
    if purge {
        node::clear_items(&req.host, &req.user, name)?;
    } else {
        node::delete_node(&req.host, &req.user, name)?;
    }
    if node.get("notify_delete").as_bool() != Some(false) {
        let kind = if purge { "purge" } else { "delete" };
        let event = Element::new(kind, notify::NS_PUBSUB_EVENT).attr("node", name);
        notify::broadcast(server, &req.host, &req.user, &to, event);
    }
    Ok(stanza.reply())
}

fn get_configure(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let nodes = nodes(req)?;
    let node = nodes.get(name);
    let aff = req.affiliation(server, node);
    if !matches!(aff, Affiliation::Owner | Affiliation::Publisher) {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    let x = config_form::form(node, max_max_items(&req.host));
    Ok(stanza.reply().child(
        Element::new("pubsub", NS_PUBSUB_OWNER).child(
            Element::new("configure", NS_PUBSUB_OWNER)
                .attr("node", node.name.as_str())
                .child(x),
        ),
    ))
}

fn set_configure(
    server: &Arc<Server>,
    req: &Request,
    stanza: &Element,
    configure: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let mut nodes = nodes(req)?;
    if req.affiliation(server, nodes.get(name)) != Affiliation::Owner {
        return Err(PepError::Forbidden);
    }
    let Some(x) = configure.get_child("x", NS_DATA) else {
        return Ok(bad_request(stanza, "Missing dataform", None));
    };
    let mut node = nodes.remove(name).ok_or(PepError::ItemNotFound)?;
    let changes = match config_form::parse(x) {
        Ok(c) => c,
        Err(text) => return Ok(bad_request(stanza, &text, None)),
    };
    for (k, v) in changes.map {
        node.config.insert(k, v);
    }
    let max = max_max_items(&req.host);
    if !node::check_config(&node, max) {
        return Err(PepError::NotAcceptable);
    }
    node::save_node(&req.host, &req.user, &node)?;
    if node.persist_items() {
        // A smaller max_items drops the oldest items now.
        let keep = node.max_items(max);
        let all = node::items(&req.host, &req.user, name, usize::MAX)?;
        for old in all.iter().skip(keep) {
            node::remove_item(&req.host, &req.user, name, &old.id)?;
        }
    } else {
        node::clear_items(&req.host, &req.user, name)?;
    }
    Ok(stanza.reply())
}

/// `account-disco-info`: the PEP identity and features.
fn disco_info(event: &mut Event) -> bool {
    if let Some(q) = event
        .stanza
        .as_mut()
        .and_then(|r| r.get_child_mut("query", NS_DISCO_INFO))
    {
        q.push_child(
            Element::new("identity", NS_DISCO_INFO)
                .attr("category", "pubsub")
                .attr("type", "pep"),
        );
        q.push_child(Element::new("feature", NS_DISCO_INFO).attr("var", NS_PUBSUB));
        for f in FEATURES {
            q.push_child(
                Element::new("feature", NS_DISCO_INFO).attr("var", format!("{NS_PUBSUB}#{f}")),
            );
        }
    }
    false
}

/// `account-disco-items`: the nodes the asker may see.
fn disco_items(event: &mut Event) -> bool {
    let server = event.server.clone();
    let Some(host) = event.host.clone() else {
        return false;
    };
    let Some(reply) = event.stanza.as_ref() else {
        return false;
    };
    let Some(owner) = reply
        .from()
        .and_then(|f| Jid::parse(f).ok())
        .or_else(|| event.origin.as_ref().and_then(|o| o.bare_jid()))
    else {
        return false;
    };
    let Some(user) = owner.node().map(str::to_string) else {
        return false;
    };
    let actor = event.field_str("from").and_then(|f| Jid::parse(f).ok());
    let req = Request {
        host: host.clone(),
        user,
        owner: owner.to_bare(),
        actor,
    };
    let Ok(nodes) = nodes(&req) else {
        return false;
    };
    let visible: Vec<Element> = nodes
        .values()
        .filter(|n| req.affiliation(&server, Some(n)) != Affiliation::Outcast)
        .map(|n| {
            Element::new("item", crate::disco::NS_DISCO_ITEMS)
                .attr("jid", req.owner.to_string())
                .attr("node", n.name.as_str())
                .attr_opt("name", n.config.get("title").and_then(Value::as_str))
        })
        .collect();
    if let Some(q) = event
        .stanza
        .as_mut()
        .and_then(|r| r.get_child_mut("query", crate::disco::NS_DISCO_ITEMS))
    {
        for item in visible {
            q.push_child(item);
        }
    }
    false
}
