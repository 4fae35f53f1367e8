//! The module commands of mod_admin_adhoc (`http://prosody.im/protocol/modules#…`):
//! list the host's modules; load, reload and unload them on this host or,
//! for global admins, on every host.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use xmpp_core::adhoc::{Field, Handler, Reply};
use xmpp_core::module::{LoadOutcome, manager};
use xmpp_core::{Host, Server};

use super::{form_type, initial, layout, list, ok_and_err, result_form, simple, text, with_form};

const NS_MODULES: &str = "http://prosody.im/protocol/modules";

fn ns(what: &str) -> String {
    format!("{NS_MODULES}#{what}")
}

/// The modules loaded on `host`, sorted.
fn host_modules(host: &Host) -> Vec<String> {
    let set: BTreeSet<String> = host.loaded_modules().into_iter().collect();
    set.into_iter().collect()
}

/// The modules loaded on any host, sorted.
fn all_modules(server: &Server) -> Vec<String> {
    let set: BTreeSet<String> = server
        .hosts()
        .iter()
        .flat_map(|h| h.loaded_modules())
        .collect();
    set.into_iter().collect()
}

/// Loads `name` on `host`, with Prosody's errors for a module already
/// loaded and for a missing one.
fn load_on(server: &Arc<Server>, host: &Arc<Host>, name: &str) -> Result<(), String> {
    if host.has_module(name) {
        return Err("module-already-loaded".into());
    }
    match manager::load(server, host, name) {
        Ok(LoadOutcome::Unknown) => Err(format!("mod_{name} not found")),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn reload_on(server: &Arc<Server>, host: &Arc<Host>, name: &str) -> Result<(), String> {
    if !host.has_module(name) {
        return Err("module-not-loaded".into());
    }
    match manager::reload(server, host, name) {
        Ok(LoadOutcome::Unknown) => Err(format!("mod_{name} not found")),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn unload_on(server: &Arc<Server>, host: &Arc<Host>, name: &str) -> Result<(), String> {
    if manager::unload(server, host, name) {
        Ok(())
    } else {
        Err("module-not-loaded".into())
    }
}

pub fn list_modules() -> Handler {
    let result = layout(
        Some("List of loaded modules"),
        None,
        vec![
            form_type(&ns("list")),
            Field::new("modules", "text-multi").label("The following modules are loaded:"),
        ],
    );
    Arc::new(move |req| {
        let modules = host_modules(req.host).join("\n");
        with_form(result_form(&result, &[("modules", modules)]))
    })
}

pub fn load_module() -> Handler {
    let form = layout(
        Some("Load module"),
        Some("Specify the module to be loaded"),
        vec![
            form_type(&ns("load")),
            Field::new("module", "text-single")
                .required()
                .label("Module to be loaded:"),
        ],
    );
    simple(form, |req, fields| {
        let name = text(fields, "module").unwrap_or_default();
        let host = &req.host.name;
        if req.host.has_module(name) {
            return Reply::completed().info("Module already loaded");
        }
        match load_on(req.server, req.host, name) {
            Ok(()) => Reply::completed().info(format!(
                "Module \"{name}\" successfully loaded on host \"{host}\"."
            )),
            Err(e) => Reply::completed().error_note(format!(
                "Failed to load module \"{name}\" on host \"{host}\". Error was: \"{e}\""
            )),
        }
    })
}

pub fn globally_load_module() -> Handler {
    let form = layout(
        Some("Globally load module"),
        Some("Specify the module to be loaded on all hosts"),
        vec![
            form_type(&ns("global-load")),
            Field::new("module", "text-single")
                .required()
                .label("Module to globally load:"),
        ],
    );
    simple(form, |req, fields| {
        let name = text(fields, "module").unwrap_or_default();
        let mut ok = Vec::new();
        let mut err = Vec::new();
        let mut record = |host: &Arc<Host>| match load_on(req.server, host, name) {
            Ok(()) => ok.push(host.name.clone()),
            Err(e) => err.push(format!("{} (Error: {e})", host.name)),
        };
        record(req.host);
        for host in req.server.hosts() {
            if host.name != req.host.name && !host.is_component() {
                record(&host);
            }
        }
        tracing::info!("mod_{name} loaded by {}", req.from);
        Reply::completed().info(ok_and_err(
            &format!("The module {name} was successfully loaded onto the hosts:"),
            &ok,
            &format!("Failed to load the module {name} onto the hosts:"),
            &err,
        ))
    })
}

/// The initial values of a form offering the host's modules as `field`.
fn offer(
    field: &'static str,
    global: bool,
) -> impl Fn(&xmpp_core::adhoc::Request<'_>) -> BTreeMap<String, Vec<String>> + Send + Sync + 'static
{
    move |req| {
        let modules = if global {
            all_modules(req.server)
        } else {
            host_modules(req.host)
        };
        BTreeMap::from([(field.to_string(), modules)])
    }
}

type HostOp = fn(&Arc<Server>, &Arc<Host>, &str) -> Result<(), String>;

/// "Reload modules" and "Unload modules": the chosen modules on this host.
fn on_this_host(
    what: &'static str,
    done: &'static str,
    label: &'static str,
    op: HostOp,
) -> Handler {
    let title = format!("{}{} modules", what[..1].to_uppercase(), &what[1..]);
    let form = layout(
        Some(&title),
        Some(&format!("Select the modules to be {done}")),
        vec![
            form_type(&ns(what)),
            Field::new("modules", "list-multi").required().label(label),
        ],
    );
    initial(form, offer("modules", false), move |req, fields| {
        let mut ok = Vec::new();
        let mut err = Vec::new();
        for name in list(fields, "modules") {
            match op(req.server, req.host, name) {
                Ok(()) => ok.push(name.clone()),
                Err(e) => err.push(format!("{name}(Error: {e})")),
            }
        }
        let host = &req.host.name;
        Reply::completed().info(ok_and_err(
            &format!("The following modules were successfully {done} on host {host}:"),
            &ok,
            &format!("Failed to {what} the following modules on host {host}:"),
            &err,
        ))
    })
}

/// "Globally reload/unload module": the module on every host it is loaded on.
fn on_all_hosts(
    what: &'static str,
    done: &'static str,
    label: &'static str,
    op: HostOp,
) -> Handler {
    let title = format!("Globally {what} module");
    let instructions = if what == "reload" {
        "Specify the module to reload on all hosts"
    } else {
        "Specify a module to unload on all hosts"
    };
    let form = layout(
        Some(&title),
        Some(instructions),
        vec![
            form_type(&ns(&format!("global-{what}"))),
            Field::new("module", "list-single").required().label(label),
        ],
    );
    initial(form, offer("module", true), move |req, fields| {
        let name = text(fields, "module").unwrap_or_default();
        let mut ok = Vec::new();
        let mut err = Vec::new();
        for host in req.server.hosts() {
            if host.has_module(name) {
                match op(req.server, &host, name) {
                    Ok(()) => ok.push(host.name.clone()),
                    Err(e) => err.push(format!("{} (Error: {e})", host.name)),
                }
            }
        }
        if ok.is_empty() && err.is_empty() {
            return Reply::completed().info(format!("Module {name} not loaded on any host."));
        }
        tracing::info!("mod_{name} {done} by {}", req.from);
        Reply::completed().info(ok_and_err(
            &format!("The module {name} was successfully {done} on the hosts:"),
            &ok,
            &format!("Failed to {what} the module {name} on the hosts:"),
            &err,
        ))
    })
}

pub fn reload_modules() -> Handler {
    on_this_host("reload", "reloaded", "Modules to be reloaded:", reload_on)
}

pub fn unload_modules() -> Handler {
    on_this_host("unload", "unloaded", "Modules to be unloaded:", unload_on)
}

pub fn globally_reload_module() -> Handler {
    on_all_hosts(
        "reload",
        "reloaded",
        "Module to globally reload:",
        reload_on,
    )
}

pub fn globally_unload_module() -> Handler {
    on_all_hosts(
        "unload",
        "unloaded",
        "Module to globally unload:",
        unload_on,
    )
}
