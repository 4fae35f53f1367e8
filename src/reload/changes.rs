//! What differs between two configs, one [`Change`] per option or host, and
//! which of them a reload cannot put in force.

use std::collections::BTreeSet;
use std::fmt;

use xmpp_core::config::Section;
use xmpp_core::{HostKind, ServerConfig};

/// Options read once, by a listener or a service started with the server:
/// a reload records them, and they take effect at the next restart.
const READ_AT_START: &[&str] = &[
    "data_path",
    "sql",
    "network_settings",
    "admin_socket",
    "plugin_paths",
    "prefer_lua_modules",
    "statistics",
    "statistics_interval",
    "openmetrics_allow_ips",
    "openmetrics_allow_cidr",
    "authentication",
    "component_stanza_size_limit",
    "s2s_stanza_size_limit",
    "s2s_require_encryption",
    "s2s_secure_auth",
    "jitsi_focus",
    "jitsi_videobridge",
    "jitsi_recorder",
];

/// Prefixes and suffixes of options read at start (listeners, HTTP),
/// but for [`FOLLOWED`].
const READ_AT_START_PREFIXES: &[&str] = &["http_", "https_", "bosh_", "websocket_"];
const READ_AT_START_SUFFIXES: &[&str] = &["_ports", "_interfaces"];

/// Listener and HTTP options a reload puts in force: the c2s, HTTP, s2s
/// and component listeners follow their ports and interfaces
/// ([`super::listeners::Listeners::follow`]); the HTTP server reads its
/// options per request and BOSH and WebSocket per new session
/// ([`bosh_websocket::config::in_force`]). `http_paths` waits for a
/// restart (routes are made when a module loads).
const FOLLOWED: &[&str] = &[
    "interfaces",
    "local_interfaces",
    "c2s_ports",
    "c2s_direct_tls_ports",
    "c2s_interfaces",
    "s2s_ports",
    "s2s_direct_tls_ports",
    "s2s_interfaces",
    "component_ports",
    "component_interfaces",
    "http_ports",
    "https_ports",
    "http_interfaces",
    "https_interfaces",
    "http_default_host",
    "http_max_content_size",
    "http_default_cors_enabled",
    "http_cors_override",
    "bosh_max_inactivity",
    "bosh_max_polling",
    "bosh_max_wait",
    "bosh_max_pause",
    "websocket_frame_buffer_limit",
    "websocket_frame_fragment_limit",
];

/// One difference between two configs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    Option { host: Option<String>, name: String },
    HostAdded(String, bool),
    HostRemoved(String, bool),
}

impl Change {
    /// Does a reload put this change in force? Not for options read at
    /// start (listeners, HTTP, storage); the MUC reads its options again
    /// on `config-reloaded` (new rooms get the new defaults).
    pub fn applied_at_run_time(&self) -> bool {
        match self {
            Change::Option { name, .. } => !read_at_start(name),
            Change::HostAdded(..) | Change::HostRemoved(..) => true,
        }
    }
    pub fn is_module_list(&self) -> bool {
        matches!(self, Change::Option { name, .. } if name == "modules_enabled" || name == "modules_disabled")
    }
    /// The global `log` option (the logging reload words its own changes).
    pub fn is_log(&self) -> bool {
        matches!(self, Change::Option { name, host: None } if name == "log")
    }
    pub fn is_host(&self) -> bool {
        matches!(self, Change::HostAdded(..) | Change::HostRemoved(..))
    }
}

fn read_at_start(name: &str) -> bool {
    if FOLLOWED.contains(&name) {
        return false;
    }
    READ_AT_START.contains(&name)
        || READ_AT_START_PREFIXES.iter().any(|p| name.starts_with(p))
        || READ_AT_START_SUFFIXES.iter().any(|s| name.ends_with(s))
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |component: &bool| {
            if *component {
                "Component"
            } else {
                "VirtualHost"
            }
        };
        match self {
            Change::Option { host: None, name } => write!(f, "option {name} changed"),
            Change::Option {
                host: Some(h),
                name,
            } => write!(f, "option {name} of {h} changed"),
            Change::HostAdded(h, c) => write!(f, "{} {h:?} added", kind(c)),
            Change::HostRemoved(h, c) => write!(f, "{} {h:?} removed", kind(c)),
        }
    }
}

fn section_changes(host: Option<&str>, old: &Section, new: &Section, out: &mut Vec<Change>) {
    let names: BTreeSet<&String> = old.options.keys().chain(new.options.keys()).collect();
    for name in names {
        if old.options.get(name) != new.options.get(name) {
            out.push(Change::Option {
                host: host.map(str::to_string),
                name: name.clone(),
            });
        }
    }
}

/// Every difference from `old` to `new`: global options, then hosts in
/// `new`'s order (options changed, added, kind changed), then removed hosts.
pub fn changes(old: &ServerConfig, new: &ServerConfig) -> Vec<Change> {
    let mut out = Vec::new();
    section_changes(None, &old.global, &new.global, &mut out);
    let is_component = |k: &HostKind| matches!(k, HostKind::Component { .. });
    for h in &new.hosts {
        match old.host(&h.name) {
            Some(o) if o.kind == h.kind => {
                section_changes(Some(&h.name), &o.section, &h.section, &mut out)
            }
            Some(o) => {
                out.push(Change::HostRemoved(o.name.clone(), is_component(&o.kind)));
                out.push(Change::HostAdded(h.name.clone(), is_component(&h.kind)));
            }
            None => out.push(Change::HostAdded(h.name.clone(), is_component(&h.kind))),
        }
    }
    for o in &old.hosts {
        if new.host(&o.name).is_none() {
            out.push(Change::HostRemoved(o.name.clone(), is_component(&o.kind)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::Value;

    fn cfg(src: &str) -> ServerConfig {
        lua_compat::config::load_str(src, std::path::Path::new("/tmp/t.cfg.lua")).unwrap()
    }

    #[test]
    fn changes_name_options_and_hosts() {
        let old = cfg("log = 'a'\nmodules_enabled = { 'ping' }\nVirtualHost 'a.example'\n");
        let new = cfg(
            "log = 'b'\nmodules_enabled = { 'ping', 'time' }\nsql = { driver = 'SQLite3' }\nVirtualHost 'a.example'\nfoo = 1\nComponent 'c.example' 'muc'\n",
        );
        let c = changes(&old, &new);
        let text: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "option log changed",
                "option modules_enabled changed",
                "option sql changed",
                "option foo of a.example changed",
                "Component \"c.example\" added"
            ]
        );
        let applied = |c: &Change| c.applied_at_run_time();
        assert!(applied(&c[0]) && c[0].is_log());
        assert!(applied(&c[1]) && c[1].is_module_list());
        assert!(!applied(&c[2]), "storage is opened at start");
        assert!(applied(&c[3]));
        assert!(applied(&c[4]) && c[4].is_host());
        assert!(changes(&new, &new).is_empty());
        assert_eq!(
            new.host("a.example").and_then(|h| h.section.get("foo")),
            Some(&Value::Integer(1))
        );
    }

    #[test]
    fn the_mucs_options_apply_at_run_time() {
        let old = cfg("Component 'rooms.example' 'muc'\n");
        let new = cfg(
            "muc_room_default_public = true\nComponent 'rooms.example' 'muc'\n\
             max_history_messages = 5\nmodules_enabled = { 'muc_mam' }\n",
        );
        let c = changes(&old, &new);
        let text: Vec<String> = c.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "option muc_room_default_public changed",
                "option max_history_messages of rooms.example changed",
                "option modules_enabled of rooms.example changed",
            ]
        );
        assert!(c.iter().all(Change::applied_at_run_time));
    }

    #[test]
    fn listeners_and_http_options_apply_at_run_time() {
        let old = cfg("VirtualHost 'a.example'\n");
        let new = cfg(
            "c2s_ports = { 5223 }\nhttp_ports = { 5290 }\nbosh_max_wait = 10\n\
             consider_websocket_secure = true\naccess_control_allow_origins = { 'x' }\n\
             c2s_stanza_size_limit = 5000\ntrusted_proxies = { '10.0.0.1' }\n\
             component_ports = { 5348 }\ninterfaces = { '127.0.0.1' }\ndata_path = '/x'\n\
             http_paths = { bosh = '/b' }\nVirtualHost 'a.example'\n",
        );
        let (now, later): (Vec<Change>, Vec<Change>) = changes(&old, &new)
            .into_iter()
            .partition(Change::applied_at_run_time);
        let names = |c: &[Change]| -> Vec<String> {
            c.iter()
                .filter_map(|c| match c {
                    Change::Option { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            names(&now),
            [
                "access_control_allow_origins",
                "bosh_max_wait",
                "c2s_ports",
                "c2s_stanza_size_limit",
                "component_ports",
                "consider_websocket_secure",
                "http_ports",
                "interfaces",
                "trusted_proxies"
            ]
        );
        assert_eq!(names(&later), ["data_path", "http_paths"]);
    }

    #[test]
    fn a_host_whose_kind_changed_is_removed_and_added() {
        let old = cfg("VirtualHost 'a.example'\n");
        let new = cfg("Component 'a.example' 'muc'\n");
        let text: Vec<String> = changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            text,
            [
                "VirtualHost \"a.example\" removed",
                "Component \"a.example\" added"
            ]
        );
    }
}
