//! What the console's calls do, with the words of Prosody 0.12's
//! `mod_admin_shell`: `user:*`, `server:*`, `c2s:*`, `host:list()`,
//! `module:list()` (`module:load/unload/reload()`: [`super::modules`]) and `help`. A call's printed lines and its result come
//! back as a [`Reply`]; what the runtime must then do (stop the server,
//! close the console) as its [`Effect`].

use std::sync::Arc;

use xmpp_core::{HostKind, Jid, Server};

use super::line::{Arg, Line};
use super::{modules, sessions};

/// How a call ended, as Prosody words the `<repl-result>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `OK: <message>` (a command returning true and a message).
    Ok(String),
    /// `Result: <value>` (a command returning a value alone, e.g. nil).
    Value(String),
    /// `Error: <message>`, type `error`.
    Error(String),
    /// A line that is not a call lilt serves, type `error`.
    NotUnderstood(String),
    /// An empty result (the bare commands: `help`).
    Empty,
}

impl Outcome {
    /// The result element's text and whether it is of type `error`.
    pub fn text(&self) -> (String, bool) {
        match self {
            Outcome::Ok(m) => (format!("OK: {m}"), false),
            Outcome::Value(v) => (format!("Result: {v}"), false),
            Outcome::Error(m) => (format!("Error: {m}"), true),
            Outcome::NotUnderstood(why) => {
                (format!("Sorry, I couldn't understand that... {why}"), true)
            }
            Outcome::Empty => (String::new(), false),
        }
    }
}

/// What the runtime does after sending the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// `server:shutdown()`: stop the server as SIGTERM does.
    Shutdown,
    /// `bye`/`quit`/`exit`: close this console.
    Close,
}

/// The printed lines (`<repl-output>`), the result and the effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub output: Vec<String>,
    pub outcome: Outcome,
    pub effect: Effect,
}

impl Reply {
    pub(super) fn new(output: Vec<String>, outcome: Outcome) -> Reply {
        Reply {
            output,
            outcome,
            effect: Effect::None,
        }
    }
}

pub(super) fn ok(message: impl Into<String>) -> Reply {
    Reply::new(Vec::new(), Outcome::Ok(message.into()))
}
pub(super) fn error(message: impl Into<String>) -> Reply {
    Reply::new(Vec::new(), Outcome::Error(message.into()))
}

/// Runs one parsed line against `server`.
pub fn run(server: &Arc<Server>, line: &Line) -> Reply {
    match line {
        Line::Word(w) => match w.as_str() {
            "help" => Reply::new(help(), Outcome::Empty),
            "bye" | "quit" | "exit" => Reply {
                output: vec!["See you!".into()],
                outcome: Outcome::Empty,
                effect: Effect::Close,
            },
            // Prosody evaluates any other word as a Lua global: nil.
            _ => Reply::new(Vec::new(), Outcome::Value("nil".into())),
        },
        Line::Call {
            object,
            method,
            args,
        } => call(server, object, method, args),
    }
}

fn call(server: &Arc<Server>, object: &str, method: &str, args: &[Arg]) -> Reply {
    let arg = |i: usize| args.get(i).and_then(Arg::as_str);
    match (object, method) {
        ("server", "version") => ok(env!("CARGO_PKG_VERSION")),
        ("server", "uptime") => ok(uptime(server)),
        ("server", "memory") => memory(),
        ("server", "shutdown") => Reply {
            output: Vec::new(),
            outcome: Outcome::Ok("Shutdown initiated".into()),
            effect: Effect::Shutdown,
        },
        ("user", "create") => match (arg(0), arg(1)) {
            (Some(jid), password) => user_create(server, jid, password),
            _ => error("No JID given"),
        },
        ("user", "delete") => match arg(0) {
            Some(jid) => user_delete(server, jid),
            None => error("No JID given"),
        },
        ("user", "password") => match (arg(0), arg(1)) {
            (Some(jid), Some(password)) => user_password(server, jid, password),
            _ => error("Usage: user:password(jid, password)"),
        },
        ("user", "list") => user_list(server, arg(0), arg(1)),
        ("c2s", "count") => ok(format!(
            "Total: {} clients",
            sessions::clients(server).len()
        )),
        ("c2s", "show") => sessions::c2s_show(server, arg(0)),
        ("c2s", "close") => match arg(0) {
            Some(jid) => sessions::c2s_close(server, Some(jid), arg(1), arg(2)),
            None => error("No JID given"),
        },
        ("c2s", "closeall") => sessions::c2s_close(server, None, arg(0), arg(1)),
        ("s2s", "show") => sessions::s2s_show(),
        ("muc", "list") => sessions::muc_list(server, arg(0)),
        ("muc", "room") => sessions::muc_room(server, arg(0)),
        ("config", "reload") => sessions::config_reload(server),
        ("stats", "show") => sessions::stats_show(server, arg(0)),
        ("host", "list") => host_list(server),
        ("module", "list") => module_list(server, arg(0)),
        ("module", "load") => modules::run(server, modules::Action::Load, arg(0), arg(1)),
        ("module", "unload") => modules::run(server, modules::Action::Unload, arg(0), arg(1)),
        ("module", "reload") => modules::run(server, modules::Action::Reload, arg(0), arg(1)),
        _ => Reply::new(
            Vec::new(),
            Outcome::NotUnderstood(format!(
                "lilt's console has no {object}:{method}() (type 'help' for what it has)"
            )),
        ),
    }
}

fn help() -> Vec<String> {
    [
        "lilt's console serves these calls of Prosody's admin shell (arguments are Lua literals):",
        "",
        "server:version() - Show the server's version number",
        "server:uptime() - How long the server has been running",
        "server:memory() - Show the server's memory use",
        "server:shutdown(reason) - Shut down the server, with an optional reason",
        "user:create(jid, password) - Create the specified user account",
        "user:password(jid, password) - Set the password for the specified user account",
        "user:delete(jid) - Permanently remove the specified user account",
        "user:list(hostname, pattern) - List users on the specified host, optionally filtering with a pattern",
        "c2s:show(jid) - Show all client sessions with the specified JID (or all if no JID given)",
        "c2s:count() - Count sessions without listing them",
        "c2s:close(jid) - Close all sessions for the specified JID",
        "c2s:closeall() - Close all active c2s connections",
        "s2s:show(domain) - Show all s2s connections for the given domain (lilt has none yet)",
        "muc:list(host) - List rooms on the specified MUC component",
        "muc:room(jid) - Reference the specified MUC room",
        "config:reload() - Reload the server configuration",
        "stats:show(pattern) - Show the server's metrics (names containing pattern)",
        "host:list() - List all hosts",
        "module:list(host) - List the modules loaded on the specified host",
        "module:load(module, host) - Load the specified module on the specified host (or all VirtualHosts)",
        "module:unload(module, host) - Unload the specified module from the specified host (or all hosts)",
        "module:reload(module, host) - The same, unload and load again, keeping the module's state",
        "bye - Close the console",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `(node, host)` of a bare user JID on a local VirtualHost, or the error
/// reply Prosody gives.
fn local_user(server: &Arc<Server>, jid: &str) -> Result<(String, Arc<xmpp_core::Host>), Reply> {
    let parsed = Jid::parse(jid).map_err(|e| error(format!("Invalid JID {jid:?}: {e}")))?;
    let domain = parsed.domain().to_string();
    let host = server
        .host(&domain)
        .filter(|h| matches!(h.kind, HostKind::VirtualHost))
        .ok_or_else(|| error(format!("No such host: {domain}")))?;
    let node = parsed
        .node()
        .map(str::to_string)
        .ok_or_else(|| error(format!("No username in {jid:?}")))?;
    Ok((node, host))
}

fn accounts(host: &Arc<xmpp_core::Host>) -> Result<Arc<dyn auth::AccountProvider>, Reply> {
    auth::provider_for_host(host).map_err(|e| error(e.to_string()))
}

fn user_create(server: &Arc<Server>, jid: &str, password: Option<&str>) -> Reply {
    let result = local_user(server, jid).and_then(|(user, host)| {
        let provider = accounts(&host)?;
        // Without a password: an account that cannot log in by password,
        // as Prosody's `create_user(username, nil)`.
        let created = match password {
            Some(password) => provider.add_user(&user, password),
            None if host.user_exists(&user) => Ok(false),
            None => provider.create_user(&user, None).map(|()| true),
        };
        Ok(match created {
            Ok(true) => ok("User created"),
            Ok(false) => error("User exists"),
            Err(e) => error(format!("Could not create user: {e}")),
        })
    });
    result.unwrap_or_else(|r| r)
}

fn user_delete(server: &Arc<Server>, jid: &str) -> Reply {
    let result = local_user(server, jid).and_then(|(user, host)| {
        if !host.user_exists(&user) {
            return Ok(error("No such user"));
        }
        let provider = accounts(&host)?;
        Ok(match provider.delete_user(&user) {
            Ok(()) => ok("User deleted"),
            Err(e) => error(format!("Could not delete user: {e}")),
        })
    });
    result.unwrap_or_else(|r| r)
}

fn user_password(server: &Arc<Server>, jid: &str, password: &str) -> Reply {
    let result = local_user(server, jid).and_then(|(user, host)| {
        if !host.user_exists(&user) {
            return Ok(error("No such user"));
        }
        let provider = accounts(&host)?;
        Ok(match provider.set_password(&user, password) {
            Ok(()) => ok("User password changed"),
            Err(e) => error(format!("Could not change password for user: {e}")),
        })
    });
    result.unwrap_or_else(|r| r)
}

/// `user:list(host, pattern)`: the pattern is matched as a plain
/// substring (Lua patterns without magic characters behave the same).
fn user_list(server: &Arc<Server>, host: Option<&str>, pattern: Option<&str>) -> Reply {
    let Some(host) = host else {
        return error("No host given");
    };
    let Some(host) = server
        .host(host)
        .filter(|h| matches!(h.kind, HostKind::VirtualHost))
    else {
        return error("No such host");
    };
    let provider = match accounts(&host) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let users = match provider.users() {
        Ok(u) => u,
        Err(e) => return error(e.to_string()),
    };
    let shown: Vec<String> = users
        .iter()
        .filter(|u| pattern.is_none_or(|p| u.contains(p)))
        .map(|u| format!("{u}@{}", host.name))
        .collect();
    let summary = match pattern {
        Some(_) => format!("Showing {} of {} users", shown.len(), users.len()),
        None => format!("Showing all {} users", users.len()),
    };
    Reply::new(shown, Outcome::Ok(summary))
}

/// Prosody's host order: by labels from the right (`*` first).
/// Prosody's console order of hosts: by labels from the right (`*` first).
pub(super) fn host_order(name: &str) -> String {
    if name == "*" {
        return String::new();
    }
    name.split('.').rev().collect::<Vec<_>>().join(".")
}

fn host_list(server: &Arc<Server>) -> Reply {
    let mut hosts = server.hosts();
    hosts.sort_by_key(|h| host_order(&h.name));
    let output = hosts
        .iter()
        .map(|h| match &h.kind {
            HostKind::VirtualHost => h.name.clone(),
            HostKind::Component { module: Some(m) } => format!("{} ({m} component)", h.name),
            HostKind::Component { module: None } => format!("{} (component)", h.name),
        })
        .collect::<Vec<_>>();
    let n = output.len();
    Reply::new(output, Outcome::Ok(format!("{n} hosts")))
}

fn module_list(server: &Arc<Server>, only: Option<&str>) -> Reply {
    let mut hosts = server.hosts();
    hosts.retain(|h| only.is_none_or(|o| h.name == o));
    hosts.sort_by_key(|h| host_order(&h.name));
    let mut output = Vec::new();
    if only.is_some() && hosts.is_empty() {
        output.push(format!("{}:", only.unwrap_or_default()));
        output.push("    Host not found".into());
    }
    for h in hosts {
        output.push(format!("{}:", h.name));
        let mut modules = h.loaded_modules();
        modules.sort();
        if modules.is_empty() {
            output.push("    No modules loaded".into());
        }
        output.extend(modules.into_iter().map(|m| format!("    {m}")));
    }
    Reply::new(output, Outcome::Value("nil".into()))
}

fn plural(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn uptime(server: &Arc<Server>) -> String {
    let t = server.uptime().max(0.0) as u64;
    let (minutes, hours, days) = ((t / 60) % 60, (t / 3600) % 24, t / 86400);
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(t))
        .unwrap_or(0);
    format!(
        "This server has been running for {}, {} and {} (since {})",
        plural(days, "day"),
        plural(hours, "hour"),
        plural(minutes, "minute"),
        local_time_c(since)
    )
}

/// `os.date("%c", t)`: the C locale's date and time, in local time.
fn local_time_c(t: u64) -> String {
    let t = t as libc::time_t;
    // SAFETY: localtime_r and strftime write only into the buffers given.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return t.to_string();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), c"%c".as_ptr(), &tm);
        String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
    }
}

fn memory() -> Reply {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    Reply::new(
        vec![
            format!("Process: {} resident", field("VmRSS:")),
            format!("   Peak: {}", field("VmHWM:")),
        ],
        Outcome::Ok("OK".into()),
    )
}
