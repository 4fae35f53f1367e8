//! mod_welcome (on `user-registered`, which in-band registration fires)
//! and mod_motd (on initial presence), with the modules' own option names.

use crate::im_common;

use im_common::*;
use xmpp_core::{Event, Value};

fn modules_with(extra: &[&'static str]) -> Vec<&'static str> {
    IM_MODULES
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

#[test]
fn welcome_message_on_registration() {
    for (option, expected) in [
        (None, "Hello alice, welcome to the localhost IM server!"),
        (
            Some("Hi $username@$host, see $faq"),
            "Hi alice@localhost, see $faq",
        ),
    ] {
        let setup = Setup {
            host_options: option
                .map(|o| vec![("welcome_message", Value::str(o))])
                .unwrap_or_default(),
            ..Setup::default()
        };
        let h = Harness::with(&["alice"], &modules_with(&["welcome"]), setup);
        let mut alice = h.connect("alice", "r");
        alice.send(presence());
        alice.drain();
        let mut ev = Event::new(&h.server, "user-registered")
            .with_field("username", "alice")
            .with_field("host", HOST);
        ev.host = Some(h.host.clone());
        h.server.fire_on_host(&h.host, "user-registered", &mut ev);
        let got = alice.recv();
        assert_eq!(got.from(), Some(HOST));
        assert_eq!(got.to(), Some("alice@localhost"));
        assert_eq!(body(&got).as_deref(), Some(expected));
    }
}

#[test]
fn motd_on_initial_presence_only() {
    let setup = Setup {
        host_options: vec![
            ("motd_text", Value::str("\n    Welcome!\n    Be nice.\n  ")),
            ("motd_jid", Value::str("news@localhost")),
        ],
        ..Setup::default()
    };
    let h = Harness::with(&["alice"], &modules_with(&["motd"]), setup);
    let mut alice = h.connect("alice", "r");
    alice.send(presence());
    let got = alice.drain();
    let motd = got
        .iter()
        .find(|e| e.name() == "message")
        .expect("a message of the day");
    assert_eq!(motd.from(), Some("news@localhost"));
    assert_eq!(motd.to(), Some("alice@localhost/r"));
    assert_eq!(body(motd).as_deref(), Some("Welcome!\nBe nice."));
    alice.send(presence());
    assert!(alice.drain().iter().all(|e| e.name() != "message"));

    // Without motd_text, nothing.
    let h = Harness::with(&["alice"], &modules_with(&["motd"]), Setup::default());
    let mut alice = h.connect("alice", "r");
    alice.send(presence());
    assert!(alice.drain().iter().all(|e| e.name() != "message"));
}
