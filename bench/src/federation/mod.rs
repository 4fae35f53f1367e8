//! The private network `bench s2s` runs in, as the federation tests do
//! (`tests/s2s_support`): a user+network+mount namespace (`unshare -rnm`,
//! entered by re-running the bench inside it) with only a loopback, our own
//! `/etc/resolv.conf` and `/etc/hosts` bind-mounted over the system's, the
//! DNS server of [`dns`] on 127.0.0.1:53, and certificates from a
//! throw-away CA ([`ca`]) that every server trusts. No packet leaves the namespace.
//!
//! Two domains, `a.lilt` on 127.0.0.2 and `b.lilt` on 127.0.0.3 (A records,
//! s2s on 5269, c2s on 5222); each pair of servers under test takes them
//! in turn. [`peers`] starts lilt, Prosody or ejabberd as one of them.

pub mod ca;
pub mod dns;
pub mod peers;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::A;

/// Set in the environment of the bench re-run inside the namespace.
const INSIDE: &str = "LILT_BENCH_S2S_NETNS";

/// The two federating domains and their addresses.
pub const DOMAINS: [(&str, &str); 2] = [("a.lilt", "127.0.0.2"), ("b.lilt", "127.0.0.3")];

/// Whether this process runs inside the namespace.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// Runs `bench <args>` again inside a new namespace with its loopback up;
/// returns when it ends.
pub fn run_inside(args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let status = Command::new("unshare")
        .args([
            "-rnm",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(exe)
        .args(args)
        .env(INSIDE, "1")
        .status()
        .map_err(|e| format!("unshare -rnm (util-linux): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the run inside the namespace failed ({status}); unprivileged user namespaces \
             (unshare -rnm) and iproute2 are needed"
        ))
    }
}

/// The zone: each domain's A record.
fn zone() -> dns::Zone {
    DOMAINS
        .iter()
        .filter_map(|(name, ip)| {
            let ip: Ipv4Addr = ip.parse().ok()?;
            Some((format!("{name}."), RData::A(A(ip))))
        })
        .collect()
}

/// Inside the namespace: resolver files over the system's (this mount
/// namespace only) and the DNS server.
pub fn set_up_resolution(dir: &Path) -> Result<(), String> {
    let resolv = dir.join("resolv.conf");
    let hosts = dir.join("hosts");
    let write =
        |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()));
    write(
        &resolv,
        "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n",
    )?;
    write(&hosts, "127.0.0.1 localhost\n")?;
    for (file, over) in [(&resolv, "/etc/resolv.conf"), (&hosts, "/etc/hosts")] {
        let ok = Command::new("mount")
            .arg("--bind")
            .arg(file)
            .arg(over)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot bind-mount {} over {over}", file.display()));
        }
    }
    let socket =
        UdpSocket::bind("127.0.0.1:53").map_err(|e| format!("DNS on 127.0.0.1:53: {e}"))?;
    dns::serve(socket, zone());
    Ok(())
}

/// A CA and a certificate signed by it for each domain (`<domain>.crt`,
/// `.key` in `dir`); returns the CA file.
pub fn make_certificates(dir: &Path) -> Result<PathBuf, String> {
    let names: Vec<&str> = DOMAINS.iter().map(|(name, _)| *name).collect();
    ca::make_certificates(dir, &names, &[])
}
