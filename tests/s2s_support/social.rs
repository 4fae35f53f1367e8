//! What users do across servers beyond chat: mutual subscriptions, PEP
//! (XEP-0163) with `+notify` interest by entity caps (XEP-0115), and MUC
//! (XEP-0045) rooms.

use std::time::Duration;

use xmpp_core::Element;
use xmpp_core::client::ClientLink;

use super::lilt::{NS_CLIENT, bare, body};

pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// The PEP node the tests publish to and ask `+notify` for.
pub const TUNE: &str = "http://jabber.org/protocol/tune";
const CAPS_NODE: &str = "https://lilt.example/s2s-test";
/// Any `ver`: servers hash the disco#info answer themselves.
const CAPS_VER: &str = "s2s-test-tune-notify";

/// The next stanza `pick` accepts, within 30 s, answering disco#info
/// queries for our caps node meanwhile (servers ask them to learn which
/// PEP nodes we want: `TUNE+notify`).
pub async fn wait_answering(
    link: &mut ClientLink,
    what: &str,
    pick: impl Fn(&Element) -> bool,
) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let e = match tokio::time::timeout_at(deadline, link.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) => panic!("{}: link ended waiting for {what}; got {seen:#?}", link.jid),
            Err(_) => panic!("{}: timed out waiting for {what}; got {seen:#?}", link.jid),
        };
        if let Some(reply) = disco_answer(&e) {
            link.sender().send(reply);
            continue;
        }
        if pick(&e) {
            return e;
        }
        seen.push(e.to_xml());
    }
}

fn disco_answer(e: &Element) -> Option<Element> {
    if e.name() != "iq" || e.type_() != Some("get") {
        return None;
    }
    let q = e.get_child("query", NS_DISCO_INFO)?;
    let mut query = Element::new("query", NS_DISCO_INFO).child(
        Element::new("identity", NS_DISCO_INFO)
            .attr("category", "client")
            .attr("type", "pc")
            .attr("name", "lilt s2s test"),
    );
    if let Some(node) = q.get_attr("node") {
        query = query.attr("node", node);
    }
    for var in [NS_CAPS, NS_DISCO_INFO, &format!("{TUNE}+notify")] {
        query = query.child(Element::new("feature", NS_DISCO_INFO).attr("var", var));
    }
    let mut reply = Element::new("iq", NS_CLIENT)
        .attr("type", "result")
        .child(query);
    if let Some(id) = e.id() {
        reply = reply.attr("id", id);
    }
    if let Some(from) = e.from() {
        reply = reply.attr("to", from);
    }
    Some(reply)
}

/// Available presence with entity caps naming our `+notify` interest.
pub fn caps_presence() -> Element {
    Element::new("presence", NS_CLIENT).child(
        Element::new("c", NS_CAPS)
            .attr("hash", "sha-1")
            .attr("node", CAPS_NODE)
            .attr("ver", CAPS_VER),
    )
}

/// `a` and `b` subscribe to each other's presence.
pub async fn subscribe_both(a: &mut ClientLink, b: &mut ClientLink) {
    subscribe(a, b).await;
    subscribe(b, a).await;
}

/// `x` subscribes to `y`'s presence, `y` approves.
async fn subscribe(x: &mut ClientLink, y: &mut ClientLink) {
    let (x_bare, y_bare) = (x.jid.to_bare().to_string(), y.jid.to_bare().to_string());
    x.sender().send(
        Element::new("presence", NS_CLIENT)
            .attr("to", y_bare.clone())
            .attr("type", "subscribe"),
    );
    wait_answering(y, "the subscription request", |e| {
        e.name() == "presence" && e.type_() == Some("subscribe") && bare(e) == x_bare
    })
    .await;
    y.sender().send(
        Element::new("presence", NS_CLIENT)
            .attr("to", x_bare.clone())
            .attr("type", "subscribed"),
    );
    wait_answering(x, "the approval", |e| {
        e.name() == "presence" && e.type_() == Some("subscribed") && bare(e) == y_bare
    })
    .await;
}

/// `publisher` publishes a tune; `contact` gets the notification.
/// Whether the publisher's server learnt the contact's interest before or
/// after the publish, the item comes (the last item goes out when
/// interest begins).
pub async fn tune_reaches(publisher: &mut ClientLink, contact: &mut ClientLink, title: &str) {
    let from = publisher.jid.to_bare().to_string();
    publisher.sender().send(publish_tune(title));
    let got = wait_answering(contact, &format!("{from}'s tune"), |e| {
        e.name() == "message" && bare(e) == from && notified_tune(e).is_some()
    })
    .await;
    assert_eq!(notified_tune(&got).as_deref(), Some(title), "{got}");
}

/// Publishes a tune titled `title` to our PEP service.
pub fn publish_tune(title: &str) -> Element {
    Element::new("iq", NS_CLIENT)
        .attr("type", "set")
        .attr("id", format!("pub-{title}"))
        .child(Element::new("pubsub", NS_PUBSUB).child(
            Element::new("publish", NS_PUBSUB).attr("node", TUNE).child(
                Element::new("item", NS_PUBSUB).attr("id", "current").child(
                    Element::new("tune", TUNE).child(Element::new("title", TUNE).text(title)),
                ),
            ),
        ))
}

/// The title of the tune a PEP notification carries.
pub fn notified_tune(e: &Element) -> Option<String> {
    e.get_child("event", NS_PUBSUB_EVENT)?
        .get_child("items", NS_PUBSUB_EVENT)
        .filter(|i| i.get_attr("node") == Some(TUNE))?
        .get_child("item", NS_PUBSUB_EVENT)?
        .get_child("tune", TUNE)?
        .get_child_text("title", TUNE)
}

/// Joins `room` (a bare room JID) as `nick`; returns when our own
/// presence (status 110) comes back.
pub async fn join(link: &mut ClientLink, room: &str, nick: &str) {
    link.sender().send(
        Element::new("presence", NS_CLIENT)
            .attr("to", format!("{room}/{nick}"))
            .child(Element::new("x", NS_MUC)),
    );
    let own = format!("{room}/{nick}");
    let p = wait_answering(link, &format!("our presence in {room}"), |e| {
        e.name() == "presence" && e.from() == Some(own.as_str())
    })
    .await;
    assert_ne!(p.type_(), Some("error"), "joining {room}: {p}");
    let created = p
        .get_child("x", NS_MUC_USER)
        .is_some_and(|x| x.children().any(|c| c.get_attr("code") == Some("201")));
    if created {
        // A new room may be locked until configured: ask for an instant
        // room (XEP-0045 §10.1.2).
        link.sender().send(
            Element::new("iq", NS_CLIENT)
                .attr("type", "set")
                .attr("to", room)
                .attr("id", "instant")
                .child(
                    Element::new("query", "http://jabber.org/protocol/muc#owner")
                        .child(Element::new("x", "jabber:x:data").attr("type", "submit")),
                ),
        );
        let r = wait_answering(link, "the instant room", |e| e.id() == Some("instant")).await;
        assert_eq!(r.type_(), Some("result"), "{r}");
    }
}

/// Waits for `nick`'s presence in `room`.
pub async fn sees_occupant(link: &mut ClientLink, room: &str, nick: &str) {
    let full = format!("{room}/{nick}");
    wait_answering(link, &format!("{full}'s presence"), |e| {
        e.name() == "presence"
            && e.from() == Some(full.as_str())
            && e.type_().is_none()
            && e.get_child("x", NS_MUC_USER).is_some()
    })
    .await;
}

/// Sends a groupchat message to `room` and waits for it to come back.
pub async fn say(link: &mut ClientLink, room: &str, text: &str) {
    link.sender().send(
        Element::new("message", NS_CLIENT)
            .attr("to", room)
            .attr("type", "groupchat")
            .child(Element::new("body", NS_CLIENT).text(text)),
    );
}

/// Waits for `nick`'s groupchat message `text` in `room`.
pub async fn hears(link: &mut ClientLink, room: &str, nick: &str, text: &str) {
    let full = format!("{room}/{nick}");
    wait_answering(link, &format!("{full} saying {text:?}"), |e| {
        e.name() == "message"
            && e.type_() == Some("groupchat")
            && e.from() == Some(full.as_str())
            && body(e).as_deref() == Some(text)
    })
    .await;
}
