//! Which modules a host loads, as Prosody's `core/modulemanager.lua`
//! (`get_modules_for_host` and `load_modules_for_host`) decides it.
//!
//! For a host: the autoloaded modules plus the global `modules_enabled`,
//! minus the global `modules_disabled`; a Component keeps only the part of
//! that in [`COMPONENT_INHERITABLE_MODULES`]; then the host's own
//! `modules_enabled` is added and its own `modules_disabled` taken away. A
//! component's module (`Component "x" "muc"` → `muc`, an external component
//! → `component`) comes first and is loaded whatever the lists say.
//!
//! Prosody 0.12 also autoloads the platform module (`posix` on Unix);
//! Prosody 13 no longer does, and this follows 13.

use xmpp_core::config::{HostKind, ServerConfig};
use xmpp_core::value::Value;

/// Modules every host loads unless disabled (Prosody 13's `autoload_modules`).
pub const AUTOLOAD_MODULES: &[&str] = &[
    "presence",
    "message",
    "iq",
    "offline",
    "c2s",
    "s2s",
    "s2s_auth_certs",
];

/// The global modules a Component also loads (Prosody's
/// `component_inheritable_modules`); the rest of the global list is for
/// VirtualHosts only.
pub const COMPONENT_INHERITABLE_MODULES: &[&str] = &[
    "tls",
    "saslauth",
    "dialback",
    "iq",
    "s2s",
    "s2s_bidi",
    "smacks",
    "server_contact_info",
];

/// The module Prosody loads for an external (XEP-0114) component.
pub const EXTERNAL_COMPONENT_MODULE: &str = "component";

/// Prosody 13's modules that make themselves global (`module:set_global()`):
/// whichever hosts enable them, they are loaded once for the whole server
/// (and may add per-host parts).
pub const GLOBAL_MODULES: &[&str] = &[
    "admin_shell",
    "admin_socket",
    "admin_telnet",
    "bosh",
    "c2s",
    "component",
    "cron",
    "debug_reset",
    "debug_sql",
    "http",
    "http_errors",
    "http_openmetrics",
    "limits",
    "net_multiplex",
    "posix",
    "proxy65",
    "s2s",
    "s2s_auth_certs",
    "s2s_auth_dane_in",
    "stanza_debug",
    "unknown",
    "websocket",
    "windows",
];

/// A module list option as Prosody's `set.new` reads it: the array part's
/// strings (a string or a `{ name = true }` map is not a list to Prosody).
fn list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Table(t)) => t
            .seq
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn push_unique(out: &mut Vec<String>, name: &str) {
    if !out.iter().any(|m| m == name) {
        out.push(name.to_string());
    }
}

/// The module a component host is served by: its own module, or
/// [`EXTERNAL_COMPONENT_MODULE`] for an external one; `None` for a VirtualHost.
pub fn component_module(cfg: &ServerConfig, host: &str) -> Option<String> {
    match &cfg.host(host)?.kind {
        HostKind::VirtualHost => None,
        HostKind::Component { module } => Some(
            module
                .clone()
                .unwrap_or_else(|| EXTERNAL_COMPONENT_MODULE.to_string()),
        ),
    }
}

/// The global part every VirtualHost starts from: autoloaded modules plus
/// the global `modules_enabled`, minus the global `modules_disabled`.
fn server_wide(cfg: &ServerConfig) -> Vec<String> {
    let disabled = list(cfg.global.get("modules_disabled"));
    let mut out = Vec::new();
    let enabled = list(cfg.global.get("modules_enabled"));
    for m in AUTOLOAD_MODULES
        .iter()
        .copied()
        .chain(enabled.iter().map(String::as_str))
    {
        if !disabled.iter().any(|d| d == m) {
            push_unique(&mut out, m);
        }
    }
    out
}

/// The modules `host` loads, in load order: a component's module first,
/// then the autoloaded ones, the global list and the host's own list in the
/// order the config gives them (Prosody keeps a set; the order here is only
/// for determinism). Empty for an unknown host.
pub fn modules_for_host(cfg: &ServerConfig, host: &str) -> Vec<String> {
    let Some(host_cfg) = cfg.host(host) else {
        return Vec::new();
    };
    let component = component_module(cfg, host);
    let mut inherited = server_wide(cfg);
    if component.is_some() {
        inherited.retain(|m| COMPONENT_INHERITABLE_MODULES.contains(&m.as_str()));
    }
    let host_enabled = list(host_cfg.section.get("modules_enabled"));
    let host_disabled = list(host_cfg.section.get("modules_disabled"));

    let mut modules = Vec::new();
    if let Some(c) = &component {
        modules.push(c.clone());
    }
    for m in inherited.iter().chain(host_enabled.iter()) {
        if !host_disabled.contains(m) {
            push_unique(&mut modules, m);
        }
    }
    // mod_vcard_legacy replaces mod_vcard; Prosody drops mod_vcard (with an
    // error in its log) when both are enabled.
    if modules.iter().any(|m| m == "vcard_legacy") && component.as_deref() != Some("vcard") {
        modules.retain(|m| m != "vcard");
    }
    modules
}

/// The modules loaded once for the whole server: those of [`GLOBAL_MODULES`]
/// that some enabled host loads, in order of first use.
pub fn global_modules(cfg: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    for host in cfg.hosts.iter().filter(|h| is_enabled(cfg, &h.name)) {
        for m in modules_for_host(cfg, &host.name) {
            if GLOBAL_MODULES.contains(&m.as_str()) {
                push_unique(&mut out, &m);
            }
        }
    }
    out
}

/// Prosody activates a host unless its `enabled` (or the global one) is false.
pub fn is_enabled(cfg: &ServerConfig, host: &str) -> bool {
    cfg.get(Some(host), "enabled") != Some(&Value::Bool(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    fn cfg(text: &str) -> ServerConfig {
        load_str(text, Path::new("/etc/prosody/prosody.cfg.lua")).expect("config loads")
    }

    #[test]
    fn virtual_host_gets_autoload_global_and_own() {
        let c = cfg(r#"
            modules_enabled = { "roster", "saslauth", "tls", "disco" }
            modules_disabled = { "offline" }
            VirtualHost "example.com"
                modules_enabled = { "bosh", "roster" }
                modules_disabled = { "disco" }
        "#);
        assert_eq!(
            modules_for_host(&c, "example.com"),
            [
                "presence",
                "message",
                "iq",
                "c2s",
                "s2s",
                "s2s_auth_certs",
                "roster",
                "saslauth",
                "tls",
                "bosh"
            ]
        );
    }

    #[test]
    fn component_inherits_only_inheritable_and_module_first() {
        let c = cfg(r#"
            modules_enabled = { "roster", "saslauth", "tls", "smacks", "disco" }
            Component "conference.example.com" "muc"
                modules_enabled = { "muc_mam" }
            Component "ext.example.com"
                component_secret = "s"
        "#);
        assert_eq!(
            modules_for_host(&c, "conference.example.com"),
            ["muc", "iq", "s2s", "saslauth", "tls", "smacks", "muc_mam"]
        );
        assert_eq!(modules_for_host(&c, "ext.example.com")[0], "component");
        assert!(!modules_for_host(&c, "ext.example.com").contains(&"roster".to_string()));
    }

    #[test]
    fn component_module_loads_even_if_disabled_and_vcard_legacy_wins() {
        let c = cfg(r#"
            modules_enabled = { "vcard", "vcard_legacy" }
            VirtualHost "example.com"
            Component "c.example.com" "muc"
                modules_disabled = { "muc" }
        "#);
        assert_eq!(modules_for_host(&c, "c.example.com")[0], "muc");
        let vh = modules_for_host(&c, "example.com");
        assert!(vh.contains(&"vcard_legacy".to_string()) && !vh.contains(&"vcard".to_string()));
        assert!(modules_for_host(&c, "unknown.example").is_empty());
    }

    #[test]
    fn global_modules_are_the_shared_ones_in_use() {
        let c = cfg(r#"
            modules_enabled = { "roster", "posix" }
            VirtualHost "example.com"
                modules_enabled = { "bosh" }
            VirtualHost "off.example.com"
                enabled = false
                modules_enabled = { "websocket" }
        "#);
        assert_eq!(
            global_modules(&c),
            ["c2s", "s2s", "s2s_auth_certs", "posix", "bosh"]
        );
        assert!(!is_enabled(&c, "off.example.com"));
    }
}
