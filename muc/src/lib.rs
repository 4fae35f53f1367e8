//! # muc
//!
//! XEP-0045 multi-user chat as Prosody 13's mod_muc, loaded on a component
//! host (`Component "conference.example.com" "muc"`): rooms with Prosody's
//! options and defaults, storage format, events and room API, so configs and
//! modules written for Prosody keep working.
//!
//! Where to start reading: [`service`] (the rooms of a component: lookup,
//! creation, saving), [`room`] (a room: its state and API, one file per kind
//! of stanza), [`features`] (one file per room option, as Prosody's
//! `muc/*.lib.lua`), [`events`] (the event payloads modules see) and
//! [`broadcast`] (how a stanza reaches many occupants, serialised once).
//!
//! Modules find a component's rooms with [`service_for`]
//! (`service.get_room(jid)`, `live_rooms()`, `all_rooms()`,
//! `create_room(...)`) and hook the `muc-*` events on the host's bus, whose
//! payload carries the room as the object field `room` ([`events::room_of`]).
//!
//! Jitsi Meet's modules that hook the MUC live in the `jitsi` crate; this
//! crate's [`register`] adds `muc`, `muc_max_occupants` and `muc_mam` to a
//! registry.

pub mod admin_commands;
pub mod broadcast;
pub mod component;
pub mod events;
pub mod features;
pub mod form;
pub mod occupant;
pub mod room;
pub mod service;
pub mod settings;
pub mod util;

use std::sync::{Arc, OnceLock};

pub use xmpp_core::module::LoadOutcome;
use xmpp_core::module::{ModuleError, Registry, manager};
use xmpp_core::{Host, Server};

pub use room::{Actor, AffiliationData, Room};
pub use service::{Lookup, MucService};
pub use util::{Affiliation, Role};

/// Why the MUC could not be loaded on a host.
#[derive(Debug, thiserror::Error)]
pub enum MucError {
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
    #[error("MUC should be loaded as a component, not on the VirtualHost {host}")]
    NotComponent { host: String },
}

/// Where a host keeps its MUC service.
#[derive(Default)]
struct Slot(OnceLock<Arc<MucService>>);

/// The MUC service of a host, if `muc` is loaded there.
pub fn service_for(host: &Host) -> Option<Arc<MucService>> {
    host.extension::<Slot>().0.get().cloned()
}

/// Loads mod_muc on a component host.
pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), MucError> {
    if !host.is_component() {
        return Err(MucError::NotComponent {
            host: host.name.clone(),
        });
    }
    if service_for(host).is_some() {
        return Ok(());
    }
    let settings = settings::Settings::read(host)?;
    let service = MucService::new(server, host, settings);
    if host.extension::<Slot>().0.set(service.clone()).is_err() {
        return Ok(());
    }
    features::register_all(host);
    component::register(host, &service);
    // The admin commands (Prosody's `module:depends "adhoc"`, loaded by
    // the `muc` module of [`register`]).
    admin_commands::register(host, &service);
    // A reload gives the service the options of the config now in force
    // (a wrong value keeps the old ones and is logged with its place).
    let weak = Arc::downgrade(&service);
    let host_name = host.name.clone();
    server.events.hook("config-reloaded", 0, move |_| {
        if let Some(service) = weak.upgrade()
            && let Err(e) = service.reread_settings()
        {
            tracing::error!(host = %host_name, "MUC options not reloaded: {e}");
        }
        false
    });
    // Live rooms are saved, with their occupants, when the server stops
    // (Prosody's `server-stopping` at -300).
    let weak = Arc::downgrade(&service);
    server.events.hook("server-stopping", -300, move |_| {
        if let Some(service) = weak.upgrade() {
            service.save_live_rooms();
        }
        false
    });
    Ok(())
}

/// Registers this crate's modules: `muc` (with `adhoc` and `disco`, as
/// Prosody's mod_muc depends on them), `muc_max_occupants` and `muc_mam`
/// (XEP-0313 for rooms, [`features::mam`]); Jitsi's
/// MUC modules are the `jitsi` crate's.
pub fn register(registry: &mut Registry) {
    registry
        .add_fn("muc", |ctx| {
            load(ctx.server(), ctx.host()).map_err(ModuleError::other)?;
            ctx.depends("adhoc")?;
            ctx.depends("disco")
        })
        .add_loader("muc_max_occupants", |_, host| {
            features::max_occupants::register(host)
        })
        .add_fn("muc_mam", |ctx| {
            ctx.depends("muc")?;
            features::mam::load(ctx.host()).map_err(ModuleError::other)
        });
}

/// Loads module `name` of this crate on `host` through the server's
/// registry (adding this crate's modules to it where it lacks them).
pub fn load_module(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Result<LoadOutcome, ModuleError> {
    manager::register(server, |r| {
        let mut ours = Registry::new();
        register(&mut ours);
        r.add_missing(ours);
    });
    manager::load(server, host, name)
}
