//! mod_adhoc (XEP-0050 commands: registry, permissions, disco, one-stage
//! forms, sessions) and mod_vcard / mod_vcard_legacy (XEP-0054 vcard-temp,
//! the XEP-0153 presence stamp).

use crate::im_common;

use im_common::*;
use modules::adhoc::{self, Command, Field, FieldValue, Form, Permission, Reply};
use xmpp_core::stanza::Element;
use xmpp_core::{Table, Value};

const CMD: &str = "http://jabber.org/protocol/commands";
const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";
const DATA: &str = "jabber:x:data";
const VCARD: &str = "vcard-temp";
const UPDATE: &str = "vcard-temp:x:update";

fn admins() -> Setup {
    Setup {
        global: vec![(
            "admins",
            Value::Table(Table {
                seq: vec![Value::str("boss@localhost")],
                ..Table::default()
            }),
        )],
        ..Setup::default()
    }
}

fn with_adhoc() -> Harness {
    let mut mods = IM_MODULES.to_vec();
    mods.push("adhoc");
    let h = Harness::with(&["boss", "user"], &mods, admins());
    let layout = Form {
        title: Some("Echo".into()),
        instructions: None,
        fields: vec![
            Field::new("FORM_TYPE", "hidden").value("urn:test:echo"),
            Field::new("text", "text-single").required().label("Text"),
        ],
    };
    let echo = adhoc::simple_form(layout, None, |_, fields, errors| {
        if !errors.is_empty() {
            return Reply::completed().error_note(adhoc::errors_text(&errors));
        }
        let text = fields
            .get("text")
            .and_then(FieldValue::as_text)
            .unwrap_or("");
        Reply::completed().info(format!("You said: {text}"))
    });
    adhoc::register(
        &h.host,
        Command::new("Echo", "urn:test:echo", Permission::Admin, echo),
    );
    adhoc::register(
        &h.host,
        Command::new("Hello", "urn:test:hello", Permission::Any, |_| {
            Reply::completed().info("hello")
        }),
    );
    h
}

fn command(node: &str, sessionid: Option<&str>, text: Option<&str>) -> Element {
    let mut c = Element::new("command", CMD)
        .attr("node", node)
        .attr_opt("sessionid", sessionid);
    if let Some(t) = text {
        c.push_child(
            Element::new("x", DATA).attr("type", "submit").child(
                Element::new("field", DATA)
                    .attr("var", "text")
                    .child(Element::new("value", DATA).text(t)),
            ),
        );
    }
    iq("set", "c1", Some("localhost"), c)
}

fn item_nodes(r: &Element) -> Vec<String> {
    r.get_child("query", ITEMS)
        .map(|q| {
            q.children()
                .filter_map(|i| i.get_attr("node").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn command_list_follows_permissions() {
    let h = with_adhoc();
    let mut boss = h.connect("boss", "1");
    let mut user = h.connect("user", "1");
    let list = || {
        iq(
            "get",
            "d1",
            Some("localhost"),
            query(ITEMS).attr("node", CMD),
        )
    };
    let r = boss.iq(list());
    assert_eq!(item_nodes(&r), ["urn:test:echo", "urn:test:hello"]);
    let item = r
        .get_child("query", ITEMS)
        .unwrap()
        .children()
        .next()
        .unwrap();
    assert_eq!(item.get_attr("jid"), Some("localhost"));
    assert_eq!(item.get_attr("name"), Some("Echo"));
    assert_eq!(item_nodes(&user.iq(list())), ["urn:test:hello"]);

    // The host announces the feature; a command node describes itself.
    let r = user.iq(iq("get", "d2", Some("localhost"), query(INFO)));
    let q = r.get_child("query", INFO).unwrap();
    assert!(q.children().any(|f| f.get_attr("var") == Some(CMD)));
    let r = boss.iq(iq(
        "get",
        "d3",
        Some("localhost"),
        query(INFO).attr("node", "urn:test:echo"),
    ));
    let q = r.get_child("query", INFO).expect("node info");
    let id = q.children().find(|c| c.name() == "identity").unwrap();
    assert_eq!(id.get_attr("type"), Some("command-node"));
    assert_eq!(id.get_attr("category"), Some("automation"));
    let r = user.iq(iq(
        "get",
        "d4",
        Some("localhost"),
        query(INFO).attr("node", "urn:test:echo"),
    ));
    assert_eq!(r.type_(), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
}

#[test]
fn forbidden_execution_is_canceled_with_a_note() {
    let h = with_adhoc();
    let mut user = h.connect("user", "1");
    let r = user.iq(command("urn:test:echo", None, Some("hi")));
    assert_eq!(r.type_(), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let c = r.get_child("command", CMD).expect("canceled command");
    assert_eq!(c.get_attr("status"), Some("canceled"));
    let note = c.get_child("note", CMD).unwrap();
    assert_eq!(note.get_attr("type"), Some("error"));
    assert_eq!(
        note.text_content(),
        "You don't have permission to execute this command"
    );
    // Unknown nodes are not ours: the router's service-unavailable.
    let r = user.iq(command("urn:test:nothing", None, None));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn one_stage_form_in_two_steps_or_one() {
    let h = with_adhoc();
    let mut boss = h.connect("boss", "1");
    // Without a form: the form, executing, with a session.
    let r = boss.iq(command("urn:test:echo", None, None));
    let c = r.get_child("command", CMD).expect("command");
    assert_eq!(c.get_attr("status"), Some("executing"));
    let sid = c.get_attr("sessionid").expect("sessionid").to_string();
    let actions = c.get_child("actions", CMD).unwrap();
    assert_eq!(actions.get_attr("execute"), Some("complete"));
    let names: Vec<&str> = actions.children().map(Element::name).collect();
    assert_eq!(names, ["next", "complete"]);
    let x = c.get_child("x", DATA).expect("form");
    assert_eq!(x.get_attr("type"), Some("form"));
    // Submitted in the session: completed, same session id.
    let r = boss.iq(command("urn:test:echo", Some(&sid), Some("hi")));
    let c = r.get_child("command", CMD).unwrap();
    assert_eq!(c.get_attr("status"), Some("completed"));
    assert_eq!(c.get_attr("sessionid"), Some(sid.as_str()));
    assert_eq!(
        c.get_child("note", CMD).unwrap().text_content(),
        "You said: hi"
    );
    // Straight away with the form (what muc_create_destroy.scs does).
    let r = boss.iq(command("urn:test:echo", None, Some("again")));
    let c = r.get_child("command", CMD).unwrap();
    assert_eq!(c.get_attr("status"), Some("completed"));
    assert!(c.get_attr("sessionid").is_some());
    // A form missing a required field completes with the problem as an error note.
    let bad = iq(
        "set",
        "c2",
        Some("localhost"),
        Element::new("command", CMD)
            .attr("node", "urn:test:echo")
            .child(Element::new("x", DATA).attr("type", "submit")),
    );
    let r = boss.iq(bad);
    let note = r
        .get_child("command", CMD)
        .unwrap()
        .get_child("note", CMD)
        .unwrap();
    assert_eq!(note.get_attr("type"), Some("error"));
    assert_eq!(note.text_content(), "text: Required value missing");
    // Cancel in a session.
    let r = boss.iq(command("urn:test:echo", None, None));
    let sid = r
        .get_child("command", CMD)
        .unwrap()
        .get_attr("sessionid")
        .unwrap()
        .to_string();
    let cancel = iq(
        "set",
        "c3",
        Some("localhost"),
        Element::new("command", CMD)
            .attr("node", "urn:test:echo")
            .attr("sessionid", sid.as_str())
            .attr("action", "cancel"),
    );
    let r = boss.iq(cancel);
    assert_eq!(
        r.get_child("command", CMD).unwrap().get_attr("status"),
        Some("canceled")
    );
}

fn vcard_harness(module: &str) -> Harness {
    let mut mods = IM_MODULES.to_vec();
    mods.push(module);
    Harness::with(&["romeo", "juliet"], &mods, Setup::default())
}

fn romeo_vcard(photo: Option<&str>) -> Element {
    let mut v = Element::new("vCard", VCARD)
        .child(Element::new("FN", VCARD).text("Romeo Montague"))
        .child(Element::new("N", VCARD).child(Element::new("FAMILY", VCARD).text("Montague")));
    if let Some(p) = photo {
        v.push_child(
            Element::new("PHOTO", VCARD)
                .child(Element::new("TYPE", VCARD).text("image/png"))
                .child(Element::new("BINVAL", VCARD).text(p)),
        );
    }
    v
}

#[test]
fn vcard_temp_set_and_get() {
    for module in ["vcard", "vcard_legacy"] {
        let h = vcard_harness(module);
        let mut romeo = h.connect("romeo", "1");
        let mut juliet = h.connect("juliet", "1");
        // Nothing stored yet.
        let r = juliet.iq(iq(
            "get",
            "g0",
            Some("romeo@localhost"),
            Element::new("vCard", VCARD),
        ));
        if module == "vcard" {
            assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
        } else {
            let v = r.get_child("vCard", VCARD).expect("empty vCard");
            assert_eq!(v.children().count(), 0);
        }
        let r = romeo.iq(iq("set", "s1", None, romeo_vcard(None)));
        assert_eq!(r.type_(), Some("result"), "{module}: {}", r.to_xml());
        assert_eq!(r.children().count(), 0);
        for (c, to) in [(&mut romeo, None), (&mut juliet, Some("romeo@localhost"))] {
            let r = c.iq(iq("get", "g1", to, Element::new("vCard", VCARD)));
            let v = r.get_child("vCard", VCARD).expect("vCard");
            assert_eq!(
                v.get_child_text("FN", VCARD).as_deref(),
                Some("Romeo Montague")
            );
            assert_eq!(
                v.get_child("N", VCARD)
                    .unwrap()
                    .get_child_text("FAMILY", VCARD)
                    .as_deref(),
                Some("Montague")
            );
        }
        // Kept as Prosody keeps it: the preserialized element in the `vcard` store.
        let stored = modules::vcard::get_vcard(&h.host, Some("romeo"))
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.get_child_text("FN", VCARD).as_deref(),
            Some("Romeo Montague")
        );
    }
    // mod_vcard: setting someone else's vCard is forbidden.
    let h = vcard_harness("vcard");
    let mut juliet = h.connect("juliet", "1");
    let r = juliet.iq(iq("set", "s2", Some("romeo@localhost"), romeo_vcard(None)));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
}

fn update_photo(p: &Element) -> Option<Option<String>> {
    let xs: Vec<&Element> = p.children().filter(|c| c.is("x", UPDATE)).collect();
    assert!(xs.len() <= 1, "one x:update at most: {}", p.to_xml());
    xs.first().map(|x| {
        let photo = x.get_child("photo", UPDATE).expect("photo");
        Some(photo.text_content()).filter(|t| !t.is_empty())
    })
}

#[test]
fn presence_carries_the_avatar_hash() {
    let h = vcard_harness("vcard_legacy");
    let mut romeo = h.connect("romeo", "1");
    romeo.send(presence());
    let own = romeo.drain();
    let p = own
        .iter()
        .find(|e| e.name() == "presence")
        .expect("own presence");
    assert_eq!(
        update_photo(p),
        Some(None),
        "empty <photo/>: {}",
        p.to_xml()
    );

    // A vCard with a photo: its SHA-1 ("hello"), replacing what the client put.
    romeo.iq(iq("set", "s1", None, romeo_vcard(Some("aGVsbG8="))));
    let client_stamp = presence()
        .child(Element::new("x", UPDATE).child(Element::new("photo", UPDATE).text("0000")));
    romeo.send(client_stamp);
    let own = romeo.drain();
    let p = own
        .iter()
        .find(|e| e.name() == "presence")
        .expect("own presence");
    assert_eq!(
        update_photo(p),
        Some(Some("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d".to_string()))
    );

    // Unavailable presence is left alone.
    let juliet = h.connect("juliet", "1");
    juliet.send(presence_to("romeo@localhost", Some("subscribe")));
    romeo.send(presence().attr("type", "unavailable"));
    for p in romeo.drain().iter().filter(|e| e.name() == "presence") {
        assert_eq!(update_photo(p), None, "{}", p.to_xml());
    }
}
