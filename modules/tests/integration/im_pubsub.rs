//! mod_pubsub, the XEP-0060 component, beyond Prosody's scansion scripts:
//! Prosody's storage layout both ways, instant nodes, access models and
//! affiliations, `max_items` trimming and limits, subscription errors,
//! notifications of retract and delete, preconditions and auto-creation.

use crate::im_common;

use im_common::*;
use xmpp_core::stanza::Element;
use xmpp_core::{Table, Value};

const SERVICE: &str = "pubsub.localhost";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DATA: &str = "jabber:x:data";

/// The server with the pubsub component on Prosody's `internal` storage
/// (the directory lives as long as the harness is used).
fn harness(component_opts: Vec<(&'static str, Value)>) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let admins = Value::Table(Table {
        seq: vec![Value::str("boss@localhost")],
        ..Table::default()
    });
    let setup = Setup {
        global: vec![("admins", admins)],
        extra_hosts: vec![(SERVICE, true, component_opts)],
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let h = Harness::with(&["boss", "romeo", "juliet"], IM_MODULES, setup);
    let comp = h.server.host(SERVICE).unwrap();
    modules::load_module(&h.server, &comp, "iq").unwrap();
    modules::load_module(&h.server, &comp, "pubsub").unwrap();
    (h, dir)
}

fn ps(action: Element) -> Element {
    Element::new("pubsub", PUBSUB).child(action)
}

fn owner(action: Element) -> Element {
    Element::new("pubsub", OWNER).child(action)
}

fn create(node: &str) -> Element {
    ps(Element::new("create", PUBSUB).attr("node", node))
}

fn publish(node: &str, id: &str, text: &str) -> Element {
    ps(Element::new("publish", PUBSUB).attr("node", node).child(
        Element::new("item", PUBSUB)
            .attr("id", id)
            .child(Element::new("entry", "urn:test").text(text)),
    ))
}

fn config_form(fields: &[(&str, &str)]) -> Element {
    let mut x = Element::new("x", DATA).attr("type", "submit").child(
        Element::new("field", DATA).attr("var", "FORM_TYPE").child(
            Element::new("value", DATA).text("http://jabber.org/protocol/pubsub#node_config"),
        ),
    );
    for (var, value) in fields {
        x.push_child(
            Element::new("field", DATA)
                .attr("var", *var)
                .child(Element::new("value", DATA).text(*value)),
        );
    }
    x
}

fn configure(node: &str, fields: &[(&str, &str)]) -> Element {
    owner(
        Element::new("configure", OWNER)
            .attr("node", node)
            .child(config_form(fields)),
    )
}

fn item_ids(reply: &Element) -> Vec<String> {
    reply
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.children()
                .filter_map(|c| c.get_attr("id").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn get_items(node: &str) -> Element {
    ps(Element::new("items", PUBSUB).attr("node", node))
}

fn pubsub_error(reply: &Element) -> Option<String> {
    let err = reply.get_child("error", xmpp_core::stanza::NS_CLIENT)?;
    err.children()
        .find(|c| c.ns() == ERRORS)
        .map(|c| c.name().to_string())
}

#[track_caller]
fn ok(reply: Element) -> Element {
    assert_eq!(reply.type_(), Some("result"), "{}", reply.to_xml());
    reply
}

#[test]
fn stores_as_prosody_and_reads_prosody_data_in_place() {
    let (h, _dir) = harness(vec![("expose_publisher", Value::Bool(true))]);
    let mut boss = h.connect("boss", "1");
    ok(boss.iq(iq("set", "c", Some(SERVICE), create("news"))));
    ok(boss.iq(iq(
        "set",
        "p",
        Some(SERVICE),
        publish("news", "one", "hello"),
    )));
    let comp = h.server.host(SERVICE).unwrap();
    let node = comp
        .open_keyval("pubsub_nodes")
        .unwrap()
        .get(Some("news"))
        .unwrap();
    let node = node
        .as_ref()
        .and_then(Value::as_table)
        .expect("node stored by name");
    assert_eq!(node.get("name").and_then(Value::as_str), Some("news"));
    let affs = node.get("affiliations").and_then(Value::as_table).unwrap();
    assert_eq!(
        affs.get("boss@localhost").and_then(Value::as_str),
        Some("owner")
    );
    let all = xmpp_core::storage::ArchiveQuery::default();
    let items = comp
        .open_archive("pubsub_news")
        .unwrap()
        .find(None, &all)
        .unwrap();
    assert_eq!(items.len(), 1, "items in pubsub_<node>, no user");
    assert_eq!(items[0].key, "one");
    assert_eq!(items[0].with, "boss@localhost");
    // A node Prosody wrote: config with only what was set, an item.
    let mut config = Table::new();
    config.insert("title", Value::str("Old"));
    let mut subs = Table::new();
    subs.insert("juliet@localhost/1", Value::Bool(true));
    let mut t = Table::new();
    t.insert("name", Value::str("old"));
    t.insert("config", Value::Table(config));
    t.insert("subscribers", Value::Table(subs));
    t.insert("affiliations", Value::Table(Table::new()));
    comp.open_keyval("pubsub_nodes")
        .unwrap()
        .set(Some("old"), Some(Value::Table(t)))
        .unwrap();
    comp.open_archive("pubsub_old")
        .unwrap()
        .append_keyed(
            None,
            "it",
            &Element::new("entry", "urn:test").text("from prosody"),
            NOW,
            "romeo@localhost",
        )
        .unwrap();
    let mut juliet = h.connect("juliet", "1");
    let r = ok(juliet.iq(iq("get", "g", Some(SERVICE), get_items("old"))));
    assert_eq!(item_ids(&r), ["it"]);
    let item = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("items", PUBSUB)
        .unwrap();
    let item = item.first_child().unwrap();
    assert_eq!(item.get_attr("publisher"), Some("romeo@localhost"));
    // Its stored subscriber gets the next notification.
    ok(boss.iq(iq("set", "p2", Some(SERVICE), publish("old", "new", "x"))));
    let msg = juliet.recv();
    assert_eq!(msg.get_attr("from"), Some(SERVICE));
    let items = msg
        .get_child("event", EVENT)
        .unwrap()
        .get_child("items", EVENT)
        .unwrap();
    assert_eq!(items.get_attr("node"), Some("old"));
    // The form shows mod_pubsub's defaults and the stored title.
    let r = ok(boss.iq(iq(
        "get",
        "cf",
        Some(SERVICE),
        owner(Element::new("configure", OWNER).attr("node", "old")),
    )));
    let x = r
        .get_child("pubsub", OWNER)
        .and_then(|p| p.get_child("configure", OWNER))
        .and_then(|c| c.get_child("x", DATA))
        .unwrap();
    let value = |var: &str| {
        x.children()
            .find(|f| f.get_attr("var") == Some(var))
            .and_then(|f| f.get_child("value", DATA))
            .map(|v| v.text_content())
    };
    assert_eq!(value("pubsub#title").as_deref(), Some("Old"));
    assert_eq!(value("pubsub#max_items").as_deref(), Some("20"));
    assert_eq!(value("pubsub#access_model").as_deref(), Some("open"));
    assert_eq!(
        value("pubsub#send_last_published_item").as_deref(),
        Some("never")
    );
}

#[test]
fn instant_nodes_and_who_may_create() {
    let (h, _dir) = harness(vec![]);
    let mut boss = h.connect("boss", "1");
    let r = ok(boss.iq(iq(
        "set",
        "c",
        Some(SERVICE),
        ps(Element::new("create", PUBSUB)),
    )));
    let name = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("create", PUBSUB))
        .and_then(|c| c.get_attr("node"))
        .expect("the generated name")
        .to_string();
    assert_eq!(name.len(), 36);
    let r = boss.iq(iq("set", "c2", Some(SERVICE), create(&name)));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    let mut romeo = h.connect("romeo", "1");
    let r = romeo.iq(iq("set", "c3", Some(SERVICE), create("mine")));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // Nor may a non-owner delete, purge or configure.
    for (id, action) in [
        (
            "d",
            owner(Element::new("delete", OWNER).attr("node", name.as_str())),
        ),
        (
            "pu",
            owner(Element::new("purge", OWNER).attr("node", name.as_str())),
        ),
        ("cf", configure(&name, &[("pubsub#title", "x")])),
    ] {
        let r = romeo.iq(iq("set", id, Some(SERVICE), action));
        assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{id}");
    }
    // Create-and-configure with a model mod_pubsub refuses.
    let form = ps(Element::new("create", PUBSUB).attr("node", "p")).child(
        Element::new("configure", PUBSUB)
            .child(config_form(&[("pubsub#access_model", "presence")])),
    );
    let r = boss.iq(iq("set", "c4", Some(SERVICE), form));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
}

#[test]
fn whitelist_and_affiliations() {
    let (h, _dir) = harness(vec![]);
    let mut boss = h.connect("boss", "1");
    ok(boss.iq(iq("set", "c", Some(SERVICE), create("club"))));
    ok(boss.iq(iq(
        "set",
        "cf",
        Some(SERVICE),
        configure("club", &[("pubsub#access_model", "whitelist")]),
    )));
    let mut juliet = h.connect("juliet", "1");
    let r = juliet.iq(iq("get", "g", Some(SERVICE), get_items("club")));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let sub = ps(Element::new("subscribe", PUBSUB)
        .attr("node", "club")
        .attr("jid", juliet.full()));
    let r = juliet.iq(iq("set", "s", Some(SERVICE), sub.clone()));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let set = owner(
        Element::new("affiliations", OWNER)
            .attr("node", "club")
            .child(
                Element::new("affiliation", OWNER)
                    .attr("jid", "juliet@localhost")
                    .attr("affiliation", "member"),
            ),
    );
    ok(boss.iq(iq("set", "a", Some(SERVICE), set)));
    ok(juliet.iq(iq("get", "g2", Some(SERVICE), get_items("club"))));
    ok(juliet.iq(iq("set", "s2", Some(SERVICE), sub)));
    // A member may not publish; a bad affiliation changes nothing.
    let r = juliet.iq(iq("set", "p", Some(SERVICE), publish("club", "i", "x")));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let bad = owner(
        Element::new("affiliations", OWNER)
            .attr("node", "club")
            .child(
                Element::new("affiliation", OWNER)
                    .attr("jid", "juliet@localhost")
                    .attr("affiliation", "emperor"),
            ),
    );
    assert_eq!(
        error_condition(&boss.iq(iq("set", "a2", Some(SERVICE), bad))).as_deref(),
        Some("bad-request")
    );
    let r = ok(boss.iq(iq(
        "get",
        "a3",
        Some(SERVICE),
        owner(Element::new("affiliations", OWNER).attr("node", "club")),
    )));
    let list: Vec<(String, String)> = r
        .get_child("pubsub", OWNER)
        .and_then(|p| p.get_child("affiliations", OWNER))
        .unwrap()
        .children()
        .map(|a| {
            (
                a.get_attr("jid").unwrap().to_string(),
                a.get_attr("affiliation").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        list,
        [
            ("boss@localhost".to_string(), "owner".to_string()),
            ("juliet@localhost".to_string(), "member".to_string())
        ]
    );
    let r = ok(boss.iq(iq(
        "get",
        "s3",
        Some(SERVICE),
        owner(Element::new("subscriptions", OWNER).attr("node", "club")),
    )));
    let subs = r
        .get_child("pubsub", OWNER)
        .unwrap()
        .get_child("subscriptions", OWNER)
        .unwrap();
    assert_eq!(
        subs.children().next().and_then(|s| s.get_attr("jid")),
        Some(juliet.full().as_str())
    );
}

#[test]
fn max_items_trims_and_is_bounded() {
    let (h, _dir) = harness(vec![("pubsub_max_items", Value::Integer(10))]);
    let mut boss = h.connect("boss", "1");
    ok(boss.iq(iq("set", "c", Some(SERVICE), create("n"))));
    for id in ["a", "b", "c"] {
        ok(boss.iq(iq("set", id, Some(SERVICE), publish("n", id, id))));
    }
    // Republishing an id replaces the item.
    ok(boss.iq(iq("set", "b2", Some(SERVICE), publish("n", "b", "again"))));
    let r = ok(boss.iq(iq("get", "g", Some(SERVICE), get_items("n"))));
    assert_eq!(item_ids(&r), ["a", "c", "b"]);
    ok(boss.iq(iq(
        "set",
        "cf",
        Some(SERVICE),
        configure("n", &[("pubsub#max_items", "2")]),
    )));
    let r = ok(boss.iq(iq("get", "g2", Some(SERVICE), get_items("n"))));
    assert_eq!(item_ids(&r), ["c", "b"]);
    let r = boss.iq(iq(
        "set",
        "cf2",
        Some(SERVICE),
        configure("n", &[("pubsub#max_items", "11")]),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    ok(boss.iq(iq(
        "set",
        "cf3",
        Some(SERVICE),
        configure("n", &[("pubsub#max_items", "max")]),
    )));
    let r = boss.iq(iq(
        "set",
        "cf4",
        Some(SERVICE),
        configure("n", &[("pubsub#max_items", "zero")]),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
}

#[test]
fn subscription_errors() {
    let (h, _dir) = harness(vec![]);
    let mut boss = h.connect("boss", "1");
    let mut romeo = h.connect("romeo", "1");
    let juliet = h.connect("juliet", "1");
    let sub = |node: &str, jid: &str| {
        ps(Element::new("subscribe", PUBSUB)
            .attr("node", node)
            .attr("jid", jid))
    };
    let unsub = |node: &str, jid: &str| {
        ps(Element::new("unsubscribe", PUBSUB)
            .attr("node", node)
            .attr("jid", jid))
    };
    let r = romeo.iq(iq(
        "set",
        "s0",
        Some(SERVICE),
        sub("nowhere", &romeo.full()),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    ok(boss.iq(iq("set", "c", Some(SERVICE), create("n"))));
    let r = romeo.iq(iq("set", "s1", Some(SERVICE), sub("n", &juliet.full())));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    assert_eq!(pubsub_error(&r).as_deref(), Some("invalid-jid"));
    let r = romeo.iq(iq("set", "u1", Some(SERVICE), unsub("n", &romeo.full())));
    assert_eq!(error_condition(&r).as_deref(), Some("unexpected-request"));
    assert_eq!(pubsub_error(&r).as_deref(), Some("not-subscribed"));
    let r = romeo.iq(iq(
        "set",
        "s2",
        Some(SERVICE),
        ps(Element::new("subscribe", PUBSUB).attr("node", "n")),
    ));
    assert_eq!(pubsub_error(&r).as_deref(), Some("invalid-jid"));
    // An owner may subscribe someone else.
    ok(boss.iq(iq("set", "s3", Some(SERVICE), sub("n", &juliet.full()))));
    let r = ok(juliet_subscriptions(&h, &juliet));
    let list = r
        .get_child("pubsub", PUBSUB)
        .unwrap()
        .get_child("subscriptions", PUBSUB)
        .unwrap();
    assert_eq!(list.children().count(), 1);
}

fn juliet_subscriptions(h: &Harness, _juliet: &Client) -> Element {
    let mut j2 = h.connect("juliet", "2");
    j2.iq(iq(
        "get",
        "ls",
        Some(SERVICE),
        ps(Element::new("subscriptions", PUBSUB)),
    ))
}

#[test]
fn retract_and_delete_notify_subscribers() {
    let (h, _dir) = harness(vec![]);
    let mut boss = h.connect("boss", "1");
    let mut juliet = h.connect("juliet", "1");
    ok(boss.iq(iq("set", "c", Some(SERVICE), create("n"))));
    let sub = ps(Element::new("subscribe", PUBSUB)
        .attr("node", "n")
        .attr("jid", juliet.full()));
    ok(juliet.iq(iq("set", "s", Some(SERVICE), sub)));
    ok(boss.iq(iq("set", "p", Some(SERVICE), publish("n", "i1", "x"))));
    let msg = juliet.recv();
    let item = msg
        .get_child("event", EVENT)
        .unwrap()
        .get_child("items", EVENT)
        .unwrap()
        .first_child()
        .unwrap();
    assert_eq!(item.get_attr("id"), Some("i1"));
    assert_eq!(
        item.get_attr("publisher"),
        None,
        "expose_publisher is off by default"
    );
    let retract = ps(Element::new("retract", PUBSUB)
        .attr("node", "n")
        .attr("notify", "1")
        .child(Element::new("item", PUBSUB).attr("id", "i1")));
    ok(boss.iq(iq("set", "r", Some(SERVICE), retract.clone())));
    let msg = juliet.recv();
    let items = msg
        .get_child("event", EVENT)
        .unwrap()
        .get_child("items", EVENT)
        .unwrap();
    assert_eq!(
        items.first_child().map(|r| r.name().to_string()).as_deref(),
        Some("retract")
    );
    let r = boss.iq(iq("set", "r2", Some(SERVICE), retract));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    ok(boss.iq(iq(
        "set",
        "d",
        Some(SERVICE),
        owner(Element::new("delete", OWNER).attr("node", "n")),
    )));
    let msg = juliet.recv();
    assert!(
        msg.get_child("event", EVENT)
            .unwrap()
            .get_child("delete", EVENT)
            .is_some()
    );
    juliet.expect_nothing();
    let r = boss.iq(iq("get", "g", Some(SERVICE), get_items("n")));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn preconditions_and_autocreate() {
    let (h, _dir) = harness(vec![("autocreate_on_publish", Value::Bool(true))]);
    let mut boss = h.connect("boss", "1");
    let with_options = |node: &str, model: &str| {
        publish(node, "i", "x").child(
            Element::new("publish-options", PUBSUB)
                .child(config_form(&[("pubsub#access_model", model)])),
        )
    };
    // Auto-created with the options as its configuration.
    ok(boss.iq(iq(
        "set",
        "p",
        Some(SERVICE),
        with_options("auto", "whitelist"),
    )));
    let r = boss.iq(iq("set", "p2", Some(SERVICE), with_options("auto", "open")));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    assert_eq!(pubsub_error(&r).as_deref(), Some("precondition-not-met"));
    ok(boss.iq(iq(
        "set",
        "p3",
        Some(SERVICE),
        with_options("auto", "whitelist"),
    )));
    // Only owners auto-create.
    let mut romeo = h.connect("romeo", "1");
    let r = romeo.iq(iq("set", "p4", Some(SERVICE), publish("other", "i", "x")));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // Without the option, publishing to a missing node fails.
    let (h, _dir2) = harness(vec![]);
    let mut boss = h.connect("boss", "1");
    let r = boss.iq(iq("set", "p5", Some(SERVICE), publish("missing", "i", "x")));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}
