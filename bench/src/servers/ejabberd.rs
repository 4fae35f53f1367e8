//! Debian's ejabberd 23.01 with a throw-away config and spool directory:
//! plain-TCP c2s on loopback, SCRAM-stored passwords (accounts made by
//! in-band registration after start), the same modules as the Prosody
//! setup (roster, disco, ping, offline, MUC), no shaper, and the Erlang
//! distribution on loopback without epmd.

use std::path::Path;
use std::process::Command;

use super::{DOMAIN, MUC_DOMAIN, ServerError, io_err};

/// ejabberd.yml.
pub fn config(port: u16) -> String {
    format!(
        r#"# Written by lilt's bench driver.
hosts:
  - "{DOMAIN}"
loglevel: warning
hide_sensitive_log_data: true
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
    max_stanza_size: 262144
    # ejabberd's default accept backlog (5) drops SYNs under a login burst.
    backlog: 1024
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
# Caches sized for the benchmark's accounts (the default, 1000, thrashes).
cache_size: 50000
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {{}}
  mod_offline: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_register:
    ip_access: all
    access: all
  mod_muc:
    host: "{MUC_DOMAIN}"
    access: all
    access_create: all
    access_persistent: all
    max_users: 5000
    max_user_conferences: 100
    # Rooms default to 200 occupants at most (Prosody: no limit).
    default_room_options:
      max_users: 5000
"#
    )
}

/// ejabberdctl.cfg: no epmd (a fixed distribution port on loopback).
fn ctl_config(port: u16) -> String {
    format!(
        "ERL_DIST_PORT={}\nINET_DIST_INTERFACE=127.0.0.1\nEJABBERD_BYPASS_WARNINGS=true\nERL_MAX_PORTS=65536\nERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\n",
        port + 100
    )
}

/// Writes the config files and the spool and log directories.
pub fn prepare(dir: &Path, port: u16) -> Result<(), ServerError> {
    let yml = dir.join("ejabberd.yml");
    std::fs::write(&yml, config(port)).map_err(io_err("writing config", &yml))?;
    let ctl = dir.join("ejabberdctl.cfg");
    std::fs::write(&ctl, ctl_config(port)).map_err(io_err("writing config", &ctl))?;
    for sub in ["spool", "logs"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(io_err("creating directory", &d))?;
    }
    std::fs::write(
        dir.join("inetrc"),
        "{lookup,[file,native]}.\n{host,{127,0,0,1},[\"localhost\"]}.\n",
    )
    .map_err(io_err("writing inetrc", dir))?;
    super::run(Command::new("chown").arg("-R").arg("ejabberd").arg(dir))?;
    Ok(())
}

/// `ejabberdctl ... foreground`, pinned, run as the ejabberd user with the
/// open files limit raised (ejabberdctl's own `su` leaves the soft limit at
/// 1024, and ejabberd then stops accepting at about 1000 connections).
pub fn command(dir: &Path, cpus: &str) -> Command {
    let d = dir.display();
    let script = format!(
        "ulimit -n $(ulimit -Hn); export HOME='{d}'; cd '{d}'; exec ejabberdctl \
         --config-dir '{d}' --config '{d}/ejabberd.yml' --ctl-config '{d}/ejabberdctl.cfg' \
         --logs '{d}/logs' --spool '{d}/spool' --node bench@localhost foreground"
    );
    let mut cmd = super::pinned(cpus);
    cmd.args(["runuser", "-u", "ejabberd", "--", "sh", "-c"])
        .arg(script);
    cmd
}
