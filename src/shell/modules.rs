//! `module:load(name, host)`, `module:unload(name, host)` and
//! `module:reload(name, host)`, with Prosody 0.12's answers: a line per
//! host done (`Loaded for h`, `Unloaded from h`, `Reloaded on h`) or per
//! failure (its reason), then `Module loaded onto N hosts` or
//! `Last error: ...`. Without a host, `load` means every VirtualHost and
//! `unload`/`reload` every host the module is loaded on; hosts already in
//! the wanted state are skipped, as in Prosody.

use std::sync::Arc;

use xmpp_core::module::manager::{self, LoadOutcome};
use xmpp_core::{Host, HostKind, Server};

use super::commands::{Outcome, Reply};

/// Which of the three calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Load,
    Unload,
    Reload,
}

/// A host named in a call, or why it is not one.
enum Target {
    Host(Arc<Host>),
    Unknown,
}

fn hosts_for(server: &Arc<Server>, action: Action, name: &str, host: Option<&str>) -> Vec<Target> {
    let mut targets: Vec<Target> = match host {
        Some(h) => vec![match server.host(h) {
            Some(host) => Target::Host(host),
            None => Target::Unknown,
        }],
        None => {
            let mut hosts = server.hosts();
            hosts.retain(|h| action != Action::Load || h.kind == HostKind::VirtualHost);
            hosts.sort_by_key(|h| super::commands::host_order(&h.name));
            hosts.into_iter().map(Target::Host).collect()
        }
    };
    if action != Action::Load {
        // Only the hosts the module is loaded on.
        targets.retain(|t| matches!(t, Target::Host(h) if h.has_module(name)));
    }
    targets
}

fn plural_hosts(n: usize) -> String {
    format!("{n} host{}", if n == 1 { "" } else { "s" })
}

/// Runs `module:<action>(name, host)`.
pub fn run(server: &Arc<Server>, action: Action, name: Option<&str>, host: Option<&str>) -> Reply {
    let Some(name) = name else {
        return Reply::new(
            Vec::new(),
            Outcome::Error("Last error: insufficient-parameters".into()),
        );
    };
    let mut output = Vec::new();
    let mut count = 0;
    let mut last_error: Option<String> = None;
    let mut fail = |why: String, output: &mut Vec<String>| {
        output.push(why.clone());
        last_error = Some(why);
    };
    for target in hosts_for(server, action, name, host) {
        let host = match target {
            Target::Host(h) => h,
            Target::Unknown => {
                fail("unknown-host".into(), &mut output);
                continue;
            }
        };
        match action {
            Action::Load => {
                if host.has_module(name) {
                    continue;
                }
                match manager::load(server, &host, name) {
                    Ok(LoadOutcome::Loaded) => {
                        count += 1;
                        output.push(format!("Loaded for {}", host.name));
                    }
                    Ok(LoadOutcome::Unknown) => fail(format!("mod_{name} not found"), &mut output),
                    Err(e) => fail(e.to_string(), &mut output),
                }
            }
            Action::Unload => {
                if manager::unload(server, &host, name) {
                    count += 1;
                    output.push(format!("Unloaded from {}", host.name));
                } else {
                    fail("module-not-loaded".into(), &mut output);
                }
            }
            Action::Reload => match manager::reload(server, &host, name) {
                Ok(LoadOutcome::Loaded) => {
                    count += 1;
                    output.push(format!("Reloaded on {}", host.name));
                }
                Ok(LoadOutcome::Unknown) => fail(format!("mod_{name} not found"), &mut output),
                Err(e) => fail(e.to_string(), &mut output),
            },
        }
    }
    let outcome = match last_error {
        Some(e) => Outcome::Error(format!("Last error: {e}")),
        None => Outcome::Ok(match action {
            Action::Load => format!("Module loaded onto {}", plural_hosts(count)),
            Action::Unload => format!("Module unloaded from {}", plural_hosts(count)),
            Action::Reload => format!("Module reloaded on {}", plural_hosts(count)),
        }),
    };
    Reply::new(output, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Arc<Server> {
        let server = Server::for_tests();
        let mut registry = xmpp_core::Registry::new();
        modules::register(&mut registry);
        manager::set_registry(&server, registry);
        server
    }

    fn text(r: &Reply) -> (Vec<String>, String) {
        (r.output.clone(), r.outcome.text().0)
    }

    #[test]
    fn load_unload_reload_as_prosody_words_them() {
        let s = server();
        let l = |a, n, h| text(&run(&s, a, Some(n), h));
        assert_eq!(
            l(Action::Load, "ping", Some("localhost")),
            (
                vec!["Loaded for localhost".into()],
                "OK: Module loaded onto 1 host".into()
            )
        );
        assert_eq!(
            l(Action::Load, "ping", None),
            (vec![], "OK: Module loaded onto 0 hosts".into())
        );
        assert_eq!(
            l(Action::Reload, "ping", None),
            (
                vec!["Reloaded on localhost".into()],
                "OK: Module reloaded on 1 host".into()
            )
        );
        assert_eq!(
            l(Action::Unload, "ping", Some("localhost")),
            (
                vec!["Unloaded from localhost".into()],
                "OK: Module unloaded from 1 host".into()
            )
        );
        assert!(!s.host("localhost").unwrap().has_module("ping"));
        assert_eq!(
            l(Action::Unload, "ping", Some("localhost")),
            (vec![], "OK: Module unloaded from 0 hosts".into())
        );
        assert_eq!(
            l(Action::Load, "ping", Some("nosuch.example")),
            (
                vec!["unknown-host".into()],
                "Error: Last error: unknown-host".into()
            )
        );
        assert_eq!(
            l(Action::Load, "nosuch", Some("localhost")).1,
            "Error: Last error: mod_nosuch not found"
        );
    }
}
