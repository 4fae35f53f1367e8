//! The sandbox of a Lua module: a runaway loop and an allocation bomb are
//! stopped within their limits and reported with the module's name; an
//! error names the file and line; the module keeps serving the next event.

use crate::lua_host;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lua_compat::host::{Limits, LogLevel, LuaEvent, LuaModule, ModuleError, ModuleSearch};
use lua_host::TestHost;
use xmpp_core::value::Value;

const MODULE: &str = r#"local st = require "util.stanza"
module:hook("loop", function() while true do end end)
module:hook("pcall-loop", function() while true do pcall(function() while true do end end) end end)
module:hook("bomb", function()
	local t = {}
	while true do t[#t + 1] = ("x"):rep(4096) .. #t end
end)
module:hook("boom", function(event)
	error("boom: " .. tostring(event.what))
end)
module:hook("exit", function() os.exit(1) end)
module:hook("co-loop", function()
	local co = coroutine.create(function() while true do end end)
	return select(2, coroutine.resume(co))
end)
module:hook("ok", function(event)
	event.stanza.attr.to = "seen@example.com"
	return "handled"
end)
"#;

fn load(limits: Limits) -> (Arc<TestHost>, Arc<LuaModule>) {
    let host = Arc::new(TestHost::new("example.com"));
    let m = LuaModule::load_code(
        host.clone(),
        "sandboxed",
        Path::new("/test/mod_sandboxed.lua"),
        MODULE.as_bytes(),
        &ModuleSearch::default(),
        limits,
    )
    .expect("module loads");
    let m = Arc::new(m);
    let _ = host.module.set(Arc::downgrade(&m));
    (host, m)
}

fn run(host: &TestHost, m: &LuaModule, name: &str) -> Result<Option<Value>, ModuleError> {
    let (_, _, id) = host.hooked(name)[0];
    let mut ev = LuaEvent::new(name)
        .with_stanza(xmpp_core::Element::new("message", "jabber:client"))
        .with_field("what", Value::str("it"));
    m.handle_event(id, &mut ev)
}

fn still_serves(host: &TestHost, m: &LuaModule) {
    let (_, _, id) = host.hooked("ok")[0];
    let mut ev =
        LuaEvent::new("ok").with_stanza(xmpp_core::Element::new("message", "jabber:client"));
    assert_eq!(m.handle_event(id, &mut ev), Ok(Some(Value::str("handled"))));
    assert_eq!(ev.stanza.unwrap().to(), Some("seen@example.com"));
}

fn small() -> Limits {
    Limits {
        memory: 16 * 1024 * 1024,
        instructions: 2_000_000,
    }
}

#[test]
fn infinite_loop_is_stopped_and_module_goes_on() {
    let (host, m) = load(small());
    for event in ["loop", "pcall-loop", "co-loop"] {
        let t0 = Instant::now();
        let r = run(&host, &m, event);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{event} stopped in time"
        );
        match r {
            Err(ModuleError::Budget { module, at, .. }) => {
                assert_eq!(module, "sandboxed");
                assert!(at.contains("mod_sandboxed.lua:"), "{event}: {at}");
            }
            other => panic!("{event}: expected the budget to stop it, got {other:?}"),
        }
        still_serves(&host, &m);
    }
    let errors = host.logged(LogLevel::Error);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("mod_sandboxed") && e.contains("instructions")),
        "{errors:?}"
    );
}

#[test]
fn allocation_bomb_is_stopped_and_module_goes_on() {
    let limits = Limits {
        memory: 16 * 1024 * 1024,
        instructions: 1_000_000_000,
    };
    let (host, m) = load(limits);
    match run(&host, &m, "bomb") {
        Err(ModuleError::Memory { module, limit, .. }) => {
            assert_eq!(module, "sandboxed");
            assert_eq!(limit, 16 * 1024 * 1024);
        }
        other => panic!("expected the memory limit to stop it, got {other:?}"),
    }
    still_serves(&host, &m);
    assert!(m.memory_used() < 16 * 1024 * 1024);
}

#[test]
fn errors_name_module_file_and_line() {
    let (host, m) = load(Limits::default());
    match run(&host, &m, "boom") {
        Err(ModuleError::Lua {
            module, message, ..
        }) => {
            assert_eq!(module, "sandboxed");
            assert!(
                message.contains("/test/mod_sandboxed.lua:9: boom: it"),
                "{message}"
            );
        }
        other => panic!("expected a Lua error, got {other:?}"),
    }
    let errors = host.logged(LogLevel::Error);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("mod_sandboxed") && e.contains("mod_sandboxed.lua:9")),
        "{errors:?}"
    );
    match run(&host, &m, "exit") {
        Err(ModuleError::Lua { message, .. }) => assert!(message.contains("os.exit"), "{message}"),
        other => panic!("os.exit must fail, got {other:?}"),
    }
    still_serves(&host, &m);
}

#[test]
fn runaway_module_body_fails_to_load() {
    let host = Arc::new(TestHost::new("example.com"));
    let r = LuaModule::load_code(
        host.clone(),
        "runaway",
        Path::new("/test/mod_runaway.lua"),
        b"module:add_feature('urn:x')\nwhile true do end\n",
        &ModuleSearch::default(),
        small(),
    );
    assert!(matches!(r, Err(ModuleError::Budget { .. })), "{r:?}");
    // What it registered before failing is taken back.
    assert!(host.items.lock().unwrap().is_empty());
    let r = LuaModule::load_code(
        host,
        "broken",
        Path::new("/test/mod_broken.lua"),
        b"local x = \n",
        &ModuleSearch::default(),
        small(),
    );
    assert!(
        matches!(&r, Err(ModuleError::Lua { message, .. }) if message.contains("mod_broken.lua")),
        "{r:?}"
    );
}

#[test]
fn modules_are_shared_between_threads_with_a_budget_per_call() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<LuaModule>();

    let (host, m) = load(small());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (host, m) = (host.clone(), m.clone());
            std::thread::spawn(move || {
                for _ in 0..5 {
                    if i % 2 == 0 {
                        assert!(matches!(
                            run(&host, &m, "loop"),
                            Err(ModuleError::Budget { .. })
                        ));
                    } else {
                        still_serves(&host, &m);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread finished");
    }
}
