//! The session commands of mod_admin_adhoc: end user sessions, list the
//! online users, list the host's s2s connections.

use std::collections::BTreeMap;
use std::sync::Arc;

use xmpp_core::adhoc::{Field, Handler, Reply};
use xmpp_core::session::SessionKind;
use xmpp_core::{Jid, Server, Session};

use super::{NS_ADMIN, form_type, layout, list, result_form, simple, text, with_form};

const NS_S2S_LIST: &str = "http://prosody.im/protocol/s2s#list";

/// The client's address (the one a trusted proxy named, else the peer's).
pub fn session_ip(s: &Session) -> Option<String> {
    s.transport
        .as_ref()
        .and_then(|t| t.ip)
        .or(s.peer.map(|p| p.ip()))
        .map(|ip| ip.to_string())
}

/// The online users of `host` (bound client sessions), by username, each
/// with its sessions (Prosody's `hosts[host].sessions`).
fn online(server: &Server, host: &str) -> BTreeMap<String, Vec<Arc<Session>>> {
    let mut users: BTreeMap<String, Vec<Arc<Session>>> = BTreeMap::new();
    for s in server.sessions.all() {
        if s.kind != SessionKind::C2s || s.host != host || s.full_jid().is_none() {
            continue;
        }
        if let Some(user) = s.username() {
            users.entry(user).or_default().push(s);
        }
    }
    users
}

pub fn end_user_session() -> Handler {
    let form = layout(
        Some("Ending a User Session"),
        Some("Fill out this form to end a user's session."),
        vec![
            form_type(NS_ADMIN),
            Field::new("accountjids", "jid-multi")
                .label("The Jabber ID(s) for which to end sessions")
                .required(),
        ],
    );
    simple(form, |req, fields| {
        let mut done = Vec::new();
        let mut not_done = Vec::new();
        for jid in list(fields, "accountjids") {
            let parsed = Jid::parse(jid).ok();
            let user = parsed
                .as_ref()
                .filter(|j| j.domain() == req.host.name)
                .and_then(|j| j.node())
                .filter(|u| req.host.user_exists(u));
            let Some(user) = user else {
                not_done.push(jid.clone());
                continue;
            };
            let resource = parsed.as_ref().and_then(|j| j.resource());
            for s in super::users::user_sessions(req.server, &req.host.name, user) {
                let r = s.full_jid().and_then(|j| j.resource().map(str::to_string));
                if resource.is_none() || r.as_deref() == resource {
                    tracing::debug!(
                        "Disconnecting {user}@{}/{}",
                        req.host.name,
                        r.unwrap_or_default()
                    );
                    s.close(None);
                }
            }
            done.push(jid.clone());
        }
        Reply::completed().info(super::done_and_failed(
            "The following accounts were successfully disconnected:",
            &done,
            "The following accounts could not be disconnected:",
            &not_done,
        ))
    })
}

pub fn get_online_users() -> Handler {
    let form = layout(
        Some("Getting List of Online Users"),
        Some("How many users should be returned at most?"),
        vec![
            form_type(NS_ADMIN),
            Field::new("max_items", "list-single")
                .label("Maximum number of users")
                .options(&["25", "50", "75", "100", "150", "200", "all"]),
            Field::new("details", "boolean").label("Show details"),
        ],
    );
    let result = layout(
        None,
        None,
        vec![
            form_type(NS_ADMIN),
            Field::new("onlineuserjids", "text-multi").label("The list of all online users"),
        ],
    );
    simple(form, move |req, fields| {
        let max_items = match text(fields, "max_items") {
            Some("all") | None => None,
            Some(n) => n.trim().parse::<usize>().ok(),
        };
        let details = matches!(text(fields, "details"), Some("1" | "true"));
        let mut lines = Vec::new();
        for (count, (user, sessions)) in online(req.server, &req.host.name).into_iter().enumerate()
        {
            if max_items.is_some_and(|m| count >= m) {
                break;
            }
            lines.push(format!("{user}@{}", req.host.name));
            if details {
                for s in sessions {
                    let resource = s
                        .full_jid()
                        .and_then(|j| j.resource().map(str::to_string))
                        .unwrap_or_default();
                    let (status, priority) = {
                        let st = s.state();
                        let status = match &st.presence {
                            None => "unavailable".to_string(),
                            Some(p) => match p.children().find(|c| c.name() == "show") {
                                Some(show) => show.text_content(),
                                None => "available".to_string(),
                            },
                        };
                        let priority = if st.presence.is_some() {
                            st.priority.to_string()
                        } else {
                            "-".to_string()
                        };
                        (status, priority)
                    };
                    let ip = session_ip(&s).unwrap_or_else(|| "<unknown>".to_string());
                    lines.push(format!(" - {resource}: {status}({priority}), IP: [{ip}]"));
                }
            }
        }
        with_form(result_form(
            &result,
            &[("onlineuserjids", lines.join("\n"))],
        ))
    })
}

/// "List S2S connections": the incoming server streams to this host
/// (lilt's outgoing routes are not listed yet).
pub fn list_s2s() -> Handler {
    let result = layout(
        Some("List of S2S connections on this host"),
        None,
        vec![
            form_type(NS_S2S_LIST),
            Field::new("sessions", "text-multi").label("Connections:"),
            Field::new("num_in", "text-single").label("#incoming connections:"),
            Field::new("num_out", "text-single").label("#outgoing connections:"),
        ],
    );
    Arc::new(move |req| {
        let mut lines = Vec::new();
        let mut count_in = 0;
        for s in req.server.sessions.all() {
            if s.kind != SessionKind::S2sIn || s.host != req.host.name {
                continue;
            }
            count_in += 1;
            let mut flags = Vec::new();
            if s.state().secure {
                flags.push("encrypted");
            }
            if s.peer.is_some_and(|p| p.is_ipv6()) {
                flags.push("IPv6");
            }
            lines.push(format!(" <- ? [{}] ({})", s.id, flags.join(", ")));
        }
        lines.sort();
        let x = result_form(
            &result,
            &[
                ("sessions", lines.join("\n")),
                ("num_in", count_in.to_string()),
                ("num_out", "0".to_string()),
            ],
        );
        with_form(x)
    })
}
