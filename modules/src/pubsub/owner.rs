//! The owner use cases of the pubsub component (XEP-0060 §8, namespace
//! `pubsub#owner`): delete and purge (notifying subscribers), the node
//! configuration form (get and submit), and the node's affiliations and
//! subscriptions.

use xmpp_core::Jid;
use xmpp_core::stanza::Element;
use xmpp_core::value::Value;

use super::service::check_config;
use super::{Ctx, store};
use crate::pep::node::{Affiliation, Node, PepError};
use crate::pep::notify::NS_PUBSUB_EVENT;
use crate::pep::{NS_PUBSUB_OWNER, bad_request, config_form};

const NS_DATA: &str = "jabber:x:data";

fn owner_pubsub(child: Element) -> Element {
    Element::new("pubsub", NS_PUBSUB_OWNER).child(child)
}

/// The node `name`, when the actor owns it.
fn owned_node(ctx: &Ctx, name: &str) -> Result<Node, PepError> {
    let node = store::load_node(&ctx.host, name)?;
    if ctx.affiliation(node.as_ref()) != Affiliation::Owner {
        return Err(PepError::Forbidden);
    }
    node.ok_or(PepError::ItemNotFound)
}

/// `<delete/>` (`purge`: `<purge/>`, the items only).
pub fn delete(ctx: &Ctx, stanza: &Element, name: &str, purge: bool) -> Result<Element, PepError> {
    let node = owned_node(ctx, name)?;
    if purge {
        store::clear_items(&ctx.host, name)?;
    } else {
        store::delete_node(&ctx.host, name)?;
    }
    if node.get("notify_delete").as_bool() != Some(false) {
        let kind = if purge { "purge" } else { "delete" };
        ctx.broadcast(
            &node,
            &Element::new(kind, NS_PUBSUB_EVENT).attr("node", name),
        );
    }
    Ok(stanza.reply())
}

pub fn get_configure(ctx: &Ctx, stanza: &Element, name: &str) -> Result<Element, PepError> {
    let node = owned_node(ctx, name)?;
    let x = config_form::form(&node, ctx.settings.max_max_items);
    Ok(stanza.reply().child(owner_pubsub(
        Element::new("configure", NS_PUBSUB_OWNER)
            .attr("node", name)
            .child(x),
    )))
}

pub fn set_configure(
    ctx: &Ctx,
    stanza: &Element,
    configure: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let mut node = owned_node(ctx, name)?;
    let Some(x) = configure.get_child("x", NS_DATA) else {
        return Ok(bad_request(stanza, "Missing dataform", None));
    };
    let changes = match config_form::parse(x) {
        Ok(c) => c,
        Err(text) => return Ok(bad_request(stanza, &text, None)),
    };
    for (k, v) in changes.map {
        node.config.insert(k, v);
    }
    let max = ctx.settings.max_max_items;
    if !check_config(&node, max) {
        return Err(PepError::NotAcceptable);
    }
    store::save_node(&ctx.host, &node)?;
    if node.persist_items() {
        // A smaller max_items drops the oldest items now.
        let all = store::items(&ctx.host, name, usize::MAX)?;
        for old in all.iter().skip(node.max_items(max)) {
            store::remove_item(&ctx.host, name, &old.id)?;
        }
    } else {
        store::clear_items(&ctx.host, name)?;
    }
    Ok(stanza.reply())
}

pub fn get_affiliations(ctx: &Ctx, stanza: &Element, name: &str) -> Result<Element, PepError> {
    let node = owned_node(ctx, name)?;
    let mut list = Element::new("affiliations", NS_PUBSUB_OWNER).attr("node", name);
    for (jid, a) in &node.affiliations.map {
        if let Some(a) = a.as_str() {
            list.push_child(
                Element::new("affiliation", NS_PUBSUB_OWNER)
                    .attr("jid", jid.as_str())
                    .attr("affiliation", a),
            );
        }
    }
    Ok(stanza.reply().child(owner_pubsub(list)))
}

/// Sets the listed affiliations (`none` removes one); all or nothing.
pub fn set_affiliations(
    ctx: &Ctx,
    stanza: &Element,
    list: &Element,
    name: &str,
) -> Result<Element, PepError> {
    let mut node = owned_node(ctx, name)?;
    let mut changes = Vec::new();
    for el in list.children().filter(|c| c.name() == "affiliation") {
        let jid = el.get_attr("jid").and_then(|j| Jid::parse(j).ok());
        let aff = el
            .get_attr("affiliation")
            .filter(|a| Affiliation::parse(a).is_some());
        match (jid, aff) {
            (Some(j), Some(a)) => changes.push((j.to_bare().to_string(), a.to_string())),
            _ => return Ok(bad_request(stanza, "invalid affiliation", None)),
        }
    }
    for (jid, aff) in changes {
        if aff == "none" {
            node.affiliations.map.remove(&jid);
        } else {
            node.affiliations.insert(jid, Value::str(aff));
        }
    }
    store::save_node(&ctx.host, &node)?;
    Ok(stanza.reply())
}

pub fn get_subscriptions(ctx: &Ctx, stanza: &Element, name: &str) -> Result<Element, PepError> {
    let node = owned_node(ctx, name)?;
    let mut list = Element::new("subscriptions", NS_PUBSUB_OWNER).attr("node", name);
    for jid in node.subscribers.map.keys() {
        list.push_child(
            Element::new("subscription", NS_PUBSUB_OWNER)
                .attr("jid", jid.as_str())
                .attr("subscription", "subscribed"),
        );
    }
    Ok(stanza.reply().child(owner_pubsub(list)))
}
