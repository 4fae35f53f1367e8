//! Debian's Prosody 0.12 as `p.lilt` on 127.0.0.7, run as root inside the
//! namespace (`run_as_root`), with internal_plain accounts alice and bob
//! written as Prosody stores them.

use std::process::{Child, Command};

use super::Net;

/// The hosts a Prosody of the tests may serve (p.lilt, and in the
/// matrix tests the others).
pub const HOSTS: &[&str] = &["p.lilt", "ps.lilt", "pt.lilt", "pe.lilt"];

/// Starts Prosody; `modules` are added to the defaults (roster, saslauth,
/// tls, disco, dialback), `hosts` follows the VirtualHost. Its log is
/// `dir/prosody.log`.
pub fn start(net: &Net, modules: &[&str], hosts: &str) -> Child {
    start_with(net, modules, "", hosts)
}

/// [`start`] with `global` added to the global section. Every host of
/// [`HOSTS`] has the accounts alice and bob.
pub fn start_with(net: &Net, modules: &[&str], global: &str, hosts: &str) -> Child {
    let dir = net.dir.path();
    let data = dir.join("prosody-data");
    for host in HOSTS {
        let accounts = data.join(host.replace('.', "%2e")).join("accounts");
        std::fs::create_dir_all(&accounts).unwrap();
        for user in ["alice", "bob"] {
            std::fs::write(
                accounts.join(format!("{user}.dat")),
                "return {\n\t[\"password\"] = \"secret\";\n};\n",
            )
            .unwrap();
        }
    }
    let extra: String = modules.iter().map(|m| format!("; {m:?}")).collect();
    let config = format!(
        r#"
run_as_root = true
daemonize = false
pidfile = "{pid}"
data_path = "{data}"
log = {{ debug = "{log}" }}
interfaces = {{ "127.0.0.7" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ 5269 }}
http_ports = {{ }}
https_ports = {{ }}
authentication = "internal_plain"
certificates = "{certs}"
ssl = {{ cafile = "{ca}" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "dialback"{extra} }}
{global}
VirtualHost "p.lilt"
{hosts}
"#,
        pid = dir.join("prosody.pid").display(),
        data = data.display(),
        log = log(net).display(),
        certs = net.certs.display(),
        ca = net.ca.display(),
    );
    let file = dir.join("prosody.cfg.lua");
    std::fs::write(&file, config).unwrap();
    Command::new("prosody")
        .arg("-F")
        .arg("--config")
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

pub fn log(net: &Net) -> std::path::PathBuf {
    net.dir.path().join("prosody.log")
}

pub fn installed(test: &str) -> bool {
    super::installed("prosody", test, "prosody")
}
