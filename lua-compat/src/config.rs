//! Loading `prosody.cfg.lua` exactly as Prosody's `core/configmanager.lua`
//! (13, and 0.12 for everything 0.12 has) does, into
//! [`xmpp_core::ServerConfig`].
//!
//! The file runs in Lua 5.4 (mlua) in Prosody's environment:
//!
//! - `option = value` sets an option of the current section: the global
//!   one, or the host of the last `VirtualHost "x"`/`Host "x"` or
//!   `Component "x"`/`Component "x" "module"` header;
//! - the table-call form `VirtualHost "x" { opt = v }` sets the host's
//!   options and goes back to the global section;
//! - `Include "file"` and `Include "dir/*.cfg.lua"` run other files, each
//!   starting in the global section, paths relative to the including file;
//! - `FileContents`, `FileLine`, `FileLines` read files, `Credential "name"`
//!   reads `$CREDENTIALS_DIRECTORY/name`, `ENV_NAME` is an environment
//!   variable, `Lua.*` the real Lua globals, `RunScript` runs a Lua script;
//! - reading an option back gives its value, tables as a proxy with
//!   `:append{}`/`:values()`/`:value()` (Prosody 13).
//!
//! Setting an option twice in one section of one file is a warning
//! (`file:line: Duplicate option 'x'`), kept in [`ServerConfig::warnings`].
//! Every option remembers the file and line that set it
//! ([`xmpp_core::config::Section::sources`]). [`check`] finds what
//! `prosodyctl check config` would complain about.

mod check;
mod convert;
mod directives;
mod env;
mod error;
mod files;
mod proxy;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::Lua;
use xmpp_core::ServerConfig;

pub use check::check;
pub use error::{ConfigError, Location};

/// What `Credential "name"` does when `$CREDENTIALS_DIRECTORY` is not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CredentialFallback {
    /// Loading fails (what the Prosody server does).
    #[default]
    Error,
    /// The option is left unset, with a warning (what prosodyctl does).
    Warn,
}

/// Settings of one load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Where `Credential` reads from; `None` takes `$CREDENTIALS_DIRECTORY`.
    pub credentials_directory: Option<PathBuf>,
    pub credential_fallback: CredentialFallback,
}

/// Loads a config file (and what it includes).
pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with explicit [`LoadOptions`].
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<ServerConfig, ConfigError> {
    let code = std::fs::read(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        source: Arc::new(e),
    })?;
    run(&code, path, options)
}

/// Loads config text; `name` stands for its file in messages and is where
/// relative `Include`s are taken from.
pub fn load_str(source: &str, name: &Path) -> Result<ServerConfig, ConfigError> {
    load_str_with(source, name, &LoadOptions::default())
}

/// [`load_str`] with explicit [`LoadOptions`].
pub fn load_str_with(
    source: &str,
    name: &Path,
    options: &LoadOptions,
) -> Result<ServerConfig, ConfigError> {
    run(source.as_bytes(), name, options)
}

fn run(code: &[u8], name: &Path, options: &LoadOptions) -> Result<ServerConfig, ConfigError> {
    let interpreter = |e: mlua::Error| ConfigError::Interpreter {
        file: name.to_path_buf(),
        message: e.to_string(),
    };
    let lua = Lua::new();
    let shared = env::Shared::new(&lua, options).map_err(interpreter)?;
    env::run_file(&lua, &shared, name, code, 0)?;
    convert::build(&shared, name.to_path_buf()).map_err(interpreter)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_files;
