//! # modules
//!
//! lilt's standard modules, one file per module as Prosody's
//! `plugins/mod_*.lua`: each exposes `load(server, host)`, which hooks the
//! events it handles on the host's bus. [`load_module`] maps a module name
//! from `modules_enabled` to its loader. The storage drivers (`internal`,
//! `memory`, `none`) live in [`storage`]. Component modules load the same
//! way on a `Component` host: [`client_proxy`] (Jitsi's focus proxy).
//!
//! Depends on `xmpp-core` (events, router, sessions, storage API),
//! `lua-compat` (Prosody's `.dat` files) and `auth`.

use std::sync::Arc;

use xmpp_core::{Host, Server};

pub mod adhoc;
pub mod announce;
pub mod blocklist;
pub mod bookmarks;
pub mod carbons;
pub mod client_proxy;
pub mod csi;
pub mod csi_simple;
pub mod disco;
pub mod external_services;
pub mod iq;
pub mod jitsi;
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
pub mod register;
pub mod roster;
pub mod server_contact_info;
pub mod storage;
pub mod time;
pub mod uptime;
pub mod vcard;
pub mod vcard4;
pub mod vcard_legacy;
pub mod version;
pub mod welcome;

/// A module failed to load (a bad option, usually).
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
    #[error("module {module} on {host}: {reason}")]
    Failed {
        module: String,
        host: String,
        reason: String,
    },
}

/// What happened when a module was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    /// lilt has no module of that name (yet).
    Unknown,
}

type Loader = fn(&Arc<Server>, &Arc<Host>) -> Result<(), ModuleError>;

/// The modules lilt has, by Prosody name.
fn loader(name: &str) -> Option<Loader> {
    let l: Loader = match name {
        "adhoc" => adhoc::load,
        "announce" => announce::load,
        "blocklist" => blocklist::load,
        "bookmarks" => bookmarks::load,
        "carbons" => carbons::load,
        "client_proxy" => client_proxy::load,
        "csi" => csi::load,
        "csi_simple" => csi_simple::load,
        "disco" => disco::load,
        "external_services" => external_services::load,
        "features_identity" => jitsi::features_identity::load,
        "iq" => iq::load,
        "lastactivity" => lastactivity::load,
        "limits" => limits::load,
        "limits_exception" => limits::load_exception,
        "mam" => mam::load,
        "message" => message::load,
        "motd" => motd::load,
        "offline" => offline::load,
        "pep" => pep::load,
        "ping" => ping::load,
        "presence" => presence::load,
        "private" => private::load,
        "register" => register::load,
        "roster" => roster::load,
        "server_contact_info" => server_contact_info::load,
        "time" => time::load,
        "uptime" => uptime::load,
        "vcard" => vcard::load,
        "vcard4" => vcard4::load,
        "vcard_legacy" => vcard_legacy::load,
        "version" => version::load,
        "welcome" => welcome::load,
        _ => return None,
    };
    Some(l)
}

/// Loads module `name` on `host` (once; a second load is a no-op).
pub fn load_module(
    server: &Arc<Server>,
    host: &Arc<Host>,
    name: &str,
) -> Result<LoadOutcome, ModuleError> {
    if host.has_module(name) {
        return Ok(LoadOutcome::Loaded);
    }
    let Some(load) = loader(name) else {
        return Ok(LoadOutcome::Unknown);
    };
    load(server, host)?;
    host.mark_module_loaded(name);
    Ok(LoadOutcome::Loaded)
}
