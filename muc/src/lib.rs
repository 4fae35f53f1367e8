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
//! Jitsi Meet's modules that hook the MUC live in [`jitsi`] (one file per
//! module, Jitsi's names and options: `muc_meeting_id`, `muc_domain_mapper`,
//! `muc_hide_all`, `muc_password_whitelist`, `muc_rate_limit`,
//! `muc_resource_validate`, `muc_filter_access`, `conference_duration`,
//! `muc_lobby_rooms`, `muc_breakout_rooms` (on the main VirtualHost),
//! `filter_iq_jibri`, and the components `end_conference`,
//! `av_moderation_component`, `polls_component`) and are loaded by name
//! through [`load_module`].

pub mod admin_commands;
pub mod broadcast;
pub mod component;
pub mod events;
pub mod features;
pub mod form;
pub mod jitsi;
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
    #[error(transparent)]
    Component(#[from] jitsi::components::ComponentError),
    #[error(transparent)]
    Route(#[from] bosh_websocket::routes::RouteError),
    #[error("MUC on {host}: could not load the module it depends on: {source}")]
    Dependency {
        host: String,
        #[source]
        source: modules::ModuleError,
    },
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
    features::register_all(host, &service.settings);
    component::register(host, &service);
    // The admin commands (Prosody's `module:depends "adhoc"`, loaded by
    // the `muc` module of [`register`]).
    admin_commands::register(host, &service);
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
/// Prosody's mod_muc depends on them) and `muc_max_occupants`; Jitsi's
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
        });
    jitsi_register(registry);
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

fn jitsi_register(registry: &mut Registry) {
    registry
        .add_loader("muc_meeting_id", |_, host| {
            jitsi::meeting_id::register(host);
            Ok::<(), MucError>(())
        })
        .add_loader("muc_domain_mapper", |server, host| {
            jitsi::domain_mapper::register(server, host)
        })
        .add_loader("muc_hide_all", |_, host| {
            jitsi::hide_all::register(host);
            Ok::<(), MucError>(())
        })
        .add_loader("muc_password_whitelist", |_, host| {
            jitsi::password_whitelist::register(host);
            Ok::<(), MucError>(())
        })
        .add_loader("muc_rate_limit", |_, host| jitsi::rate_limit::register(host))
        .add_loader("muc_resource_validate", |_, host| {
            jitsi::resource_validate::register(host)
        })
        .add_loader("muc_filter_access", |_, host| {
            jitsi::filter_access::register(host);
            Ok::<(), MucError>(())
        })
        .add_loader("conference_duration", |server, host| {
            jitsi::conference_duration::register(server, host);
            Ok::<(), MucError>(())
        })
        .add_loader("muc_breakout_rooms", jitsi::breakout_rooms::register)
        .add_loader("muc_lobby_rooms", jitsi::lobby_rooms::register)
        .add_loader("token_verification", |_, host| {
            jitsi::token_verification::register(host)
        })
        .add_loader("filter_iq_jibri", |_, host| jitsi::filter_iq_jibri::register(host))
        .add_loader("end_conference", jitsi::end_conference::register)
        .add_loader("av_moderation_component", jitsi::av_moderation::register)
        .add_loader("polls_component", jitsi::polls::register)
        .add_loader("speakerstats_component", jitsi::speakerstats::load)
        .add_loader("room_metadata_component", jitsi::room_metadata::load)
        .add_loader("filesharing_component", jitsi::filesharing::load)
        .add_loader("muc_size", jitsi::muc_size::load)
        .add_loader("room_destroy", |server, _| {
            jitsi::breakout_lifecycle::load_room_destroy(server);
            Ok::<(), MucError>(())
        });
}
