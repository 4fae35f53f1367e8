//! mod_presence: initial presence, broadcasts, probes, resources of the same
//! account, directed presence, unavailable, session end.

use crate::im_common;

use im_common::*;
use xmpp_core::Value;
use xmpp_core::stanza::{Element, NS_CLIENT};

/// Makes `a` and `b` subscribed to each other (both online, then quiet).
fn befriend(h: &Harness, a: &mut Client, b: &mut Client) {
    a.send(presence_to(&b.bare(), Some("subscribe")));
    b.send(presence_to(&a.bare(), Some("subscribed")));
    b.send(presence_to(&a.bare(), Some("subscribe")));
    a.send(presence_to(&b.bare(), Some("subscribed")));
    a.drain();
    b.drain();
    let _ = h;
}

fn presences(v: &[Element]) -> Vec<(String, Option<String>, Option<String>)> {
    v.iter()
        .filter(|e| e.name() == "presence")
        .map(|e| {
            (
                e.from().unwrap_or_default().to_string(),
                e.to().map(str::to_string),
                e.type_().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn initial_presence_is_reflected_with_no_to() {
    let h = Harness::new(&["user"]);
    let mut c = h.connect("user", "r");
    c.send(presence());
    let p = c.recv();
    assert!(is_presence(&p, "user@localhost/r", None));
    assert_eq!(p.to(), None);
    assert!(
        p.get_child("delay", "urn:xmpp:delay").is_none(),
        "the reflection has no delay"
    );
    c.expect_nothing();
    // What the session keeps carries a delay stamped with the server's clock.
    let kept = c.session.state().presence.clone().expect("available");
    let delay = kept.get_child("delay", "urn:xmpp:delay").expect("delay");
    assert_eq!(delay.get_attr("stamp"), Some("2008-08-22T21:09:04Z"));
    assert_eq!(delay.get_attr("from"), Some("localhost"));
}

#[test]
fn resources_of_one_account_see_each_other() {
    let h = Harness::new(&["juliet"]);
    let mut laptop = h.connect("juliet", "laptop");
    let mut phone = h.connect("juliet", "phone");
    phone.send(presence());
    assert_eq!(
        presences(&phone.drain()),
        vec![("juliet@localhost/phone".into(), None, None)]
    );
    laptop.expect_nothing(); // not available yet

    laptop.send(with_priority(presence(), -1));
    let got = laptop.drain();
    // basic_message.scs: the reflection, then the phone's presence.
    assert_eq!(
        presences(&got),
        vec![
            ("juliet@localhost/laptop".into(), None, None),
            (
                "juliet@localhost/phone".into(),
                Some("juliet@localhost/laptop".into()),
                None
            ),
        ]
    );
    let got = phone.drain();
    assert_eq!(
        presences(&got),
        vec![(
            "juliet@localhost/laptop".into(),
            Some("juliet@localhost/phone".into()),
            None
        )]
    );
    assert_eq!(
        got[0].get_child_text("priority", NS_CLIENT).as_deref(),
        Some("-1")
    );
    assert_eq!(laptop.session.priority(), -1);
}

#[test]
fn contacts_get_broadcasts_and_probes_are_answered() {
    let h = Harness::new(&["romeo", "juliet", "nurse"]);
    let mut romeo = h.connect("romeo", "r");
    let mut juliet = h.connect("juliet", "j");
    let mut nurse = h.connect("nurse", "n");
    romeo.send(presence());
    juliet.send(presence());
    nurse.send(presence());
    befriend(&h, &mut romeo, &mut juliet);
    nurse.drain();

    // Romeo goes offline and comes back: Juliet sees it, and Romeo's probe gets Juliet's presence.
    h.disconnect(&romeo);
    let got = juliet.drain();
    assert_eq!(
        presences(&got),
        vec![(
            "romeo@localhost/r".into(),
            Some("juliet@localhost".into()),
            Some("unavailable".into())
        )]
    );

    let mut romeo = h.connect("romeo", "r2");
    romeo.send(presence().child(Element::new("status", NS_CLIENT).text("back")));
    let got = romeo.drain();
    assert!(is_presence(&got[0], "romeo@localhost/r2", None));
    let from_juliet = got
        .iter()
        .find(|e| is_presence(e, "juliet@localhost/j", None))
        .expect("probe answered");
    assert_eq!(from_juliet.to(), Some("romeo@localhost/r2"));
    assert!(
        from_juliet.get_child("delay", "urn:xmpp:delay").is_some(),
        "the kept presence, with its delay"
    );
    let got = juliet.drain();
    let p = got
        .iter()
        .find(|e| is_presence(e, "romeo@localhost/r2", None))
        .expect("broadcast");
    assert_eq!(
        p.get_child_text("status", NS_CLIENT).as_deref(),
        Some("back")
    );
    nurse.expect_nothing();

    // Unavailable goes to the same people and clears the state.
    romeo.send(presence().attr("type", "unavailable"));
    assert_eq!(
        presences(&romeo.drain()),
        vec![(
            "romeo@localhost/r2".into(),
            None,
            Some("unavailable".into())
        )]
    );
    assert_eq!(
        presences(&juliet.drain()),
        vec![(
            "romeo@localhost/r2".into(),
            Some("juliet@localhost".into()),
            Some("unavailable".into())
        )]
    );
    assert!(!romeo.session.is_available());
    // Presence sent again is initial again (probes go out again).
    romeo.send(presence());
    let got = romeo.drain();
    assert!(
        got.iter()
            .any(|e| is_presence(e, "juliet@localhost/j", None))
    );
}

#[test]
fn directed_presence_is_tracked_and_withdrawn() {
    let h = Harness::new(&["a", "b", "c"]);
    let mut a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    let mut c = h.connect("c", "1");
    b.send(presence());
    c.send(presence());
    b.drain();
    c.drain();
    a.send(presence());
    a.drain();

    a.send(presence_to("b@localhost/1", None));
    assert_eq!(
        presences(&b.drain()),
        vec![("a@localhost/1".into(), Some("b@localhost/1".into()), None)]
    );
    a.send(presence_to("c@localhost", None));
    assert_eq!(
        presences(&c.drain()),
        vec![("a@localhost/1".into(), Some("c@localhost".into()), None)]
    );
    assert_eq!(a.session.state().directed.len(), 2);

    // An explicit unavailable to c removes c from the list.
    a.send(presence_to("c@localhost", Some("unavailable")));
    c.drain();
    assert_eq!(a.session.state().directed.len(), 1);

    // Disconnecting withdraws the rest.
    h.disconnect(&a);
    let got = b.drain();
    assert_eq!(
        presences(&got),
        vec![(
            "a@localhost/1".into(),
            Some("b@localhost/1".into()),
            Some("unavailable".into())
        )]
    );
    c.expect_nothing();
}

#[test]
fn directed_presence_without_broadcast_is_withdrawn_at_session_end() {
    let h = Harness::new(&["a", "b"]);
    let a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    b.send(presence());
    b.drain();
    a.send(presence_to("b@localhost", None));
    b.drain();
    // a never sent broadcast presence; the unbind still withdraws the directed one,
    // with the reason the stream ended.
    h.server.sessions.unbind(&a.jid, &a.session);
    let mut ev = xmpp_core::Event::new(&h.server, "resource-unbind")
        .with_origin(&a.session)
        .with_field("error", "connection closed");
    h.server.fire_on_host(&h.host, "resource-unbind", &mut ev);
    let got = b.drain();
    assert_eq!(
        presences(&got),
        vec![(
            "a@localhost/1".into(),
            Some("b@localhost".into()),
            Some("unavailable".into())
        )]
    );
    assert_eq!(
        got[0].get_child_text("status", NS_CLIENT).as_deref(),
        Some("Disconnected: connection closed")
    );
}

#[test]
fn session_end_broadcasts_unavailable_to_contacts_and_resources() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let mut a2 = h.connect("a", "2");
    let mut b = h.connect("b", "1");
    a.send(presence());
    a2.send(presence());
    b.send(presence());
    befriend(&h, &mut a, &mut b);
    a2.drain();

    modules::presence::on_session_end(&h.server, &a.session, Some("timeout"));
    let to_b = b.drain();
    assert_eq!(
        presences(&to_b),
        vec![(
            "a@localhost/1".into(),
            Some("b@localhost".into()),
            Some("unavailable".into())
        )]
    );
    assert_eq!(
        to_b[0].get_child_text("status", NS_CLIENT).as_deref(),
        Some("Disconnected: timeout")
    );
    assert_eq!(
        presences(&a2.drain()),
        vec![(
            "a@localhost/1".into(),
            Some("a@localhost/2".into()),
            Some("unavailable".into())
        )]
    );
}

#[test]
fn presence_to_full_and_bare_jids_is_delivered_to_available_resources() {
    let h = Harness::new(&["a", "b"]);
    let a = h.connect("a", "1");
    let mut b1 = h.connect("b", "1");
    let mut b2 = h.connect("b", "2");
    let mut b3 = h.connect("b", "3");
    b1.send(presence());
    b2.send(presence());
    b1.drain();
    b2.drain();
    a.send(presence_to("b@localhost", None));
    assert_eq!(presences(&b1.drain()).len(), 1);
    assert_eq!(presences(&b2.drain()).len(), 1);
    b3.expect_nothing();
    a.send(presence_to("b@localhost/3", None));
    assert_eq!(
        presences(&b3.drain()).len(),
        1,
        "to a full JID even if not available"
    );
    a.send(presence_to("b@localhost/gone", None));
    b1.expect_nothing();
    b2.expect_nothing();
    b3.expect_nothing();
}

#[test]
fn invalid_presence_types() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    a.send(presence().attr("type", "bogus"));
    assert_eq!(error_condition(&a.recv()).as_deref(), Some("bad-request"));
    a.send(presence_to("b@localhost", Some("bogus")));
    assert_eq!(error_condition(&a.recv()).as_deref(), Some("bad-request"));
}

#[test]
fn ignore_presence_priority_option() {
    let setup = Setup {
        host_options: vec![("ignore_presence_priority", Value::Bool(true))],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    let mut a = h.connect("a", "1");
    a.send(with_priority(presence(), 42));
    let p = a.recv();
    assert_eq!(
        p.get_child_text("priority", NS_CLIENT).as_deref(),
        Some("0")
    );
    assert_eq!(a.session.priority(), 0);
}

#[test]
fn bad_option_type_fails_the_load() {
    let setup = Setup {
        host_options: vec![("ignore_presence_priority", Value::str("yes"))],
        ..Setup::default()
    };
    let err = Harness::try_with(&[], &["presence"], setup)
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("ignore_presence_priority"), "{msg}");
}

/// Rough cost of a presence broadcast to a roster of 500 contacts, 100 of
/// them online (`cargo test -p modules --release --test integration im_presence:: -- --ignored --nocapture`).
#[test]
#[ignore]
fn broadcast_throughput() {
    let names: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
    let mut users: Vec<&str> = names.iter().map(String::as_str).collect();
    users.push("star");
    let h = Harness::new(&users);
    let mut star = h.connect("star", "1");
    let mut online = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut c = h.connect(n, "1");
        c.send(presence_to("star@localhost", Some("subscribe")));
        star.send(presence_to(&format!("{n}@localhost"), Some("subscribed")));
        if i < 100 {
            c.send(presence());
            c.drain();
            online.push(c);
        } else {
            h.disconnect(&c);
        }
    }
    star.send(presence());
    star.drain();
    let rounds = 2000;
    let start = std::time::Instant::now();
    for i in 0..rounds {
        let show = if i % 2 == 0 { "away" } else { "chat" };
        star.send(presence().child(Element::new("show", NS_CLIENT).text(show)));
        if i % 50 == 49 {
            star.drain();
            for c in online.iter_mut() {
                c.drain();
            }
        }
    }
    let t = start.elapsed();
    println!(
        "presence broadcast to 500 contacts (100 online): {:.0} broadcasts/s, {:.0} routed stanzas/s",
        rounds as f64 / t.as_secs_f64(),
        (rounds * 500) as f64 / t.as_secs_f64()
    );
}
