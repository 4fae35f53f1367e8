//! Runs lilt with the `hello` module from a `prosody.cfg.lua` (default:
//! this example's own) until Ctrl-C.

use std::path::PathBuf;

use hello_module::Hello;
use lilt::ServerBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let file = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("prosody.cfg.lua"));
    let config = lilt::lua_compat::config::load(&file)?;
    let server = ServerBuilder::new(config)
        .with_module("hello", || Hello)
        .build()?;
    let running = lilt::startup::start(server).await?;
    for l in &running.listening {
        println!("listening for {} on {}", l.kind, l.addr);
    }
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
