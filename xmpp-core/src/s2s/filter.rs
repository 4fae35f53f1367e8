//! Which remote domains a local host may federate with, as the community
//! modules mod_s2s_whitelist (`s2s_whitelist`: only these) and
//! mod_s2s_blacklist (`s2s_blacklist`: never these) decide in Prosody.
//!
//! Both modules are loaded per host and read their list with
//! `module:get_option_inherited_set`: the host section's list together
//! with the global one (Prosody 0.12's `core/moduleapi.lua`). A module
//! enabled only in one VirtualHost's `modules_enabled` (or disabled by
//! its `modules_disabled`) restricts that host only.

use std::collections::{HashMap, HashSet};

use crate::config::ServerConfig;
use crate::value::Value;

/// The lists in force for one local host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// mod_s2s_whitelist on: the only remote domains allowed.
    pub whitelist: Option<HashSet<String>>,
    /// mod_s2s_blacklist on: remote domains refused.
    pub blacklist: HashSet<String>,
}

impl HostFilter {
    pub fn allows(&self, remote: &str) -> bool {
        let remote = remote.to_ascii_lowercase();
        self.whitelist.as_ref().is_none_or(|w| w.contains(&remote))
            && !self.blacklist.contains(&remote)
    }
}

/// The lists of every local host, and those of the global section for
/// a stream that has not named its local host yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainFilter {
    pub global: HostFilter,
    pub hosts: HashMap<String, HostFilter>,
}

impl DomainFilter {
    /// The same lists for every host (as a global-only config gives).
    pub fn global(whitelist: Option<HashSet<String>>, blacklist: HashSet<String>) -> DomainFilter {
        DomainFilter {
            global: HostFilter {
                whitelist,
                blacklist,
            },
            hosts: HashMap::new(),
        }
    }

    /// May `local` (when known) federate with `remote`?
    pub fn allows(&self, local: Option<&str>, remote: &str) -> bool {
        local
            .and_then(|l| self.hosts.get(l))
            .unwrap_or(&self.global)
            .allows(remote)
    }

    /// The lists `config` gives each host.
    pub fn from_config(config: &ServerConfig) -> DomainFilter {
        let global = host_filter(config, None);
        let hosts = config
            .hosts
            .iter()
            .map(|h| (h.name.clone(), host_filter(config, Some(&h.name))))
            .collect();
        DomainFilter { global, hosts }
    }
}

fn list(value: Option<&Value>) -> Vec<String> {
    value.and_then(Value::as_string_list).unwrap_or_default()
}

/// Is `module` loaded for `host` (the global section when `None`)? The
/// global `modules_enabled` minus the global `modules_disabled`, plus the
/// host's `modules_enabled`, minus the host's `modules_disabled`.
fn module_on(config: &ServerConfig, host: Option<&str>, module: &str) -> bool {
    let has = |v: Vec<String>| v.iter().any(|m| m == module);
    let globally = has(list(config.get_global("modules_enabled")))
        && !has(list(config.get_global("modules_disabled")));
    let section = host.and_then(|h| config.host(h)).map(|h| &h.section);
    let here = |name: &str| section.map(|s| has(list(s.get(name)))).unwrap_or(false);
    (globally || here("modules_enabled")) && !here("modules_disabled")
}

/// `module:get_option_inherited_set(option)`: the host's list and the
/// global one, lower-cased.
fn inherited_set(config: &ServerConfig, host: Option<&str>, option: &str) -> HashSet<String> {
    let mut set: HashSet<String> = list(config.get_global(option))
        .into_iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    if let Some(section) = host.and_then(|h| config.host(h)).map(|h| &h.section) {
        set.extend(
            list(section.get(option))
                .into_iter()
                .map(|d| d.to_ascii_lowercase()),
        );
    }
    set
}

fn host_filter(config: &ServerConfig, host: Option<&str>) -> HostFilter {
    HostFilter {
        whitelist: module_on(config, host, "s2s_whitelist")
            .then(|| inherited_set(config, host, "s2s_whitelist")),
        blacklist: if module_on(config, host, "s2s_blacklist") {
            inherited_set(config, host, "s2s_blacklist")
        } else {
            HashSet::new()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HostConfig, HostKind, Section};
    use crate::value::Table;

    fn list(items: &[&str]) -> Value {
        Value::Table(Table {
            seq: items.iter().map(|s| Value::String(s.to_string())).collect(),
            ..Table::default()
        })
    }

    fn host(name: &str, options: &[(&str, &[&str])]) -> HostConfig {
        let mut section = Section::default();
        for (k, v) in options {
            section.set(*k, list(v));
        }
        HostConfig {
            name: name.into(),
            kind: HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        }
    }

    #[test]
    fn a_hosts_own_lists_restrict_that_host_with_the_global_ones() {
        let mut config = ServerConfig::default();
        config.global.set("modules_enabled", list(&["roster"]));
        config.global.set("s2s_blacklist", list(&["spam.example"]));
        config.hosts.push(host(
            "a.example",
            &[
                ("modules_enabled", &["s2s_blacklist"]),
                ("s2s_blacklist", &["b.example"]),
            ],
        ));
        config.hosts.push(host("c.example", &[]));
        config.hosts.push(host(
            "d.example",
            &[
                ("modules_enabled", &["s2s_whitelist"]),
                ("s2s_whitelist", &["e.example"]),
            ],
        ));
        let f = DomainFilter::from_config(&config);
        // a.example: its own list and the global one (inherited set).
        assert!(!f.allows(Some("a.example"), "B.example"));
        assert!(!f.allows(Some("a.example"), "spam.example"));
        assert!(f.allows(Some("a.example"), "e.example"));
        // c.example does not load mod_s2s_blacklist: nothing refused.
        assert!(f.allows(Some("c.example"), "b.example"));
        assert!(f.allows(Some("c.example"), "spam.example"));
        // d.example federates with e.example only.
        assert!(f.allows(Some("d.example"), "e.example"));
        assert!(!f.allows(Some("d.example"), "b.example"));
        // Before a stream names its host: the global section's modules.
        assert!(f.allows(None, "spam.example"));

        // Enabled globally, disabled for one host.
        config
            .global
            .set("modules_enabled", list(&["s2s_blacklist"]));
        config.hosts[1]
            .section
            .set("modules_disabled", list(&["s2s_blacklist"]));
        let f = DomainFilter::from_config(&config);
        assert!(!f.allows(None, "spam.example"));
        assert!(!f.allows(Some("d.example"), "spam.example"));
        assert!(f.allows(Some("c.example"), "spam.example"));
    }
}
