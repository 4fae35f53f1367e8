//! The network the federation tests run in: a user+network+mount namespace
//! (`unshare -rnm`) with its own loopback, its own `/etc/resolv.conf` and
//! `/etc/hosts` bind-mounted over the system's, a small DNS server on
//! 127.0.0.1:53 answering A and SRV records from [`zone`], and certificates
//! from a test CA. No packet leaves the namespace.
//!
//! The domains are under `.lilt`, a name nobody serves: libunbound (in
//! Prosody) answers the special-use `.test` itself with NXDOMAIN.
#![allow(dead_code)]

pub mod attacker;
#[path = "../../bench/src/federation/ca.rs"]
mod ca;
#[path = "../../bench/src/federation/dns.rs"]
mod dns;
pub mod ejabberd;
pub mod lilt;
pub mod prosody;
pub mod social;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData};

const INSIDE: &str = "LILT_S2S_TEST_NETNS";

/// Runs the test `name` again inside a fresh namespace; true when already
/// inside (the caller goes on), false when the caller must return (the
/// child ran it, or namespaces are not available: skipped with a message).
pub fn enter_namespace(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let ok = Command::new("unshare")
        .args(["-rnm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIPPED {name}: unprivileged user+network+mount namespaces (unshare -rnm) are not available here"
        );
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("unshare")
        .args([
            "-rnm",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{name} failed inside its namespace");
    false
}

/// Is `program` on the PATH? When not, says the test is skipped.
pub fn installed(program: &str, test: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED {test}: {program} is not installed (apt-get install {package})");
    }
    found
}

/// Our own resolver configuration and hosts file over the system's (this
/// mount namespace only).
fn mount_resolver_files(dir: &Path) {
    let resolv = dir.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions attempts:1 timeout:2\n",
    )
    .unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    for (file, over) in [(&resolv, "/etc/resolv.conf"), (&hosts, "/etc/hosts")] {
        let st = Command::new("mount")
            .arg("--bind")
            .arg(file)
            .arg(over)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "cannot bind-mount {} over {over}",
            file.display()
        );
    }
}

/// Where each test server lives. Also the names certificates are made for.
///
/// - `a.lilt` (127.0.0.2:5269) reachable by its A record only;
/// - `b.lilt` reachable by `_xmpp-server._tcp.b.lilt` SRV only
///   (`srv.b.lilt` = 127.0.0.3, port 5270);
/// - `c.lilt`, `d.lilt` (127.0.0.4, .5): dialback only;
/// - `e.lilt` (127.0.0.6) with a self-signed certificate;
/// - `p.lilt` (127.0.0.7): Debian's Prosody, its MUC `rooms.p.lilt`;
/// - `f.lilt` (127.0.0.8) by `_xmpps-server._tcp.f.lilt` SRV (direct TLS);
/// - `x.lilt` (127.0.0.9): Debian's ejabberd, its MUC `rooms.x.lilt`;
/// - `rooms.a.lilt`: a.lilt's MUC;
/// - `h.lilt`: two A records, 127.0.0.100 (nothing answers: a black hole,
///   see [`black_hole`]) first, then 127.0.0.10;
/// - `sa.lilt`, `ps.lilt`, `xs.lilt`: by `_xmpp-server._tcp` SRV only, to
///   `srv.<domain>` on the servers of a.lilt, p.lilt, x.lilt (port 5270);
/// - `ta.lilt`, `pt.lilt`, `xt.lilt`: by `_xmpps-server._tcp` SRV only
///   (direct TLS), to `tls.<domain>` on the same servers (port 5271);
/// - `pe.lilt` (127.0.0.7), `xe.lilt` (127.0.0.9): a Prosody host and an
///   ejabberd host with self-signed certificates;
/// - `evil.lilt` (127.0.0.11): the attacker of `s2s_cases/hostile.rs`.
pub fn zone() -> Vec<(&'static str, RData)> {
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    let srv = |port: u16, target: &str| {
        RData::SRV(SRV::new(0, 5, port, Name::from_ascii(target).unwrap()))
    };
    vec![
        ("a.lilt.", a([127, 0, 0, 2])),
        ("rooms.a.lilt.", a([127, 0, 0, 2])),
        ("_xmpp-server._tcp.b.lilt.", srv(5270, "srv.b.lilt.")),
        ("srv.b.lilt.", a([127, 0, 0, 3])),
        ("c.lilt.", a([127, 0, 0, 4])),
        ("d.lilt.", a([127, 0, 0, 5])),
        ("e.lilt.", a([127, 0, 0, 6])),
        ("p.lilt.", a([127, 0, 0, 7])),
        ("rooms.p.lilt.", a([127, 0, 0, 7])),
        ("_xmpps-server._tcp.f.lilt.", srv(5271, "f.lilt.")),
        ("f.lilt.", a([127, 0, 0, 8])),
        ("x.lilt.", a([127, 0, 0, 9])),
        ("rooms.x.lilt.", a([127, 0, 0, 9])),
        ("h.lilt.", a([127, 0, 0, 100])),
        ("h.lilt.", a([127, 0, 0, 10])),
        // The resolution matrix: each server also serves a domain found by
        // `_xmpp-server._tcp` SRV only (no A record of its own, the target
        // another name) and one by `_xmpps-server._tcp` only (direct TLS,
        // XEP-0368, port 5271); `pe.lilt` has a self-signed certificate.
        ("_xmpp-server._tcp.sa.lilt.", srv(5270, "srv.sa.lilt.")),
        ("srv.sa.lilt.", a([127, 0, 0, 2])),
        ("_xmpps-server._tcp.ta.lilt.", srv(5271, "tls.ta.lilt.")),
        ("tls.ta.lilt.", a([127, 0, 0, 2])),
        ("_xmpp-server._tcp.ps.lilt.", srv(5270, "srv.ps.lilt.")),
        ("srv.ps.lilt.", a([127, 0, 0, 7])),
        ("_xmpps-server._tcp.pt.lilt.", srv(5271, "tls.pt.lilt.")),
        ("tls.pt.lilt.", a([127, 0, 0, 7])),
        ("pe.lilt.", a([127, 0, 0, 7])),
        ("xe.lilt.", a([127, 0, 0, 9])),
        ("_xmpp-server._tcp.xs.lilt.", srv(5270, "srv.xs.lilt.")),
        ("srv.xs.lilt.", a([127, 0, 0, 9])),
        ("_xmpps-server._tcp.xt.lilt.", srv(5271, "tls.xt.lilt.")),
        ("tls.xt.lilt.", a([127, 0, 0, 9])),
        // The hostile tests' attacker (its own authoritative server).
        ("evil.lilt.", a([127, 0, 0, 11])),
    ]
}

/// Every name in the zone a server may need a certificate for.
pub const CERT_NAMES: &[&str] = &[
    "a.lilt",
    "rooms.a.lilt",
    "b.lilt",
    "c.lilt",
    "d.lilt",
    "e.lilt",
    "p.lilt",
    "rooms.p.lilt",
    "f.lilt",
    "x.lilt",
    "rooms.x.lilt",
    "h.lilt",
    "sa.lilt",
    "ta.lilt",
    "ps.lilt",
    "pt.lilt",
    "pe.lilt",
    "xe.lilt",
    "xs.lilt",
    "xt.lilt",
];

/// A DNS server on 127.0.0.1:53 (UDP) answering from [`zone`] (the
/// server `bench s2s` uses too): names it knows (and their parents)
/// without a record of the asked type get an empty answer, others
/// NXDOMAIN. Answers keep the zone's order.
fn start_dns() {
    let socket = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 in the namespace");
    let zone = zone()
        .into_iter()
        .map(|(name, rdata)| (name.to_string(), rdata))
        .collect();
    dns::serve(socket, zone);
}

/// A black hole at `addr` (an address in the namespace): a listener with
/// a backlog of 0 whose accept queue is filled by one connection, so the
/// kernel drops every further SYN, as for a host that is down. Keep what
/// it returns alive. Checks that a connect there indeed hangs.
pub async fn black_hole(addr: &str) -> (tokio::net::TcpListener, tokio::net::TcpStream) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(addr).unwrap();
    let listener = socket.listen(0).unwrap();
    let filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    let probe = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(addr),
    )
    .await;
    assert!(
        probe.is_err(),
        "{addr} is no black hole: a connect there ended ({probe:?})"
    );
    (listener, filler)
}

/// A test CA; certificates for `names` signed by it (and self-signed ones
/// for `e.lilt`, `pe.lilt` and `xe.lilt`) in `dir` as `<name>.crt`/`<name>.key` (the CA `bench s2s`
/// uses too). Returns the CA file.
fn make_certificates(dir: &Path, names: &[&str]) -> PathBuf {
    ca::make_certificates(dir, names, &["e.lilt", "pe.lilt", "xe.lilt"]).unwrap()
}

/// What a test inside the namespace has: its directory, the certificates
/// directory, the CA file, a runtime.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub certs: PathBuf,
    pub ca: PathBuf,
}

/// Inside the namespace: logs (`LILT_S2S_LOG`), resolver files, the DNS
/// server, the certificates, a runtime.
pub fn setup() -> (Net, tokio::runtime::Runtime) {
    if let Ok(filter) = std::env::var("LILT_S2S_LOG") {
        // e.g. LILT_S2S_LOG=xmpp_core::s2s=debug to watch the streams.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    mount_resolver_files(dir.path());
    start_dns();
    let certs = dir.path().join("certs");
    let ca = make_certificates(&certs, CERT_NAMES);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (Net { dir, certs, ca }, rt)
}

pub async fn wait_for_port(addr: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

/// Runs `body`, stops `child` whatever happened, and on failure prints
/// the log file `log` before passing the panic on.
pub fn with_child<T>(
    child: &mut std::process::Child,
    log: &Path,
    body: impl FnOnce() -> T,
) -> (T, String) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    match outcome {
        Ok(v) => (v, text),
        Err(panic) => {
            eprintln!("{}:\n{text}", log.display());
            std::panic::resume_unwind(panic);
        }
    }
}
