//! # lilt
//!
//! A Prosody-compatible XMPP server, as a library first. This facade wires
//! the workspace crates together: [`startup`] builds a server from a
//! Prosody config (storage, auth, modules, listeners), [`ctl`] holds
//! prosodyctl's commands (one table, [`ctl::COMMANDS`]), [`devconfig`] the
//! built-in development setup, [`logging`] the `log` option, [`reload`]
//! SIGHUP, [`process`] the service habits (pidfile, exit statuses),
//! [`metrics`] `/metrics` and [`shell`] the admin console (`lilt shell`). The binary (`src/main.rs`) is a thin CLI.
//!
//! Start reading at [`ServerBuilder`] and [`startup::build_server`], then
//! `xmpp_core` (its `module` for writing modules).

pub mod builder;
pub mod components;
pub mod ctl;
pub mod devconfig;
pub mod invite_cli;
pub mod logging;
pub mod lua_modules;
pub mod media;
pub mod metrics;
pub mod migrate;
pub mod process;
pub mod reload;
pub mod shell;
pub mod startup;

pub use auth;
pub use bosh_websocket;
pub use builder::ServerBuilder;
pub use jitsi;
pub use lua_compat;
pub use modules;
pub use muc;
pub use xmpp_core;
