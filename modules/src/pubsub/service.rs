//! The entity use cases of the pubsub component (XEP-0060 §6–7), as
//! Prosody's `pubsub.lib.lua` handles them over `util.pubsub`: items,
//! publish (with `publish-options` preconditions), retract, create
//! (instant nodes, create-and-configure), subscribe (with the last item
//! on `send_last_published_item = on_sub`), unsubscribe, and the actor's
//! own subscriptions and affiliations.

use xmpp_core::stanza::Element;
use xmpp_core::value::{Table, Value};

use super::{Ctx, store};
use crate::pep::bad_request;
use crate::pep::config_form;
use crate::pep::node::{self, Affiliation, Defaults, Item, NS_PUBSUB, Node, PepError};

const NS_DATA: &str = "jabber:x:data";

fn pubsub(child: Element) -> Element {
    Element::new("pubsub", NS_PUBSUB).child(child)
}

/// mod_pubsub's `check_node_config`: a `max_items` set within
/// `pubsub_max_items` (the default, 20, is capped by it when used),
/// access model `open` or `whitelist`.
pub fn check_config(node: &Node, max_max: i64) -> bool {
    let max = match node.config.get("max_items") {
        Some(Value::String(s)) if s == "max" => max_max,
        Some(v) => v.as_i64().unwrap_or(1),
        None => 1,
    };
    max <= max_max && matches!(node.access_model().as_str(), "open" | "whitelist")
}

fn subscription(node: &str, jid: &str, state: &str) -> Element {
    Element::new("subscription", NS_PUBSUB)
        .attr("node", node)
        .attr("jid", jid)
        .attr("subscription", state)
}

pub fn get_items(
    ctx: &Ctx,
    stanza: &Element,
    items_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let node = store::load_node(&ctx.host, name)?;
    if !ctx.affiliation(node.as_ref()).may_get_items() {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    if !node.persist_items() {
        return Err(PepError::PersistentItemsUnsupported);
    }
    let stored = store::items(&ctx.host, name, node.max_items(ctx.settings.max_max_items))?;
    let selected = node::requested_items(items_el, &stored);
    let publisher = ctx.shows_publisher(&node);
    let mut items = Element::new("items", NS_PUBSUB).attr("node", name);
    for item in selected {
        items.push_child(item.to_element(NS_PUBSUB, publisher));
    }
    Ok(stanza.reply().child(pubsub(items)))
}

/// The submitted `publish-options` form, if any (`Err`: a bad form).
fn publish_options(pubsub_el: &Element) -> Result<Option<Table>, String> {
    match pubsub_el
        .get_child("publish-options", NS_PUBSUB)
        .and_then(|p| p.get_child("x", NS_DATA))
    {
        Some(x) => config_form::parse(x).map(Some),
        None => Ok(None),
    }
}

pub fn publish(
    ctx: &mut Ctx,
    stanza: &Element,
    pubsub_el: &Element,
    publish_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let required = match publish_options(pubsub_el) {
        Ok(r) => r,
        Err(text) => return Ok(bad_request(stanza, &text, None)),
    };
    let existing = store::load_node(&ctx.host, name)?;
    let aff = ctx.affiliation(existing.as_ref());
    let model_allows = existing
        .as_ref()
        .is_some_and(|n| match n.get("publish_model").as_str() {
            Some("open") => true,
            Some("subscribers") => ctx
                .actor
                .as_ref()
                .is_some_and(|a| n.subscribers.get(&a.to_string()).is_some()),
            _ => false,
        });
    let may_create = ctx.settings.autocreate_on_publish && aff == Affiliation::Owner;
    let creates = existing.is_none() && may_create;
    if !(aff.may_publish() || model_allows || creates) {
        return Err(PepError::Forbidden);
    }
    let item_el = publish_el.get_child("item", NS_PUBSUB);
    let payload = match item_el.map(|i| i.children().collect::<Vec<_>>()) {
        Some(children) if children.len() == 1 => children[0].clone(),
        _ => return Ok(bad_request(stanza, "invalid item", None)),
    };
    let max = ctx.settings.max_max_items;
    let node = match existing {
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
        None if may_create => {
            let mut node =
                Node::new(name, required.unwrap_or_default()).with_defaults(Defaults::Service);
            if !check_config(&node, max) {
                return Err(PepError::NotAcceptable);
            }
            if let Some(actor) = ctx.actor_bare() {
                node.affiliations.insert(actor, Value::str("owner"));
            }
            store::save_node(&ctx.host, &node)?;
            node
        }
        None => return Err(PepError::ItemNotFound),
    };
    let id = item_el
        .and_then(|i| i.get_attr("id"))
        .map(str::to_string)
        .unwrap_or_else(node::uuid);
    let item = Item {
        id: id.clone(),
        publisher: ctx.actor_bare(),
        payload,
    };
    if node.persist_items() {
        let now = ctx.server.clock.now().floor();
        store::store_item(&ctx.host, name, &item, node.max_items(max), now)?;
    }
    if node.get("notify_items").as_bool() != Some(false) {
        ctx.broadcast(&node, &ctx.items_event(&node, &item));
    }
    Ok(stanza.reply().child(pubsub(
        Element::new("publish", NS_PUBSUB)
            .attr("node", name)
            .child(Element::new("item", NS_PUBSUB).attr("id", id)),
    )))
}

pub fn retract(
    ctx: &Ctx,
    stanza: &Element,
    retract_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let Some(id) = retract_el
        .get_child("item", NS_PUBSUB)
        .and_then(|i| i.get_attr("id"))
    else {
        return Ok(bad_request(stanza, "", Some("item-required")));
    };
    let node = store::load_node(&ctx.host, name)?;
    if !ctx.affiliation(node.as_ref()).may_publish() {
        return Err(PepError::Forbidden);
    }
    let node = node.ok_or(PepError::ItemNotFound)?;
    if !store::remove_item(&ctx.host, name, id)? {
        return Err(PepError::ItemNotFound);
    }
    let notify = matches!(retract_el.get_attr("notify"), Some("1" | "true"));
    if notify && node.get("notify_retract").as_bool() != Some(false) {
        let event = Element::new("items", crate::pep::notify::NS_PUBSUB_EVENT)
            .attr("node", name)
            .child(Element::new("retract", crate::pep::notify::NS_PUBSUB_EVENT).attr("id", id));
        ctx.broadcast(&node, &event);
    }
    Ok(stanza.reply())
}

/// `<create/>`, with a generated name for an instant node (then named in
/// the reply) and the `<configure/>` form applied.
pub fn create(
    ctx: &mut Ctx,
    stanza: &Element,
    pubsub_el: &Element,
    name: Option<String>,
) -> Result<Element, PepError> {
    let config = match pubsub_el
        .get_child("configure", NS_PUBSUB)
        .and_then(|c| c.get_child("x", NS_DATA))
    {
        Some(x) => match config_form::parse(x) {
            Ok(config) => config,
            Err(text) => return Ok(bad_request(stanza, &text, None)),
        },
        None => Table::new(),
    };
    if ctx.affiliation(None) != Affiliation::Owner {
        return Err(PepError::Forbidden);
    }
    let instant = name.is_none();
    let name = name.unwrap_or_else(node::uuid);
    if store::load_node(&ctx.host, &name)?.is_some() {
        return Err(PepError::Conflict);
    }
    let mut node = Node::new(&name, config).with_defaults(Defaults::Service);
    if !check_config(&node, ctx.settings.max_max_items) {
        return Err(PepError::NotAcceptable);
    }
    if let Some(actor) = ctx.actor_bare() {
        node.affiliations.insert(actor, Value::str("owner"));
    }
    store::save_node(&ctx.host, &node)?;
    if instant {
        return Ok(stanza
            .reply()
            .child(pubsub(Element::new("create", NS_PUBSUB).attr("node", name))));
    }
    Ok(stanza.reply())
}

/// The `jid` of a (un)subscribe request, checked against the actor: only
/// owners may (un)subscribe someone else.
fn subscriber_jid(ctx: &Ctx, el: &Element, aff: Affiliation) -> Result<String, PepError> {
    let jid = el
        .get_attr("jid")
        .and_then(|j| xmpp_core::Jid::parse(j).ok())
        .ok_or(PepError::InvalidJid)?;
    let own = ctx
        .actor
        .as_ref()
        .is_none_or(|a| a.to_bare() == jid.to_bare());
    if !own && aff != Affiliation::Owner {
        return Err(PepError::InvalidJid);
    }
    Ok(jid.to_string())
}

pub fn subscribe(
    ctx: &mut Ctx,
    stanza: &Element,
    sub_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let node = store::load_node(&ctx.host, name)?;
    let aff = ctx.affiliation(node.as_ref());
    let jid = subscriber_jid(ctx, sub_el, aff)?;
    let mut node = match node {
        Some(n) => n,
        None if ctx.settings.autocreate_on_subscribe && aff == Affiliation::Owner => {
            Node::new(name, Table::new()).with_defaults(Defaults::Service)
        }
        None => return Err(PepError::ItemNotFound),
    };
    if !aff.may_get_items() {
        return Err(PepError::Forbidden);
    }
    node.subscribers.insert(jid.clone(), Value::Bool(true));
    store::save_node(&ctx.host, &node)?;
    let last = node.get("send_last_published_item");
    if matches!(last.as_str(), Some("on_sub" | "on_sub_and_presence"))
        && node.get("notify_items").as_bool() != Some(false)
        && let Some(item) = store::items(&ctx.host, name, 1)?.into_iter().next()
    {
        let event = ctx.items_event(&node, &item);
        let msg = ctx.notification(&node, &jid, event);
        ctx.after.push(msg);
    }
    Ok(stanza
        .reply()
        .child(pubsub(subscription(name, &jid, "subscribed"))))
}

pub fn unsubscribe(
    ctx: &Ctx,
    stanza: &Element,
    unsub_el: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let node = store::load_node(&ctx.host, name)?;
    let aff = ctx.affiliation(node.as_ref());
    let jid = subscriber_jid(ctx, unsub_el, aff)?;
    let mut node = node.ok_or(PepError::ItemNotFound)?;
    if node.subscribers.map.remove(&jid).is_none() {
        return Err(PepError::NotSubscribed);
    }
    store::save_node(&ctx.host, &node)?;
    Ok(stanza
        .reply()
        .child(pubsub(subscription(name, &jid, "none"))))
}

/// `<subscriptions/>`: the actor's subscriptions on every node.
pub fn own_subscriptions(ctx: &Ctx, stanza: &Element) -> Result<Element, PepError> {
    let bare = ctx.actor_bare();
    let mut list = Element::new("subscriptions", NS_PUBSUB);
    for node in store::load_nodes(&ctx.host)?.values() {
        for jid in node.subscribers.map.keys() {
            let mine =
                xmpp_core::Jid::parse(jid).is_ok_and(|j| Some(j.to_bare().to_string()) == bare);
            if mine {
                list.push_child(subscription(&node.name, jid, "subscribed"));
            }
        }
    }
    Ok(stanza.reply().child(pubsub(list)))
}

/// `<affiliations/>`: the actor's stored affiliations on every node.
pub fn own_affiliations(ctx: &Ctx, stanza: &Element) -> Result<Element, PepError> {
    let bare = ctx.actor_bare().unwrap_or_default();
    let mut list = Element::new("affiliations", NS_PUBSUB);
    for node in store::load_nodes(&ctx.host)?.values() {
        if let Some(a) = node.affiliations.get(&bare).and_then(Value::as_str) {
            list.push_child(
                Element::new("affiliation", NS_PUBSUB)
                    .attr("node", node.name.as_str())
                    .attr("affiliation", a),
            );
        }
    }
    Ok(stanza.reply().child(pubsub(list)))
}
