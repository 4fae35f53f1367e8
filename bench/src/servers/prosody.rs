//! Debian's Prosody 0.12 (and lilt, which reads the same file): one
//! `prosody.cfg.lua` with the epoll backend, plain-TCP c2s on loopback,
//! internal_hashed accounts written as Prosody's data files, and the MUC
//! component.

use std::path::Path;
use std::process::Command;

use super::{DOMAIN, MUC_DOMAIN, ServerError, io_err, run};
use crate::accounts;
use crate::scenarios::lua_filter::{DOMAIN as LUA_DOMAIN, MODULE as LUA_MODULE, write_plugin};

/// The configuration both Prosody and lilt run with.
pub fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"-- Written by lilt's bench driver: the same file for Prosody and lilt.
network_backend = "epoll"
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
c2s_interfaces = {{ "127.0.0.1" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
pidfile = "{dir}/server.pid"
data_path = "{dir}/data"

modules_enabled = {{
	"roster";
	"saslauth";
	"disco";
	"ping";
}}
modules_disabled = {{ "s2s" }}
-- Scenario 6's Lua message filter (bench/src/scenarios/lua_filter.rs).
plugin_paths = {{ "{dir}/plugins" }}

authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true

log = {{
	{{ levels = {{ min = "warn" }}, to = "console" }};
}}

VirtualHost "{DOMAIN}"

VirtualHost "{LUA_DOMAIN}"
	modules_enabled = {{ "{LUA_MODULE}" }}

Component "{MUC_DOMAIN}" "muc"
	muc_room_locking = false
"#
    )
}

/// Writes the config and the accounts.
pub fn prepare(dir: &Path, port: u16, count: usize, tsung: usize) -> Result<(), ServerError> {
    let cfg = dir.join("prosody.cfg.lua");
    std::fs::write(&cfg, config(dir, port)).map_err(io_err("writing config", &cfg))?;
    accounts::write_prosody_accounts(&dir.join("data"), DOMAIN, count)?;
    accounts::write_prosody_accounts(&dir.join("data"), LUA_DOMAIN, count)?;
    write_plugin(dir).map_err(io_err("writing the Lua filter", dir))?;
    accounts::write_tsung_accounts(&dir.join("data"), DOMAIN, tsung)?;
    Ok(())
}

/// The command starting Prosody as its own user, pinned, with the open
/// files limit raised (runuser resets the soft limit).
pub fn command(dir: &Path, cpus: &str) -> Result<Command, ServerError> {
    run(Command::new("chown").arg("-R").arg("prosody").arg(dir))?;
    let cfg = dir.join("prosody.cfg.lua");
    let mut cmd = super::pinned(cpus);
    cmd.args(["runuser", "-u", "prosody", "--", "sh", "-c"])
        .arg(format!(
            "ulimit -n $(ulimit -Hn); exec prosody -F --config '{}'",
            cfg.display()
        ));
    Ok(cmd)
}
