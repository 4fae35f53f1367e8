//! lilt as a library: a server built from a config string, with a module of
//! your own written in Rust — here an echo service at `echo@localhost` that
//! answers every chat message with the same body.
//!
//! ```sh
//! cargo run --example embedded_echo
//! ```
//! Then log in to 127.0.0.1:5222 as `alice@localhost` with password `secret`
//! (an account the example creates in memory; plain TCP is allowed here: an
//! example, not a deployment) and message `echo@localhost`.

use std::path::Path;
use std::sync::Arc;

use xmpp_core::stanza::NS_CLIENT;
use xmpp_core::{Clock, Element, Event, Server};

const CONFIG: &str = r#"
interfaces = { "127.0.0.1" }
c2s_ports = { 5222 }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "memory"
modules_enabled = { "roster"; "disco"; "ping" }
VirtualHost "localhost"
"#;

/// The echo "module": hooks messages to `echo@localhost` on the host's bus,
/// the way a Prosody module hooks `message/bare`.
fn load_echo(server: &Arc<Server>) {
    let Some(host) = server.host("localhost") else {
        return;
    };
    let server_ref = Arc::downgrade(server);
    let host_ref = Arc::downgrade(&host);
    host.events
        .hook("message/bare", 10, move |event: &mut Event| {
            let stanza = event.stanza();
            if stanza.to() != Some("echo@localhost") || stanza.type_() == Some("error") {
                return false;
            }
            let Some(body) = stanza.get_child_text("body", NS_CLIENT) else {
                return true;
            };
            let reply = Element::new("message", NS_CLIENT)
                .attr("type", stanza.type_().unwrap_or("chat"))
                .attr("from", "echo@localhost")
                .attr_opt("to", stanza.from())
                .text_tag("body", body);
            if let (Some(server), Some(host)) = (server_ref.upgrade(), host_ref.upgrade()) {
                server.send_from_host(&host, reply);
            }
            true
        });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = lua_compat::config::load_str(CONFIG, Path::new("embedded_echo.cfg.lua"))?;
    let server = lilt::startup::build_server(config, Clock::System)?;
    if let Some(host) = server.host("localhost") {
        auth::provider_for_host(&host)?.create_user("alice", Some("secret"))?;
    }
    load_echo(&server);
    let running = lilt::startup::start(server).await?;
    for l in &running.listening {
        println!("listening {} on {}", l.kind, l.addr);
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
