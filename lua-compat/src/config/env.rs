//! The environment a config file runs in, as Prosody's configmanager builds
//! it: assignments become options of the current section (`__newindex`),
//! reading a name gives `ENV_*` variables, `Lua`, an option set before, or
//! (deprecated) a Lua global (`__index`).
//!
//! All files of one load share a [`Shared`]: the Lua-side option tables
//! (`config[host][option]`, `"*"` for the global section, as Prosody keeps
//! them), the declared hosts in order, where each option was set, and the
//! warnings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use mlua::chunk::ChunkMode;
use mlua::{Lua, Table, Value};
use xmpp_core::config::Source;

use super::directives;
use super::error::{CHUNK_PREFIX, ConfigError, Location, find_position, plain_message};
use super::proxy;
use super::{CredentialFallback, LoadOptions};

/// How deep `Include`s may nest before the loader calls it a loop.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 32;

/// The global section's key in the option tables, as in Prosody.
pub(crate) const GLOBAL: &str = "*";

/// A `VirtualHost`/`Component` header as first seen.
#[derive(Debug, Clone)]
pub(crate) struct HostDecl {
    pub name: String,
    pub defined_at: Source,
}

/// What the loader learns besides the option values.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Every file run, by the index in its chunk name (`lilt-config#N`).
    pub files: Vec<PathBuf>,
    /// Hosts in the order they were first declared.
    pub hosts: Vec<HostDecl>,
    /// (section, option) → where it was last set.
    pub sources: HashMap<(String, String), Source>,
    pub warnings: Vec<String>,
}

/// What every file of one load shares.
pub(crate) struct Shared {
    /// `config[section][option] = value`, Lua values as the file set them.
    pub config: Table,
    /// Metatable of the option proxies that reading a table option gives.
    pub proxy_mt: Table,
    pub state: Mutex<State>,
    pub credentials_directory: Option<PathBuf>,
    pub credential_fallback: CredentialFallback,
}

impl Shared {
    pub(crate) fn new(lua: &Lua, options: &LoadOptions) -> mlua::Result<Arc<Shared>> {
        let config = lua.create_table()?;
        config.raw_set(GLOBAL, lua.create_table()?)?;
        let credentials_directory = options
            .credentials_directory
            .clone()
            .or_else(|| std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from));
        // Arc, not Rc: with mlua's `send` feature (which another crate of the
        // workspace may turn on) Lua callbacks must be Send, and Table is.
        #[allow(clippy::arc_with_non_send_sync)]
        let shared = Arc::new(Shared {
            config,
            proxy_mt: lua.create_table()?,
            state: Mutex::new(State::default()),
            credentials_directory,
            credential_fallback: options.credential_fallback,
        });
        proxy::fill_metatable(lua, &shared)?;
        Ok(shared)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn warn(&self, warning: String) {
        tracing::warn!(target: "config", "{warning}");
        self.lock().warnings.push(warning);
    }

    /// A section's option table, if the section has any option.
    pub(crate) fn section(&self, host: &str) -> mlua::Result<Option<Table>> {
        self.config.raw_get(host)
    }

    /// Prosody's `rawget_option`: the section's own value, no global fallback.
    pub(crate) fn raw_option(&self, host: &str, option: &str) -> mlua::Result<Value> {
        match self.section(host)? {
            Some(t) => t.raw_get(option),
            None => Ok(Value::Nil),
        }
    }

    /// Prosody's `set`, plus recording where: a nil value removes the option.
    /// A proxy (an option read back) is stored as the value it stands for.
    pub(crate) fn set_option(
        &self,
        lua: &Lua,
        host: &str,
        option: &str,
        value: Value,
        at: &Location,
    ) -> mlua::Result<()> {
        let value = proxy::resolve(self, value)?;
        let section = match self.section(host)? {
            Some(t) => t,
            None => {
                let t = lua.create_table()?;
                self.config.raw_set(host, &t)?;
                t
            }
        };
        let key = (host.to_string(), option.to_string());
        let mut state = self.lock();
        if value.is_nil() {
            state.sources.remove(&key);
        } else {
            state.sources.insert(key, source_of(at));
        }
        drop(state);
        section.raw_set(option, value)
    }

    /// Where in the config files Lua is now: the innermost frame that runs a
    /// config file (Prosody's `get_line_number`).
    pub(crate) fn locate(&self, lua: &Lua) -> Location {
        let mut level = 0;
        loop {
            let frame = lua.inspect_stack(level, |debug| {
                let chunk = debug.source().short_src.map(|s| s.into_owned());
                (chunk, debug.current_line())
            });
            let Some((chunk, line)) = frame else { break };
            if let Some(index) = chunk.as_deref().and_then(chunk_index)
                && let Some(file) = self.lock().files.get(index).cloned()
            {
                return Location::new(file, line.and_then(|l| u32::try_from(l).ok()));
            }
            level += 1;
        }
        let last = self.lock().files.last().cloned().unwrap_or_default();
        Location::new(last, None)
    }

    pub(crate) fn file_path(&self, index: usize) -> Option<PathBuf> {
        self.lock().files.get(index).cloned()
    }
}

/// `lilt-config#3` → 3.
fn chunk_index(short_src: &str) -> Option<usize> {
    short_src.strip_prefix(CHUNK_PREFIX)?.parse().ok()
}

pub(crate) fn source_of(at: &Location) -> Source {
    Source {
        file: at.file.clone(),
        line: at.line.unwrap_or(0),
    }
}

/// One file being run: its own current section and its own record of the
/// options it set (Prosody warns about a duplicate only within one file).
pub(crate) struct FileCtx {
    /// The directory relative paths in this file are taken from.
    pub dir: PathBuf,
    pub depth: usize,
    current_host: Mutex<String>,
    set_options: Mutex<HashSet<(String, String)>>,
}

impl FileCtx {
    pub(crate) fn current_host(&self) -> String {
        self.current_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_current_host(&self, host: &str) {
        *self.current_host.lock().unwrap_or_else(|p| p.into_inner()) = host.to_string();
    }

    /// Marks `option` as set in `host`; true if this file had set it already.
    fn seen_before(&self, host: &str, option: &str) -> bool {
        let mut set = self.set_options.lock().unwrap_or_else(|p| p.into_inner());
        !set.insert((host.to_string(), option.to_string()))
    }
}

/// Runs one config file (the main one, or an included one) into `shared`.
pub(crate) fn run_file(
    lua: &Lua,
    shared: &Arc<Shared>,
    path: &Path,
    code: &[u8],
    depth: usize,
) -> Result<(), ConfigError> {
    let index = {
        let mut state = shared.lock();
        state.files.push(path.to_path_buf());
        state.files.len() - 1
    };
    let ctx = Arc::new(FileCtx {
        dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        depth,
        current_host: Mutex::new(GLOBAL.to_string()),
        set_options: Mutex::new(HashSet::new()),
    });
    let interpreter = |e: mlua::Error| ConfigError::Interpreter {
        file: path.to_path_buf(),
        message: e.to_string(),
    };
    let env = make_env(lua, shared, &ctx).map_err(interpreter)?;
    let chunk = lua
        .load(code)
        .set_name(format!("={CHUNK_PREFIX}{index}"))
        .set_mode(ChunkMode::Text)
        .set_environment(env)
        .into_function();
    let function = match chunk {
        Ok(f) => f,
        Err(mlua::Error::SyntaxError { message, .. }) => {
            let line = find_position(&message).map(|(_, line, _)| line);
            return Err(ConfigError::Syntax {
                at: Location::new(path, line),
                message: plain_message(&message),
            });
        }
        Err(other) => return Err(interpreter(other)),
    };
    function
        .call::<()>(())
        .map_err(|e| runtime_error(shared, path, &e))
}

/// Makes a Lua error raised while running `path` into a [`ConfigError`]:
/// a loader error raised by a directive is passed on as it is; anything
/// else is located by the `lilt-config#N:LINE:` in its message or traceback.
pub(crate) fn runtime_error(shared: &Shared, path: &Path, err: &mlua::Error) -> ConfigError {
    if let Some(own) = err.downcast_ref::<ConfigError>() {
        return own.clone();
    }
    let message;
    let mut traceback = String::new();
    let mut cur = err;
    loop {
        match cur {
            mlua::Error::CallbackError {
                traceback: tb,
                cause,
            } => {
                if traceback.is_empty() {
                    traceback = tb.clone();
                }
                cur = cause;
            }
            mlua::Error::WithContext { cause, .. } => cur = cause,
            mlua::Error::RuntimeError(m) => {
                message = m.clone();
                break;
            }
            other => {
                message = other.to_string();
                break;
            }
        }
    }
    let located = find_position(&message).or_else(|| find_position(&traceback));
    let at = match located.and_then(|(index, line, _)| Some((shared.file_path(index)?, line))) {
        Some((file, line)) => Location::new(file, Some(line)),
        None => Location::new(path, None),
    };
    ConfigError::Runtime {
        at,
        message: plain_message(&message),
    }
}

/// Builds the environment table of one file.
fn make_env(lua: &Lua, shared: &Arc<Shared>, ctx: &Arc<FileCtx>) -> mlua::Result<Table> {
    let env = lua.create_table()?;
    directives::install(lua, &env, shared, ctx)?;

    let meta = lua.create_table()?;
    let (s, c) = (shared.clone(), ctx.clone());
    meta.raw_set(
        "__index",
        lua.create_function(move |lua, (_env, key): (Table, Value)| read_name(lua, &s, &c, key))?,
    )?;
    let (s, c) = (shared.clone(), ctx.clone());
    meta.raw_set(
        "__newindex",
        lua.create_function(move |lua, (_env, key, value): (Table, Value, Value)| {
            let Value::String(key) = key else {
                return Ok(());
            };
            let key = key.to_string_lossy();
            let host = c.current_host();
            let at = s.locate(lua);
            if c.seen_before(&host, &key) {
                s.warn(format!("{at}: Duplicate option '{key}'"));
            }
            s.set_option(lua, &host, &key, value, &at)
        })?,
    )?;
    env.set_metatable(Some(meta))?;
    Ok(env)
}

/// `__index` of the environment (Prosody 13).
fn read_name(lua: &Lua, shared: &Arc<Shared>, ctx: &FileCtx, key: Value) -> mlua::Result<Value> {
    let Value::String(key) = key else {
        return Ok(Value::Nil);
    };
    let key = key.to_string_lossy();
    if let Some(var) = key.strip_prefix("ENV_") {
        return match std::env::var_os(var) {
            Some(v) => Ok(Value::String(lua.create_string(v.as_encoded_bytes())?)),
            None => Ok(Value::Nil),
        };
    }
    if key == "Lua" {
        return Ok(Value::Table(lua.globals()));
    }
    let host = ctx.current_host();
    let value = shared.raw_option(&host, &key)?;
    if !value.is_nil() {
        return match value {
            Value::Table(_) => proxy::make(lua, shared, &host, &key).map(Value::Table),
            other => Ok(other),
        };
    }
    let global: Value = lua.globals().raw_get(key.as_str())?;
    if !global.is_nil() {
        let at = shared.locate(lua);
        shared.warn(format!(
            "{at}: direct usage of the Lua API is deprecated - replace `{key}` with `Lua.{key}`"
        ));
    }
    Ok(global)
}
