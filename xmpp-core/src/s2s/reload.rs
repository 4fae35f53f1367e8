//! What a config reload changes in running federation: s2s turned off
//! (`modules_disabled = { "s2s" }`, `disallow_s2s`) or a remote domain no
//! longer allowed for a host (`s2s_whitelist`, `s2s_blacklist`, per host
//! as [`super::filter`] reads them).
//!
//! On `config-reloaded` the manager takes the new settings and bumps its
//! reload counter; every stream task watches that counter and asks
//! [`S2sManager::still_allowed`] about its (local, remote) pair. A stream
//! no longer allowed is closed with a stream error: `host-gone` when s2s
//! is off (what Prosody's mod_s2s does to its streams when unloaded),
//! `policy-violation` "Communication with this domain is restricted"
//! otherwise (what mod_s2s_blacklist/whitelist answer a new stream with).
//! Stanzas routed afterwards are refused as before any connection
//! ([`super::manager::route_or_return`]): `not-allowed`, or the router's
//! answer without s2s.
//!
//! Prosody 0.12 itself reads these lists when the modules load, so a
//! reload alone changes nothing there until the modules are reloaded;
//! lilt applies them at once.

use std::sync::{Arc, Weak};

use super::filter::DomainFilter;
use super::manager::{S2sManager, enabled, lock};
use crate::server::Server;

/// Hooks `config-reloaded` once for `server`'s s2s.
pub(crate) fn hook(server: &Arc<Server>) {
    let manager = server.extension::<S2sManager>();
    if manager.hooked.set(()).is_err() {
        return;
    }
    let weak: Weak<Server> = Arc::downgrade(server);
    server.events.hook("config-reloaded", 0, move |_| {
        if let Some(server) = weak.upgrade() {
            apply(&server);
        }
        false
    });
}

/// Puts the config in force into the running s2s and tells the streams.
pub(crate) fn apply(server: &Arc<Server>) {
    let manager = server.extension::<S2sManager>();
    let config = server.config.current().clone();
    {
        let mut live = lock(&manager.live);
        live.disabled = !enabled(&config);
        live.filter = Some(DomainFilter::from_config(&config));
        tracing::debug!(disabled = live.disabled, "s2s settings reloaded");
    }
    manager.reloads.0.send_modify(|n| *n = n.wrapping_add(1));
}
