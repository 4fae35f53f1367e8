//! [`check`]: the cheap part of `prosodyctl check config` (Prosody 13's
//! `checks.config`), one worded warning per problem, naming file and line
//! where the option has one.

use xmpp_core::config::{HostKind, ServerConfig};
use xmpp_core::value::Value;

use crate::modulemanager::{is_enabled, modules_for_host};

/// Options Prosody reads only from the global section (its
/// `known_global_options`, plus any `*_port(s)`, `*_interface(s)`,
/// `interface(s)` and `*_ssl` but `c2s_ssl`/`s2s_ssl`).
const KNOWN_GLOBAL_OPTIONS: &[&str] = &[
    "access_control_allow_credentials",
    "access_control_allow_headers",
    "access_control_allow_methods",
    "access_control_max_age",
    "admin_socket",
    "body_size_limit",
    "bosh_max_inactivity",
    "bosh_max_polling",
    "bosh_max_wait",
    "buffer_size_limit",
    "c2s_close_timeout",
    "c2s_stanza_size_limit",
    "c2s_tcp_keepalives",
    "c2s_timeout",
    "component_stanza_size_limit",
    "component_tcp_keepalives",
    "consider_bosh_secure",
    "consider_websocket_secure",
    "console_banner",
    "console_prettyprint_settings",
    "daemonize",
    "gc",
    "http_default_host",
    "http_errors_always_show",
    "http_errors_default_message",
    "http_errors_detailed",
    "http_errors_messages",
    "http_max_buffer_size",
    "http_max_content_size",
    "installer_plugin_path",
    "limits",
    "limits_resolution",
    "log",
    "multiplex_buffer_size",
    "network_backend",
    "network_default_read_size",
    "network_settings",
    "openmetrics_allow_cidr",
    "openmetrics_allow_ips",
    "pidfile",
    "plugin_paths",
    "plugin_server",
    "prosodyctl_timeout",
    "prosody_group",
    "prosody_user",
    "run_as_root",
    "s2s_close_timeout",
    "s2s_insecure_domains",
    "s2s_require_encryption",
    "s2s_secure_auth",
    "s2s_secure_domains",
    "s2s_stanza_size_limit",
    "s2s_tcp_keepalives",
    "s2s_timeout",
    "statistics",
    "statistics_config",
    "statistics_interval",
    "tcp_keepalives",
    "tls_profile",
    "trusted_proxies",
    "umask",
    "use_dane",
    "use_ipv4",
    "use_ipv6",
    "websocket_frame_buffer_limit",
    "websocket_frame_fragment_limit",
    "websocket_get_response_body",
    "websocket_get_response_text",
];

/// Port-like options that may be per host after all (Prosody's exception).
const MAYBE_HOST_PORTS: &[&str] = &["external_service_port", "turn_external_port"];

const OBSOLETE: &[&str] = &[
    "archive_cleanup_interval",
    "dns_timeout",
    "muc_log_cleanup_interval",
    "s2s_dns_resolvers",
    "setgid",
    "setuid",
];

const CORS: &str =
    "instead, use 'http_cors_override', see https://prosody.im/doc/http#cross-domain-cors-support";
const DAEMON_FLAGS: &str = "instead, use the --daemonize/-D or --foreground/-F command line flags";

/// Deprecated global options and what to use instead (Prosody 13).
fn deprecated_replacement(option: &str) -> Option<String> {
    let fixed = match option {
        "anonymous_login" => "instead, use 'authentication = \"anonymous\"'",
        "daemonize" | "no_daemonize" => DAEMON_FLAGS,
        "disallow_s2s" => "instead, add \"s2s\" to 'modules_disabled'",
        "require_encryption" => {
            "instead, use 'c2s_require_encryption' and 's2s_require_encryption'"
        }
        "vcard_compatibility" => "instead, add \"mod_compat_vcard\" from prosody-modules",
        "use_libevent" => "instead, use 'network_backend = \"event\"'",
        "whitelist_registration_only" => "instead, use 'allowlist_registration_only'",
        "registration_whitelist" => "instead, use 'registration_allowlist'",
        "registration_blacklist" => "instead, use 'registration_blocklist'",
        "blacklist_on_registration_throttle_overload" => {
            "instead, use 'blocklist_on_registration_throttle_overload'"
        }
        "cross_domain_bosh" | "cross_domain_websocket" => CORS,
        _ => {
            // bosh_* → http_*, legacy_ssl_* → c2s_direct_tls_*
            for (old, new) in [("bosh", "http"), ("legacy_ssl", "c2s_direct_tls")] {
                let Some(suffix) = option.strip_prefix(old).and_then(|s| s.strip_prefix('_'))
                else {
                    continue;
                };
                let plural = match suffix {
                    "port" | "interface" => format!("{suffix}s"),
                    "ports" | "interfaces" | "ssl" => suffix.to_string(),
                    _ => continue,
                };
                return Some(format!("instead, use '{new}_{plural}'"));
            }
            return None;
        }
    };
    Some(fixed.to_string())
}

/// Whether Prosody calls an option under a host misplaced.
fn is_global_only(name: &str) -> bool {
    if MAYBE_HOST_PORTS.contains(&name) {
        return false;
    }
    KNOWN_GLOBAL_OPTIONS.contains(&name)
        || name.starts_with("interface")
        || name.ends_with("_port")
        || name.ends_with("_ports")
        || name.ends_with("_interface")
        || name.ends_with("_interfaces")
        || (name.ends_with("_ssl") && name != "c2s_ssl" && name != "s2s_ssl")
}

/// `file:line: ` for an option of a section, when known.
fn at(cfg: &ServerConfig, host: Option<&str>, option: &str) -> String {
    let source = match host {
        Some(h) => cfg.host(h).and_then(|h| h.section.sources.get(option)),
        None => cfg.global.sources.get(option),
    };
    source.map(|s| format!("{s}: ")).unwrap_or_default()
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(|v| v.as_table())
        .map(|t| {
            t.seq
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What `prosodyctl check config` would warn about, as far as it is cheap
/// to tell from the configuration alone.
pub fn check(cfg: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    let enabled: Vec<&str> = cfg
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .filter(|h| is_enabled(cfg, h))
        .collect();

    if cfg.global.options.keys().all(|k| k == "log") {
        out.push("No global options defined. Perhaps you have put a host definition at the top of the config file? They should be at the bottom, see https://prosody.im/doc/configure#overview".into());
    }
    if enabled.is_empty() {
        out.push(if cfg.hosts.is_empty() {
            "No hosts are defined, please add at least one VirtualHost section".into()
        } else if cfg.global.get("enabled") == Some(&Value::Bool(false)) {
            "No hosts are enabled. Remove enabled = false from the global section or put enabled = true under at least one VirtualHost section".into()
        } else {
            "All hosts are disabled. Remove enabled = false from at least one VirtualHost section".into()
        });
    }
    if cfg.global.get("modules_enabled").is_none() {
        out.push(no_global_modules(cfg, &enabled));
    }

    for (host, section) in std::iter::once((None, &cfg.global)).chain(
        cfg.hosts
            .iter()
            .filter(|h| enabled.contains(&h.name.as_str()))
            .map(|h| (Some(h.name.as_str()), &h.section)),
    ) {
        for option in ["modules_enabled", "modules_disabled"] {
            if let Some(problem) = module_list_problem(section.get(option)) {
                let place = host
                    .map(|h| format!("the {h} section"))
                    .unwrap_or_else(|| "the global section".into());
                out.push(format!(
                    "{}The {option} in {place} {problem}",
                    at(cfg, host, option)
                ));
            }
        }
    }

    let global_enabled = string_list(cfg.global.get("modules_enabled"));
    for host in cfg
        .hosts
        .iter()
        .filter(|h| enabled.contains(&h.name.as_str()))
    {
        if let HostKind::Component { module: Some(m) } = &host.kind
            && global_enabled.contains(m)
        {
            out.push(format!("mod_{m} is enabled both in modules_enabled and as Component {:?} {m:?}. This means the service is enabled on all VirtualHosts as well as the Component. Are you sure this what you want? It may cause unexpected behaviour.", host.name));
        }
    }

    for name in cfg.global.options.keys() {
        if OBSOLETE.contains(&name.as_str()) {
            out.push(format!(
                "{}The option '{name}' is obsolete; you can remove it",
                at(cfg, None, name)
            ));
        } else if let Some(instead) = deprecated_replacement(name) {
            out.push(format!(
                "{}The option '{name}' is deprecated -- {instead}",
                at(cfg, None, name)
            ));
        }
    }

    for host in &cfg.hosts {
        for name in host.section.options.keys().filter(|n| is_global_only(n)) {
            out.push(format!(
                "{}Option '{name}' is set under {} but should be in the global section of the config file, above any VirtualHost or Component definitions (see https://prosody.im/doc/configure#overview)",
                at(cfg, Some(&host.name), name),
                host.name
            ));
        }
    }

    for host in cfg
        .hosts
        .iter()
        .filter(|h| enabled.contains(&h.name.as_str()) && h.kind == HostKind::VirtualHost)
    {
        let mut parts = host.name.splitn(2, '.');
        if let (Some("jabber" | "xmpp" | "chat" | "im"), Some(rest)) = (parts.next(), parts.next())
        {
            out.push(format!("Suggestion: If {0} is a new host with no real users yet, consider renaming it now to {rest}. You can use SRV records to redirect XMPP clients and servers to {0}. For more information see: https://prosody.im/doc/dns", host.name));
        }
    }

    module_names(cfg, &enabled, &mut out);
    other_checks(cfg, &enabled, &mut out);
    out
}

fn no_global_modules(cfg: &ServerConfig, enabled: &[&str]) -> String {
    let mut common: Option<Vec<String>> = None;
    for host in cfg
        .hosts
        .iter()
        .filter(|h| enabled.contains(&h.name.as_str()) && h.kind == HostKind::VirtualHost)
    {
        let Some(list) = host.section.get("modules_enabled") else {
            continue;
        };
        let list = string_list(Some(list));
        common = Some(match common {
            None => list,
            Some(c) => c.into_iter().filter(|m| list.contains(m)).collect(),
        });
    }
    match common {
        Some(c) if !c.is_empty() => {
            let quoted: Vec<String> = c.iter().map(|m| format!("{m:?}")).collect();
            format!(
                "No global modules_enabled is set? Consider moving these modules into modules_enabled in the global section: {}",
                quoted.join(", ")
            )
        }
        _ => "No global modules_enabled is set?".into(),
    }
}

/// Prosody's `validate_module_list`.
fn module_list_problem(value: Option<&Value>) -> Option<&'static str> {
    match value {
        None => None,
        Some(Value::Table(t)) => {
            if t.map.is_empty() && t.seq.iter().all(|v| matches!(v, Value::String(_))) {
                None
            } else {
                Some(
                    "should be a list of strings, e.g. { \"name_of_module\", \"another_plugin\", }. It should not contain key = value pairs, try putting them outside the {} brackets.",
                )
            }
        }
        Some(Value::String(_)) => Some(
            "should not be a string but a list of strings, e.g. { \"name_of_module\", \"another_plugin\", }",
        ),
        Some(Value::Bool(_)) => Some(
            "should not be a boolean but a list of strings, e.g. { \"name_of_module\", \"another_plugin\", }",
        ),
        Some(_) => Some(
            "should not be a number but a list of strings, e.g. { \"name_of_module\", \"another_plugin\", }",
        ),
    }
}

/// Checks on the names in every `modules_enabled` (global and enabled hosts).
fn module_names(cfg: &ServerConfig, enabled: &[&str], out: &mut Vec<String>) {
    let mut all = string_list(cfg.global.get("modules_enabled"));
    for host in cfg
        .hosts
        .iter()
        .filter(|h| enabled.contains(&h.name.as_str()))
    {
        for m in string_list(host.section.get("modules_enabled")) {
            if !all.contains(&m) {
                all.push(m);
            }
        }
    }
    for m in &all {
        if let Some(bare) = m.strip_prefix("mod_") {
            out.push(format!("Modules in modules_enabled should not have the 'mod_' prefix included. Change '{m}' to '{bare}'."));
        } else if let Some(provider) = m.strip_prefix("auth_") {
            out.push(format!("Authentication modules should not be added to modules_enabled, but be specified in the 'authentication' option. Remove '{m}' from modules_enabled and instead add authentication = '{provider}'. For more information see https://prosody.im/doc/authentication"));
        } else if let Some(driver) = m.strip_prefix("storage_") {
            out.push(format!("storage modules should not be added to modules_enabled, but be specified in the 'storage' option. Remove '{m}' from modules_enabled and instead add storage = '{driver}'. For more information see https://prosody.im/doc/storage"));
        }
    }
    let has = |m: &str| all.iter().any(|x| x == m);
    if has("vcard") && has("vcard_legacy") {
        out.push("Both mod_vcard_legacy and mod_vcard are enabled but they conflict with each other. Remove one.".into());
    }
    if has("pep") && has("pep_simple") {
        out.push("Both mod_pep_simple and mod_pep are enabled but they conflict with each other. Remove one.".into());
    }
}

fn other_checks(cfg: &ServerConfig, enabled: &[&str], out: &mut Vec<String>) {
    let sections = std::iter::once(&cfg.global).chain(cfg.hosts.iter().map(|h| &h.section));
    if sections.clone().any(|s| {
        matches!(s.get("storage"), Some(Value::String(_))) && s.get("default_storage").is_some()
    }) {
        out.push(
            "The 'default_storage' option is not needed if 'storage' is set to a string.".into(),
        );
    }

    let mut open_registration = Vec::new();
    let mut orphans = Vec::new();
    for host in enabled {
        let modules = modules_for_host(cfg, host);
        let has = |m: &str| modules.iter().any(|x| x == m);
        let truthy = |o: &str, default: bool| {
            cfg.get(Some(host), o)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        let is_vhost = cfg
            .host(host)
            .is_some_and(|h| h.kind == HostKind::VirtualHost);
        if is_vhost
            && (has("register_ibr") || (has("register") && truthy("allow_registration", false)))
            && !(has("invites_register") && truthy("registration_invite_only", true))
        {
            open_registration.push(host.to_string());
        }
        if !is_vhost && !host.contains(['@', '/']) {
            let parent = host.split_once('.').map(|(_, p)| p);
            let linked = parent.is_some_and(|p| enabled.contains(&p));
            let referenced = enabled
                .iter()
                .any(|h| disco_items(cfg, h).iter().any(|i| i == host));
            if !linked && !referenced {
                orphans.push(host.to_string());
            }
        }
    }
    open_registration.sort();
    orphans.sort();
    if !open_registration.is_empty() {
        out.push(format!("Public registration is enabled on: {}. If this is intentional, review our guidelines on running a public server at https://prosody.im/doc/public_servers - otherwise, consider switching to invite-based registration, which is more secure.", open_registration.join(", ")));
    }
    if !orphans.is_empty() {
        out.push(format!("Your configuration contains the following unreferenced components: {}. Clients may not be able to discover these services because they are not linked to any VirtualHost. They are automatically linked if they are direct subdomains of a VirtualHost. Alternatively, you can explicitly link them using the disco_items option. For more information see https://prosody.im/doc/modules/mod_disco#items", orphans.join(", ")));
    }
}

/// The JIDs listed in a host's `disco_items` (`{ { "jid", "name" }, ... }`).
fn disco_items(cfg: &ServerConfig, host: &str) -> Vec<String> {
    let Some(Value::Table(items)) = cfg.get(Some(host), "disco_items") else {
        return Vec::new();
    };
    items
        .seq
        .iter()
        .filter_map(|i| i.as_table()?.seq.first()?.as_str().map(str::to_string))
        .collect()
}
