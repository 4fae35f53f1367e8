//! Who registered what: while a module instance loads, it is the *current
//! owner* on this thread, and everything registered meanwhile (hooks on any
//! bus, ad-hoc commands, HTTP routes, timers, disco items) is recorded
//! against it, so unloading the module removes all of it. This is what
//! lets a module written as plain `host.events.hook(...)` calls be unloaded
//! like one that goes through its [`super::ModuleContext`].
//!
//! Crates that keep registrations of their own (the ad-hoc command list,
//! the HTTP route table) call [`on_unload`] when they add one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Something to undo when the owning module unloads.
pub type Cleanup = Box<dyn FnOnce() + Send>;

/// The record of one loaded module instance.
pub struct Owner {
    id: u64,
    cleanups: Mutex<Vec<Cleanup>>,
    /// Modules loaded while this one loaded (its dependencies).
    dependencies: Mutex<Vec<String>>,
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

impl Owner {
    pub fn new() -> Arc<Owner> {
        Arc::new(Owner {
            id: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            cleanups: Mutex::new(Vec::new()),
            dependencies: Mutex::new(Vec::new()),
        })
    }
    /// The tag hooks carry ([`crate::EventBus::unhook_owner`]).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Adds something to undo at unload.
    pub fn add_cleanup(&self, cleanup: Cleanup) {
        self.cleanups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cleanup);
    }
    /// Records that this module needs module `name`.
    pub fn add_dependency(&self, name: &str) {
        let mut deps = self.dependencies.lock().unwrap_or_else(|e| e.into_inner());
        if !deps.iter().any(|d| d == name) {
            deps.push(name.to_string());
        }
    }
    /// The modules this one needs.
    pub fn dependencies(&self) -> Vec<String> {
        self.dependencies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// How many cleanups are pending (routes, commands, timers, ...).
    pub fn cleanup_count(&self) -> usize {
        self.cleanups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
    /// Runs the cleanups, latest first.
    pub(crate) fn run_cleanups(&self) {
        let list = std::mem::take(&mut *self.cleanups.lock().unwrap_or_else(|e| e.into_inner()));
        for c in list.into_iter().rev() {
            c();
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Vec<Arc<Owner>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `owner` current on this thread until the guard drops (nests: a
/// module loading its dependency makes the dependency current meanwhile).
pub fn enter(owner: Arc<Owner>) -> ScopeGuard {
    CURRENT.with(|c| c.borrow_mut().push(owner));
    ScopeGuard { _private: () }
}

/// Leaves the scope [`enter`] opened.
pub struct ScopeGuard {
    _private: (),
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| {
            c.borrow_mut().pop();
        });
    }
}

/// The module instance loading on this thread, if any.
pub fn current() -> Option<Arc<Owner>> {
    CURRENT.with(|c| c.borrow().last().cloned())
}

/// Its tag (0 when no module is loading).
pub fn current_owner() -> u64 {
    CURRENT.with(|c| c.borrow().last().map_or(0, |o| o.id))
}

/// Registers `cleanup` with the module loading on this thread; without one
/// (the registration was made outside any module) it is dropped unrun, as
/// such registrations last as long as the server.
pub fn on_unload(cleanup: impl FnOnce() + Send + 'static) {
    if let Some(owner) = current() {
        owner.add_cleanup(Box::new(cleanup));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_cleanups_run_once_latest_first() {
        assert_eq!(current_owner(), 0);
        let a = Owner::new();
        let b = Owner::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        {
            let _ga = enter(a.clone());
            assert_eq!(current_owner(), a.id());
            {
                let _gb = enter(b.clone());
                assert_eq!(current_owner(), b.id());
            }
            for n in [1, 2] {
                let order = order.clone();
                on_unload(move || order.lock().unwrap().push(n));
            }
        }
        assert_eq!(current_owner(), 0);
        on_unload(|| panic!("not owned, never run"));
        assert_eq!(a.cleanup_count(), 2);
        a.run_cleanups();
        a.run_cleanups();
        assert_eq!(*order.lock().unwrap(), vec![2, 1]);
        assert_eq!(b.cleanup_count(), 0);
    }
}
