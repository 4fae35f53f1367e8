//! The console's calls about sessions, rooms, the config and statistics:
//! `c2s:show/count/close/closeall`, `s2s:show`, `muc:list/room`,
//! `config:reload`, `stats:show`, in the words of Prosody 0.12's
//! `mod_admin_shell`.

use std::sync::Arc;

use xmpp_core::error::{StreamError, StreamErrorCondition};
use xmpp_core::{Jid, Server, SessionKind};

use super::commands::{Outcome, Reply, error, ok};

/// Client sessions (authenticated or not), as Prosody's `get_c2s`.
pub fn clients(server: &Arc<Server>) -> Vec<Arc<xmpp_core::Session>> {
    server
        .sessions
        .all()
        .into_iter()
        .filter(|s| matches!(s.kind, SessionKind::C2s | SessionKind::C2sUnauthed))
        .collect()
}

fn session_jid(s: &xmpp_core::Session) -> String {
    s.full_jid()
        .map(|j| j.to_string())
        .unwrap_or_else(|| format!("({})", s.host))
}

pub fn c2s_show(server: &Arc<Server>, match_jid: Option<&str>) -> Reply {
    let all = clients(server);
    let mut shown: Vec<_> = all
        .iter()
        .filter(|s| match_jid.is_none_or(|m| session_jid(s) == m))
        .collect();
    shown.sort_by_key(|s| (s.host.clone(), session_jid(s)));
    let mut output = Vec::new();
    let mut current: Option<&str> = None;
    for s in &shown {
        if current != Some(s.host.as_str()) {
            current = Some(s.host.as_str());
            output.push(format!("# {}", s.host));
            output.push(format!("{:<12} {:<40} {}", "Session ID", "JID", "IP"));
        }
        let ip = s.peer.map(|p| p.ip().to_string()).unwrap_or_default();
        output.push(format!("{:<12} {:<40} {ip}", s.id, session_jid(s)));
    }
    let summary = if shown.len() == all.len() {
        format!("{} c2s sessions shown", all.len())
    } else {
        format!("{} out of {} c2s sessions shown", shown.len(), all.len())
    };
    Reply::new(output, Outcome::Ok(summary))
}

/// Prosody's `build_reason`: a stream error only when a text or a
/// condition is given.
fn reason(text: Option<&str>, condition: Option<&str>) -> Option<StreamError> {
    if text.is_none() && condition.is_none() {
        return None;
    }
    let condition = condition
        .and_then(StreamErrorCondition::from_name)
        .unwrap_or(StreamErrorCondition::UndefinedCondition);
    Some(match text {
        Some(t) => StreamError::with_text(condition, t),
        None => StreamError::new(condition),
    })
}

/// `c2s:close(jid, text, condition)` (a full or bare JID);
/// `c2s:closeall(text, condition)` with `jid` None.
pub fn c2s_close(
    server: &Arc<Server>,
    jid: Option<&str>,
    text: Option<&str>,
    condition: Option<&str>,
) -> Reply {
    let mut count = 0;
    for s in clients(server) {
        let full = s.full_jid();
        let matches = match jid {
            None => true,
            Some(m) => full
                .as_ref()
                .is_some_and(|f| f.to_string() == m || f.to_bare().to_string() == m),
        };
        if matches {
            count += 1;
            s.close(reason(text, condition));
        }
    }
    ok(format!("Total: {count} sessions closed"))
}

/// lilt has no server-to-server connections yet: none are shown.
pub fn s2s_show() -> Reply {
    ok("0 s2s connections shown")
}

fn muc_service(server: &Arc<Server>, host: &str) -> Option<Arc<muc::MucService>> {
    server.host(host).and_then(|h| muc::service_for(&h))
}

pub fn muc_list(server: &Arc<Server>, host: Option<&str>) -> Reply {
    let Some(service) = host.and_then(|h| muc_service(server, h)) else {
        return error("Please supply the address of a local MUC component");
    };
    let mut jids: Vec<String> = service.all_rooms().iter().map(|r| r.jid.clone()).collect();
    jids.sort();
    let n = jids.len();
    Reply::new(jids, Outcome::Ok(format!("{n} rooms")))
}

pub fn muc_room(server: &Arc<Server>, room: Option<&str>) -> Reply {
    let Some(room) = room else {
        return error("No room JID given");
    };
    let jid = match Jid::parse(room) {
        Ok(j) => j,
        Err(e) => return error(format!("Invalid JID {room:?}: {e}")),
    };
    let domain = jid.domain().to_string();
    if server.host(&domain).is_none() {
        return error(format!("No such host: {domain}"));
    }
    let Some(service) = muc_service(server, &domain) else {
        return error(format!("Host '{domain}' is not a MUC service"));
    };
    match service.get_room(&jid.to_bare().to_string()) {
        muc::Lookup::Live(r) => {
            Reply::new(Vec::new(), Outcome::Value(format!("MUC room <{}>", r.jid)))
        }
        _ => error(format!("No such room: {room}")),
    }
}

/// `config:reload()`: the file is read and checked here, so a broken
/// config is answered with its error; a good one is applied by the
/// server's own reload (as SIGHUP), which logs what changed.
pub fn config_reload(server: &Arc<Server>) -> Reply {
    let Some(file) = server.config.config_file.clone() else {
        return error("this server was not started from a config file");
    };
    if let Err(e) = lua_compat::config::load(&file) {
        return error(e.to_string());
    }
    // SAFETY: kill on our own pid.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGHUP);
    }
    ok("Config reloaded (you may need to reload modules to take effect)")
}

/// `stats:show(filter)`: the OpenMetrics families `/metrics` serves, their
/// samples one per line, those whose name contains `filter`.
pub fn stats_show(server: &Arc<Server>, filter: Option<&str>) -> Reply {
    let text = crate::metrics::render(server);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| filter.is_none_or(|f| l.split(['{', ' ']).next().unwrap_or("").contains(f)))
        .map(str::to_string)
        .collect();
    let n = lines.len();
    Reply::new(lines, Outcome::Ok(format!("{n} metrics shown")))
}
