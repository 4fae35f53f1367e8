//! lilt as a library with an in-process component: `Component
//! "upper.localhost"` is declared without a module (as for an external
//! XEP-0114 component), and a Rust value serves it instead of a socket. It
//! answers every message to `upper.localhost` (or `anyone@upper.localhost`)
//! with its body in upper case, and pings.
//!
//! ```sh
//! cargo run --example in_process_component
//! ```
//! Then log in to 127.0.0.1:5222 as `alice@localhost` with password `secret`
//! (an account the example creates in memory; plain TCP is allowed here: an
//! example, not a deployment) and message `bot@upper.localhost`. An external
//! component could connect to port 5347 instead, with the same secret, once
//! this one is detached.

use std::path::Path;
use std::sync::Arc;

use xmpp_core::component::{Component, ComponentSender};
use xmpp_core::stanza::NS_CLIENT;
use xmpp_core::{Clock, Element};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 5222 }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "memory"
modules_enabled = { "roster"; "disco"; "ping" }
VirtualHost "localhost"
Component "upper.localhost"
    component_secret = "not-used-by-the-in-process-one"
"#;

/// The component: upper-cases message bodies, answers pings, and refuses
/// other IQs as a component should.
struct Upper;

impl Component for Upper {
    fn handle(&self, stanza: Element, sender: &ComponentSender) {
        let result = match stanza.name() {
            "message" if stanza.type_() != Some("error") => {
                let Some(body) = stanza.get_child_text("body", NS_CLIENT) else {
                    return;
                };
                let reply = Element::new("message", NS_CLIENT)
                    .attr_opt("from", stanza.to())
                    .attr_opt("to", stanza.from())
                    .attr("type", stanza.type_().unwrap_or("normal"))
                    .text_tag("body", body.to_uppercase());
                sender.send(reply)
            }
            "iq" if matches!(stanza.type_(), Some("get") | Some("set")) => {
                let reply = if stanza.get_child("ping", "urn:xmpp:ping").is_some() {
                    stanza.reply()
                } else {
                    xmpp_core::StanzaError::service_unavailable().reply_to(&stanza)
                };
                sender.send(reply)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!("upper: {e}");
        }
    }

    fn connected(&self, sender: &ComponentSender) {
        tracing::info!("upper: serving {}", sender.domain());
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = lua_compat::config::load_str(CONFIG, Path::new("in_process_component.cfg.lua"))?;
    let server = lilt::startup::build_server(config, Clock::System)?;
    if let Some(host) = server.host("localhost") {
        auth::provider_for_host(&host)?.create_user("alice", Some("secret"))?;
    }
    let running = lilt::startup::start(server.clone()).await?;
    let attached = xmpp_core::component::attach(&server, "upper.localhost", Arc::new(Upper))?;
    for l in &running.listening {
        println!("listening {} on {}", l.kind, l.addr);
    }
    tokio::signal::ctrl_c().await?;
    attached.detach();
    running.shutdown().await;
    Ok(())
}
