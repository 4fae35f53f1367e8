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
    // The admin commands (Prosody's `module:depends "adhoc"`).
    admin_commands::register(host, &service);
    modules::load_module(server, host, "adhoc").map_err(|source| MucError::Dependency {
        host: host.name.clone(),
        source,
    })?;
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

/// The modules of this crate by Prosody name: `Some` if `name` is one
/// (`muc`, and Jitsi's `muc_max_occupants`, which needs `muc`).
pub fn load_module(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Option<Result<(), MucError>> {
    match name {
        "muc" => Some(load(server, host)),
        "muc_max_occupants" => {
            Some(features::max_occupants::register(host).map_err(MucError::from))
        }
        "muc_meeting_id" => {
            jitsi::meeting_id::register(host);
            Some(Ok(()))
        }
        "muc_domain_mapper" => {
            Some(jitsi::domain_mapper::register(server, host).map_err(MucError::from))
        }
        "muc_hide_all" => {
            jitsi::hide_all::register(host);
            Some(Ok(()))
        }
        "muc_password_whitelist" => {
            jitsi::password_whitelist::register(host);
            Some(Ok(()))
        }
        "muc_rate_limit" => Some(jitsi::rate_limit::register(host).map_err(MucError::from)),
        "muc_resource_validate" => {
            Some(jitsi::resource_validate::register(host).map_err(MucError::from))
        }
        "muc_filter_access" => {
            jitsi::filter_access::register(host);
            Some(Ok(()))
        }
        "conference_duration" => {
            jitsi::conference_duration::register(server, host);
            Some(Ok(()))
        }
        "muc_breakout_rooms" => {
            Some(jitsi::breakout_rooms::register(server, host).map_err(MucError::from))
        }
        "muc_lobby_rooms" => {
            Some(jitsi::lobby_rooms::register(server, host).map_err(MucError::from))
        }
        "token_verification" => {
            Some(jitsi::token_verification::register(host).map_err(MucError::from))
        }
        "filter_iq_jibri" => Some(jitsi::filter_iq_jibri::register(host).map_err(MucError::from)),
        "end_conference" => {
            Some(jitsi::end_conference::register(server, host).map_err(MucError::from))
        }
        "av_moderation_component" => {
            Some(jitsi::av_moderation::register(server, host).map_err(MucError::from))
        }
        "polls_component" => Some(jitsi::polls::register(server, host).map_err(MucError::from)),
        "speakerstats_component" => {
            Some(jitsi::speakerstats::load(server, host).map_err(MucError::from))
        }
        "room_metadata_component" => {
            Some(jitsi::room_metadata::load(server, host).map_err(MucError::from))
        }
        "filesharing_component" => {
            Some(jitsi::filesharing::load(server, host).map_err(MucError::from))
        }
        "muc_size" => Some(jitsi::muc_size::load(server, host)),
        "room_destroy" => {
            jitsi::breakout_lifecycle::load_room_destroy(server);
            Some(Ok(()))
        }
        _ => None,
    }
}
