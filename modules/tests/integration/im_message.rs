//! mod_message and mod_offline: RFC 6121 §8.5 delivery by type and
//! priority, full-JID fallback, offline storage and delivery.

use crate::im_common;

use im_common::*;
use xmpp_core::stanza::{Element, NS_CLIENT};

fn bodies(v: &[Element]) -> Vec<String> {
    v.iter()
        .filter(|e| e.name() == "message")
        .filter_map(body)
        .collect()
}

/// basic_message.scs, step by step.
#[test]
fn basic_message_scenario() {
    let h = Harness::new(&["user", "juliet"]);
    let mut romeo = h.connect("user", "r");
    let mut juliet = h.connect("juliet", "laptop");
    let mut phone = h.connect("juliet", "mobile");
    romeo.send(presence());
    romeo.drain();

    // To full JIDs, available or not.
    romeo.send(message("juliet@localhost/laptop", "chat", "Hello Juliet!"));
    let m = juliet.recv();
    assert_eq!(m.to(), Some("juliet@localhost/laptop"));
    assert_eq!(m.from(), Some("user@localhost/r"));
    assert_eq!(m.type_(), Some("chat"));
    assert_eq!(body(&m).as_deref(), Some("Hello Juliet!"));
    romeo.send(message(
        "juliet@localhost/mobile",
        "chat",
        "Hello Juliet, on your phone.",
    ));
    assert_eq!(
        body(&phone.recv()).as_deref(),
        Some("Hello Juliet, on your phone.")
    );
    juliet.expect_nothing();

    // To the bare JID with nobody available: stored offline.
    romeo.send(message(
        "juliet@localhost",
        "chat",
        "Hello Juliet, are you there?",
    ));
    juliet.expect_nothing();
    phone.expect_nothing();
    romeo.expect_nothing();
    assert_eq!(h.offline("juliet").len(), 1);

    // The phone comes online: presence reflected, then the stored message with a delay.
    phone.send(presence());
    let got = phone.drain();
    assert!(is_presence(&got[0], "juliet@localhost/mobile", None));
    let m = &got[1];
    assert_eq!(body(m).as_deref(), Some("Hello Juliet, are you there?"));
    assert_eq!(m.from(), Some("user@localhost/r"));
    let delay = m.get_child("delay", "urn:xmpp:delay").expect("delay");
    assert_eq!(delay.get_attr("from"), Some("localhost"));
    assert_eq!(delay.get_attr("stamp"), Some("2008-08-22T21:09:04Z"));
    assert!(
        h.offline("juliet").is_empty(),
        "delivered messages are deleted"
    );

    romeo.send(message("juliet@localhost", "chat", "Oh, hi!"));
    assert_eq!(bodies(&phone.drain()), ["Oh, hi!"]);

    // The laptop with a negative priority gets nothing sent to the bare JID...
    juliet.send(with_priority(presence(), -1));
    juliet.drain();
    phone.drain();
    romeo.send(message("juliet@localhost", "chat", "How are you?"));
    assert_eq!(bodies(&phone.drain()), ["How are you?"]);
    juliet.expect_nothing();
    // ...but what is sent to its full JID.
    romeo.send(message(
        "juliet@localhost/laptop",
        "chat",
        "Are you hiding?",
    ));
    assert_eq!(bodies(&juliet.drain()), ["Are you hiding?"]);

    // Equal priorities: both get it.
    juliet.send(presence());
    juliet.drain();
    phone.drain();
    romeo.send(message("juliet@localhost", "chat", "There!"));
    assert_eq!(bodies(&juliet.drain()), ["There!"]);
    assert_eq!(bodies(&phone.drain()), ["There!"]);
}

#[test]
fn highest_priority_wins_and_normal_is_like_chat() {
    let h = Harness::new(&["a", "b"]);
    let a = h.connect("a", "1");
    let mut b1 = h.connect("b", "low");
    let mut b2 = h.connect("b", "high");
    let mut b3 = h.connect("b", "unavailable");
    b1.send(with_priority(presence(), 1));
    b2.send(with_priority(presence(), 5));
    b1.drain();
    b2.drain();
    for t in ["chat", "normal"] {
        a.send(message("b@localhost", t, t));
        assert_eq!(bodies(&b2.drain()), [t]);
        b1.expect_nothing();
        b3.expect_nothing();
    }
    // No type is normal.
    a.send(
        Element::new("message", NS_CLIENT)
            .attr("to", "b@localhost")
            .child(Element::new("body", NS_CLIENT).text("untyped")),
    );
    assert_eq!(bodies(&b2.drain()), ["untyped"]);
}

#[test]
fn full_jid_of_gone_resource_falls_back_to_bare() {
    let h = Harness::new(&["a", "b"]);
    let a = h.connect("a", "1");
    let mut b = h.connect("b", "here");
    b.send(presence());
    b.drain();
    a.send(message("b@localhost/gone", "chat", "fallback"));
    let m = b.recv();
    assert_eq!(body(&m).as_deref(), Some("fallback"));
    assert_eq!(
        m.to(),
        Some("b@localhost/gone"),
        "the stanza is not rewritten"
    );
    // A headline to a gone full JID is dropped.
    a.send(message("b@localhost/gone", "headline", "news"));
    b.expect_nothing();
}

#[test]
fn headline_goes_to_all_non_negative_resources() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let mut b1 = h.connect("b", "1");
    let mut b2 = h.connect("b", "2");
    let mut b3 = h.connect("b", "3");
    b1.send(with_priority(presence(), 0));
    b2.send(with_priority(presence(), 10));
    b3.send(with_priority(presence(), -5));
    for c in [&mut b1, &mut b2, &mut b3] {
        c.drain();
    }
    a.send(message("b@localhost", "headline", "extra"));
    assert_eq!(bodies(&b1.drain()), ["extra"]);
    assert_eq!(bodies(&b2.drain()), ["extra"]);
    b3.expect_nothing();
    // Nobody available: dropped, not stored, no error.
    let mut c = h.connect("b", "4");
    h.disconnect(&b1);
    h.disconnect(&b2);
    h.disconnect(&b3);
    a.send(message("b@localhost", "headline", "lost"));
    c.expect_nothing();
    a.expect_nothing();
    assert!(h.offline("b").is_empty());
}

#[test]
fn groupchat_and_error_types() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    b.send(presence());
    b.drain();
    a.send(message("b@localhost", "groupchat", "hi all").attr("id", "g1"));
    let e = a.recv();
    assert_eq!(e.type_(), Some("error"));
    assert_eq!(e.id(), Some("g1"));
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
    b.expect_nothing();
    // A groupchat message to an online full JID is delivered as is.
    a.send(message("b@localhost/1", "groupchat", "direct"));
    assert_eq!(bodies(&b.drain()), ["direct"]);
    // Errors to a bare JID are dropped silently.
    a.send(message("b@localhost", "error", "oops"));
    b.expect_nothing();
    a.expect_nothing();
    // Unless some module handles groupchat for accounts.
    h.host.events.hook("message/bare/groupchat", 0, |_| true);
    a.send(message("b@localhost", "groupchat", "taken"));
    a.expect_nothing();
}

#[test]
fn unknown_user_gets_service_unavailable() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    a.send(message("nobody@localhost", "chat", "hello?").attr("id", "m1"));
    let e = a.recv();
    assert_eq!(error_condition(&e).as_deref(), Some("service-unavailable"));
    assert_eq!(e.from(), Some("nobody@localhost"));
    assert_eq!(e.to(), Some("a@localhost/1"));
    assert!(h.offline("nobody").is_empty());
}

#[test]
fn offline_storage_rules() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    a.send(message("b@localhost", "chat", "one"));
    a.send(message("b@localhost", "normal", "two"));
    a.send(message("b@localhost/laptop", "chat", "three"));
    a.send(message("b@localhost", "headline", "not stored"));
    a.send(message("b@localhost", "error", "not stored"));
    a.expect_nothing();
    let stored = h.offline("b");
    assert_eq!(
        stored
            .iter()
            .filter_map(|i| body(&i.stanza))
            .collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert!(stored.iter().all(|i| i.when == NOW && i.with.is_empty()));
    assert_eq!(stored[0].stanza.from(), Some("a@localhost/1"));
    assert!(
        stored[0]
            .stanza
            .get_child("delay", "urn:xmpp:delay")
            .is_none(),
        "stored as received"
    );

    // Initial presence with a negative priority does not flush.
    let mut b = h.connect("b", "laptop");
    b.send(with_priority(presence(), -1));
    assert_eq!(b.drain().len(), 1);
    assert_eq!(h.offline("b").len(), 3);
    // Nor does a later presence update (it is not initial).
    b.send(presence());
    assert!(bodies(&b.drain()).is_empty());
    // A new session with non-negative initial presence gets them, in order.
    let mut b2 = h.connect("b", "phone");
    b2.send(presence());
    let got = b2.drain();
    assert_eq!(bodies(&got), ["one", "two", "three"]);
    assert!(h.offline("b").is_empty());
}

#[test]
fn message_to_self_bare_goes_to_own_resources() {
    let h = Harness::new(&["a"]);
    let mut a1 = h.connect("a", "1");
    let mut a2 = h.connect("a", "2");
    a1.send(presence());
    a2.send(presence());
    a1.drain();
    a2.drain();
    a1.send(message("a@localhost", "chat", "note to self"));
    assert_eq!(bodies(&a1.drain()), ["note to self"]);
    assert_eq!(bodies(&a2.drain()), ["note to self"]);
}

/// Rough throughput of message routing through the router and mod_message
/// (`cargo test -p modules --release --test integration im_message:: -- --ignored --nocapture`).
#[test]
#[ignore]
fn throughput() {
    let h = Harness::new(&["a", "b"]);
    let a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    b.send(presence());
    b.drain();
    let n = 200_000;
    let payload = "x".repeat(900);
    let start = std::time::Instant::now();
    for i in 0..n {
        a.send(message("b@localhost", "chat", &payload).attr("id", i.to_string()));
        if i % 1000 == 999 {
            b.drain();
        }
    }
    let bare = start.elapsed();
    b.drain();
    let start = std::time::Instant::now();
    for i in 0..n {
        a.send(message("b@localhost/1", "chat", &payload).attr("id", i.to_string()));
        if i % 1000 == 999 {
            b.drain();
        }
    }
    let full = start.elapsed();
    println!(
        "messages of ~1 KiB: to bare JID {:.0}/s, to full JID {:.0}/s",
        n as f64 / bare.as_secs_f64(),
        n as f64 / full.as_secs_f64()
    );
}
