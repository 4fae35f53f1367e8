//! mod_roster: get/set/remove, versioning, pushes, errors, and the stored
//! format (Prosody's `roster` keyval table with its `[false]` metadata).

use crate::im_common;

use im_common::*;
use xmpp_core::stanza::Element;
use xmpp_core::{Table, Value};

const NS: &str = "jabber:iq:roster";

fn item(jid: &str) -> Element {
    Element::new("item", NS).attr("jid", jid)
}

fn set(id: &str, item: Element) -> Element {
    iq("set", id, None, query(NS).child(item))
}

#[test]
fn empty_roster_then_add_push_and_get() {
    let h = Harness::new(&["user", "nurse"]);
    let mut romeo = h.connect("user", "r1");

    // basic_roster.scs: the first get has ver='1' and no items.
    let r = romeo.iq(iq("get", "roster1", None, query(NS)));
    assert_eq!(r.type_(), Some("result"));
    let q = r.get_child("query", NS).expect("query");
    assert_eq!(q.get_attr("ver"), Some("1"));
    assert_eq!(q.children().count(), 0);

    romeo.send(set("roster2", item("nurse@localhost")));
    let got = romeo.drain();
    assert_eq!(got.len(), 2, "result then push:\n{}", xml_list(&got));
    assert_eq!(got[0].type_(), Some("result"));
    assert_eq!(got[0].id(), Some("roster2"));
    assert!(got[0].children().next().is_none());
    assert!(is_roster_push(&got[1]));
    assert!(got[1].id().is_some_and(|i| !i.is_empty()));
    assert_eq!(got[1].to(), None);
    assert_eq!(
        push_item(&got[1]),
        ("nurse@localhost".into(), "none".into(), None)
    );
    assert_eq!(
        got[1]
            .get_child("query", NS)
            .and_then(|q| q.get_attr("ver")),
        Some("1")
    );

    let r = romeo.iq(iq("get", "roster3", None, query(NS)));
    assert_eq!(
        roster_items(&r),
        vec![("nurse@localhost".to_string(), "none".to_string(), None)]
    );
}

#[test]
fn versioning_returns_empty_result_when_current() {
    let h = Harness::new(&["user"]);
    let mut c = h.connect("user", "r");
    c.send(set("a", item("x@localhost")));
    c.send(set("b", item("y@localhost")));
    c.drain();
    let r = c.iq(iq("get", "g1", None, query(NS)));
    let ver = r
        .get_child("query", NS)
        .and_then(|q| q.get_attr("ver"))
        .expect("ver")
        .to_string();
    assert_eq!(ver, "2");
    let r = c.iq(iq("get", "g2", None, query(NS).attr("ver", ver.as_str())));
    assert_eq!(r.type_(), Some("result"));
    assert!(
        r.get_child("query", NS).is_none(),
        "current version: empty result"
    );
    // A stale or empty version gets the whole roster.
    for stale in ["1", "", "garbage"] {
        let r = c.iq(iq("get", "g3", None, query(NS).attr("ver", stale)));
        assert_eq!(roster_items(&r).len(), 2, "ver={stale:?}");
    }
}

#[test]
fn name_and_groups_are_kept_and_pushed() {
    let h = Harness::new(&["user"]);
    let mut c = h.connect("user", "r");
    c.iq(iq("get", "g", None, query(NS)));
    let it = item("Juliet@LOCALHOST")
        .attr("name", "Juliet")
        .child(Element::new("group", NS).text("Capulets"))
        .child(Element::new("group", NS).text("Friends"));
    c.send(set("s1", it));
    let got = c.drain();
    let push = got.iter().find(|e| is_roster_push(e)).expect("push");
    let pi = push
        .get_child("query", NS)
        .and_then(|q| q.get_child("item", NS))
        .unwrap();
    assert_eq!(
        pi.get_attr("jid"),
        Some("juliet@localhost"),
        "the JID is normalised"
    );
    assert_eq!(pi.get_attr("name"), Some("Juliet"));
    let groups: Vec<String> = pi.children().map(Element::text_content).collect();
    assert_eq!(groups, ["Capulets", "Friends"]);

    // Stored as Prosody stores it.
    let stored = h.stored_roster("user").expect("saved");
    let entry = stored.get("juliet@localhost").expect("item");
    assert_eq!(
        entry.get("subscription").and_then(Value::as_str),
        Some("none")
    );
    assert_eq!(entry.get("name").and_then(Value::as_str), Some("Juliet"));
    assert_eq!(
        entry.get("groups").and_then(|g| g.get("Capulets")),
        Some(&Value::Bool(true))
    );
    let meta = stored.get("false").expect("[false] metadata");
    assert_eq!(meta.get("version"), Some(&Value::Integer(1)));
    assert_eq!(meta.get("pending"), Some(&Value::Table(Table::new())));

    // Renaming keeps the subscription; an empty name removes it.
    c.send(set("s2", item("juliet@localhost").attr("name", "")));
    c.drain();
    let stored = h.stored_roster("user").unwrap();
    assert!(
        stored
            .get("juliet@localhost")
            .and_then(|e| e.get("name"))
            .is_none()
    );
}

#[test]
fn remove_and_errors() {
    let h = Harness::new(&["user"]);
    let mut c = h.connect("user", "r");
    c.iq(iq("get", "g", None, query(NS)));
    c.send(set("s", item("a@localhost")));
    c.drain();

    c.send(set(
        "rm",
        item("a@localhost").attr("subscription", "remove"),
    ));
    let got = c.drain();
    assert_eq!(got[0].type_(), Some("result"));
    assert_eq!(
        push_item(&got[1]),
        ("a@localhost".into(), "remove".into(), None)
    );
    assert!(roster_of(&mut c).is_empty());

    let r = c.iq(set(
        "rm2",
        item("a@localhost").attr("subscription", "remove"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    let r = c.iq(set("self", item("user@localhost")));
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    let r = c.iq(set("full", item("a@localhost/res")));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    let r = c.iq(set("bad", item("@@")));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    let two = iq(
        "set",
        "two",
        None,
        query(NS)
            .child(item("b@localhost"))
            .child(item("c@localhost")),
    );
    assert_eq!(error_condition(&c.iq(two)).as_deref(), Some("bad-request"));
    let nojid = iq(
        "set",
        "nojid",
        None,
        query(NS).child(Element::new("item", NS)),
    );
    assert_eq!(
        error_condition(&c.iq(nojid)).as_deref(),
        Some("bad-request")
    );
    let wrongns = iq(
        "set",
        "ns",
        None,
        query(NS).child(Element::new("item", "urn:other").attr("jid", "d@localhost")),
    );
    assert_eq!(
        error_condition(&c.iq(wrongns)).as_deref(),
        Some("bad-request")
    );
}

#[test]
fn pushes_go_to_interested_resources_only() {
    let h = Harness::new(&["user"]);
    let mut a = h.connect("user", "a");
    let mut b = h.connect("user", "b");
    let mut quiet = h.connect("user", "quiet");
    a.iq(iq("get", "g", None, query(NS)));
    b.iq(iq("get", "g", None, query(NS)));
    a.send(set("s", item("z@localhost")));
    a.drain();
    let got = b.drain();
    assert_eq!(got.len(), 1);
    assert!(is_roster_push(&got[0]));
    quiet.expect_nothing();
}

#[test]
fn roster_of_another_user_is_refused() {
    let h = Harness::new(&["user", "other"]);
    let mut c = h.connect("user", "r");
    let r = c.iq(iq("get", "x", Some("other@localhost"), query(NS)));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn unknown_account_cannot_save() {
    // As Prosody: a roster is never saved for a user the auth provider does not know.
    let h = Harness::new(&[]);
    let mut c = h.connect("ghost", "r");
    let r = c.iq(set("s", item("a@localhost")));
    assert_eq!(r.type_(), Some("error"));
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    assert!(h.stored_roster("ghost").is_none());
    assert!(
        roster_of(&mut c).is_empty(),
        "the failed change was rolled back"
    );
}

#[test]
fn reads_a_prosody_roster_and_cleans_it() {
    let h = Harness::new(&["user"]);
    // As a pre-0.10 Prosody left it: top-level pending, and a self-contact.
    let mut t = Table::new();
    let mut pending = Table::new();
    pending.insert("asker@localhost", Value::Bool(true));
    t.insert("pending", Value::Table(pending));
    let mut friend = Table::new();
    friend.insert("subscription", Value::str("both"));
    let mut groups = Table::new();
    groups.insert("Work", Value::Bool(true));
    friend.insert("groups", Value::Table(groups));
    friend.insert("persist", Value::Bool(true)); // a field another module keeps
    t.insert("friend@localhost", Value::Table(friend));
    let mut me = Table::new();
    me.insert("subscription", Value::str("none"));
    t.insert("user@localhost", Value::Table(me));
    let mut meta = Table::new();
    meta.insert("version", Value::Integer(7));
    t.insert("false", Value::Table(meta));
    h.set_stored_roster("user", Value::Table(t));

    let mut c = h.connect("user", "r");
    let r = c.iq(iq("get", "g", None, query(NS)));
    assert_eq!(
        roster_items(&r),
        vec![("friend@localhost".to_string(), "both".to_string(), None)]
    );
    let q = r.get_child("query", NS).unwrap();
    assert_eq!(
        q.get_attr("ver"),
        Some("9"),
        "two clean-up saves, each bumping the version, as Prosody"
    );
    let group = q
        .get_child("item", NS)
        .and_then(|i| i.get_child_text("group", NS));
    assert_eq!(group.as_deref(), Some("Work"));

    let stored = h.stored_roster("user").unwrap();
    assert!(stored.get("pending").is_none());
    assert!(stored.get("user@localhost").is_none());
    let meta = stored.get("false").unwrap();
    assert_eq!(
        meta.get("pending").and_then(|p| p.get("asker@localhost")),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        stored
            .get("friend@localhost")
            .and_then(|f| f.get("persist")),
        Some(&Value::Bool(true))
    );
}

#[test]
fn stream_features_announce_rosterver_and_preapproval() {
    let h = Harness::new(&["user"]);
    let c = h.connect("user", "r");
    let features = Element::new("features", "http://etherx.jabber.org/streams");
    let mut ev = xmpp_core::Event::new(&h.server, "stream-features").with_stanza(features);
    ev.origin = Some(c.session.clone());
    h.server.fire_on_host(&h.host, "stream-features", &mut ev);
    let f = ev.stanza.unwrap();
    assert!(f.get_child("ver", "urn:xmpp:features:rosterver").is_some());
    assert!(
        f.get_child("sub", "urn:xmpp:features:pre-approval")
            .is_some()
    );
    let caps = f
        .get_child("c", "http://jabber.org/protocol/caps")
        .expect("caps");
    assert_eq!(caps.get_attr("hash"), Some("sha-1"));
    assert!(caps.get_attr("ver").is_some_and(|v| v.ends_with('=')));
}
