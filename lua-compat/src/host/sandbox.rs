//! The sandbox around one module's Lua state: a memory limit for the state,
//! an instruction budget for each call into it (an event, a timer, loading),
//! and errors turned into log-ready text with the file and line.
//!
//! What happens when a limit is hit: the running Lua code is aborted with an
//! error (the budget from an instruction-count hook, the memory limit from
//! Lua's allocator), the call into the module fails with
//! [`ModuleError::Budget`] or [`ModuleError::Memory`], and the state stays
//! loaded and usable for the next event, as Prosody keeps a module loaded
//! after an error in one of its handlers. A hook that keeps failing on its
//! own is the module's problem, not the server's: every call gets a fresh
//! budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};

/// Instructions between two checks of the budget.
const CHECK_EVERY: u32 = 1000;

/// Limits of one module's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the Lua state may allocate in total.
    pub memory: usize,
    /// Lua VM instructions one call from the server (an event with all the
    /// handlers it reaches in this module, a timer, loading) may run.
    pub instructions: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            memory: 64 * 1024 * 1024,
            instructions: 50_000_000,
        }
    }
}

/// Why a call into a module failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("mod_{module}: {what}: ran more than {limit} Lua instructions (stopped at {at})")]
    Budget {
        module: String,
        what: String,
        limit: u64,
        at: String,
    },
    #[error("mod_{module}: {what}: out of memory (limit {limit} bytes)")]
    Memory {
        module: String,
        what: String,
        limit: usize,
    },
    #[error("mod_{module}: {what}: {message}")]
    Lua {
        module: String,
        what: String,
        message: String,
    },
    #[error("module {0} not found")]
    NotFound(String),
    #[error("mod_{module}: {message}")]
    Load { module: String, message: String },
}

/// The instruction budget of the call in progress, shared with the hook.
///
/// Calls into one module are serialised: a call from another thread waits
/// until the running one (with the nested calls it makes on its own
/// thread) is over, so each call from the server has a budget of its own.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    remaining: AtomicI64,
    depth: AtomicU32,
    limit: AtomicI64,
    /// Where the budget ran out (`file:line`), for the report.
    exhausted_at: std::sync::Mutex<Option<String>>,
    /// The thread whose call is running.
    owner: std::sync::Mutex<Option<std::thread::ThreadId>>,
    released: std::sync::Condvar,
}

impl Budget {
    /// Starts a call; nested calls (a handler firing an event that comes
    /// back into this module) share the outer call's budget.
    pub(crate) fn enter(&self) {
        let me = std::thread::current().id();
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *owner {
                None => {
                    *owner = Some(me);
                    break;
                }
                Some(t) if t == me => break,
                Some(_) => {
                    owner = self.released.wait(owner).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        drop(owner);
        if self.depth.fetch_add(1, Ordering::AcqRel) == 0 {
            self.remaining
                .store(self.limit.load(Ordering::Acquire), Ordering::Release);
            *self.exhausted_at.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
    /// Ends a call; the outermost one refills the budget and lets the
    /// next thread in.
    pub(crate) fn leave(&self) {
        if self.depth.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.remaining.store(i64::MAX, Ordering::Release);
            *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.released.notify_one();
        }
    }
    /// Where the last call ran out of budget, if it did.
    pub(crate) fn exhausted_at(&self) -> Option<String> {
        self.exhausted_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A new Lua state for a module, with the limits installed and the
/// libraries a module may not have (`os.exit`, `debug.sethook`, loading of
/// C libraries) taken away.
pub(crate) fn new_state(limits: &Limits) -> mlua::Result<(Lua, Arc<Budget>)> {
    let lua = Lua::new_with(StdLib::ALL_SAFE, LuaOptions::default())?;
    lua.set_memory_limit(limits.memory)?;
    let budget = Arc::new(Budget::default());
    budget.limit.store(
        i64::try_from(limits.instructions).unwrap_or(i64::MAX),
        Ordering::Release,
    );
    // Outside any call (between events) the budget is full, so code run
    // by the host directly (tests, set-up) is not cut short.
    budget.remaining.store(i64::MAX, Ordering::Release);
    let hook_budget = budget.clone();
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(CHECK_EVERY),
        move |_, debug| {
            let left = hook_budget
                .remaining
                .fetch_sub(i64::from(CHECK_EVERY), Ordering::AcqRel);
            if left > i64::from(CHECK_EVERY) {
                return Ok(VmState::Continue);
            }
            let source = debug.source();
            let at = format!(
                "{}:{}",
                source.short_src.as_deref().unwrap_or("?"),
                debug.current_line().unwrap_or(0)
            );
            *hook_budget
                .exhausted_at
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(at.clone());
            Err(mlua::Error::runtime(format!(
                "instruction budget exhausted at {at}"
            )))
        },
    )?;
    install_catch_guards(&lua, &budget)?;
    let globals = lua.globals();
    if let Ok(os) = globals.get::<mlua::Table>("os") {
        os.set(
            "exit",
            lua.create_function(|_, ()| -> mlua::Result<()> {
                Err(mlua::Error::runtime("os.exit is not available to modules"))
            })?,
        )?;
    }
    if let Ok(package) = globals.get::<mlua::Table>("package") {
        package.set("loadlib", mlua::Nil)?;
        package.set("cpath", "")?;
    }
    Ok((lua, budget))
}

/// `pcall`, `xpcall` and `coroutine.resume`/`wrap` that do not swallow an
/// exhausted budget: once the hook has stopped the call, catching the error
/// re-raises it, or a `while true do pcall(loop) end` would run forever.
const CATCH_GUARDS: &str = r#"
local exhausted = ...
local raw_pcall, raw_xpcall, raw_resume, create = pcall, xpcall, coroutine.resume, coroutine.create
local pack, unpack, error = table.pack, table.unpack, error
local function check(ok, ...)
	if not ok and exhausted() then error((...), 0) end
	return ok, ...
end
pcall = function(f, ...) return check(raw_pcall(f, ...)) end
xpcall = function(f, handler, ...) return check(raw_xpcall(f, handler, ...)) end
coroutine.resume = function(co, ...) return check(raw_resume(co, ...)) end
coroutine.wrap = function(f)
	local co = create(f)
	return function(...)
		local r = pack(check(raw_resume(co, ...)))
		if not r[1] then error(r[2], 0) end
		return unpack(r, 2, r.n)
	end
end
"#;

fn install_catch_guards(lua: &Lua, budget: &Arc<Budget>) -> mlua::Result<()> {
    let b = budget.clone();
    let exhausted = lua.create_function(move |_, ()| {
        Ok(b.depth.load(Ordering::Acquire) > 0 && b.remaining.load(Ordering::Acquire) <= 0)
    })?;
    lua.load(CATCH_GUARDS)
        .set_name("=lilt:sandbox")
        .call::<()>(exhausted)
}

/// Runs `f` as one call from the server: a fresh budget, and errors turned
/// into [`ModuleError`]s naming the module, what was running and where.
pub(crate) fn guarded<T>(
    budget: &Budget,
    limits: &Limits,
    module: &str,
    what: &str,
    f: impl FnOnce() -> mlua::Result<T>,
) -> Result<T, ModuleError> {
    budget.enter();
    let result = f().map_err(|e| classify(&e, budget, limits, module, what));
    budget.leave();
    result
}

fn classify(
    e: &mlua::Error,
    budget: &Budget,
    limits: &Limits,
    module: &str,
    what: &str,
) -> ModuleError {
    if is_memory_error(e) {
        return ModuleError::Memory {
            module: module.to_string(),
            what: what.to_string(),
            limit: limits.memory,
        };
    }
    if let Some(at) = budget.exhausted_at() {
        return ModuleError::Budget {
            module: module.to_string(),
            what: what.to_string(),
            limit: limits.instructions,
            at,
        };
    }
    ModuleError::Lua {
        module: module.to_string(),
        what: what.to_string(),
        message: describe(e),
    }
}

fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        mlua::Error::RuntimeError(m) => m.contains("not enough memory"),
        _ => false,
    }
}

/// The message of a Lua error with its `file:line:` prefix, without the
/// traceback.
pub(crate) fn describe(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => describe(cause),
        mlua::Error::WithContext { cause, .. } => describe(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m
            .split("\nstack traceback:")
            .next()
            .unwrap_or(m)
            .to_string(),
        other => other.to_string(),
    }
}
