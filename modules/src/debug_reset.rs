//! `debug_reset`: Prosody's mod_debug_reset, for integration tests — when
//! the last client session of the server ends, the server "resets": the
//! global events `server-resetting` and then `server-reset` fire, and
//! modules drop the state they keep in memory (Prosody deactivates and
//! reactivates every host, which reloads every module). Stored data stays.
//!
//! Prosody's 13.0 scansion scripts rely on it: each starts as on a fresh
//! server (e.g. mod_pep's entity caps cache is empty again, so a client's
//! known caps hash is asked about once more).

use std::sync::Arc;

use xmpp_core::{Event, Host, Server};

use crate::ModuleError;

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.events.hook("resource-unbind", -1000, |event| {
        if event.server.sessions.all().is_empty() {
            reset(&event.server);
        }
        false
    });
    Ok(())
}

/// Fires `server-resetting` and `server-reset`.
pub fn reset(server: &Arc<Server>) {
    tracing::info!("Performing reset...");
    let mut ev = Event::new(server, "server-resetting");
    server.fire_global("server-resetting", &mut ev);
    let mut ev = Event::new(server, "server-reset");
    server.fire_global("server-reset", &mut ev);
    tracing::info!("Reset complete");
}
