//! # modules
//!
//! lilt's standard modules, one file per module as Prosody's
//! `plugins/mod_*.lua`: each exposes `load(server, host)`, which hooks the
//! events it handles on the host's bus. [`register`](fn@register) adds them to a
//! [`Registry`] by the names `modules_enabled` uses. The storage drivers (`internal`,
//! `memory`, `none`) live in [`storage`].
//!
//! Depends on `xmpp-core` (events, router, sessions, storage API),
//! `lua-compat` (Prosody's `.dat` files) and `auth`.

use std::sync::Arc;

use xmpp_core::module::{Registry, manager};
use xmpp_core::{Host, Server};

pub mod adhoc;
pub mod admin_adhoc;
pub mod announce;
pub mod blocklist;
pub mod bookmarks;
pub mod carbons;
pub mod csi;
pub mod csi_simple;
pub mod debug_reset;
pub mod disco;
pub mod external_services;
pub mod http_file_share;
pub mod invites;
pub mod iq;
pub mod lastactivity;
pub mod limits;
pub mod mam;
pub mod message;
pub mod motd;
pub mod offline;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod pubsub;
pub mod register;
pub mod roster;
pub mod server_contact_info;
pub mod storage;
pub mod time;
pub mod tombstones;
pub mod uptime;
pub mod vcard;
pub mod vcard4;
pub mod vcard_legacy;
pub mod version;
pub mod welcome;

pub use xmpp_core::module::{LoadOutcome, ModuleError};

/// Registers this crate's modules by their Prosody names.
pub fn register(registry: &mut Registry) {
    registry
        .add_loader("adhoc", adhoc::load)
        .add_fn("admin_adhoc", admin_adhoc::load)
        .add_loader("announce", announce::load)
        .add_loader("blocklist", blocklist::load)
        .add_loader("bookmarks", bookmarks::load)
        .add_loader("carbons", carbons::load)
        .add_loader("csi", csi::load)
        .add_loader("csi_simple", csi_simple::load)
        .add_loader("debug_reset", debug_reset::load)
        .add_loader("disco", disco::load)
        .add_loader("external_services", external_services::load)
        .add_fn("http_file_share", http_file_share::load_module)
        .add_loader("invites", invites::load)
        .add_fn("invites_adhoc", invites::adhoc::load)
        .add_fn("invites_register", invites::register::load)
        .add_loader("iq", iq::load)
        .add_loader("lastactivity", lastactivity::load)
        .add_loader("limits", limits::load)
        .add_loader("limits_exception", limits::load_exception)
        .add_loader("mam", mam::load)
        .add_loader("message", message::load)
        .add_loader("motd", motd::load)
        .add_loader("offline", offline::load)
        .add_loader("pep", pep::load)
        .add_loader("ping", ping::load)
        .add_loader("presence", presence::load)
        .add_loader("private", private::load)
        .add_fn("pubsub", pubsub::load_module)
        .add_loader("register", register::load)
        .add_loader("roster", roster::load)
        .add_loader("server_contact_info", server_contact_info::load)
        .add_loader("time", time::load)
        .add_loader("tombstones", tombstones::load)
        .add_loader("uptime", uptime::load)
        .add_loader("vcard", vcard::load)
        .add_loader("vcard4", vcard4::load)
        .add_loader("vcard_legacy", vcard_legacy::load)
        .add_loader("version", version::load)
        .add_loader("welcome", welcome::load);
}

/// Loads module `name` on `host` through the server's registry, adding
/// this crate's modules to it first where it lacks them (for tests and
/// embedders that build a server by hand).
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
