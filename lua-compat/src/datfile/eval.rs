//! Evaluating a data file with Lua 5.4 in a sandbox: no standard library,
//! an empty environment (plus `item` for `.list` files), text chunks only,
//! a memory limit and an instruction budget proportional to the file size.
//!
//! Making a Lua state costs more than evaluating a small file, so each
//! thread keeps one between evaluations. Nothing of one file reaches the
//! next: a chunk sees only the fresh environment table it is given (no
//! globals, no libraries, so no metatables it could change), and after it
//! the hook and memory limit are taken off and its garbage collected.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};

use super::{DatError, DatKey, DatTable, DatValue, MAX_DEPTH};

/// Memory a sandbox may use beyond what the file's size explains.
const BASE_MEMORY: usize = 16 * 1024 * 1024;
/// Lua memory allowed per byte of source.
const MEMORY_PER_BYTE: usize = 16;
/// VM instructions between two checks of the budget.
const HOOK_EVERY: u32 = 10_000;
/// Instructions allowed: this many per byte of source, plus a base.
const INSTRUCTIONS_PER_BYTE: u64 = 8;
const BASE_INSTRUCTIONS: u64 = 10_000_000;

thread_local! {
    /// This thread's Lua state between two evaluations.
    static SPARE: RefCell<Option<Lua>> = const { RefCell::new(None) };
}

struct Sandbox {
    lua: Lua,
    name: String,
}

impl Drop for Sandbox {
    /// Gives the state back for the next file, clean.
    fn drop(&mut self) {
        self.lua.remove_hook();
        if self.lua.set_memory_limit(0).is_err() || self.lua.gc_collect().is_err() {
            return;
        }
        let lua = self.lua.clone();
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                spare.get_or_insert(lua);
            }
        });
    }
}

impl Sandbox {
    fn new(src_len: usize, name: &str) -> Result<Sandbox, DatError> {
        let spare = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten();
        let lua = match spare {
            Some(lua) => lua,
            None => {
                Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| lua_error(name, &e))?
            }
        };
        lua.set_memory_limit(BASE_MEMORY.saturating_add(src_len.saturating_mul(MEMORY_PER_BYTE)))
            .map_err(|e| lua_error(name, &e))?;
        let budget = (INSTRUCTIONS_PER_BYTE.saturating_mul(src_len as u64) + BASE_INSTRUCTIONS)
            / u64::from(HOOK_EVERY);
        let used = Cell::new(0u64);
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                used.set(used.get() + 1);
                if used.get() > budget {
                    Err(mlua::Error::runtime(
                        "instruction budget exhausted (not a data file?)",
                    ))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )
        .map_err(|e| lua_error(name, &e))?;
        Ok(Sandbox {
            lua,
            name: name.to_string(),
        })
    }

    /// Runs the chunk with `env` as its only environment, returning its result.
    fn run(&self, src: &[u8], env: mlua::Table) -> Result<mlua::Value, DatError> {
        self.lua
            .load(src)
            .set_name(format!("@{}", self.name))
            .set_mode(ChunkMode::Text)
            .set_environment(env)
            // Not `eval`: that would also accept a bare expression, which Prosody does not.
            .into_function()
            .and_then(|f| f.call::<mlua::Value>(()))
            .map_err(|e| lua_error(&self.name, &e))
    }
}

fn lua_error(name: &str, e: &mlua::Error) -> DatError {
    // The first line carries Lua's message (with the line number); the rest is a traceback.
    let text = e.to_string();
    let message = text
        .lines()
        .next()
        .unwrap_or("unknown Lua error")
        .to_string();
    DatError::Lua {
        path: name.to_string(),
        message,
    }
}

/// Evaluates a `.dat` chunk; `Ok(None)` when it returns nil.
pub(super) fn eval_dat(src: &[u8], name: &str) -> Result<Option<DatValue>, DatError> {
    let sandbox = Sandbox::new(src.len(), name)?;
    let env = sandbox
        .lua
        .create_table()
        .map_err(|e| lua_error(name, &e))?;
    let value = sandbox.run(src, env)?;
    let mut budget = src.len() + 64;
    match value {
        mlua::Value::Nil => Ok(None),
        v => convert_top(&v, name, "value", &mut budget).map(Some),
    }
}

/// Evaluates a `.list` chunk, collecting the arguments of its `item(...)` calls.
pub(super) fn eval_list(src: &[u8], name: &str) -> Result<Vec<DatValue>, DatError> {
    let sandbox = Sandbox::new(src.len(), name)?;
    let lua = &sandbox.lua;
    let items = Arc::new(Mutex::new(Vec::<mlua::Value>::new()));
    let sink = items.clone();
    let item = lua
        .create_function(move |_, v: mlua::Value| {
            if !v.is_nil() {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(v);
            }
            Ok(())
        })
        .map_err(|e| lua_error(name, &e))?;
    let env = lua.create_table().map_err(|e| lua_error(name, &e))?;
    env.raw_set("item", item).map_err(|e| lua_error(name, &e))?;
    sandbox.run(src, env)?;
    let collected = std::mem::take(&mut *items.lock().unwrap_or_else(|e| e.into_inner()));
    let mut budget = src.len() + 64;
    collected
        .iter()
        .enumerate()
        .map(|(i, v)| convert_top(v, name, &format!("item {}", i + 1), &mut budget))
        .collect()
}

/// Where and why a Lua value is not data; the path grows as the error unwinds.
struct NotData {
    path: Vec<String>,
    reason: String,
}

fn not_data(at: &str, name: &str, e: NotData) -> DatError {
    let mut path = at.to_string();
    for step in e.path.iter().rev() {
        path.push_str(&format!("[{step}]"));
    }
    DatError::NotData {
        path: name.to_string(),
        reason: format!("{path}: {}", e.reason),
    }
}

fn convert_top(
    v: &mlua::Value,
    name: &str,
    at: &str,
    budget: &mut usize,
) -> Result<DatValue, DatError> {
    convert(v, 0, budget).map_err(|e| not_data(at, name, e))
}

/// Converts a Lua value to data. `budget` bounds the number of values: a
/// file cannot literally hold more values than it has bytes, so exceeding it
/// means tables shared by reference (or cycles), which are not data.
fn convert(v: &mlua::Value, depth: usize, budget: &mut usize) -> Result<DatValue, NotData> {
    let fail = |reason: String| NotData {
        path: Vec::new(),
        reason,
    };
    if *budget == 0 {
        return Err(fail(
            "more values than the file holds (shared or cyclic tables)".into(),
        ));
    }
    *budget -= 1;
    Ok(match v {
        mlua::Value::Boolean(b) => DatValue::Bool(*b),
        mlua::Value::Integer(i) => DatValue::Integer(*i),
        mlua::Value::Number(f) => DatValue::Number(*f),
        mlua::Value::String(s) => DatValue::String(s.as_bytes().to_vec()),
        mlua::Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(fail(format!("tables nested more than {MAX_DEPTH} deep")));
            }
            let mut out = DatTable::new();
            for pair in t.pairs::<mlua::Value, mlua::Value>() {
                let (k, val) = pair.map_err(|e| fail(e.to_string()))?;
                let key = convert_key(&k)
                    .ok_or_else(|| fail(format!("a key of type {}", k.type_name())))?;
                let value = convert(&val, depth + 1, budget).map_err(|mut e| {
                    e.path.push(key.to_display_string());
                    e
                })?;
                out.insert(key, value);
            }
            // (Put in canonical order by the caller when the written order is unknown.)
            DatValue::Table(out)
        }
        other => return Err(fail(format!("a value of type {}", other.type_name()))),
    })
}

fn convert_key(k: &mlua::Value) -> Option<DatKey> {
    match k {
        mlua::Value::Boolean(b) => Some(DatKey::Bool(*b)),
        mlua::Value::Integer(i) => Some(DatKey::Integer(*i)),
        mlua::Value::Number(f) => DatKey::from_f64(*f),
        mlua::Value::String(s) => Some(DatKey::String(s.as_bytes().to_vec())),
        _ => None,
    }
}
