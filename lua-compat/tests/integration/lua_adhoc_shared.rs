//! Ad-hoc commands a Lua module provides (run through
//! `LuaModule::adhoc_execute`, multi-step sessions included), `module:shared`
//! tables across modules and hosts, and `module:set_global`.

use crate::lua_host;

use std::path::Path;
use std::sync::Arc;

use lua_compat::host::{AdhocRequest, Limits, LuaModule, ModuleSearch, SharedData};
use lua_host::{TestHost, load};
use xmpp_core::value::Value;

fn module(host: TestHost, name: &str, code: &str) -> (Arc<TestHost>, Arc<LuaModule>) {
    let host = Arc::new(host);
    let m = LuaModule::load_code(
        host.clone(),
        name,
        Path::new(&format!("/test/mod_{name}.lua")),
        code.as_bytes(),
        &ModuleSearch::default(),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("module loads: {e}"));
    let m = Arc::new(m);
    let _ = host.module.set(Arc::downgrade(&m));
    (host, m)
}

const TWO_STEPS: &str = r#"
local dataforms = require "util.dataforms";
local adhoc = require "util.adhoc";
local layout = dataforms.new{
	title = "Greeting";
	{ name = "FORM_TYPE", type = "hidden", value = "urn:test" };
	{ name = "who", type = "text-single", required = true };
};
local command = adhoc.new_simple_form(layout, function(fields, err, data)
	if err then return { status = "completed", error = { message = "missing who" } }; end
	return { status = "completed", info = "hello " .. fields.who .. " from " .. data.from };
end);
module:provides("adhoc", { name = "Greet", node = "urn:test#greet", handler = command, permission = "local_user" });
module:provides("adhoc", { name = "Fail", node = "urn:test#fail", permission = "any",
	handler = function() return { status = "error", error = { type = "modify", condition = "bad-request", text = "no" } }; end });
"#;

#[test]
fn adhoc_command_runs_the_lua_handler_in_two_steps() {
    let (host, m) = module(TestHost::new("example.com"), "greet", TWO_STEPS);
    let served = host.adhoc.lock().unwrap().clone();
    assert_eq!(served.len(), 2);
    assert_eq!(
        (served[0].name.as_str(), served[0].node.as_str()),
        ("Greet", "urn:test#greet")
    );
    assert_eq!(served[0].permission, "local_user");

    let first = m
        .adhoc_execute(
            "urn:test#greet",
            &AdhocRequest {
                from: "juliet@example.com/balcony".into(),
                to: "example.com".into(),
                action: "execute".into(),
                ..AdhocRequest::default()
            },
        )
        .unwrap()
        .expect("the command is the module's");
    assert_eq!(first.status, "executing");
    let form = first.form.expect("the form");
    assert_eq!(form.get_attr("type"), Some("form"));
    assert_eq!(
        form.get_child_text("title", "jabber:x:data").as_deref(),
        Some("Greeting")
    );
    let state = first.state.expect("a state for the next step");

    let submitted = lua_host::stanza(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:test</value></field>\
         <field var='who'><value>Romeo</value></field></x>",
    );
    let done = m
        .adhoc_execute(
            "urn:test#greet",
            &AdhocRequest {
                from: "juliet@example.com/balcony".into(),
                to: "example.com".into(),
                action: "complete".into(),
                form: Some(submitted),
                state: Some(state),
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(done.status, "completed");
    assert_eq!(
        done.info.as_deref(),
        Some("hello Romeo from juliet@example.com/balcony")
    );
    assert_eq!(done.state, None);

    let failed = m
        .adhoc_execute("urn:test#fail", &AdhocRequest::default())
        .unwrap()
        .unwrap();
    let e = failed.error.expect("a stanza error");
    assert_eq!(
        (e.kind.as_str(), e.condition.as_str(), e.text.as_deref()),
        ("modify", "bad-request", Some("no"))
    );
    assert!(
        m.adhoc_execute("urn:test#none", &AdhocRequest::default())
            .unwrap()
            .is_none()
    );

    m.unload();
    assert!(
        host.adhoc.lock().unwrap().is_empty(),
        "unload takes them back"
    );
}

#[test]
fn debian_admin_adhoc_commands_are_served() {
    if ModuleSearch::default().find_module("admin_adhoc").is_none() {
        eprintln!("mod_admin_adhoc not installed; skipping");
        return;
    }
    let (host, _m) = load(TestHost::new("example.com"), "admin_adhoc");
    let served = host.adhoc.lock().unwrap().clone();
    let find = |node: &str| served.iter().find(|c| c.node == node).cloned();
    let stats = find("http://jabber.org/protocol/admin#user-stats").expect("user stats");
    assert_eq!(
        (stats.name.as_str(), stats.permission.as_str()),
        ("Get User Statistics", "admin")
    );
    let shutdown = find("http://jabber.org/protocol/admin#shutdown").expect("shutdown");
    assert_eq!(shutdown.permission, "global_admin");
}

#[test]
fn shared_tables_cross_modules_and_hosts() {
    let data = Arc::new(SharedData::default());
    let on = |h: &str| TestHost {
        shared: Some(data.clone()),
        ..TestHost::new(h)
    };
    let (_, writer) = module(
        on("a.example"),
        "writer",
        r#"
		local mine = module:shared("state");
		mine.count = 41; mine.list = { "x", "y" };
		local all = module:shared("/*/test/hosts");
		all[module.host] = true;
		mine.f = function() return "own" end;
		"#,
    );
    let (_, reader) = module(
        on("a.example"),
        "reader",
        r#"
		state = module:shared("writer/state");
		own = module:shared("state");
		all = module:shared("/*/test/hosts");
		"#,
    );
    let (_, other) = module(
        on("b.example"),
        "writer",
        r#"
		mine = module:shared("state");
		all = module:shared("/*/test/hosts");
		all[module.host] = true;
		"#,
    );
    assert_eq!(
        reader.eval("return state.count").unwrap(),
        Some(Value::Integer(41))
    );
    assert_eq!(
        reader.eval("return state.list[2]").unwrap(),
        Some(Value::str("y"))
    );
    assert_eq!(reader.eval("return own.count").unwrap(), None);
    assert_eq!(other.eval("return mine.count").unwrap(), None, "per host");
    reader.eval("state.count = state.count + 1").unwrap();
    assert_eq!(
        writer.eval("return module:shared('state').count").unwrap(),
        Some(Value::Integer(42))
    );
    assert_eq!(
        reader
            .eval("local n = 0; for h in pairs(all) do n = n + 1 end; return n")
            .unwrap(),
        Some(Value::Integer(2))
    );
    // A function has no data form: it stays with the module that set it.
    assert_eq!(
        writer.eval("return module:shared('state').f()").unwrap(),
        Some(Value::str("own"))
    );
    assert_eq!(reader.eval("return state.f").unwrap(), None);
    assert_eq!(
        data.get("/a.example/writer/state", "count"),
        Some(Value::Integer(42))
    );
}

#[test]
fn set_global_makes_the_module_global() {
    let (host, m) = module(
        TestHost::new("example.com"),
        "glob",
        r#"
		module:set_global();
		module:hook("server-started", function() end);
		"#,
    );
    assert!(m.is_global());
    assert_eq!(m.eval("return module.host").unwrap(), Some(Value::str("*")));
    let hooks = host.hooked("server-started");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].0, lua_compat::host::Scope::Global);
    let (_, plain) = module(TestHost::new("example.com"), "plain", "");
    assert!(!plain.is_global());
}
