//! The loaded server configuration: the global section and each host's own
//! options, with Prosody's lookup rule (host value, else global value).
//!
//! Loading `prosody.cfg.lua` is `lua-compat`'s job; this module only holds the
//! result so the core does not depend on Lua.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::value::Value;

/// Where an option was set, for error messages that name file and line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    pub file: PathBuf,
    pub line: u32,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What kind of host a section declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// `VirtualHost "example.com"` (or `Host`).
    VirtualHost,
    /// `Component "x"` (external, XEP-0114) or `Component "x" "module"`.
    Component { module: Option<String> },
}

/// One options section: global, or a host's.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub options: BTreeMap<String, Value>,
    pub sources: BTreeMap<String, Source>,
}

impl Section {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.options.get(name)
    }
    pub fn set(&mut self, name: impl Into<String>, value: Value) {
        self.options.insert(name.into(), value);
    }
}

/// A `VirtualHost` or `Component` section.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The nameprepped host name.
    pub name: String,
    pub kind: HostKind,
    pub section: Section,
    /// Where the section starts.
    pub defined_at: Source,
}

/// A whole configuration.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// The main config file (relative paths in options resolve against its directory).
    pub config_file: Option<PathBuf>,
    pub global: Section,
    pub hosts: Vec<HostConfig>,
    /// Warnings found while loading (duplicate options, ...), already worded.
    pub warnings: Vec<String>,
}

impl ServerConfig {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.iter().find(|h| h.name == name)
    }
    pub fn host_mut(&mut self, name: &str) -> Option<&mut HostConfig> {
        self.hosts.iter_mut().find(|h| h.name == name)
    }
    /// Prosody's `config.get(host, option)`: the host's value, else the global one.
    pub fn get(&self, host: Option<&str>, name: &str) -> Option<&Value> {
        host.and_then(|h| self.host(h))
            .and_then(|h| h.section.get(name))
            .or_else(|| self.global.get(name))
    }
    pub fn get_global(&self, name: &str) -> Option<&Value> {
        self.global.get(name)
    }
    /// Where an option was set (host section first), for error messages.
    pub fn source_of(&self, host: Option<&str>, name: &str) -> Option<&Source> {
        host.and_then(|h| self.host(h))
            .and_then(|h| h.section.sources.get(name))
            .or_else(|| self.global.sources.get(name))
    }
    /// The directory relative paths are resolved against (the config file's).
    pub fn base_dir(&self) -> PathBuf {
        self.config_file
            .as_ref()
            .and_then(|p| p.parent())
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from("."))
    }
    /// Resolves a path option against the config directory, as Prosody's
    /// `config.resolve_relative_path`.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.base_dir().join(path)
        }
    }
}

/// An option with a bad value: names file, line and option.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{location}option '{option}' {problem}", location = defined_at.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
pub struct OptionError {
    pub option: String,
    pub defined_at: Option<Source>,
    pub problem: String,
}
