//! The `hello` module end to end: added with `ServerBuilder::with_module`,
//! enabled by name from this example's `prosody.cfg.lua`, asked by a real
//! client over TCP and over HTTP on loopback; then unloaded at run time
//! (every hook, the disco feature and the HTTP route go: counted, and seen
//! from the client) and loaded again (its shared state kept).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hello_module::{Greeted, Hello, NODE_COUNT, NS_HELLO};
use lilt::ServerBuilder;
use lilt::bosh_websocket::routes::HttpRoutes;
use xmpp_core::client::{ClientLink, ConnectOptions, connect};
use xmpp_core::module::manager;
use xmpp_core::{Element, Jid, Server};

mod common;

use common::{NS_CLIENT, NS_DISCO_INFO, http_get, iq, port_zero, total_hooks};

async fn greeting(link: &mut ClientLink, id: &str) -> Result<String, Element> {
    let answer = iq(link, id, Element::new("hello", NS_HELLO)).await;
    match answer.type_() {
        Some("result") => Ok(answer
            .get_child("hello", NS_HELLO)
            .map(Element::text_content)
            .unwrap_or_default()),
        _ => Err(answer),
    }
}

async fn has_feature(link: &mut ClientLink, id: &str) -> bool {
    let answer = iq(link, id, Element::new("query", NS_DISCO_INFO)).await;
    answer
        .get_child("query", NS_DISCO_INFO)
        .is_some_and(|q| q.children().any(|f| f.get_attr("var") == Some(NS_HELLO)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_by_name_answers_then_unloads_and_reloads_cleanly() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("prosody.cfg.lua");
    let mut config = lilt::lua_compat::config::load(&file).unwrap();
    config.global.set("c2s_ports", port_zero());
    config.global.set("http_ports", port_zero());
    let server = ServerBuilder::new(config)
        .with_module("hello", || Hello)
        .build()
        .unwrap();
    let host = server.host("localhost").unwrap();
    assert!(
        host.has_module("hello"),
        "enabled by name in prosody.cfg.lua"
    );
    lilt::auth::provider_for_host(&host)
        .unwrap()
        .create_user("alice", Some("secret"))
        .unwrap();
    let running = lilt::startup::start(server.clone()).await.unwrap();
    let find = |kind: &str| {
        running
            .listening
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
            .unwrap_or_else(|| panic!("a {kind} listener in {:?}", running.listening))
    };
    let (c2s, http) = (find("c2s"), find("http"));
    let mut link = connect(&ConnectOptions {
        address: c2s.to_string(),
        jid: Jid::parse("alice@localhost").unwrap(),
        password: "secret".into(),
        insecure_tls: true,
        ca_file: None,
    })
    .await
    .unwrap();

    // Loaded: the greeting, the feature, the route.
    assert_eq!(
        greeting(&mut link, "g1").await.unwrap(),
        "Hello from lilt, alice"
    );
    assert!(has_feature(&mut link, "d1").await);
    assert_eq!(
        http_get(http, "/hello").await,
        (200, "Hello from lilt\n".into())
    );

    let commands = || xmpp_core::adhoc::nodes(&host);
    assert!(commands().iter().any(|n| n == NODE_COUNT));
    let ctx = manager::context(&server, &host, "hello").expect("hello is loaded");
    let own_hooks = ctx.hook_count();
    assert!(
        own_hooks >= 2,
        "the IQ handler and the disco feature: {own_hooks}"
    );
    let hooks_before = total_hooks(&server);
    let routes = server.extension::<HttpRoutes>();
    let routes_before = routes.route_count();

    // Unloaded: everything it added is gone, and nothing else.
    assert!(manager::unload(&server, &host, "hello"));
    assert!(!host.has_module("hello"));
    assert_eq!(ctx.hook_count(), 0);
    assert_eq!(total_hooks(&server), hooks_before - own_hooks);
    assert_eq!(routes.route_count(), routes_before - 1);
    assert!(!commands().iter().any(|n| n == NODE_COUNT));
    let refused = greeting(&mut link, "g2").await.unwrap_err();
    assert!(
        refused
            .get_child("error", NS_CLIENT)
            .is_some_and(|e| e.children().any(|c| c.name() == "service-unavailable")),
        "{}",
        refused.to_xml()
    );
    assert!(!has_feature(&mut link, "d2").await);
    assert_eq!(http_get(http, "/hello").await.0, 404);
    // The server goes on serving the rest (ping is another module).
    let pong = iq(&mut link, "p1", Element::new("ping", "urn:xmpp:ping")).await;
    assert_eq!(pong.type_(), Some("result"));

    // Loaded again: the same hooks, and the count kept in shared state.
    assert_eq!(
        manager::load(&server, &host, "hello").unwrap(),
        manager::LoadOutcome::Loaded
    );
    assert_eq!(total_hooks(&server), hooks_before);
    assert_eq!(routes.route_count(), routes_before);
    assert!(commands().iter().any(|n| n == NODE_COUNT));
    assert_eq!(
        greeting(&mut link, "g3").await.unwrap(),
        "Hello from lilt, alice"
    );
    assert_eq!(http_get(http, "/hello").await.0, 200);
    let ctx = manager::context(&server, &host, "hello").unwrap();
    assert_eq!(
        ctx.shared::<Greeted>("greeted").0.load(Ordering::Relaxed),
        2
    );

    drop(link);
    running.shutdown().await;
    let _: Arc<Server> = server;
}
