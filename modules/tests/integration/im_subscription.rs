//! The subscription state machine end to end between local users (RFC 6121
//! §3), following Prosody's mod_presence and rostermanager, including the
//! scenarios of Prosody's scansion scripts issue1121, presence_preapproval
//! and keep_full_sub_req.

use crate::im_common;

use im_common::*;
use modules::roster::manager;
use xmpp_core::Value;
use xmpp_core::stanza::Element;

const NS: &str = "jabber:iq:roster";

fn online(h: &Harness, user: &str, res: &str, want_roster: bool) -> Client {
    let mut c = h.connect(user, res);
    if want_roster {
        c.iq(iq("get", "r0", None, query(NS)));
    }
    c.send(presence());
    c.drain();
    c
}

fn find(v: &[Element], pred: impl Fn(&Element) -> bool) -> Option<&Element> {
    v.iter().find(|e| pred(e))
}

#[test]
fn handshake_both_directions_ends_in_both() {
    let h = Harness::new(&["romeo", "juliet"]);
    let mut romeo = online(&h, "romeo", "r", true);
    let mut juliet = online(&h, "juliet", "j", true);

    // Romeo asks.
    romeo.send(presence_to("juliet@localhost", Some("subscribe")));
    let r = romeo.drain();
    let push = find(&r, is_roster_push).expect("push to romeo");
    assert_eq!(
        push_item(push),
        (
            "juliet@localhost".into(),
            "none".into(),
            Some("subscribe".into())
        )
    );
    assert!(
        find(&r, |e| is_presence(
            e,
            "juliet@localhost",
            Some("unavailable")
        ))
        .is_some(),
        "receipt acknowledged with unavailable:\n{}",
        xml_list(&r)
    );
    let j = juliet.drain();
    let req = find(&j, |e| is_presence(e, "romeo@localhost", Some("subscribe")))
        .expect("juliet is asked");
    assert_eq!(req.to(), Some("juliet@localhost"));
    assert_eq!(j.len(), 1, "{}", xml_list(&j));

    // Juliet approves.
    juliet.send(presence_to("romeo@localhost", Some("subscribed")));
    let j = juliet.drain();
    assert_eq!(
        push_item(find(&j, is_roster_push).expect("push")),
        ("romeo@localhost".into(), "from".into(), None)
    );
    let r = romeo.drain();
    assert!(
        find(&r, |e| is_presence(
            e,
            "juliet@localhost",
            Some("subscribed")
        ))
        .is_some()
    );
    assert_eq!(
        push_item(find(&r, is_roster_push).expect("push")),
        ("juliet@localhost".into(), "to".into(), None)
    );
    let p = find(&r, |e| is_presence(e, "juliet@localhost/j", None))
        .expect("juliet's presence follows");
    assert_eq!(p.to(), Some("romeo@localhost"));

    // Juliet asks back; Romeo approves.
    juliet.send(presence_to("romeo@localhost", Some("subscribe")));
    let j = juliet.drain();
    assert_eq!(
        push_item(find(&j, is_roster_push).expect("push")),
        (
            "romeo@localhost".into(),
            "from".into(),
            Some("subscribe".into())
        )
    );
    assert!(
        find(&j, |e| is_presence(
            e,
            "romeo@localhost",
            Some("unavailable")
        ))
        .is_some()
    );
    let r = romeo.drain();
    assert!(
        find(&r, |e| is_presence(
            e,
            "juliet@localhost",
            Some("subscribe")
        ))
        .is_some()
    );

    romeo.send(presence_to("juliet@localhost", Some("subscribed")));
    let r = romeo.drain();
    assert_eq!(
        push_item(find(&r, is_roster_push).expect("push")),
        ("juliet@localhost".into(), "both".into(), None)
    );
    // Romeo is now subscribed both ways: he probes, and gets Juliet's presence.
    assert!(
        find(&r, |e| is_presence(e, "juliet@localhost/j", None)).is_some(),
        "{}",
        xml_list(&r)
    );
    let j = juliet.drain();
    assert!(
        find(&j, |e| is_presence(
            e,
            "romeo@localhost",
            Some("subscribed")
        ))
        .is_some()
    );
    assert_eq!(
        push_item(find(&j, is_roster_push).expect("push")),
        ("romeo@localhost".into(), "both".into(), None)
    );
    assert!(find(&j, |e| is_presence(e, "romeo@localhost/r", None)).is_some());

    assert_eq!(
        roster_of(&mut romeo),
        vec![("juliet@localhost".to_string(), "both".to_string(), None)]
    );
    assert_eq!(
        roster_of(&mut juliet),
        vec![("romeo@localhost".to_string(), "both".to_string(), None)]
    );

    // Presence now flows both ways.
    romeo.send(presence().child(Element::new("show", "jabber:client").text("away")));
    let j = juliet.drain();
    assert!(
        find(&j, |e| is_presence(e, "romeo@localhost/r", None)
            && e.get_child("show", "jabber:client").is_some())
        .is_some()
    );
    // A subscribe that is already granted is answered by the server with
    // Romeo's current presence (Prosody's 'subscribed' answer goes through the
    // outbound handler, where it changes nothing; the presence follows).
    juliet.send(presence_to("romeo@localhost", Some("subscribe")));
    let j = juliet.drain();
    assert!(
        find(&j, |e| is_presence(e, "romeo@localhost/r", None)).is_some(),
        "{}",
        xml_list(&j)
    );
    assert!(
        roster_of(&mut juliet)
            .iter()
            .all(|(_, s, ask)| s == "both" && ask.is_none())
    );
}

#[test]
fn issue1121_removing_a_contact_sends_directed_unavailable() {
    let h = Harness::new(&["romeo", "juliet"]);
    let mut romeo = online(&h, "romeo", "r", false);
    let mut juliet = online(&h, "juliet", "j", false);
    romeo.send(presence_to("juliet@localhost", Some("subscribe")));
    juliet.send(presence_to("romeo@localhost", Some("subscribed")));
    juliet.send(presence_to("romeo@localhost", Some("subscribe")));
    romeo.send(presence_to("juliet@localhost", Some("subscribed")));
    romeo.drain();
    juliet.drain();

    juliet.send(iq(
        "set",
        "iq1",
        None,
        query(NS).child(
            Element::new("item", NS)
                .attr("jid", "romeo@localhost")
                .attr("subscription", "remove"),
        ),
    ));
    let j = juliet.drain();
    assert!(find(&j, |e| e.id() == Some("iq1") && e.type_() == Some("result")).is_some());
    let r = romeo.drain();
    let unav = find(&r, |e| {
        is_presence(e, "juliet@localhost/j", Some("unavailable"))
    })
    .expect("directed unavailable");
    assert_eq!(unav.to(), Some("romeo@localhost"));
    assert!(
        find(&r, |e| e.name() == "presence"
            && e.to().is_none()
            && e.type_() == Some("unavailable"))
        .is_none()
    );
    // Romeo's side is now 'none': both subscriptions were cancelled.
    assert_eq!(
        roster_of(&mut romeo),
        vec![("juliet@localhost".to_string(), "none".to_string(), None)]
    );
    assert!(roster_of(&mut juliet).is_empty());
}

#[test]
fn unsubscribe_and_unsubscribed_walk_back_the_states() {
    let h = Harness::new(&["a", "b"]);
    let mut a = online(&h, "a", "1", true);
    let mut b = online(&h, "b", "1", true);
    a.send(presence_to("b@localhost", Some("subscribe")));
    b.send(presence_to("a@localhost", Some("subscribed")));
    b.send(presence_to("a@localhost", Some("subscribe")));
    a.send(presence_to("b@localhost", Some("subscribed")));
    a.drain();
    b.drain();

    // a stops receiving b's presence: both → from (a), both → to (b).
    a.send(presence_to("b@localhost", Some("unsubscribe")));
    assert_eq!(
        roster_of(&mut a),
        vec![("b@localhost".to_string(), "from".to_string(), None)]
    );
    let got = b.drain();
    assert!(find(&got, |e| is_presence(e, "a@localhost", Some("unsubscribe"))).is_some());
    assert_eq!(
        roster_of(&mut b),
        vec![("a@localhost".to_string(), "to".to_string(), None)]
    );

    // b cancels a's... rather, a cancels b's subscription to a: from → none / to → none.
    a.send(presence_to("b@localhost", Some("unsubscribed")));
    let got = b.drain();
    assert!(
        find(&got, |e| is_presence(
            e,
            "a@localhost",
            Some("unsubscribed")
        ))
        .is_some()
    );
    assert!(
        find(&got, |e| is_presence(
            e,
            "a@localhost/1",
            Some("unavailable")
        ))
        .is_some(),
        "{}",
        xml_list(&got)
    );
    assert_eq!(
        roster_of(&mut a),
        vec![("b@localhost".to_string(), "none".to_string(), None)]
    );
    assert_eq!(
        roster_of(&mut b),
        vec![("a@localhost".to_string(), "none".to_string(), None)]
    );

    // Refusing a request removes it from pending.
    b.send(presence_to("a@localhost", Some("subscribe")));
    assert!(manager::is_contact_pending_in(
        &h.server,
        &h.host,
        "a",
        "b@localhost"
    ));
    a.send(presence_to("b@localhost", Some("unsubscribed")));
    assert!(!manager::is_contact_pending_in(
        &h.server,
        &h.host,
        "a",
        "b@localhost"
    ));
    assert_eq!(
        roster_of(&mut b),
        vec![("a@localhost".to_string(), "none".to_string(), None)],
        "ask cleared"
    );
}

#[test]
fn presence_preapproval() {
    let h = Harness::new(&["preappove-a", "preapprove-b"]);
    let mut alice = online(&h, "preappove-a", "a", false);
    alice.send(presence_to("preapprove-b@localhost", Some("subscribed")));
    assert!(manager::is_contact_preapproved(
        &h.server,
        &h.host,
        "preappove-a",
        "preapprove-b@localhost"
    ));
    assert_eq!(
        h.stored_roster("preappove-a").and_then(|r| r
            .get("preapprove-b@localhost")
            .and_then(|i| i.get("approved"))
            .cloned()),
        Some(Value::str("true"))
    );

    let mut bob = h.connect("preapprove-b", "b");
    let r = bob.iq(iq("get", "roster1", None, query(NS)));
    assert!(
        r.get_child("query", NS)
            .is_some_and(|q| q.get_attr("ver").is_some())
    );
    bob.send(presence());
    assert!(is_presence(&bob.recv(), "preapprove-b@localhost/b", None));
    bob.send(presence_to("preappove-a@localhost", Some("subscribe")));
    let got = bob.drain();
    let push = &got[0];
    assert!(is_roster_push(push), "{}", xml_list(&got));
    assert_eq!(
        push.get_child("query", NS).and_then(|q| q.get_attr("ver")),
        Some("1")
    );
    assert_eq!(
        push_item(push),
        (
            "preappove-a@localhost".into(),
            "none".into(),
            Some("subscribe".into())
        )
    );
    assert!(
        is_presence(&got[1], "preappove-a@localhost", Some("subscribed")),
        "{}",
        xml_list(&got)
    );
    h.disconnect(&bob);

    let items = roster_of(&mut alice);
    assert_eq!(
        items,
        vec![(
            "preapprove-b@localhost".to_string(),
            "from".to_string(),
            None
        )]
    );
}

#[test]
fn keep_full_subscription_request() {
    let h = Harness::new(&["pars-a", "pars-b"]);
    let alice = h.connect("pars-a", "a");
    let preauth = Element::new("preauth", "urn:xmpp:pars:0").attr("token", "1tMFqYDdKhfe2pwp");
    alice.send(presence_to("pars-b@localhost", Some("subscribe")).child(preauth));
    h.disconnect(&alice);

    // The request is kept whole in Prosody's shape.
    let stored = h.stored_roster("pars-b").expect("saved");
    let req = stored
        .get("false")
        .and_then(|m| m.get("pending"))
        .and_then(|p| p.get("pars-a@localhost"))
        .expect("pending");
    assert_eq!(req.get("name").and_then(Value::as_str), Some("presence"));
    let child = &req.as_table().unwrap().seq[0];
    assert_eq!(
        child
            .get("attr")
            .and_then(|a| a.get("xmlns"))
            .and_then(Value::as_str),
        Some("urn:xmpp:pars:0")
    );

    for (res, reload) in [("laptop", false), ("phone", true)] {
        if reload {
            // Read back from storage, not the cache.
            manager::forget(&h.host, "pars-b");
        }
        let mut bob = h.connect("pars-b", res);
        bob.send(presence());
        let got = bob.drain();
        assert!(is_presence(
            &got[0],
            &format!("pars-b@localhost/{res}"),
            None
        ));
        let req = find(&got, |e| {
            is_presence(e, "pars-a@localhost", Some("subscribe"))
        })
        .expect("request resent");
        let pre = req
            .get_child("preauth", "urn:xmpp:pars:0")
            .expect("with its payload");
        assert_eq!(pre.get_attr("token"), Some("1tMFqYDdKhfe2pwp"));
        h.disconnect(&bob);
    }
}

#[test]
fn probes_answer_by_subscription() {
    let h = Harness::new(&["a", "b", "stranger"]);
    let mut a = online(&h, "a", "1", false);
    let mut b = online(&h, "b", "1", false);
    a.send(presence_to("b@localhost", Some("subscribe")));
    b.send(presence_to("a@localhost", Some("subscribed")));
    a.drain();
    b.drain();

    // a is subscribed to b: a probe gets b's presence.
    a.send(presence_to("b@localhost", Some("probe")));
    let got = a.drain();
    assert!(
        find(&got, |e| is_presence(e, "b@localhost/1", None)).is_some(),
        "{}",
        xml_list(&got)
    );
    // b offline: the server answers unavailable for b.
    h.disconnect(&b);
    a.drain();
    a.send(presence_to("b@localhost", Some("probe")));
    let got = a.drain();
    assert!(
        find(&got, |e| is_presence(e, "b@localhost", Some("unavailable"))).is_some(),
        "{}",
        xml_list(&got)
    );

    // A stranger probing gets nothing (Prosody 0.12 routes its 'unsubscribed'
    // through the outbound handler, where it changes nothing and stops).
    let mut s = online(&h, "stranger", "1", false);
    s.send(presence_to("a@localhost", Some("probe")));
    s.expect_nothing();
}

#[test]
fn presence_to_the_host() {
    let h = Harness::new(&["a"]);
    let mut a = online(&h, "a", "1", true);
    a.send(presence_to("localhost", Some("probe")).attr("id", "p1"));
    let got = a.drain();
    let p = find(&got, |e| is_presence(e, "localhost", None)).expect("available from the host");
    assert_eq!(p.id(), Some("p1"));
    a.send(presence_to("localhost", Some("subscribe")));
    let got = a.drain();
    assert!(find(&got, |e| is_presence(e, "localhost", Some("subscribed"))).is_some());
    assert!(find(&got, |e| is_presence(e, "localhost", None)).is_some());
}

#[test]
fn subscription_to_oneself_is_refused() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    a.send(presence_to("a@localhost", Some("subscribe")));
    let got = a.drain();
    assert_eq!(got.len(), 1);
    assert_eq!(error_condition(&got[0]).as_deref(), Some("bad-request"));
    assert!(roster_of(&mut a).is_empty());
}
