//! # jitsi
//!
//! Jitsi Meet's Prosody modules, natively, one file per module with Jitsi's
//! names and options (`resources/prosody-plugins/mod_<name>.lua`), and what
//! they share ([`util`], Jitsi's `util.lib.lua`; [`components`], the
//! options of the `*_component` modules).
//!
//! Where to start reading: [`register`], the table of module names; then a
//! module that hooks the MUC, such as [`meeting_id`] (`muc_meeting_id`) or
//! [`lobby_rooms`] (`muc_lobby_rooms`). They reach rooms through the `muc`
//! crate's API ([`muc::service_for`], the `muc-*` events) and serve HTTP
//! through their module context ([`muc_size`]), never through the
//! transport crate.
//!
//! The modules: on the conference MUC `muc_meeting_id`,
//! `muc_domain_mapper`, `muc_hide_all`, `muc_password_whitelist`,
//! `muc_rate_limit`, `muc_resource_validate`, `muc_filter_access`,
//! `conference_duration`, `token_verification`, `filter_iq_jibri`; on the
//! main VirtualHost `muc_lobby_rooms`, `muc_breakout_rooms`, `muc_size`,
//! `room_destroy`, `features_identity`; the components `end_conference`,
//! `av_moderation_component`, `polls_component`, `speakerstats_component`,
//! `room_metadata_component`, `filesharing_component`, and
//! [`client_proxy`] (the focus's proxy component).

use xmpp_core::module::{ModuleError, Registry};

pub mod av_moderation;
pub mod breakout_lifecycle;
pub mod breakout_rooms;
pub mod client_proxy;
pub mod components;
pub mod conference_duration;
pub mod domain_mapper;
pub mod end_conference;
pub mod features_identity;
pub mod filesharing;
pub mod filter_access;
pub mod filter_iq_jibri;
pub mod hide_all;
pub mod lobby_overrides;
pub mod lobby_rooms;
pub mod lua_pattern;
pub mod meeting_id;
pub mod muc_size;
pub mod password_whitelist;
pub mod polls;
pub mod rate_limit;
pub mod resource_validate;
pub mod room_metadata;
pub mod speakerstats;
pub mod token_verification;
pub mod util;
pub mod web_session;

/// Registers Jitsi's modules by their Prosody names.
pub fn register(registry: &mut Registry) {
    registry
        .add_loader("muc_meeting_id", |_, host| {
            meeting_id::register(host);
            Ok::<(), ModuleError>(())
        })
        .add_loader("muc_domain_mapper", domain_mapper::register)
        .add_loader("muc_hide_all", |_, host| {
            hide_all::register(host);
            Ok::<(), ModuleError>(())
        })
        .add_loader("muc_password_whitelist", |_, host| {
            password_whitelist::register(host);
            Ok::<(), ModuleError>(())
        })
        .add_loader("muc_rate_limit", |_, host| rate_limit::register(host))
        .add_loader("muc_resource_validate", |_, host| {
            resource_validate::register(host)
        })
        .add_loader("muc_filter_access", |_, host| {
            filter_access::register(host);
            Ok::<(), ModuleError>(())
        })
        .add_loader("conference_duration", |server, host| {
            conference_duration::register(server, host);
            Ok::<(), ModuleError>(())
        })
        .add_loader("muc_breakout_rooms", breakout_rooms::register)
        .add_loader("muc_lobby_rooms", lobby_rooms::register)
        .add_loader("token_verification", |_, host| {
            token_verification::register(host)
        })
        .add_loader("filter_iq_jibri", |_, host| filter_iq_jibri::register(host))
        .add_loader("end_conference", end_conference::register)
        .add_loader("av_moderation_component", av_moderation::register)
        .add_loader("polls_component", polls::register)
        .add_loader("speakerstats_component", speakerstats::load)
        .add_loader("room_metadata_component", room_metadata::load)
        .add_loader("filesharing_component", filesharing::load)
        .add_fn("muc_size", muc_size::load)
        .add_loader("room_destroy", |server, _| {
            breakout_lifecycle::load_room_destroy(server);
            Ok::<(), ModuleError>(())
        })
        .add_loader("client_proxy", client_proxy::load)
        .add_loader("features_identity", features_identity::load);
}
