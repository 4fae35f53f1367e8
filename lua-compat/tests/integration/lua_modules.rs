//! Prosody's own modules from Debian's `prosody` package, loaded unchanged
//! into lilt's Lua host: what they register, and what they do for the
//! events their documentation describes.
//!
//! Needs `/usr/lib/prosody/modules` (`apt-get install prosody
//! prosody-modules`, as scripts/test.sh does); each test is skipped with a
//! message when the module file is missing.

use crate::lua_host;

use lua_compat::host::{Item, LogLevel, LuaEvent, ModuleSearch, Scope, UserSessions};
use lua_host::{TestHost, list, load, origin, stanza};
use xmpp_core::value::{Table, Value};

fn have(name: &str) -> bool {
    let found = ModuleSearch::default().find_module(name).is_some();
    if !found {
        eprintln!("mod_{name} not installed; skipping (apt-get install prosody prosody-modules)");
    }
    found
}

#[test]
fn motd_sends_message_on_initial_presence() {
    if !have("motd") {
        return;
    }
    let host = TestHost::new("example.com").option(
        "motd_text",
        Value::str("\n    Welcome to\n    the server!\n  "),
    );
    let (host, _m) = load(host, "motd");
    let hooks = host.hooked("presence/initial");
    assert_eq!(hooks.len(), 1);
    assert_eq!((hooks[0].0, hooks[0].1), (Scope::Host, 1));

    let mut ev = LuaEvent::new("presence/initial")
        .with_origin(origin(7, "juliet", "example.com", "balcony"))
        .with_stanza(stanza("<presence/>"));
    assert_eq!(host.fire(&mut ev), None, "motd lets the presence go on");
    let sent = host.take_sent();
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.name(), "message");
    assert_eq!(m.to(), Some("juliet@example.com/balcony"));
    assert_eq!(m.from(), Some("example.com"));
    assert_eq!(
        m.get_child_text("body", "jabber:client").as_deref(),
        Some("Welcome to\nthe server!")
    );
}

#[test]
fn motd_without_text_registers_nothing() {
    if !have("motd") {
        return;
    }
    let (host, _m) = load(TestHost::new("example.com"), "motd");
    assert!(host.hooks.lock().unwrap().is_empty());
}

#[test]
fn welcome_greets_a_new_user() {
    if !have("welcome") {
        return;
    }
    let (host, _m) = load(TestHost::new("example.com"), "welcome");
    assert_eq!(host.hooked("user-registered").len(), 1);
    let mut ev = LuaEvent::new("user-registered")
        .with_field("username", Value::str("romeo"))
        .with_field("host", Value::str("example.com"));
    host.fire(&mut ev);
    let sent = host.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to(), Some("romeo@example.com"));
    assert_eq!(
        sent[0].get_child_text("body", "jabber:client").as_deref(),
        Some("Hello romeo, welcome to the example.com IM server!")
    );

    let custom =
        TestHost::new("example.com").option("welcome_message", Value::str("Hi $username on $host"));
    let (host, _m) = load(custom, "welcome");
    let mut ev = LuaEvent::new("user-registered")
        .with_field("username", Value::str("juliet"))
        .with_field("host", Value::str("example.com"));
    host.fire(&mut ev);
    assert_eq!(
        host.take_sent()[0]
            .get_child_text("body", "jabber:client")
            .as_deref(),
        Some("Hi juliet on example.com")
    );
}

#[test]
fn lastactivity_answers_with_the_last_status() {
    if !have("lastactivity") {
        return;
    }
    let (host, _m) = load(TestHost::new("example.com"), "lastactivity");
    assert_eq!(
        host.items_of("feature"),
        [Item::Value(Value::str("jabber:iq:last"))]
    );
    assert_eq!(host.hooked("pre-presence/bare")[0].1, 10);
    let juliet = origin(3, "juliet", "example.com", "balcony");

    let mut ev = LuaEvent::new("pre-presence/bare")
        .with_origin(juliet.clone())
        .with_stanza(stanza(
            "<presence type='unavailable'><status>Gone to bed</status></presence>",
        ));
    assert_eq!(host.fire(&mut ev), None);

    let mut ev = LuaEvent::new("iq-get/bare/jabber:iq:last:query")
        .with_origin(juliet.clone())
        .with_stanza(stanza(
            "<iq type='get' id='l1' from='juliet@example.com/balcony'><query xmlns='jabber:iq:last'/></iq>",
        ));
    assert_eq!(host.fire(&mut ev), Some(Value::Bool(true)));
    let replies = host.take_session_sent();
    assert_eq!(replies.len(), 1);
    let (session, reply) = &replies[0];
    assert_eq!(*session, 3);
    assert_eq!(reply.type_(), Some("result"));
    assert_eq!(reply.id(), Some("l1"));
    let q = reply.get_child("query", "jabber:iq:last").expect("query");
    assert_eq!(q.text_content(), "Gone to bed");
    let seconds: u64 = q.get_attr("seconds").unwrap().parse().unwrap();
    assert!(seconds < 5);

    // Someone without a subscription asking about juliet is refused.
    let mut ev = LuaEvent::new("iq-get/bare/jabber:iq:last:query")
        .with_origin(origin(4, "tybalt", "example.com", "r"))
        .with_stanza(stanza(
            "<iq type='get' id='l2' to='juliet@example.com' from='tybalt@example.com/r'><query xmlns='jabber:iq:last'/></iq>",
        ));
    assert_eq!(host.fire(&mut ev), Some(Value::Bool(true)));
    let (_, err) = &host.take_session_sent()[0];
    assert_eq!(err.type_(), Some("error"));
    let e = err.get_child("error", "jabber:client").expect("error");
    assert_eq!(e.get_attr("type"), Some("auth"));
    assert!(
        e.get_child("forbidden", xmpp_core::stanza::NS_STANZAS)
            .is_some()
    );
}

#[test]
fn server_contact_info_adds_the_form() {
    if !have("server_contact_info") {
        return;
    }
    let mut contacts = Table::new();
    contacts.insert("abuse", list(&["mailto:abuse@example.com"]));
    contacts.insert(
        "support",
        list(&["xmpp:support@example.com", "https://example.com/help"]),
    );
    let host = TestHost::new("example.com").option("contact_info", Value::Table(contacts));
    let (host, _m) = load(host, "server_contact_info");
    let ext = host.items_of("extension");
    assert_eq!(ext.len(), 1);
    let Item::Stanza(x) = &ext[0] else {
        panic!("extension is a stanza: {ext:?}")
    };
    assert!(x.is("x", "jabber:x:data"));
    assert_eq!(x.get_attr("type"), Some("result"));
    let values = |var: &str| -> Vec<String> {
        x.children()
            .find(|f| f.get_attr("var") == Some(var))
            .map(|f| f.children().map(|v| v.text_content()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        values("FORM_TYPE"),
        ["http://jabber.org/network/serverinfo"]
    );
    assert_eq!(values("abuse-addresses"), ["mailto:abuse@example.com"]);
    assert_eq!(
        values("support-addresses"),
        ["xmpp:support@example.com", "https://example.com/help"]
    );
    assert!(values("sales-addresses").is_empty());

    // Without contact_info the admins are the admin addresses.
    let host = TestHost::new("example.com").global_option("admins", list(&["Admin@Example.COM"]));
    let (host, _m) = load(host, "server_contact_info");
    let Item::Stanza(x) = &host.items_of("extension")[0] else {
        panic!("extension is a stanza")
    };
    let admin = x
        .children()
        .find(|f| f.get_attr("var") == Some("admin-addresses"))
        .expect("admin field");
    assert_eq!(
        admin
            .children()
            .map(|v| v.text_content())
            .collect::<Vec<_>>(),
        ["xmpp:admin@example.com"]
    );
}

fn announce_host() -> TestHost {
    let mut host = TestHost::new("example.com");
    host.admins = vec!["admin@example.com".into()];
    host.online = vec![
        UserSessions {
            username: "romeo".into(),
            resources: vec![("orchard".into(), 1)],
        },
        UserSessions {
            username: "juliet".into(),
            resources: vec![("balcony".into(), 2)],
        },
    ];
    host
}

#[test]
fn announce_sends_admin_announcements_to_online_users() {
    if !have("announce") {
        return;
    }
    let (host, _m) = load(announce_host(), "announce");
    assert_eq!(*host.depends.lock().unwrap(), ["adhoc"]);
    let adhoc = host.items_of("adhoc-provider");
    assert_eq!(adhoc.len(), 1);
    let Item::Value(Value::Table(desc)) = &adhoc[0] else {
        panic!("adhoc descriptor: {adhoc:?}")
    };
    assert_eq!(
        desc.get("node").and_then(Value::as_str),
        Some("http://jabber.org/protocol/admin#announce")
    );
    assert_eq!(host.hooked("message/host").len(), 1);

    // A non-admin's announcement is not handled and sends nothing.
    let mut ev = LuaEvent::new("message/host")
        .with_origin(origin(9, "mallory", "example.com", "x"))
        .with_stanza(stanza(
            "<message to='example.com/announce/online' from='mallory@example.com/x'><body>hi</body></message>",
        ));
    assert_eq!(host.fire(&mut ev), None);
    assert!(host.take_sent().is_empty());
    assert!(!host.logged(LogLevel::Warn).is_empty());

    let mut ev = LuaEvent::new("message/host")
        .with_origin(origin(8, "admin", "example.com", "desk"))
        .with_stanza(stanza(
            "<message to='example.com/announce/online' from='admin@example.com/desk'><body>Maintenance at noon</body></message>",
        ));
    assert_eq!(host.fire(&mut ev), Some(Value::Bool(true)));
    let mut sent = host.take_sent();
    sent.sort_by(|a, b| a.to().cmp(&b.to()));
    let to: Vec<_> = sent.iter().map(|s| s.to().unwrap_or("")).collect();
    assert_eq!(to, ["juliet@example.com", "romeo@example.com"]);
    for m in &sent {
        assert_eq!(m.type_(), Some("headline"));
        assert_eq!(m.from(), Some("example.com"));
        assert_eq!(
            m.get_child_text("body", "jabber:client").as_deref(),
            Some("Maintenance at noon")
        );
    }
}

#[test]
fn watchregistrations_tells_the_watchers() {
    if !have("watchregistrations") {
        return;
    }
    let host = TestHost::new("example.com").option(
        "registration_watchers",
        list(&["Watcher@Example.com", "admin@example.com"]),
    );
    let (host, _m) = load(host, "watchregistrations");
    let mut ev = LuaEvent::new("user-registered")
        .with_field("username", Value::str("newbie"))
        .with_field("host", Value::str("example.com"))
        .with_field("ip", Value::str("192.0.2.7"));
    host.fire(&mut ev);
    let mut sent = host.take_sent();
    sent.sort_by(|a, b| a.to().cmp(&b.to()));
    let to: Vec<_> = sent.iter().map(|s| s.to().unwrap_or("")).collect();
    assert_eq!(to, ["admin@example.com", "watcher@example.com"]);
    for m in &sent {
        assert_eq!(m.type_(), Some("chat"));
        assert_eq!(m.from(), Some("example.com"));
        assert_eq!(
            m.get_child_text("body", "jabber:client").as_deref(),
            Some("User newbie just registered on example.com from 192.0.2.7")
        );
    }
}

#[test]
fn unload_takes_back_hooks_and_items() {
    if !have("lastactivity") {
        return;
    }
    let (host, m) = load(TestHost::new("example.com"), "lastactivity");
    assert_eq!(host.hooks.lock().unwrap().len(), 2);
    assert_eq!(host.items.lock().unwrap().len(), 1);
    m.unload();
    assert!(host.hooks.lock().unwrap().is_empty());
    assert!(host.items.lock().unwrap().is_empty());
}

#[test]
fn private_stores_and_returns_xml_in_a_map_store() {
    if !have("private") {
        return;
    }
    let (host, _m) = load(TestHost::new("example.com"), "private");
    assert_eq!(
        host.items_of("feature"),
        [Item::Value(Value::str("jabber:iq:private"))]
    );
    let juliet = origin(5, "juliet", "example.com", "balcony");
    let mut set = LuaEvent::new("iq/self/jabber:iq:private:query")
        .with_origin(juliet.clone())
        .with_stanza(stanza(
            "<iq type='set' id='s1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:x:prefs' mode='dark'><colour>red</colour></prefs></query></iq>",
        ));
    assert_eq!(host.fire(&mut set), Some(Value::Bool(true)));
    let (_, ack) = &host.take_session_sent()[0];
    assert_eq!((ack.type_(), ack.id()), (Some("result"), Some("s1")));

    let mut get = LuaEvent::new("iq/self/jabber:iq:private:query")
        .with_origin(juliet)
        .with_stanza(stanza(
            "<iq type='get' id='g1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:x:prefs'/></query></iq>",
        ));
    assert_eq!(host.fire(&mut get), Some(Value::Bool(true)));
    let (_, reply) = &host.take_session_sent()[0];
    assert_eq!(reply.type_(), Some("result"));
    let prefs = reply
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("prefs", "urn:x:prefs"))
        .expect("stored element comes back");
    assert_eq!(prefs.get_attr("mode"), Some("dark"));
    assert_eq!(
        prefs.get_child_text("colour", "urn:x:prefs").as_deref(),
        Some("red")
    );
}

#[test]
fn webpresence_serves_presence_over_http() {
    if !have("webpresence") {
        return;
    }
    let (host, m) = load(TestHost::new("example.com"), "webpresence");
    let routes = host.routes.lock().unwrap().clone();
    assert_eq!(routes.len(), 1);
    let (method, path, route) = routes[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/*"));
    let get = |wildcard: &str| {
        m.handle_http(
            route,
            &lua_compat::host::HttpRequest {
                method: "GET".into(),
                path: format!("/{wildcard}"),
                wildcard: Some(wildcard.into()),
                ..Default::default()
            },
        )
        .expect("handler runs")
    };
    let r = get("juliet@example.com/text");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"offline");
    assert_eq!(
        r.headers,
        [("content-type".to_string(), "text/plain".to_string())]
    );
    let r = get("juliet@example.com/json");
    let body = String::from_utf8(r.body).unwrap();
    assert!(body.contains("\"show\":\"offline\""), "{body}");
    assert!(body.contains("\"jid\":\"juliet@example.com\""), "{body}");
    m.unload();
    assert!(host.routes.lock().unwrap().is_empty());
}
