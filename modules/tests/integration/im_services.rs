//! mod_iq dispatching, and the small services: disco, ping, version, time,
//! uptime.

use crate::im_common;

use std::sync::{Arc, Mutex};

use im_common::*;
use xmpp_core::stanza::Element;
use xmpp_core::{Table, Value};

const INFO: &str = "http://jabber.org/protocol/disco#info";
const ITEMS: &str = "http://jabber.org/protocol/disco#items";

fn features(reply: &Element) -> Vec<String> {
    reply
        .get_child("query", INFO)
        .map(|q| {
            q.children()
                .filter(|c| c.name() == "feature")
                .filter_map(|f| f.get_attr("var").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn identities(reply: &Element) -> Vec<(String, String, Option<String>)> {
    reply
        .get_child("query", INFO)
        .map(|q| {
            q.children()
                .filter(|c| c.name() == "identity")
                .map(|i| {
                    (
                        i.get_attr("category").unwrap_or_default().to_string(),
                        i.get_attr("type").unwrap_or_default().to_string(),
                        i.get_attr("name").map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unknown_iq_gets_service_unavailable_everywhere() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let _b = h.connect("b", "1");
    for (to, id) in [
        (Some("localhost"), "h"),
        (Some("b@localhost"), "b"),
        (None, "self"),
        (Some("a@localhost"), "self2"),
    ] {
        let r = a.iq(iq("get", id, to, query("urn:example:unknown")));
        assert_eq!(r.type_(), Some("error"), "{id}");
        assert_eq!(
            error_condition(&r).as_deref(),
            Some("service-unavailable"),
            "{id}"
        );
    }
    // To a gone resource.
    let r = a.iq(iq(
        "set",
        "gone",
        Some("b@localhost/nope"),
        query("urn:example:unknown"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
    assert_eq!(r.from(), Some("b@localhost/nope"));
}

#[test]
fn iq_to_a_full_jid_is_delivered_and_replies_come_back() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let mut b = h.connect("b", "1");
    a.send(iq(
        "get",
        "v1",
        Some("b@localhost/1"),
        query("jabber:iq:version"),
    ));
    let got = b.recv();
    assert_eq!(got.from(), Some("a@localhost/1"));
    assert_eq!(got.id(), Some("v1"));
    b.send(
        got.reply()
            .child(query("jabber:iq:version").text_tag("name", "client")),
    );
    let r = a.recv();
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.from(), Some("b@localhost/1"));
    // A result to a gone resource is dropped, never answered.
    b.send(iq("result", "x", Some("a@localhost/gone"), query("urn:x")).attr("type", "result"));
    b.expect_nothing();
}

#[test]
fn result_and_error_iqs_fire_by_id() {
    let h = Harness::new(&["a"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    for ev in [
        "iq-result/host/ping-1",
        "iq-error/host/ping-2",
        "iq-result/bare/q1",
        "iq-result/self/s1",
    ] {
        let seen = seen.clone();
        h.host.events.hook(ev, 0, move |e| {
            seen.lock().unwrap().push(e.name.clone());
            true
        });
    }
    let mut a = h.connect("a", "1");
    let _other = h.connect("other", "1");
    a.send(
        Element::new("iq", "jabber:client")
            .attr("type", "result")
            .attr("id", "ping-1")
            .attr("to", "localhost"),
    );
    a.send(
        Element::new("iq", "jabber:client")
            .attr("type", "error")
            .attr("id", "ping-2")
            .attr("to", "localhost"),
    );
    a.send(
        Element::new("iq", "jabber:client")
            .attr("type", "result")
            .attr("id", "q1")
            .attr("to", "other@localhost"),
    );
    a.send(
        Element::new("iq", "jabber:client")
            .attr("type", "result")
            .attr("id", "s1"),
    );
    a.expect_nothing();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "iq-result/host/ping-1",
            "iq-error/host/ping-2",
            "iq-result/bare/q1",
            "iq-result/self/s1"
        ]
    );
}

#[test]
fn specific_events_fire_before_typed_ones() {
    let h = Harness::new(&["a"]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    for (ev, stop) in [("iq/host/urn:t:q", false), ("iq-set/host/urn:t:q", true)] {
        let seen = seen.clone();
        h.host.events.hook(ev, 0, move |e| {
            seen.lock().unwrap().push(e.name.clone());
            if stop {
                e.reply(e.stanza().reply());
            }
            stop
        });
    }
    let mut a = h.connect("a", "1");
    let r = a.iq(iq(
        "set",
        "t",
        Some("localhost"),
        Element::new("q", "urn:t"),
    ));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(
        *seen.lock().unwrap(),
        ["iq/host/urn:t:q", "iq-set/host/urn:t:q"]
    );
}

#[test]
fn ping() {
    let h = Harness::new(&["a", "b"]);
    let mut a = h.connect("a", "1");
    let ping = || Element::new("ping", "urn:xmpp:ping");
    let r = a.iq(iq("get", "p1", Some("localhost"), ping()));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.from(), Some("localhost"));
    assert_eq!(r.to(), Some("a@localhost/1"));
    assert!(r.children().next().is_none());
    // To oneself: nothing takes iq/self, so the router goes on with iq/bare.
    let r = a.iq(iq("get", "p0", None, ping()));
    assert_eq!(r.type_(), Some("result"));
    // Accounts answer pings too (iq-get/bare).
    let r = a.iq(iq("get", "p2", Some("b@localhost"), ping()));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.from(), Some("b@localhost"));
}

#[test]
fn version_hides_os_when_asked() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq(
        "get",
        "lx2",
        Some("localhost"),
        query("jabber:iq:version"),
    ));
    let q = r.get_child("query", "jabber:iq:version").expect("query");
    assert_eq!(
        q.get_child_text("name", "jabber:iq:version").as_deref(),
        Some("lilt")
    );
    assert_eq!(
        q.get_child_text("version", "jabber:iq:version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(q.get_child("os", "jabber:iq:version").is_some());

    let setup = Setup {
        global: vec![("hide_os_type", Value::Bool(true))],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq(
        "get",
        "lx2",
        Some("localhost"),
        query("jabber:iq:version"),
    ));
    let q = r.get_child("query", "jabber:iq:version").expect("query");
    assert_eq!(q.children().count(), 2, "name and version only");
    // Not for accounts.
    let r = a.iq(iq(
        "get",
        "lx3",
        Some("a@localhost"),
        query("jabber:iq:version"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn time_from_the_server_clock() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq(
        "get",
        "t1",
        Some("localhost"),
        Element::new("time", "urn:xmpp:time"),
    ));
    let t = r.get_child("time", "urn:xmpp:time").expect("time");
    assert_eq!(
        t.get_child_text("tzo", "urn:xmpp:time").as_deref(),
        Some("+00:00")
    );
    assert_eq!(
        t.get_child_text("utc", "urn:xmpp:time").as_deref(),
        Some("2008-08-22T21:09:04Z")
    );
    let r = a.iq(iq("get", "t2", None, query("jabber:iq:time")));
    let q = r.get_child("query", "jabber:iq:time").expect("legacy");
    assert_eq!(
        q.get_child_text("utc", "jabber:iq:time").as_deref(),
        Some("20080822T21:09:04")
    );
}

#[test]
fn uptime_is_zero_on_a_fixed_clock() {
    let h = Harness::new(&["romeo"]);
    let mut a = h.connect("romeo", "1");
    let r = a.iq(iq("get", "a", Some("localhost"), query("jabber:iq:last")));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.from(), Some("localhost"));
    assert_eq!(
        r.get_child("query", "jabber:iq:last")
            .and_then(|q| q.get_attr("seconds")),
        Some("0")
    );
}

#[test]
fn server_disco_info_lists_loaded_modules() {
    let h = Harness::new(&["a"]);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "d1", Some("localhost"), query(INFO)));
    assert_eq!(r.from(), Some("localhost"));
    assert_eq!(
        identities(&r),
        vec![("server".into(), "im".into(), Some("lilt".into()))]
    );
    let f = features(&r);
    for want in [
        INFO,
        ITEMS,
        "jabber:iq:roster",
        "msgoffline",
        "urn:xmpp:ping",
        "jabber:iq:version",
        "urn:xmpp:time",
        "jabber:iq:time",
        "jabber:iq:last",
    ] {
        assert!(f.iter().any(|x| x == want), "missing {want} in {f:?}");
    }
    let mut dedup = f.clone();
    dedup.dedup();
    assert_eq!(f.len(), dedup.len(), "no duplicates");

    // Modules loaded later, identities, extensions; duplicates collapse.
    modules::disco::add_feature(&h.host, "urn:example:late");
    modules::disco::add_feature(&h.host, "urn:xmpp:ping");
    modules::disco::add_identity(&h.host, "store", "file", Some("Files"));
    modules::disco::add_identity(&h.host, "server", "im", Some("Other name"));
    let form = Element::new("x", "jabber:x:data").attr("type", "result");
    modules::disco::add_extension(&h.host, form);
    let r = a.iq(iq("get", "d2", Some("localhost"), query(INFO)));
    let q = r.get_child("query", INFO).unwrap();
    let names: Vec<&str> = q.children().map(|c| c.name()).collect();
    let first_feature = names.iter().position(|n| *n == "feature").unwrap();
    assert!(
        names[..first_feature].iter().all(|n| *n == "identity"),
        "identities first: {names:?}"
    );
    assert_eq!(names.last(), Some(&"x"), "extensions last");
    assert_eq!(identities(&r).len(), 2);
    assert_eq!(
        features(&r)
            .iter()
            .filter(|f| *f == "urn:xmpp:ping")
            .count(),
        1
    );
    assert!(features(&r).iter().any(|f| f == "urn:example:late"));

    // The caps node answers with the same info; an unknown node is item-not-found.
    let info = modules::disco::server_disco_info(&h.server, &h.host);
    let node = format!("http://prosody.im#{}", modules::disco::caps::hash(&info));
    let r = a.iq(iq(
        "get",
        "d3",
        Some("localhost"),
        query(INFO).attr("node", node.as_str()),
    ));
    assert_eq!(
        r.get_child("query", INFO).and_then(|q| q.get_attr("node")),
        Some(node.as_str())
    );
    assert_eq!(
        features(&r),
        features(&a.iq(iq("get", "d4", Some("localhost"), query(INFO))))
    );
    let r = a.iq(iq(
        "get",
        "d5",
        Some("localhost"),
        query(INFO).attr("node", "nope"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn server_name_option_and_node_handlers() {
    let setup = Setup {
        host_options: vec![("name", Value::str("Verona"))],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    h.host.events.hook("host-disco-info-node", 0, |e| {
        if e.field_str("node") != Some("special") {
            return false;
        }
        let reply = e
            .stanza()
            .reply()
            .child(query(INFO).attr("node", "special"));
        e.reply(reply);
        true
    });
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "d", Some("localhost"), query(INFO)));
    assert_eq!(identities(&r)[0].2.as_deref(), Some("Verona"));
    let r = a.iq(iq(
        "get",
        "n",
        Some("localhost"),
        query(INFO).attr("node", "special"),
    ));
    assert_eq!(r.type_(), Some("result"));
}

#[test]
fn server_disco_items_lists_children_and_option() {
    let mut list = Table::new();
    let mut one = Table::new();
    one.seq = vec![Value::str("proxy.example.org"), Value::str("File proxy")];
    let mut two = Table::new();
    two.seq = vec![Value::str("pubsub.example.org")];
    list.seq = vec![Value::Table(one), Value::Table(two)];
    let setup = Setup {
        host_options: vec![("disco_items", Value::Table(list))],
        extra_hosts: vec![
            (
                "conference.localhost",
                true,
                vec![("name", Value::str("Chatrooms"))],
            ),
            (
                "hidden.localhost",
                true,
                vec![("disco_hidden", Value::Bool(true))],
            ),
            ("a.b.localhost", true, vec![]),
        ],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "i", Some("localhost"), query(ITEMS)));
    let items: Vec<(String, Option<String>)> = r
        .get_child("query", ITEMS)
        .unwrap()
        .children()
        .map(|i| {
            (
                i.get_attr("jid").unwrap_or_default().to_string(),
                i.get_attr("name").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (
                "conference.localhost".to_string(),
                Some("Chatrooms".to_string())
            ),
            (
                "proxy.example.org".to_string(),
                Some("File proxy".to_string())
            ),
            ("pubsub.example.org".to_string(), None),
        ]
    );
    let r = a.iq(iq(
        "get",
        "i2",
        Some("localhost"),
        query(ITEMS).attr("node", "x"),
    ));
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn malformed_disco_items_option_is_ignored() {
    let mut list = Table::new();
    list.seq = vec![Value::Integer(3)];
    let setup = Setup {
        host_options: vec![("disco_items", Value::Table(list))],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "i", Some("localhost"), query(ITEMS)));
    assert_eq!(r.get_child("query", ITEMS).unwrap().children().count(), 0);
}

#[test]
fn account_disco() {
    let admins = Value::Table(Table {
        seq: vec![Value::str("boss@localhost")],
        ..Table::default()
    });
    let setup = Setup {
        global: vec![("admins", admins)],
        ..Setup::default()
    };
    let h = Harness::with(
        &["discoverer", "friend", "stranger", "boss"],
        IM_MODULES,
        setup,
    );
    let mut me = h.connect("discoverer", "1");
    // disco_self.scs
    let r = me.iq(iq("get", "info1", None, query(INFO)));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(
        r.from(),
        Some("discoverer@localhost"),
        "COMPAT: from the account"
    );
    assert_eq!(
        identities(&r),
        vec![("account".into(), "registered".into(), None)]
    );
    assert!(features(&r).contains(&INFO.to_string()));
    assert!(features(&r).contains(&ITEMS.to_string()));
    let r = me.iq(iq("get", "items1", None, query(ITEMS)));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.get_child("query", ITEMS).unwrap().children().count(), 0);

    // Another account: only for contacts subscribed to its presence.
    let mut stranger = h.connect("stranger", "1");
    let r = stranger.iq(iq("get", "x", Some("discoverer@localhost"), query(INFO)));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
    let mut friend = h.connect("friend", "1");
    friend.send(presence_to("discoverer@localhost", Some("subscribe")));
    me.send(presence_to("friend@localhost", Some("subscribed")));
    friend.drain();
    let r = friend.iq(iq("get", "y", Some("discoverer@localhost"), query(INFO)));
    assert_eq!(r.type_(), Some("result"));
    assert_eq!(r.from(), Some("discoverer@localhost"));

    // Admins are shown as such to themselves.
    let mut boss = h.connect("boss", "1");
    let r = boss.iq(iq("get", "z", None, query(INFO)));
    assert_eq!(
        identities(&r),
        vec![("account".into(), "admin".into(), None)]
    );

    // Other modules add to the account's disco#info.
    h.host.events.hook("account-disco-info", 0, |e| {
        if let Some(q) = e
            .stanza
            .as_mut()
            .and_then(|s| s.get_child_mut("query", INFO))
        {
            q.push_child(Element::new("feature", INFO).attr("var", "urn:xmpp:mam:2"));
        }
        false
    });
    let r = me.iq(iq("get", "info2", None, query(INFO)));
    assert!(features(&r).contains(&"urn:xmpp:mam:2".to_string()));
}

#[test]
fn anonymous_accounts_say_so() {
    let setup = Setup {
        auth_name: Some("anonymous"),
        ..Setup::default()
    };
    let h = Harness::with(&["x"], IM_MODULES, setup);
    let mut c = h.connect("x", "1");
    let r = c.iq(iq("get", "i", None, query(INFO)));
    assert_eq!(
        identities(&r),
        vec![("account".into(), "anonymous".into(), None)]
    );
}

#[test]
fn components_get_no_server_identity_nor_account_disco() {
    let setup = Setup {
        extra_hosts: vec![("comp.localhost", true, vec![])],
        ..Setup::default()
    };
    let h = Harness::with(&["a"], IM_MODULES, setup);
    let comp = h.server.host("comp.localhost").unwrap();
    modules::load_module(&h.server, &comp, "iq").unwrap();
    modules::load_module(&h.server, &comp, "disco").unwrap();
    let mut a = h.connect("a", "1");
    let r = a.iq(iq("get", "c", Some("comp.localhost"), query(INFO)));
    assert!(identities(&r).is_empty());
    assert_eq!(features(&r), [INFO, ITEMS]);
    let r = a.iq(iq("get", "c2", Some("user@comp.localhost"), query(INFO)));
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}
