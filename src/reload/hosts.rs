//! Hosts a reload adds or removes: an added `VirtualHost` or `Component`
//! gets its auth provider and modules and serves at once; a removed one
//! has its sessions closed with `host-gone` (as Prosody's
//! `hostmanager.deactivate`) and its modules unloaded.

use std::sync::Arc;

use xmpp_core::error::{StreamError, StreamErrorCondition};
use xmpp_core::module::manager;
use xmpp_core::{Event, Host, Server};

use super::ReloadReport;

/// Serves a host the new config declares.
pub(super) fn activate(server: &Arc<Server>, host: &Arc<Host>, report: &mut ReloadReport) {
    match crate::startup::activate_host(server, host) {
        Ok(done) => {
            report.warnings.extend(done.auth_problem);
            for name in done.unknown_modules {
                report.warnings.push(format!(
                    "module {name:?} is not available in lilt; not loaded on {}",
                    host.name
                ));
            }
            let modules = manager::loaded(server, host);
            if !modules.is_empty() {
                report.applied.push(format!(
                    "modules loaded on {}: {}",
                    host.name,
                    modules.join(", ")
                ));
            }
        }
        Err(e) => report
            .warnings
            .push(format!("host {} is not fully activated: {e}", host.name)),
    }
    let mut event = Event::new(server, "host-activated").with_field("host", host.name.as_str());
    server.fire_global("host-activated", &mut event);
    tracing::info!(target: "hostmanager", "Activated host: {}", host.name);
}

/// Winds down a host the new config no longer declares (already out of
/// the host table, so nothing new reaches it): every session of it is
/// closed with `host-gone`, then its modules are unloaded, latest first.
pub(super) fn deactivate(server: &Arc<Server>, host: &Arc<Host>, report: &mut ReloadReport) {
    let gone = || {
        StreamError::with_text(
            StreamErrorCondition::HostGone,
            "This server has stopped serving this host",
        )
    };
    let mut closed = 0;
    for session in server.sessions.all() {
        if session.host == host.name {
            session.close(Some(gone()));
            closed += 1;
        }
    }
    if let Some(component) = xmpp_core::component::connected_session(host) {
        component.close(Some(gone()));
        closed += 1;
    }
    let mut unloaded = Vec::new();
    for name in manager::loaded(server, host).into_iter().rev() {
        if manager::unload(server, host, &name) {
            unloaded.push(name);
        }
    }
    if closed > 0 {
        report.applied.push(format!(
            "{closed} session(s) of {} closed (host-gone)",
            host.name
        ));
    }
    if !unloaded.is_empty() {
        report.applied.push(format!(
            "modules unloaded from {}: {}",
            host.name,
            unloaded.join(", ")
        ));
    }
    let mut event = Event::new(server, "host-deactivated").with_field("host", host.name.as_str());
    server.fire_global("host-deactivated", &mut event);
    tracing::info!(target: "hostmanager", "Deactivated host: {}", host.name);
}
