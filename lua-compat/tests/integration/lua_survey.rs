//! Which of the Lua modules Debian installs (`prosody` and
//! `prosody-modules`, `/usr/lib/prosody/modules`) load into lilt's Lua host
//! with a recording host, and why the others fail. Prints the list;
//! asserts that the modules this crate is checked against keep loading.
//!
//! `cargo test -p lua-compat --test integration lua_survey:: -- --nocapture` shows it.

use crate::lua_host;

use std::sync::Arc;

use lua_compat::host::{Limits, LuaModule, ModuleSearch, search::BUILTIN_MODULE_DIR};
use lua_host::TestHost;
use xmpp_core::value::Value;

/// Modules that must load (the ones tests exercise, and others known good).
const MUST_LOAD: &[&str] = &[
    "motd",
    "welcome",
    "lastactivity",
    "server_contact_info",
    "announce",
    "watchregistrations",
    "adhoc",
    "admin_adhoc",
    "lastlog2",
    "offline",
    "private",
    "csi_simple",
    // tests/python/test_lua_modules.py runs these in lilt and in Prosody.
    "ping",
    "time",
    "uptime",
    "version",
    "muc_unique",
    "muc_restrict_media",
    "pastebin",
    "require_otr",
    "block_strangers",
    "broadcast",
];

fn module_names() -> Vec<String> {
    let mut names = Vec::new();
    let Ok(dir) = std::fs::read_dir(BUILTIN_MODULE_DIR) else {
        return names;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // mod_x.lua, mod_x/, and x/ holding mod_x.lua (Prosody's own mod_adhoc).
        let stem = name
            .strip_prefix("mod_")
            .map(|s| s.strip_suffix(".lua").unwrap_or(s).to_string())
            .or_else(|| {
                entry
                    .path()
                    .join(format!("mod_{name}.lua"))
                    .is_file()
                    .then(|| name.clone())
            });
        if let Some(stem) = stem.filter(|s| !names.contains(s)) {
            names.push(stem);
        }
    }
    names.sort();
    names
}

#[test]
fn survey_of_debian_modules() {
    let names = module_names();
    if names.is_empty() {
        eprintln!(
            "{BUILTIN_MODULE_DIR} missing; skipping (apt-get install prosody prosody-modules)"
        );
        return;
    }
    let search = ModuleSearch::default();
    let limits = Limits {
        memory: 64 * 1024 * 1024,
        instructions: 20_000_000,
    };
    let mut loaded = Vec::new();
    let mut failed = Vec::new();
    for name in &names {
        if search.find_module(name).is_none() {
            continue;
        }
        let host = Arc::new(
            TestHost::new("example.com").global_option("admins", Value::Table(Default::default())),
        );
        match LuaModule::load(host.clone(), name, &search, limits) {
            Ok(m) => {
                loaded.push(name.clone());
                m.unload();
            }
            Err(e) => failed.push((name.clone(), e.to_string())),
        }
    }
    println!("loaded ({}): {}", loaded.len(), loaded.join(" "));
    println!("failed ({}):", failed.len());
    for (name, why) in &failed {
        let why: String = why.lines().next().unwrap_or("").chars().take(200).collect();
        println!("  {name}: {why}");
    }
    for m in MUST_LOAD {
        assert!(loaded.iter().any(|l| l == m), "mod_{m} must load");
    }
}
