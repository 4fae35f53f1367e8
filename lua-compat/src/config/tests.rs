//! One test per construct of the config language, each on a small config
//! written to a temporary directory.

use std::path::{Path, PathBuf};

use xmpp_core::config::{HostKind, ServerConfig};
use xmpp_core::value::Value;

use super::*;

pub(super) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `prosody.cfg.lua` into a fresh temp dir and loads it.
pub(super) fn load_main(text: &str) -> (tempfile::TempDir, Result<ServerConfig, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "prosody.cfg.lua", text);
    let result = load(&main);
    (dir, result)
}

pub(super) fn ok(text: &str) -> ServerConfig {
    let (_dir, result) = load_main(text);
    result.unwrap_or_else(|e| panic!("config should load: {e}"))
}

pub(super) fn err(text: &str) -> ConfigError {
    let (_dir, result) = load_main(text);
    match result {
        Ok(_) => panic!("config should fail"),
        Err(e) => e,
    }
}

pub(super) fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn global_options_and_value_types() {
    let c = ok(r#"
        admins = { "a@example.com" }
        c2s_require_encryption = false
        smacks_hibernation_time = 60
        ratio = 1.5
        limits = { c2s = { rate = "10kb/s" }, [3] = "x" }
        log = { info = "/var/log/p.log", { levels = { "error" }, to = "syslog" } }
    "#);
    assert_eq!(
        c.global.get("c2s_require_encryption"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        c.global.get("smacks_hibernation_time"),
        Some(&Value::Integer(60))
    );
    assert_eq!(c.global.get("ratio"), Some(&Value::Number(1.5)));
    assert_eq!(
        c.global.get("admins").and_then(Value::as_string_list),
        Some(vec!["a@example.com".into()])
    );
    let limits = c.global.get("limits").unwrap();
    assert_eq!(
        limits.get("c2s").and_then(|t| t.get("rate")),
        Some(&s("10kb/s"))
    );
    assert_eq!(limits.get("3"), Some(&s("x")));
    let log = c.global.get("log").and_then(Value::as_table).unwrap();
    assert_eq!(log.map.get("info"), Some(&s("/var/log/p.log")));
    assert_eq!(log.seq[0].get("to"), Some(&s("syslog")));
    assert!(c.hosts.is_empty());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sections_follow_headers() {
    let c = ok(r#"
        authentication = "internal_hashed"
        VirtualHost "Example.COM"
            authentication = "anonymous"
            modules_enabled = { "bosh" }
        Host "second.example"
            allow_registration = true
        host "third.example"
        Component "conference.example.com" "muc"
            muc_room_locking = false
        Component "focus.example.com"
            component_secret = "s3cret"
    "#);
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "example.com",
            "second.example",
            "third.example",
            "conference.example.com",
            "focus.example.com"
        ]
    );
    let vh = c.host("example.com").unwrap();
    assert_eq!(vh.kind, HostKind::VirtualHost);
    assert_eq!(vh.section.get("authentication"), Some(&s("anonymous")));
    assert_eq!(vh.section.get("defined"), Some(&Value::Bool(true)));
    assert_eq!(vh.defined_at.line, 3);
    assert_eq!(
        c.get(Some("second.example"), "authentication"),
        Some(&s("internal_hashed"))
    );
    assert_eq!(
        c.get(Some("second.example"), "allow_registration"),
        Some(&Value::Bool(true))
    );

    let muc = c.host("conference.example.com").unwrap();
    assert_eq!(
        muc.kind,
        HostKind::Component {
            module: Some("muc".into())
        }
    );
    assert_eq!(muc.section.get("component_module"), Some(&s("muc")));
    assert_eq!(
        muc.section.get("load_global_modules"),
        Some(&Value::Bool(false))
    );
    assert_eq!(
        muc.section.get("muc_room_locking"),
        Some(&Value::Bool(false))
    );
    let ext = c.host("focus.example.com").unwrap();
    assert_eq!(ext.kind, HostKind::Component { module: None });
    assert_eq!(ext.section.get("component_module"), Some(&s("component")));
    assert_eq!(ext.section.get("component_secret"), Some(&s("s3cret")));
    assert_eq!(c.global.get("authentication"), Some(&s("internal_hashed")));
    assert!(c.global.get("component_secret").is_none());
}

#[test]
fn table_call_form_returns_to_global() {
    let c = ok(r#"
        VirtualHost "a.example" { authentication = "anonymous", c2s_require_encryption = false }
        after_vhost = 1
        Component "muc.a.example" "muc" { restrict_room_creation = true }
        after_component = 2
        Component "ext.a.example" { component_secret = "x" }
        after_external = 3
    "#);
    assert_eq!(
        c.get(Some("a.example"), "authentication"),
        Some(&s("anonymous"))
    );
    assert_eq!(c.global.get("after_vhost"), Some(&Value::Integer(1)));
    assert_eq!(c.global.get("after_component"), Some(&Value::Integer(2)));
    assert_eq!(c.global.get("after_external"), Some(&Value::Integer(3)));
    assert_eq!(
        c.host("muc.a.example").unwrap().kind,
        HostKind::Component {
            module: Some("muc".into())
        }
    );
    assert_eq!(
        c.host("muc.a.example")
            .unwrap()
            .section
            .get("restrict_room_creation"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        c.host("ext.a.example").unwrap().kind,
        HostKind::Component { module: None }
    );
    assert_eq!(
        c.host("ext.a.example").unwrap().section.sources["component_secret"].line,
        6
    );
}

#[test]
fn virtual_host_refuses_a_module_name() {
    let e = err("VirtualHost \"a.example\" \"muc\"\n");
    assert!(e.to_string().contains("VirtualHost entries do not accept a module name (module 'muc' provided for host 'a.example')"), "{e}");
    assert_eq!(e.line(), Some(1));
}

#[test]
fn redeclared_host_merges_and_duplicates_warn() {
    let (dir, result) = load_main(
        "VirtualHost \"a.example\"\n  x = 1\nVirtualHost \"b.example\"\n  x = 2\nVirtualHost \"a.example\"\n  x = 3\n  y = 4\n",
    );
    let c = result.unwrap();
    assert_eq!(c.hosts.len(), 2);
    let a = c.host("a.example").unwrap();
    assert_eq!(a.section.get("x"), Some(&Value::Integer(3)));
    assert_eq!(a.section.get("y"), Some(&Value::Integer(4)));
    assert_eq!(a.defined_at.line, 1);
    assert_eq!(a.section.sources["x"].line, 6);
    let main = dir.path().join("prosody.cfg.lua");
    assert_eq!(
        c.warnings,
        [format!("{}:6: Duplicate option 'x'", main.display())]
    );
}

#[test]
fn duplicate_global_option_warns_with_file_and_line() {
    let (dir, result) = load_main("admins = {}\n\nadmins = { \"x@y\" }\n");
    let c = result.unwrap();
    let main = dir.path().join("prosody.cfg.lua");
    assert_eq!(
        c.warnings,
        [format!("{}:3: Duplicate option 'admins'", main.display())]
    );
    assert_eq!(c.global.sources["admins"].line, 3);
    assert_eq!(c.global.sources["admins"].file, main);
}

#[test]
fn host_and_component_with_one_name_clash() {
    let e = err("Component \"x.example\" \"muc\"\nVirtualHost \"x.example\"\n");
    assert!(matches!(e, ConfigError::HostClash { .. }));
    assert!(e.to_string().ends_with(
        ":2: Host \"x.example\" clashes with previously defined MUC Component \"x.example\", for services use a sub-domain like conference.x.example"
    ), "{e}");
    let e = err("VirtualHost \"x.example\"\nComponent \"x.example\"\n");
    assert!(e.to_string().contains(
        "Component \"x.example\" clashes with previously defined VirtualHost \"x.example\", for services use a sub-domain like conference.x.example"
    ), "{e}");
    let e = err("Component \"x.example\"\nVirtualHost \"x.example\"\n");
    assert!(
        e.to_string()
            .contains("previously defined external Component"),
        "{e}"
    );
}

#[test]
fn invalid_host_name_names_file_and_line() {
    let e = err("admins = {}\nVirtualHost \"bad host\"\n");
    assert!(matches!(e, ConfigError::InvalidHostName { .. }), "{e:?}");
    assert_eq!(e.line(), Some(2));
    assert!(e.file().ends_with("prosody.cfg.lua"));
    assert!(
        e.to_string()
            .contains("VirtualHost \"bad host\" is not a valid host name"),
        "{e}"
    );
    let e = err("Component()\n");
    assert!(
        e.to_string().ends_with(":1: Component must have a name"),
        "{e}"
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    let (dir, result) =
        load_main("admins = { }\n\nVirtualHost \"a.example\"\n  ssl = {\n    key = \"k\"\n  \n");
    let e = result.unwrap_err();
    let main = dir.path().join("prosody.cfg.lua");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e:?}");
    assert_eq!(e.file(), main);
    let text = e.to_string();
    assert!(text.starts_with(&format!("{}:", main.display())), "{text}");
    assert!(text.contains("syntax error"), "{text}");
    assert!(!text.contains("lilt-config#"), "{text}");
    let (_dir, result) = load_main("a = 1\nb = = 2\n");
    let e = result.unwrap_err();
    assert_eq!(e.line(), Some(2));
    assert!(
        e.to_string()
            .contains(":2: syntax error: unexpected symbol near '='"),
        "{e}"
    );
}

#[test]
fn runtime_errors_name_file_and_line() {
    let e = err("a = 1\nCompnent \"x.example\" \"muc\"\n");
    assert!(matches!(e, ConfigError::Runtime { .. }), "{e:?}");
    assert_eq!(e.line(), Some(2));
    assert!(
        e.to_string()
            .contains("'Compnent' is not a known directive or function"),
        "{e}"
    );
    let e = err("a = 1\n\nLua.error(\"custom failure\")\n");
    assert_eq!(e.line(), Some(3));
    assert!(e.to_string().ends_with(":3: custom failure"), "{e}");
    let e = err("a = 1\nLua.error(\"no position\", 0)\n");
    assert_eq!(e.line(), Some(2), "{e}");
}

#[test]
fn missing_main_file() {
    let e = load(Path::new("/nonexistent/lilt/prosody.cfg.lua")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("cannot read config file /nonexistent/lilt/prosody.cfg.lua:"),
        "{e}"
    );
}

#[test]
fn reading_options_back_and_appending() {
    let c = ok(r#"
        modules_enabled = { "roster", "disco" }
        modules_enabled:append { "bosh" }
        modules_enabled { "websocket" }
        local n = 0
        for m in modules_enabled:values() do n = n + 1 end
        count = n
        first = modules_enabled:value()[1]
        name = "lilt"
        greeting = name .. "!"
        copy = modules_enabled
        VirtualHost "a.example"
            modules_enabled = { "ping" }
            modules_enabled:append { "time" }
            ssl = { key = "k" }
            ssl:append { certificate = "c" }
    "#);
    let global = c
        .global
        .get("modules_enabled")
        .and_then(Value::as_string_list)
        .unwrap();
    assert_eq!(global, ["roster", "disco", "bosh", "websocket"]);
    assert_eq!(c.global.get("count"), Some(&Value::Integer(4)));
    assert_eq!(c.global.get("first"), Some(&s("roster")));
    assert_eq!(c.global.get("greeting"), Some(&s("lilt!")));
    assert_eq!(
        c.global
            .get("copy")
            .and_then(Value::as_string_list)
            .unwrap(),
        global
    );
    assert_eq!(c.global.sources["modules_enabled"].line, 2);
    let a = c.host("a.example").unwrap();
    assert_eq!(
        a.section
            .get("modules_enabled")
            .and_then(Value::as_string_list)
            .unwrap(),
        ["ping", "time"]
    );
    assert_eq!(
        a.section.get("ssl").and_then(|t| t.get("certificate")),
        Some(&s("c"))
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let e = err("admins = { \"a@b\" }\nx = admins[1]\n");
    assert!(
        e.to_string()
            .contains("Unknown config option operation: '1'"),
        "{e}"
    );
    assert_eq!(e.line(), Some(2));
}

#[test]
fn host_sections_read_their_own_options_only() {
    // Prosody reads back the current section's own value, not the global one.
    let c = ok("x = 1\nVirtualHost \"a.example\"\n  y = x\n");
    assert!(c.host("a.example").unwrap().section.get("y").is_none());
}

#[test]
fn nil_removes_and_functions_are_dropped_with_a_warning() {
    let (dir, result) = load_main("a = 1\na = nil\nf = function() end\n");
    let c = result.unwrap();
    assert!(c.global.get("a").is_none() && !c.global.sources.contains_key("a"));
    assert!(c.global.get("f").is_none());
    let main = dir.path().join("prosody.cfg.lua");
    assert!(
        c.warnings.contains(&format!(
            "{}:3: option 'f' holds a function value, which lilt cannot keep; ignored",
            main.display()
        )),
        "{:?}",
        c.warnings
    );
}

#[test]
fn check_reports_misplaced_and_deprecated_options() {
    let (dir, result) = load_main(
        "modules_enabled = { \"roster\", \"mod_disco\", \"posix\" }\ncross_domain_bosh = true\nVirtualHost \"a.example\"\n  c2s_ports = { 5222 }\n  modules_disabled = { \"offline\" }\nComponent \"lonely.other.example\" \"muc\"\n",
    );
    let c = result.unwrap();
    let warnings = check(&c);
    let main = dir.path().join("prosody.cfg.lua");
    let has = |needle: &str| warnings.iter().any(|w| w.contains(needle));
    assert!(
        warnings.contains(&format!("{}:4: Option 'c2s_ports' is set under a.example but should be in the global section of the config file, above any VirtualHost or Component definitions (see https://prosody.im/doc/configure#overview)", main.display())),
        "{warnings:#?}"
    );
    assert!(!has("'modules_disabled' is set under"), "{warnings:#?}");
    assert!(
        has(
            ":2: The option 'cross_domain_bosh' is deprecated -- instead, use 'http_cors_override'"
        ),
        "{warnings:#?}"
    );
    assert!(has("Change 'mod_disco' to 'disco'"), "{warnings:#?}");
    // Prosody 0.12's check says nothing of posix (Debian's stock config
    // enables it and passes); lilt names it as a note of its own.
    assert!(!has("posix"), "{warnings:#?}");
    assert!(
        has("unreferenced components: lonely.other.example"),
        "{warnings:#?}"
    );

    let c = ok("VirtualHost \"a.example\"\n  modules_enabled = \"bosh\"\n");
    let warnings = check(&c);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("No global options defined")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w
                .contains("The modules_enabled in the a.example section should not be a string")),
        "{warnings:#?}"
    );
}
