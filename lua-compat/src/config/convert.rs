//! From the Lua-side option tables to [`ServerConfig`]: Lua values become
//! [`xmpp_core::Value`]s, each option keeps where it was set, and hosts come
//! in the order they were first declared.

use mlua::{Table, Value as Lua};
use xmpp_core::config::{HostConfig, HostKind, Section, ServerConfig};
use xmpp_core::value::{Table as VTable, Value};

use super::directives::MissingCredential;
use super::env::{GLOBAL, Shared};
use super::proxy;

/// How deep tables may nest inside an option (deeper is taken for a cycle).
const MAX_DEPTH: usize = 64;

/// Builds the configuration once every file has run.
pub(crate) fn build(
    shared: &Shared,
    config_file: std::path::PathBuf,
) -> mlua::Result<ServerConfig> {
    let global = section(shared, GLOBAL)?;
    let decls = shared.lock().hosts.clone();
    let mut hosts = Vec::with_capacity(decls.len());
    for decl in decls {
        let section = section(shared, &decl.name)?;
        // Prosody tells hosts and components apart by `component_module`
        // alone; "component" is the external (XEP-0114) kind.
        let kind = match section.get("component_module") {
            Some(Value::String(m)) if m == "component" => HostKind::Component { module: None },
            Some(Value::String(m)) => HostKind::Component {
                module: Some(m.clone()),
            },
            _ => HostKind::VirtualHost,
        };
        hosts.push(HostConfig {
            name: decl.name,
            kind,
            section,
            defined_at: decl.defined_at,
        });
    }
    let warnings = shared.lock().warnings.clone();
    Ok(ServerConfig {
        config_file: Some(config_file),
        global,
        hosts,
        warnings,
    })
}

fn section(shared: &Shared, host: &str) -> mlua::Result<Section> {
    let mut out = Section::default();
    let Some(table) = shared.section(host)? else {
        return Ok(out);
    };
    for pair in table.pairs::<mlua::LuaString, Lua>() {
        let (name, value) = pair?;
        let name = name.to_string_lossy();
        let source = shared
            .lock()
            .sources
            .get(&(host.to_string(), name.clone()))
            .cloned();
        let mut problems = Vec::new();
        let converted = convert(shared, &value, 0, &mut problems)?;
        for problem in problems {
            let at = source
                .as_ref()
                .map(|s| format!("{s}: "))
                .unwrap_or_default();
            shared.warn(format!("{at}option '{name}' {problem}"));
        }
        if let Some(v) = converted {
            out.set(name.clone(), v);
            if let Some(s) = source {
                out.sources.insert(name, s);
            }
        }
    }
    Ok(out)
}

/// One Lua value; `None` for what has no [`Value`] (nil, functions, ...),
/// with the reason pushed to `problems`.
fn convert(
    shared: &Shared,
    value: &Lua,
    depth: usize,
    problems: &mut Vec<String>,
) -> mlua::Result<Option<Value>> {
    Ok(match value {
        Lua::Nil => None,
        Lua::Boolean(b) => Some(Value::Bool(*b)),
        Lua::Integer(i) => Some(Value::Integer(*i)),
        Lua::Number(n) => Some(Value::Number(*n)),
        Lua::String(s) => Some(Value::String(s.to_string_lossy())),
        Lua::Table(t) => {
            if let Some((host, option)) = proxy::target_of(shared, t)? {
                if depth >= MAX_DEPTH {
                    problems.push("refers to itself".into());
                    return Ok(None);
                }
                let target = shared.raw_option(&host, &option)?;
                return convert(shared, &target, depth + 1, problems);
            }
            if depth >= MAX_DEPTH {
                problems.push(format!(
                    "has tables nested more than {MAX_DEPTH} deep (a table containing itself?)"
                ));
                return Ok(None);
            }
            Some(Value::Table(table(shared, t, depth, problems)?))
        }
        Lua::UserData(ud) => {
            if let Ok(missing) = ud.borrow::<MissingCredential>() {
                problems.push(format!(
                    "is unset: Credential() at {} requires the $CREDENTIALS_DIRECTORY environment variable to be set",
                    missing.at
                ));
            } else {
                problems.push("holds a userdata value, which lilt cannot keep; ignored".into());
            }
            None
        }
        other => {
            problems.push(format!(
                "holds a {} value, which lilt cannot keep; ignored",
                other.type_name()
            ));
            None
        }
    })
}

/// A Lua table: keys 1..n become the array part, every other key its string form.
fn table(
    shared: &Shared,
    t: &Table,
    depth: usize,
    problems: &mut Vec<String>,
) -> mlua::Result<VTable> {
    let mut out = VTable::new();
    let mut n = 0usize;
    loop {
        let v: Lua = t.raw_get(n + 1)?;
        if v.is_nil() {
            break;
        }
        if let Some(v) = convert(shared, &v, depth + 1, problems)? {
            out.seq.push(v);
        }
        n += 1;
    }
    for pair in t.pairs::<Lua, Lua>() {
        let (key, value) = pair?;
        if let Lua::Integer(i) = key
            && i >= 1
            && (i as u64) <= n as u64
        {
            continue;
        }
        let Some(key) = key_string(&key) else {
            problems.push(format!(
                "has a {} used as a table key; that entry is ignored",
                key.type_name()
            ));
            continue;
        };
        if let Some(v) = convert(shared, &value, depth + 1, problems)? {
            out.insert(key, v);
        }
    }
    Ok(out)
}

fn key_string(key: &Lua) -> Option<String> {
    match key {
        Lua::String(s) => Some(s.to_string_lossy()),
        Lua::Integer(i) => Some(i.to_string()),
        Lua::Number(n) => Some(n.to_string()),
        Lua::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}
