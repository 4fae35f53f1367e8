//! mod_tombstones: what a deleted account's JID answers, for how long,
//! and that registering the name again lifts it.

use crate::im_common;

use im_common::*;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Value};

fn harness(opts: Vec<(&'static str, Value)>) -> (Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let setup = Setup {
        host_options: opts,
        data_path: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let mut mods = IM_MODULES.to_vec();
    mods.push("tombstones");
    let h = Harness::with(&["romeo", "juliet"], &mods, setup);
    (h, dir)
}

/// What mod_register fires when an account is removed.
fn delete(h: &Harness, user: &str) {
    h.accounts.users.lock().unwrap().remove(user);
    let mut ev = Event::new(&h.server, "user-deleted")
        .with_field("username", user)
        .with_field("host", HOST);
    h.server.fire_global("user-deleted", &mut ev);
}

fn probe(to: &str) -> Element {
    presence_to(to, Some("probe"))
}

#[test]
fn deleted_account_answers_gone_and_unsubscribed() {
    let (h, _dir) = harness(vec![]);
    let mut romeo = h.connect("romeo", "1");
    delete(&h, "juliet");
    let juliet = "juliet@localhost";
    romeo.send(probe(juliet));
    let error = romeo.recv();
    assert_eq!(error.type_(), Some("error"));
    assert_eq!(error.from(), Some(juliet));
    assert_eq!(error_condition(&error).as_deref(), Some("gone"));
    let unsub = romeo.recv();
    assert_eq!(unsub.name(), "presence");
    assert_eq!(unsub.type_(), Some("unsubscribed"));
    assert_eq!(unsub.from(), Some(juliet));
    assert_eq!(unsub.to(), Some("romeo@localhost"));
    romeo.expect_nothing();
    // Messages and IQs, to the bare or a full JID, get the error alone.
    let msg = Element::new("message", NS_CLIENT)
        .attr("to", "juliet@localhost/balcony")
        .attr("type", "chat")
        .child(Element::new("body", NS_CLIENT).text("hello?"));
    romeo.send(msg);
    assert_eq!(error_condition(&romeo.recv()).as_deref(), Some("gone"));
    romeo.expect_nothing();
    let r = romeo.iq(iq("get", "v", Some(juliet), query("jabber:iq:version")));
    assert_eq!(error_condition(&r).as_deref(), Some("gone"));
    // Replies to the gone account vanish without an answer.
    let result = Element::new("iq", NS_CLIENT)
        .attr("type", "result")
        .attr("id", "x")
        .attr("to", juliet);
    romeo.send(result);
    romeo.expect_nothing();
    // Another account that never existed is not affected.
    romeo.send(probe("nobody@localhost"));
    for s in romeo.drain() {
        assert_ne!(error_condition(&s).as_deref(), Some("gone"));
    }
    // Registering the name again lifts the tombstone.
    h.accounts.users.lock().unwrap().insert("juliet".into());
    let mut ev = Event::new(&h.server, "user-registered")
        .with_field("username", "juliet")
        .with_field("host", HOST);
    h.server.fire_on_host(&h.host, "user-registered", &mut ev);
    romeo.send(probe(juliet));
    for s in romeo.drain() {
        assert_ne!(error_condition(&s).as_deref(), Some("gone"));
    }
}

#[test]
fn tombstones_expire_and_are_per_host() {
    // Expired at once (the clock is fixed at the deletion's instant).
    let (h, _dir) = harness(vec![("user_tombstone_expiry", Value::Integer(0))]);
    let mut romeo = h.connect("romeo", "1");
    delete(&h, "juliet");
    romeo.send(probe("juliet@localhost"));
    for s in romeo.drain() {
        assert_ne!(error_condition(&s).as_deref(), Some("gone"));
    }
    // A deletion on another host leaves none here.
    let (h, _dir2) = harness(vec![]);
    let mut romeo = h.connect("romeo", "1");
    h.accounts.users.lock().unwrap().remove("juliet");
    let mut ev = Event::new(&h.server, "user-deleted")
        .with_field("username", "juliet")
        .with_field("host", "elsewhere.example");
    h.server.fire_global("user-deleted", &mut ev);
    romeo.send(probe("juliet@localhost"));
    for s in romeo.drain() {
        assert_ne!(error_condition(&s).as_deref(), Some("gone"));
    }
    let bad = Setup {
        host_options: vec![("user_tombstone_expiry", Value::str("soon"))],
        ..Setup::default()
    };
    let mut mods = IM_MODULES.to_vec();
    mods.push("tombstones");
    assert!(Harness::try_with(&["romeo"], &mods, bad).is_err());
}
