//! `pubsub`: Prosody's mod_pubsub — a XEP-0060 publish-subscribe service
//! as a component (`Component "pubsub.example.com" "pubsub"`).
//!
//! Start with [`handle_iq`] (dispatch), then [`service`] (the entity use
//! cases: items, publish, retract, create, subscribe, unsubscribe) and
//! [`owner`] (delete, purge, configure, affiliations, subscriptions).
//! Nodes and items are the PEP engine's ([`crate::pep::node`]) with
//! mod_pubsub's defaults (`max_items` 20, `access_model` open,
//! `send_last_published_item` never); [`store`] keeps them where Prosody
//! does (`pubsub_nodes`, `pubsub_<node>`).
//!
//! Access as Prosody: the service's own JID and the admins (global and the
//! component's `admins`) are owners of every node and alone may create
//! nodes; anyone else has the affiliation stored on the node, else the
//! access model's (`open`: may subscribe and read; `whitelist`: outcast).
//! Options: `expose_publisher` (false: items carry their publisher's JID
//! only when the node's `itemreply` says so), `pubsub_max_items` (256),
//! `autocreate_on_publish` and `autocreate_on_subscribe` (false).

pub mod owner;
pub mod service;
pub mod store;

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::module::ModuleContext;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server};

use crate::ModuleError;
use crate::pep::node::{self, Affiliation, Defaults, Item, NS_PUBSUB, Node, PepError};
use crate::pep::notify::NS_PUBSUB_EVENT;
use crate::pep::{NS_PUBSUB_OWNER, error_reply};

/// The features the service's disco#info lists (`pubsub#<feature>`).
const FEATURES: &[&str] = &[
    "access-open",
    "access-whitelist",
    "config-node",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "manage-affiliations",
    "modify-affiliations",
    "persistent-items",
    "publish",
    "publish-options",
    "purge-nodes",
    "retract-items",
    "retrieve-affiliations",
    "retrieve-items",
    "retrieve-subscriptions",
    "subscribe",
];

/// The service's options, read at load.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    pub expose_publisher: bool,
    pub max_max_items: i64,
    pub autocreate_on_publish: bool,
    pub autocreate_on_subscribe: bool,
}

impl Settings {
    pub fn read(host: &Host) -> Result<Settings, ModuleError> {
        Ok(Settings {
            expose_publisher: host.option_bool("expose_publisher", false)?,
            max_max_items: host.option_i64("pubsub_max_items", node::DEFAULT_MAX_MAX_ITEMS)?,
            autocreate_on_publish: host.option_bool("autocreate_on_publish", false)?,
            autocreate_on_subscribe: host.option_bool("autocreate_on_subscribe", false)?,
        })
    }
}

/// Loads mod_pubsub on `ctx`'s host (with disco, as Prosody's depends).
pub fn load_module(ctx: &ModuleContext) -> Result<(), ModuleError> {
    load(ctx.server(), ctx.host())?;
    ctx.depends("disco")
}

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let settings = Settings::read(host)?;
    for ns in [NS_PUBSUB, NS_PUBSUB_OWNER] {
        host.events
            .hook(&format!("iq/host/{ns}:pubsub"), 0, move |event| {
                handle_iq(event, settings)
            });
    }
    let name = host
        .option_str("name")
        .unwrap_or("Prosody PubSub Service")
        .to_string();
    crate::disco::add_identity(host, "pubsub", "service", Some(&name));
    crate::disco::add_feature(host, NS_PUBSUB);
    for f in FEATURES {
        crate::disco::add_feature(host, &format!("{NS_PUBSUB}#{f}"));
    }
    host.events.hook("host-disco-items", 0, disco_items);
    Ok(())
}

/// One request to the service: where, who asks, and the options.
pub struct Ctx {
    pub server: Arc<Server>,
    pub host: Arc<Host>,
    pub actor: Option<Jid>,
    pub settings: Settings,
    /// Stanzas to send once the reply has gone (the last item on subscribe).
    pub after: Vec<Element>,
}

impl Ctx {
    /// `get_affiliation` over the node's stored affiliations and its
    /// access model.
    pub fn affiliation(&self, node: Option<&Node>) -> Affiliation {
        affiliation(&self.host, node, self.actor.as_ref())
    }

    /// The actor's bare JID, as items and affiliations name it.
    pub fn actor_bare(&self) -> Option<String> {
        self.actor.as_ref().map(|a| a.to_bare().to_string())
    }

    /// A message from the service carrying `event` to `to`, as the node's
    /// `notification_type` says.
    pub fn notification(&self, node: &Node, to: &str, event: Element) -> Element {
        let type_ = node
            .get("notification_type")
            .as_str()
            .unwrap_or("headline")
            .to_string();
        Element::new("message", NS_CLIENT)
            .attr("from", &self.host.name)
            .attr("to", to)
            .attr("type", type_)
            .attr("id", crate::roster::manager::new_id())
            .child(Element::new("event", NS_PUBSUB_EVENT).child(event))
    }

    /// Sends `event` to every subscriber of `node` now.
    pub fn broadcast(&self, node: &Node, event: &Element) {
        for jid in node.subscribers.map.keys() {
            let msg = self.notification(node, jid, event.clone());
            self.server.send_from_host(&self.host, msg);
        }
    }

    /// `<items><item/></items>` of a notification of `item`.
    pub fn items_event(&self, node: &Node, item: &Item) -> Element {
        let mut el = item.to_element(NS_PUBSUB_EVENT, self.shows_publisher(node));
        if node.get("include_payload").as_bool() == Some(false) {
            el.nodes_mut().clear();
        }
        Element::new("items", NS_PUBSUB_EVENT)
            .attr("node", &node.name)
            .child(el)
    }

    /// Do items of `node` name their publisher?
    pub fn shows_publisher(&self, node: &Node) -> bool {
        self.settings.expose_publisher || node.get("itemreply").as_str() == Some("publisher")
    }
}

/// The affiliation of `actor` with `node` of the service on `host`.
pub fn affiliation(host: &Host, node: Option<&Node>, actor: Option<&Jid>) -> Affiliation {
    if actor.is_some_and(|a| crate::disco::is_admin(host, a)) {
        return Affiliation::Owner;
    }
    // A node that does not exist has the service's defaults (open).
    let fallback;
    let node = match node {
        Some(n) => n,
        None => {
            fallback =
                Node::new("", xmpp_core::value::Table::new()).with_defaults(Defaults::Service);
            &fallback
        }
    };
    match Jid::parse(&host.name) {
        Ok(service) => node::affiliation(&service, Some(node), actor, || false),
        Err(_) => Affiliation::Outcast,
    }
}

/// The PubSub IQ handler (`iq/host/…:pubsub`).
pub fn handle_iq(event: &mut Event, settings: Settings) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(pubsub) = stanza.first_child() else {
        return false;
    };
    let Some(action) = pubsub.first_child() else {
        event.reply(StanzaError::new(ErrorType::Cancel, "bad-request").reply_to(&stanza));
        return true;
    };
    let mut ctx = Ctx {
        server: event.server.clone(),
        host,
        actor: stanza.from().and_then(|f| Jid::parse(f).ok()),
        settings,
        after: Vec::new(),
    };
    let owner_ns = pubsub.ns() == NS_PUBSUB_OWNER;
    let node_name = action.get_attr("node").map(str::to_string);
    let result = match (owner_ns, stanza.type_(), action.name(), node_name) {
        (false, Some("set"), "create", name) => service::create(&mut ctx, &stanza, pubsub, name),
        (false, Some("get"), "subscriptions", _) => service::own_subscriptions(&ctx, &stanza),
        (false, Some("get"), "affiliations", _) => service::own_affiliations(&ctx, &stanza),
        (_, _, _, None) => Ok(crate::pep::bad_request(
            &stanza,
            "",
            Some("nodeid-required"),
        )),
        (false, Some("get"), "items", Some(n)) => service::get_items(&ctx, &stanza, action, &n),
        (false, Some("set"), "publish", Some(n)) => {
            service::publish(&mut ctx, &stanza, pubsub, action, &n)
        }
        (false, Some("set"), "retract", Some(n)) => service::retract(&ctx, &stanza, action, &n),
        (false, Some("set"), "subscribe", Some(n)) => {
            service::subscribe(&mut ctx, &stanza, action, &n)
        }
        (false, Some("set"), "unsubscribe", Some(n)) => {
            service::unsubscribe(&ctx, &stanza, action, &n)
        }
        (true, Some("set"), "delete", Some(n)) => owner::delete(&ctx, &stanza, &n, false),
        (true, Some("set"), "purge", Some(n)) => owner::delete(&ctx, &stanza, &n, true),
        (true, Some("get"), "configure", Some(n)) => owner::get_configure(&ctx, &stanza, &n),
        (true, Some("set"), "configure", Some(n)) => {
            owner::set_configure(&ctx, &stanza, action, &n)
        }
        (true, Some("get"), "affiliations", Some(n)) => owner::get_affiliations(&ctx, &stanza, &n),
        (true, Some("set"), "affiliations", Some(n)) => {
            owner::set_affiliations(&ctx, &stanza, action, &n)
        }
        (true, Some("get"), "subscriptions", Some(n)) => {
            owner::get_subscriptions(&ctx, &stanza, &n)
        }
        _ => Ok(StanzaError::new(ErrorType::Cancel, "feature-not-implemented").reply_to(&stanza)),
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            if let PepError::Internal(why) = &e {
                tracing::error!(host = %ctx.host.name, "pubsub: {why}");
            }
            error_reply(&stanza, &e)
        }
    };
    event.reply(reply);
    for stanza in ctx.after.drain(..) {
        ctx.server.send_from_host(&ctx.host, stanza);
    }
    true
}

/// `host-disco-items`: the nodes the asker may see.
fn disco_items(event: &mut Event) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let actor = event.field_str("from").and_then(|f| Jid::parse(f).ok());
    let Ok(nodes) = store::load_nodes(&host) else {
        return false;
    };
    let visible: Vec<Element> = nodes
        .values()
        .filter(|n| affiliation(&host, Some(n), actor.as_ref()) != Affiliation::Outcast)
        .map(|n| {
            Element::new("item", crate::disco::NS_DISCO_ITEMS)
                .attr("jid", host.name.as_str())
                .attr("node", n.name.as_str())
                .attr_opt("name", n.config.get("title").and_then(|v| v.as_str()))
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
