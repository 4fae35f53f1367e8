//! Every configuration fixture in `../shared/fixtures/` loads, with the hosts,
//! components and modules it declares; and each of them (plus a few configs
//! exercising the directives) gives the same options as Prosody's own
//! configmanager run by Debian's Lua, when Prosody is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use lua_compat::config::{self, check};
use lua_compat::modulemanager::{global_modules, modules_for_host};
use xmpp_core::config::{HostKind, ServerConfig};
use xmpp_core::value::Value;

/// `../shared` next to the workspace root, if it is there.
fn shared_dir() -> Option<PathBuf> {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
            let shared = dir.join("..").join("shared");
            return shared.is_dir().then_some(shared);
        }
        if !dir.pop() {
            return None;
        }
    }
}

fn fixture(rel: &str) -> Option<PathBuf> {
    match shared_dir() {
        Some(shared) => Some(shared.join("fixtures").join(rel)),
        None => {
            eprintln!("skipping: ../shared not found");
            None
        }
    }
}

fn load(path: &Path) -> ServerConfig {
    config::load(path).unwrap_or_else(|e| panic!("{} should load: {e}", path.display()))
}

fn names(cfg: &ServerConfig, kind: fn(&HostKind) -> bool) -> Vec<&str> {
    cfg.hosts
        .iter()
        .filter(|h| kind(&h.kind))
        .map(|h| h.name.as_str())
        .collect()
}

fn is_vhost(k: &HostKind) -> bool {
    *k == HostKind::VirtualHost
}

fn is_component(k: &HostKind) -> bool {
    !is_vhost(k)
}

fn module(cfg: &ServerConfig, host: &str) -> Option<String> {
    match &cfg.host(host)?.kind {
        HostKind::Component { module } => module.clone(),
        HostKind::VirtualHost => None,
    }
}

fn has_all(modules: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| modules.iter().any(|m| m == w))
}

#[test]
fn jitsi_debian() {
    let Some(path) = fixture("jitsi-debian/prosody.cfg.lua") else {
        return;
    };
    let cfg = load(&path);
    assert_eq!(
        names(&cfg, is_vhost),
        [
            "localhost",
            "meet.example.com",
            "auth.meet.example.com",
            "recorder.meet.example.com"
        ]
    );
    assert_eq!(
        names(&cfg, is_component),
        [
            "conference.meet.example.com",
            "breakout.meet.example.com",
            "internal.auth.meet.example.com",
            "focus.meet.example.com",
            "speakerstats.meet.example.com",
            "endconference.meet.example.com",
            "avmoderation.meet.example.com",
            "filesharing.meet.example.com",
            "lobby.meet.example.com",
            "metadata.meet.example.com",
            "polls.meet.example.com",
        ]
    );
    assert_eq!(
        module(&cfg, "conference.meet.example.com").as_deref(),
        Some("muc")
    );
    // This fixture serves focus.<domain> with mod_client_proxy (newer Jitsi packages),
    // not as an external component.
    assert_eq!(
        module(&cfg, "focus.meet.example.com").as_deref(),
        Some("client_proxy")
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    // The conf.d file's top lines are global options; its value of plugin_paths wins.
    assert_eq!(
        cfg.global.get("component_admins_as_room_owners"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        cfg.global
            .get("plugin_paths")
            .and_then(Value::as_string_list),
        Some(vec!["/usr/share/jitsi-meet/prosody-plugins/".to_string()])
    );
    let conf_d = path
        .parent()
        .unwrap()
        .join("conf.d/meet.example.com.cfg.lua");
    let src = cfg
        .source_of(Some("meet.example.com"), "authentication")
        .unwrap();
    assert_eq!((src.file.as_path(), src.line), (conf_d.as_path(), 36));
    assert_eq!(
        cfg.get(Some("meet.example.com"), "authentication"),
        Some(&Value::String("jitsi-anonymous".into()))
    );
    assert_eq!(
        cfg.get(Some("auth.meet.example.com"), "smacks_hibernation_time"),
        Some(&Value::Integer(15))
    );
    assert_eq!(
        cfg.get(Some("recorder.meet.example.com"), "smacks_hibernation_time"),
        Some(&Value::Integer(60))
    );

    let meet = modules_for_host(&cfg, "meet.example.com");
    assert!(
        has_all(
            &meet,
            &[
                "c2s",
                "presence",
                "roster",
                "saslauth",
                "tls",
                "disco",
                "bosh",
                "websocket",
                "muc_lobby_rooms"
            ]
        ),
        "{meet:?}"
    );
    let conference = modules_for_host(&cfg, "conference.meet.example.com");
    assert_eq!(
        conference,
        [
            "muc",
            "iq",
            "s2s",
            "saslauth",
            "tls",
            "dialback",
            "smacks",
            "muc_hide_all",
            "muc_meeting_id",
            "muc_domain_mapper",
            "muc_rate_limit",
            "muc_password_whitelist"
        ]
    );
    let focus = modules_for_host(&cfg, "focus.meet.example.com");
    assert_eq!(focus[0], "client_proxy");
    assert!(
        !focus.iter().any(|m| m == "roster" || m == "c2s"),
        "{focus:?}"
    );
    assert_eq!(
        modules_for_host(&cfg, "polls.meet.example.com")[0],
        "polls_component"
    );
    let global = global_modules(&cfg);
    assert!(
        has_all(
            &global,
            &[
                "c2s",
                "s2s",
                "bosh",
                "websocket",
                "admin_shell",
                "limits",
                "posix"
            ]
        ),
        "{global:?}"
    );

    let warnings = check(&cfg);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("'cross_domain_bosh' is deprecated")),
        "{warnings:#?}"
    );
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("should be in the global section")),
        "{warnings:#?}"
    );
}

#[test]
fn jitsi_docker() {
    let Some(path) = fixture("jitsi-docker/prosody.cfg.lua") else {
        return;
    };
    let cfg = load(&path);
    assert_eq!(
        names(&cfg, is_vhost),
        [
            "meet.jitsi",
            "guest.meet.jitsi",
            "auth.meet.jitsi",
            "hidden.meet.jitsi"
        ]
    );
    assert_eq!(
        names(&cfg, is_component),
        [
            "internal-muc.meet.jitsi",
            "muc.meet.jitsi",
            "focus.meet.jitsi",
            "speakerstats.meet.jitsi",
            "endconference.meet.jitsi",
            "avmoderation.meet.jitsi",
            "lobby.meet.jitsi",
            "breakout.meet.jitsi",
            "metadata.meet.jitsi",
            "polls.meet.jitsi",
        ]
    );
    assert_eq!(module(&cfg, "muc.meet.jitsi").as_deref(), Some("muc"));
    assert_eq!(
        module(&cfg, "focus.meet.jitsi").as_deref(),
        Some("client_proxy")
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(
        cfg.global
            .get("admins")
            .and_then(Value::as_string_list)
            .map(|a| a.len()),
        Some(3),
        "conf.d's admins replace the main file's"
    );

    // Globally disabled: offline, register, s2s.
    let meet = modules_for_host(&cfg, "meet.jitsi");
    assert!(
        has_all(
            &meet,
            &[
                "c2s",
                "presence",
                "http_health",
                "bosh",
                "websocket",
                "smacks"
            ]
        ),
        "{meet:?}"
    );
    assert!(
        !meet
            .iter()
            .any(|m| m == "offline" || m == "s2s" || m == "register"),
        "{meet:?}"
    );
    let muc = modules_for_host(&cfg, "muc.meet.jitsi");
    assert_eq!(muc[0], "muc");
    assert!(
        has_all(&muc, &["saslauth", "tls", "iq", "muc_resource_validate"]),
        "{muc:?}"
    );
    assert!(!muc.iter().any(|m| m == "s2s" || m == "roster"), "{muc:?}");
}

#[test]
fn jitsi_ldap_variant() {
    let Some(path) = fixture("jitsi-debian-ldap.cfg.lua") else {
        return;
    };
    let cfg = load(&path);
    assert_eq!(
        names(&cfg, is_vhost),
        [
            "meet.example.com",
            "guest.meet.example.com",
            "staff.example.com"
        ]
    );
    assert_eq!(names(&cfg, is_component), ["conference.meet.example.com"]);
    let ldap = cfg.global.get("ldap").unwrap();
    assert_eq!(
        ldap.get("user").and_then(|u| u.get("usernamefield")),
        Some(&Value::String("uid".into()))
    );
    assert_eq!(ldap.get("use_tls"), Some(&Value::Bool(false)));
    assert_eq!(
        cfg.get(Some("staff.example.com"), "ldap_filter"),
        Some(&Value::String("(uid=$user)".into()))
    );
    assert_eq!(
        cfg.get(Some("meet.example.com"), "authentication"),
        Some(&Value::String("ldap2".into()))
    );
    assert!(has_all(
        &modules_for_host(&cfg, "meet.example.com"),
        &["c2s", "bosh", "websocket", "ping"]
    ));
    assert_eq!(
        modules_for_host(&cfg, "conference.meet.example.com")[0],
        "muc"
    );
}

#[test]
fn jitsi_token_variant() {
    let Some(path) = fixture("jitsi-token.cfg.lua") else {
        return;
    };
    let cfg = load(&path);
    assert_eq!(names(&cfg, is_vhost), ["meet.example.com"]);
    assert_eq!(names(&cfg, is_component), ["conference.meet.example.com"]);
    assert_eq!(
        cfg.get(Some("meet.example.com"), "authentication"),
        Some(&Value::String("token".into()))
    );
    assert_eq!(
        cfg.get(Some("meet.example.com"), "asap_accepted_audiences")
            .and_then(Value::as_string_list),
        Some(vec!["example_app_id".to_string(), "*".to_string()])
    );
    let conference = modules_for_host(&cfg, "conference.meet.example.com");
    assert!(
        has_all(
            &conference,
            &["muc", "token_verification", "muc_meeting_id"]
        ),
        "{conference:?}"
    );
    assert!(
        check(&cfg)
            .iter()
            .any(|w| w.contains("No global options defined"))
    );
}

// ---- differential: the same files through Prosody's configmanager ----

/// Debian's Prosody library directory and its Lua, when installed.
fn prosody() -> Option<(PathBuf, &'static str)> {
    let lib = PathBuf::from("/usr/lib/prosody");
    let lua_ok = Command::new("lua5.4")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if lib.join("core/configmanager.lua").is_file() && lua_ok {
        Some((lib, "lua5.4"))
    } else {
        eprintln!("skipping: Debian's prosody (/usr/lib/prosody) or lua5.4 not installed");
        None
    }
}

/// Prosody's view of a config file, as canonical lines.
fn prosody_dump(lib: &Path, lua: &str, file: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prosody_config_dump.lua");
    let out = Command::new(lua)
        .arg(script)
        .arg(lib)
        .arg(file)
        .output()
        .expect("run lua");
    assert!(
        out.status.success(),
        "prosody's configmanager failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// lilt's view of the same file, in the same form.
fn lilt_dump(cfg: &ServerConfig) -> String {
    let mut lines = Vec::new();
    let sections = std::iter::once(("*", &cfg.global))
        .chain(cfg.hosts.iter().map(|h| (h.name.as_str(), &h.section)));
    for (name, section) in sections {
        for (option, value) in &section.options {
            lines.push(format!("{name}\t{option}\t{}", dump(value)));
        }
    }
    for warning in &cfg.warnings {
        lines.push(format!("!warning\t{warning}"));
    }
    lines.sort();
    lines.join("\n")
}

fn dump(value: &Value) -> String {
    match value {
        Value::String(s) => format!("s{}", lua_quote(s)),
        Value::Bool(b) => format!("b{b}"),
        Value::Integer(i) => format!("i{i}"),
        Value::Number(n) => format!("n{n}"),
        Value::Table(t) => {
            let seq: Vec<String> = t.seq.iter().map(dump).collect();
            let map: Vec<String> = t
                .map
                .iter()
                .map(|(k, v)| format!("{k}={}", dump(v)))
                .collect();
            format!("{{{};{}}}", seq.join(","), map.join(","))
        }
    }
}

/// Lua's `%q` for the strings the fixtures hold.
fn lua_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\{}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn assert_same_as_prosody(path: &Path) {
    let Some((lib, lua)) = prosody() else { return };
    let cfg = load(path);
    let theirs = prosody_dump(&lib, lua, path);
    assert_eq!(
        lilt_dump(&cfg),
        theirs,
        "lilt and Prosody disagree on {}",
        path.display()
    );
}

#[test]
fn fixtures_match_prosody() {
    for rel in [
        "jitsi-debian/prosody.cfg.lua",
        "jitsi-docker/prosody.cfg.lua",
        "jitsi-debian-ldap.cfg.lua",
        "jitsi-token.cfg.lua",
    ] {
        let Some(path) = fixture(rel) else { return };
        assert_same_as_prosody(&path);
    }
}

#[test]
fn directives_match_prosody() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    write(
        "conf.d/10-a.cfg.lua",
        "from_a = { 1, 2, three = 3 }\nVirtualHost \"A.Example\"\n  in_a = \"x\\ty\"\n",
    );
    write(
        "conf.d/20-b.cfg.lua",
        "from_b = true\nComponent \"muc.a.example\" \"muc\" { restrict_room_creation = true }\nafter_b = 1\n",
    );
    write("conf.d/.hidden.cfg.lua", "hidden = true\n");
    write("single.lua", "single = -5\n");
    let main = write(
        "prosody.cfg.lua",
        r#"
admins = { "a@example.com" }
limits = { c2s = { rate = "10kb/s" }, [5] = "five" }
VirtualHost "localhost"
Include "conf.d/*.cfg.lua"
still_localhost = true
include "single.lua"
Host "b.example" { authentication = "anonymous" }
back_to_global = "yes"
Component "ext.example"
    component_secret = "s"
Component "ext.example" "muc"
VirtualHost "a.example"
    in_a = "again"
    in_a = "twice"
"#,
    );
    assert_same_as_prosody(&main);
    // Prosody warns about the duplicate too; lilt words it the same way.
    let cfg = load(&main);
    assert_eq!(
        cfg.warnings,
        [format!("{}:15: Duplicate option 'in_a'", main.display())]
    );
}
