//! The example's Lua module (`plugins/mod_hello_lua.lua`, written as a
//! Prosody module) enabled by name: no Rust module is called `hello_lua`,
//! so lilt finds it on `plugin_paths` and runs it. A real client asks it
//! over TCP; unloading it at run time removes its hooks and its disco
//! feature (counted, and seen from the client).

use std::path::Path;

use lilt::ServerBuilder;
use xmpp_core::client::{ClientLink, ConnectOptions, connect};
use xmpp_core::module::manager;
use xmpp_core::{Element, Jid, Value};

mod common;

use common::{NS_CLIENT, NS_DISCO_INFO, iq, port_zero, total_hooks};

const NS_HELLO_LUA: &str = "urn:example:hello-lua";

async fn greeting(link: &mut ClientLink, id: &str) -> Element {
    iq(link, id, Element::new("hello", NS_HELLO_LUA)).await
}

async fn has_feature(link: &mut ClientLink, id: &str) -> bool {
    let answer = iq(link, id, Element::new("query", NS_DISCO_INFO)).await;
    answer.get_child("query", NS_DISCO_INFO).is_some_and(|q| {
        q.children()
            .any(|f| f.get_attr("var") == Some(NS_HELLO_LUA))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_module_from_plugin_paths_answers_then_unloads_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = lilt::lua_compat::config::load(&dir.join("prosody.cfg.lua")).unwrap();
    config.global.set("c2s_ports", port_zero());
    config.global.set("http_ports", port_zero());
    config.global.set(
        "plugin_paths",
        Value::Table(xmpp_core::Table {
            seq: vec![Value::str(dir.join("plugins").to_string_lossy())],
            ..Default::default()
        }),
    );
    config.host_mut("localhost").unwrap().section.set(
        "modules_enabled",
        Value::Table(xmpp_core::Table {
            seq: vec![Value::str("hello_lua")],
            ..Default::default()
        }),
    );
    let server = ServerBuilder::new(config).build().unwrap();
    let host = server.host("localhost").unwrap();
    assert!(host.has_module("hello_lua"), "{:?}", host.loaded_modules());
    lilt::auth::provider_for_host(&host)
        .unwrap()
        .create_user("bob", Some("secret"))
        .unwrap();
    let running = lilt::startup::start(server.clone()).await.unwrap();
    let c2s = running
        .listening
        .iter()
        .find(|l| l.kind == "c2s")
        .map(|l| l.addr)
        .unwrap();
    let mut link = connect(&ConnectOptions {
        address: c2s.to_string(),
        jid: Jid::parse("bob@localhost").unwrap(),
        password: "secret".into(),
        insecure_tls: true,
        ca_file: None,
    })
    .await
    .unwrap();

    let answer = greeting(&mut link, "g1").await;
    assert_eq!(answer.type_(), Some("result"), "{}", answer.to_xml());
    assert_eq!(
        answer
            .get_child("hello", NS_HELLO_LUA)
            .map(Element::text_content)
            .as_deref(),
        Some("Hello from lilt, bob")
    );
    assert!(has_feature(&mut link, "d1").await);

    let ctx = manager::context(&server, &host, "hello_lua").unwrap();
    let own = ctx.hook_count();
    assert!(own >= 2, "the IQ handler and the feature: {own}");
    let before = total_hooks(&server);
    assert!(manager::unload(&server, &host, "hello_lua"));
    assert_eq!(ctx.hook_count(), 0);
    assert_eq!(total_hooks(&server), before - own);
    let refused = greeting(&mut link, "g2").await;
    assert_eq!(refused.type_(), Some("error"), "{}", refused.to_xml());
    assert!(refused.get_child("error", NS_CLIENT).is_some());
    assert!(!has_feature(&mut link, "d2").await);

    drop(link);
    running.shutdown().await;
}
