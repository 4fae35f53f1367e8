//! Jitsi Meet's Prosody modules that hook the MUC, one file per module with
//! Jitsi's names and options (`resources/prosody-plugins/mod_<name>.lua`),
//! and what they share ([`util`], Jitsi's `util.lib.lua`).

pub mod av_moderation;
pub mod breakout_lifecycle;
pub mod breakout_rooms;
pub mod components;
pub mod conference_duration;
pub mod domain_mapper;
pub mod end_conference;
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
