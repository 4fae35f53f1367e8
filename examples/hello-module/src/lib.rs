//! # hello-module
//!
//! An example of a lilt module written in Rust: [`Hello`] implements
//! [`Module`], [`register`] adds it to a registry under the name `hello`
//! (or an embedder calls `ServerBuilder::with_module("hello", || Hello)`),
//! and `modules_enabled = { "hello" }` in `prosody.cfg.lua` loads it.
//!
//! What it does, on each host that enables it:
//! - announces the disco#info feature [`NS_HELLO`];
//! - answers an IQ get of `<hello xmlns='urn:example:hello'/>` to the host
//!   with `<hello>GREETING, USER</hello>` (`hello_greeting`, default
//!   `"Hello"`), counting greetings in state shared across reloads;
//! - serves `GET /hello` on the HTTP server (the greeting as text);
//! - offers the ad-hoc command [`NODE_COUNT`] ("how many greetings so far").
//!
//! Everything it registers goes through its [`ModuleContext`], so
//! unloading it (at run time, or on a config reload that drops it from
//! `modules_enabled`) removes all of it. Start reading at [`Hello::load`].
//!
//! `plugins/mod_hello_lua.lua` is the same module written for Prosody in
//! Lua: with `plugin_paths` naming that directory, `modules_enabled = {
//! "hello_lua" }` runs it on lilt's Lua module host (`lilt::lua_modules`),
//! as no Rust module has that name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use xmpp_core::adhoc::{Command, Permission, Reply};
use xmpp_core::http::{HttpApp, HttpResponse, handler};
use xmpp_core::module::{Module, ModuleContext, ModuleError, Registry};
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Jid};

/// The namespace of the greeting IQ and the disco feature.
pub const NS_HELLO: &str = "urn:example:hello";

/// The node of the ad-hoc command that tells the count.
pub const NODE_COUNT: &str = "urn:example:hello#count";

/// The module.
pub struct Hello;

/// Greetings answered on a host, kept in `module:shared` so a reload keeps
/// counting.
#[derive(Default)]
pub struct Greeted(pub AtomicU64);

impl Module for Hello {
    fn load(&self, ctx: &ModuleContext) -> Result<(), ModuleError> {
        let greeting: Arc<str> = ctx
            .get_option_string("hello_greeting")?
            .unwrap_or_else(|| "Hello".into())
            .into();
        ctx.add_feature(NS_HELLO);

        let greeted = ctx.shared::<Greeted>("greeted");
        let count = greeted.clone();
        ctx.add_command(Command::new(
            "Greetings so far",
            NODE_COUNT,
            Permission::Any,
            move |_request| {
                let n = count.0.load(Ordering::Relaxed);
                Reply::completed().info(format!("{n} greetings so far"))
            },
        ))?;
        let text = greeting.clone();
        ctx.hook(
            &format!("iq-get/host/{NS_HELLO}:hello"),
            0,
            move |event: &mut Event| {
                let stanza = event.stanza();
                let who = stanza
                    .from()
                    .and_then(|f| Jid::parse(f).ok())
                    .and_then(|j| j.node().map(str::to_string))
                    .unwrap_or_else(|| "stranger".into());
                let reply = stanza
                    .reply()
                    .attr("type", "result")
                    .child(Element::new("hello", NS_HELLO).text(format!("{text}, {who}")));
                greeted.0.fetch_add(1, Ordering::Relaxed);
                event.reply(reply);
                true
            },
        );

        let text = greeting.clone();
        ctx.provide_http(
            HttpApp {
                name: "hello".into(),
                default_path: None,
                cors: None,
                routes: vec![(
                    "GET".into(),
                    handler(move |_request| {
                        let body = format!("{text}\n");
                        async move { HttpResponse::ok("text/plain", body) }
                    }),
                )],
            },
            false,
        )?;
        ctx.log("info", &format!("ready to greet with {greeting:?}"));
        Ok(())
    }

    fn unload(&self, ctx: &ModuleContext) {
        ctx.log("info", "no more greetings");
    }
}

/// Adds `hello` to a registry (as every crate with modules does).
pub fn register(registry: &mut Registry) {
    registry.add("hello", || Hello);
}
