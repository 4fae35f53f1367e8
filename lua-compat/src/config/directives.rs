//! The directives of a config file: `VirtualHost`/`Host`, `Component`,
//! `Include`, `RunScript`, `FileContents`, `FileLine`, `FileLines` and
//! `Credential`, with the rules of Prosody's configmanager (13, which
//! keeps 0.12's for everything 0.12 has).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, MultiValue, Table, UserData, Value};

use super::CredentialFallback;
use super::env::{FileCtx, GLOBAL, MAX_INCLUDE_DEPTH, Shared, run_file};
use super::error::{ConfigError, Location, plain_message};
use super::files::{self, ReadMode};

/// What `Credential` gives, in Prosody's lenient mode (prosodyctl), when
/// `$CREDENTIALS_DIRECTORY` is not set: the option is dropped with a warning.
pub(crate) struct MissingCredential {
    pub at: Location,
}

impl UserData for MissingCredential {}

fn fail(err: ConfigError) -> mlua::Error {
    mlua::Error::external(err)
}

fn runtime(at: Location, message: impl Into<String>) -> mlua::Error {
    fail(ConfigError::Runtime {
        at,
        message: message.into(),
    })
}

/// Puts the directives into a file's environment as plain fields (so that
/// defining them does not go through `__newindex`, as in Prosody).
pub(crate) fn install(
    lua: &Lua,
    env: &Table,
    shared: &Arc<Shared>,
    ctx: &Arc<FileCtx>,
) -> mlua::Result<()> {
    let (s, c) = (shared.clone(), ctx.clone());
    let virtual_host =
        lua.create_function(move |lua, name: Value| virtual_host(lua, &s, &c, name))?;
    for alias in ["VirtualHost", "Host", "host"] {
        env.raw_set(alias, &virtual_host)?;
    }
    let (s, c) = (shared.clone(), ctx.clone());
    let component = lua.create_function(move |lua, name: Value| component(lua, &s, &c, name))?;
    for alias in ["Component", "component"] {
        env.raw_set(alias, &component)?;
    }
    let (s, c) = (shared.clone(), ctx.clone());
    let include = lua.create_function(move |lua, pattern: Value| include(lua, &s, &c, pattern))?;
    for alias in ["Include", "include"] {
        env.raw_set(alias, &include)?;
    }
    let (s, c) = (shared.clone(), ctx.clone());
    env.raw_set(
        "RunScript",
        lua.create_function(move |lua, file: Value| run_script(lua, &s, &c, file))?,
    )?;

    let dir = ctx.dir.clone();
    env.raw_set(
        "FileContents",
        file_reader(
            lua,
            shared,
            "FileContents",
            Some(dir.clone()),
            ReadMode::All,
        )?,
    )?;
    env.raw_set(
        "FileLine",
        file_reader(lua, shared, "FileLine", Some(dir.clone()), ReadMode::Line)?,
    )?;
    let s = shared.clone();
    env.raw_set(
        "FileLines",
        lua.create_function(move |lua, file: Value| {
            let at = s.locate(lua);
            let (_, data) = read_named_file(&dir, file, "FileLines", &at)?;
            let lines = lua.create_table()?;
            for (i, line) in files::split_lines(&data).into_iter().enumerate() {
                lines.raw_set(i + 1, lua.create_string(line)?)?;
            }
            Ok(lines)
        })?,
    )?;
    let credential_dir = shared.credentials_directory.clone();
    env.raw_set(
        "Credential",
        file_reader(lua, shared, "Credential", credential_dir, ReadMode::All)?,
    )?;
    Ok(())
}

/// The name given to `VirtualHost`/`Component`, nameprepped.
fn host_name(name: Value, directive: &'static str, at: &Location) -> mlua::Result<String> {
    let raw = match name {
        Value::Nil => {
            let what = if directive == "Component" {
                "Component"
            } else {
                "Host"
            };
            return Err(runtime(at.clone(), format!("{what} must have a name")));
        }
        Value::String(s) => s.to_string_lossy(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(runtime(
                at.clone(),
                format!(
                    "{directive} expects a host name in quotes, not a {}",
                    other.type_name()
                ),
            ));
        }
    };
    xmpp_core::jid::nameprep(&raw).map_err(|e| {
        fail(ConfigError::InvalidHostName {
            at: at.clone(),
            directive,
            name: raw.clone(),
            reason: e.reason,
        })
    })
}

/// Notes a host header: first declarations are kept in order.
fn declare(shared: &Shared, name: &str, at: &Location) {
    let mut state = shared.lock();
    if !state.hosts.iter().any(|h| h.name == name) {
        let defined_at = super::env::source_of(at);
        state.hosts.push(super::env::HostDecl {
            name: name.to_string(),
            defined_at,
        });
    }
}

/// Sets the options of the table-call form `VirtualHost "x" { ... }`.
fn set_table_options(
    lua: &Lua,
    shared: &Shared,
    host: &str,
    options: Table,
    at: &Location,
) -> mlua::Result<()> {
    for pair in options.pairs::<Value, Value>() {
        let (key, value) = pair?;
        match key {
            Value::String(k) => shared.set_option(lua, host, &k.to_string_lossy(), value, at)?,
            other => shared.warn(format!(
                "{at}: ignoring a value without an option name (key {}) in the options of {host}",
                other
                    .to_string()
                    .unwrap_or_else(|_| other.type_name().to_string())
            )),
        }
    }
    Ok(())
}

fn virtual_host(
    lua: &Lua,
    shared: &Arc<Shared>,
    ctx: &Arc<FileCtx>,
    name: Value,
) -> mlua::Result<Function> {
    let at = shared.locate(lua);
    let name = host_name(name, "VirtualHost", &at)?;
    if let Value::String(module) = shared.raw_option(&name, "component_module")? {
        let module = module.to_string_lossy();
        let kind = match module.as_str() {
            "component" => "external",
            "muc" => "MUC",
            other => other,
        };
        let message = format!(
            "Host {name:?} clashes with previously defined {kind} Component {name:?}, for services use a sub-domain like conference.{name}"
        );
        return Err(fail(ConfigError::HostClash {
            at,
            host: name,
            message,
        }));
    }
    declare(shared, &name, &at);
    ctx.set_current_host(&name);
    shared.set_option(lua, &name, "defined", Value::Boolean(true), &at)?;

    let (s, c) = (shared.clone(), ctx.clone());
    lua.create_function(move |lua, options: Value| {
        c.set_current_host(GLOBAL);
        let at = s.locate(lua);
        match options {
            Value::Table(t) => set_table_options(lua, &s, &name, t, &at),
            Value::String(module) => Err(runtime(
                at,
                format!(
                    "VirtualHost entries do not accept a module name (module '{}' provided for host '{name}')",
                    module.to_string_lossy()
                ),
            )),
            other => Err(runtime(
                at,
                format!("Invalid syntax following VirtualHost, expected options but received a {}", other.type_name()),
            )),
        }
    })
}

fn component(
    lua: &Lua,
    shared: &Arc<Shared>,
    ctx: &Arc<FileCtx>,
    name: Value,
) -> mlua::Result<Function> {
    let at = shared.locate(lua);
    let name = host_name(name, "Component", &at)?;
    let defined = !shared.raw_option(&name, "defined")?.is_nil();
    if defined && shared.raw_option(&name, "component_module")?.is_nil() {
        let message = format!(
            "Component {name:?} clashes with previously defined VirtualHost {name:?}, for services use a sub-domain like conference.{name}"
        );
        return Err(fail(ConfigError::HostClash {
            at,
            host: name,
            message,
        }));
    }
    declare(shared, &name, &at);
    shared.set_option(
        lua,
        &name,
        "component_module",
        Value::String(lua.create_string("component")?),
        &at,
    )?;
    // Prosody: "Don't load the global modules by default".
    shared.set_option(
        lua,
        &name,
        "load_global_modules",
        Value::Boolean(false),
        &at,
    )?;
    ctx.set_current_host(&name);

    let host = name.clone();
    let (s, c) = (shared.clone(), ctx.clone());
    let handle_options = lua.create_function(move |lua, options: Value| {
        c.set_current_host(GLOBAL);
        let at = s.locate(lua);
        match options {
            Value::Table(t) => set_table_options(lua, &s, &name, t, &at),
            other => Err(runtime(
                at,
                format!(
                    "Invalid syntax following Component, expected options but received a {}",
                    other.type_name()
                ),
            )),
        }
    })?;
    let s = shared.clone();
    lua.create_function(move |lua, arg: Value| -> mlua::Result<Value> {
        match arg {
            Value::String(module) => {
                let at = s.locate(lua);
                s.set_option(lua, &host, "component_module", Value::String(module), &at)?;
                Ok(Value::Function(handle_options.clone()))
            }
            other => {
                handle_options.call::<()>(other)?;
                Ok(Value::Nil)
            }
        }
    })
}

fn include(
    lua: &Lua,
    shared: &Arc<Shared>,
    ctx: &Arc<FileCtx>,
    pattern: Value,
) -> mlua::Result<()> {
    let at = shared.locate(lua);
    let Value::String(pattern) = pattern else {
        return Err(runtime(
            at,
            format!(
                "Include expects a file name in quotes, not a {}",
                pattern.type_name()
            ),
        ));
    };
    let pattern = pattern.to_string_lossy();
    if ctx.depth + 1 > MAX_INCLUDE_DEPTH {
        return Err(fail(ConfigError::IncludeLoop {
            at,
            limit: MAX_INCLUDE_DEPTH,
        }));
    }
    if files::is_wildcard(&pattern) {
        let (dir, glob) = files::split_wildcard(&ctx.dir, &pattern);
        let found = files::expand_wildcard(&dir, &glob).map_err(|e| {
            fail(ConfigError::IncludeDir {
                at: at.clone(),
                dir: dir.clone(),
                pattern: pattern.clone(),
                source: Arc::new(e),
            })
        })?;
        for path in found {
            include_file(lua, shared, ctx, &path, &at)?;
        }
        return Ok(());
    }
    let path = files::resolve(&ctx.dir, &pattern);
    include_file(lua, shared, ctx, &path, &at)
}

fn include_file(
    lua: &Lua,
    shared: &Arc<Shared>,
    ctx: &FileCtx,
    path: &Path,
    at: &Location,
) -> mlua::Result<()> {
    let code = std::fs::read(path).map_err(|e| {
        fail(ConfigError::Include {
            at: at.clone(),
            path: path.to_path_buf(),
            source: Arc::new(e),
        })
    })?;
    run_file(lua, shared, path, &code, ctx.depth + 1).map_err(fail)
}

fn run_script(
    lua: &Lua,
    shared: &Arc<Shared>,
    ctx: &FileCtx,
    file: Value,
) -> mlua::Result<MultiValue> {
    let at = shared.locate(lua);
    let Value::String(file) = file else {
        return Err(runtime(
            at,
            format!(
                "RunScript expects a file name in quotes, not a {}",
                file.type_name()
            ),
        ));
    };
    let path = files::resolve(&ctx.dir, &file.to_string_lossy());
    let code = std::fs::read(&path).map_err(|e| {
        fail(ConfigError::RunScript {
            at: at.clone(),
            path: path.clone(),
            message: e.to_string(),
        })
    })?;
    // Like Lua's dofile: the script runs with the real globals.
    lua.load(code)
        .set_name(format!("@{}", path.display()))
        .set_mode(ChunkMode::Text)
        .call::<MultiValue>(())
        .map_err(|e| {
            fail(ConfigError::RunScript {
                at,
                path,
                message: plain_message(&e.to_string()),
            })
        })
}

/// `FileContents`/`FileLine`/`Credential`: read a file (relative to `base`)
/// with Lua's read format given as the second argument, or `default`.
fn file_reader(
    lua: &Lua,
    shared: &Arc<Shared>,
    directive: &'static str,
    base: Option<PathBuf>,
    default: ReadMode,
) -> mlua::Result<Function> {
    let s = shared.clone();
    lua.create_function(
        move |lua, (file, mode): (Value, Value)| -> mlua::Result<Value> {
            let at = s.locate(lua);
            let Some(base) = &base else {
                // Only Credential has no base: $CREDENTIALS_DIRECTORY is unset.
                return match s.credential_fallback {
                    CredentialFallback::Error => {
                        Err(fail(ConfigError::NoCredentialsDirectory { at }))
                    }
                    CredentialFallback::Warn => Ok(Value::UserData(
                        lua.create_userdata(MissingCredential { at })?,
                    )),
                };
            };
            let mode = match mode {
                Value::Nil => default,
                Value::String(m) => ReadMode::parse(&m.to_string_lossy()).ok_or_else(|| {
                    runtime(
                        at.clone(),
                        format!("{directive}: invalid read format {:?}", m.to_string_lossy()),
                    )
                })?,
                Value::Integer(n) => ReadMode::Bytes(usize::try_from(n).unwrap_or(0)),
                other => {
                    return Err(runtime(
                        at,
                        format!("{directive}: invalid read format (a {})", other.type_name()),
                    ));
                }
            };
            let (path, data) = read_named_file(base, file, directive, &at)?;
            match mode.apply(&data) {
                Some(bytes) => Ok(Value::String(lua.create_string(bytes)?)),
                None => Err(fail(ConfigError::FileRead {
                    at,
                    directive,
                    path,
                    problem: "the file is empty".into(),
                })),
            }
        },
    )
}

/// Resolves and reads the file named by a reader's first argument.
fn read_named_file(
    base: &Path,
    file: Value,
    directive: &'static str,
    at: &Location,
) -> mlua::Result<(PathBuf, Vec<u8>)> {
    let Value::String(file) = file else {
        return Err(runtime(
            at.clone(),
            format!(
                "{directive} expects a file name in quotes, not a {}",
                file.type_name()
            ),
        ));
    };
    let path = files::resolve(base, &file.to_string_lossy());
    match std::fs::read(&path) {
        Ok(data) => Ok((path, data)),
        Err(e) => Err(fail(ConfigError::FileRead {
            at: at.clone(),
            directive,
            path,
            problem: e.to_string(),
        })),
    }
}
