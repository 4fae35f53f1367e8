//! # lua-compat
//!
//! Prosody's Lua world, read from Rust with mlua (Lua 5.4, vendored):
//! the `prosody.cfg.lua` loader ([`config`], as Prosody's configmanager),
//! module selection ([`modulemanager`], as Prosody's modulemanager) and the
//! Lua-table `.dat` files of Prosody's data directory ([`datfile`]), and
//! the host that runs Prosody's Lua modules unchanged ([`host`]: start with
//! [`host::LuaModule::load`] and the [`host::LuaHost`] trait the server
//! implements for it).
//! Depends on `xmpp-core` for the types it produces ([`xmpp_core::ServerConfig`],
//! [`xmpp_core::Value`]). Start with [`config::load`].

pub mod config;
pub mod datfile;
pub mod host;
pub mod modulemanager;
