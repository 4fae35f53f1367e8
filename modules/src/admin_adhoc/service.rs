//! The service commands of mod_admin_adhoc: reload the config, shut the
//! server down, activate or deactivate a host.
//!
//! Reloading and shutting down go through the server's own paths, as
//! `lilt shell`'s `config:reload()` and `server:shutdown()` do: the process
//! signals itself SIGHUP (the config is checked first, so a broken one is
//! answered with its error) or SIGTERM. lilt cannot add or remove hosts
//! while running: "Activate host" and "Deactivate host" answer Prosody's
//! errors (already activated, not in the config, not activated) and
//! refuse the rest.

use std::sync::Arc;
use std::time::Duration;

use xmpp_core::adhoc::{Field, Handler, Reply, Status};
use xmpp_core::module::{ModuleContext, manager};
use xmpp_core::stanza::Element;

use super::{NS_ADMIN, failed, form_type, layout, set_options, simple, text};

const NS_HOSTS_ACTIVATE: &str = "http://prosody.im/protocol/hosts#activate";

fn signal_self(signal: libc::c_int) {
    // SAFETY: kill(2) on our own pid with a valid signal number.
    unsafe {
        libc::kill(libc::getpid(), signal);
    }
}

pub fn config_reload() -> Handler {
    Arc::new(|req| {
        tracing::info!("{} reloads the config", req.from);
        let checked = match &req.host.config().config_file {
            None => Err("this server was not started from a config file".to_string()),
            Some(file) => lua_compat::config::load(file)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match checked {
            Ok(()) => {
                signal_self(libc::SIGHUP);
                Reply::completed().info(
                    "Configuration reloaded (modules may need to be reloaded for this to have an effect)",
                )
            }
            Err(e) => failed(format!("Failed to reload config: {e}")),
        }
    })
}

pub fn shut_down_service(ctx: &ModuleContext) -> Handler {
    let module = ctx.name().to_string();
    let form = layout(
        Some("Shutting Down the Service"),
        Some("Fill out this form to shut down the service."),
        vec![
            form_type(NS_ADMIN),
            Field::new("delay", "list-single")
                .label("Time delay before shutting down")
                .value("5")
                .options(&["5", "30", "60", "90", "120", "180", "240", "300"]),
            Field::new("announcement", "text-multi").label("Announcement"),
        ],
    );
    let inner = simple(form, move |req, fields| {
        tracing::info!("Server being shut down by {}", req.from);
        let announcement = super::list(fields, "announcement").join("\n");
        if !announcement.is_empty() {
            for host in req.server.hosts() {
                let users: std::collections::BTreeSet<String> = req
                    .server
                    .sessions
                    .all()
                    .into_iter()
                    .filter(|s| s.host == host.name && s.full_jid().is_some())
                    .filter_map(|s| s.bare_jid())
                    .map(|j| j.to_string())
                    .collect();
                for user in users {
                    let message = Element::new("message", "jabber:client")
                        .attr("type", "headline")
                        .attr("from", host.name.as_str())
                        .attr("to", user.as_str())
                        .child(Element::new("body", "jabber:client").text(announcement.clone()))
                        .child(
                            Element::new("subject", "jabber:client")
                                .text("Server is shutting down"),
                        );
                    req.server.send_from_host(&host, message);
                }
            }
        }
        let delay = text(fields, "delay")
            .and_then(|d| d.trim().parse::<u64>().ok())
            .unwrap_or(5);
        match manager::context(req.server, req.host, &module) {
            Some(ctx) => ctx.add_timer(Duration::from_secs(delay), || {
                tracing::info!("Shutdown by adhoc command");
                signal_self(libc::SIGTERM);
                None
            }),
            None => return failed("mod_admin_adhoc is not loaded"),
        }
        Reply::completed().info("Server is about to shut down")
    });
    Arc::new(move |req| {
        let mut reply = inner(req);
        if reply.status == Status::Executing
            && let Some(x) = reply.form.as_mut()
        {
            set_options(
                x,
                "delay",
                &[
                    ("5 seconds", "5"),
                    ("30 seconds", "30"),
                    ("60 seconds", "60"),
                    ("90 seconds", "90"),
                    ("2 minutes", "120"),
                    ("3 minutes", "180"),
                    ("4 minutes", "240"),
                    ("5 minutes", "300"),
                ],
            );
        }
        reply
    })
}

fn host_form(title: &str) -> super::Form {
    layout(
        Some(title),
        Some(""),
        vec![
            form_type(NS_HOSTS_ACTIVATE),
            Field::new("host", "text-single").required().label("Host:"),
        ],
    )
}

pub fn activate_host() -> Handler {
    simple(host_form("Activate host"), |req, fields| {
        let name = text(fields, "host").unwrap_or_default();
        let configured = req.host.config().host(name).is_some();
        let why = if req.server.host(name).is_some() {
            format!("The host {name} is already activated")
        } else if !configured {
            format!("Couldn't find the host {name} defined in the current config")
        } else {
            "lilt cannot add hosts while running: restart it to serve the host".to_string()
        };
        Reply::canceled().error_note(why)
    })
}

pub fn deactivate_host() -> Handler {
    simple(host_form("Deactivate host"), |req, fields| {
        let name = text(fields, "host").unwrap_or_default();
        let why = if req.server.host(name).is_none() {
            format!("The host {name} is not activated")
        } else {
            "lilt cannot remove hosts while running: remove it from the config and restart"
                .to_string()
        };
        Reply::canceled().error_note(why)
    })
}
