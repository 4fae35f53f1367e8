//! Federation between lilt servers (issue 19), over real sockets, TLS and
//! DNS, inside a user+network+mount namespace the test creates
//! (`unshare -rnm`): its own loopback, its own `/etc/resolv.conf` and
//! `/etc/hosts` bind-mounted over the system's, and a small DNS server the
//! test runs on 127.0.0.1:53 answering A and SRV records. No packet leaves
//! the namespace. Skipped with a message where unprivileged namespaces are
//! not available.
//!
//! The domains are under `.lilt`, a name nobody serves: libunbound (in
//! Prosody) answers the special-use `.test` itself with NXDOMAIN.
//!
//! Servers, each on its own loopback address with a certificate from a test
//! CA trusted through `ssl = { cafile = ... }`:
//!
//! - `a.lilt` (127.0.0.2:5269) reachable by its A record only;
//! - `b.lilt` reachable by `_xmpp-server._tcp.b.lilt` SRV only
//!   (`srv.b.lilt` = 127.0.0.3, port 5270);
//! - `c.lilt` and `d.lilt` (127.0.0.4, .5) with SASL EXTERNAL off
//!   (`modules_disabled = { "s2s_auth_certs" }`): dialback only;
//! - `f.lilt` (127.0.0.8) listening for direct TLS only
//!   (`s2s_direct_tls_ports = { 5271 }`, no `s2s_ports`), found through
//!   `_xmpps-server._tcp.f.lilt` SRV (XEP-0368);
//! - `e.lilt` (127.0.0.6) with a self-signed certificate, which `a.lilt`
//!   (`s2s_secure_auth = true`) refuses in both directions.
//!
//! Each pair exchanges messages both ways and a presence subscription.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use xmpp_core::client::{ClientLink, ConnectOptions, connect};
use xmpp_core::{Clock, Element, Jid};

const NS_CLIENT: &str = "jabber:client";
const INSIDE: &str = "LILT_S2S_TEST_NETNS";

/// Runs `name` again inside a fresh namespace; true when already inside.
fn enter_namespace(name: &str) -> bool {
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

/// The records the test DNS server answers.
fn zone() -> Vec<(&'static str, RData)> {
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    let srv = |port: u16, target: &str| {
        RData::SRV(SRV::new(0, 5, port, Name::from_ascii(target).unwrap()))
    };
    vec![
        ("a.lilt.", a([127, 0, 0, 2])),
        ("_xmpp-server._tcp.b.lilt.", srv(5270, "srv.b.lilt.")),
        ("srv.b.lilt.", a([127, 0, 0, 3])),
        ("c.lilt.", a([127, 0, 0, 4])),
        ("d.lilt.", a([127, 0, 0, 5])),
        ("e.lilt.", a([127, 0, 0, 6])),
        ("p.lilt.", a([127, 0, 0, 7])),
        ("_xmpps-server._tcp.f.lilt.", srv(5271, "f.lilt.")),
        ("f.lilt.", a([127, 0, 0, 8])),
    ]
}

/// A DNS server on 127.0.0.1:53 (UDP) answering from [`zone`]: names it
/// knows (and their parents) without a record of the asked type get an
/// empty answer, others NXDOMAIN.
fn start_dns() {
    let socket = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 in the namespace");
    let zone = zone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new();
            reply
                .set_id(query.id())
                .set_message_type(MessageType::Response)
                .set_op_code(query.op_code())
                .set_authoritative(true)
                .set_recursion_desired(query.recursion_desired())
                .set_recursion_available(true);
            let mut known = false;
            for q in query.queries() {
                reply.add_query(q.clone());
                let name = q.name().to_ascii().to_ascii_lowercase();
                for (n, rdata) in &zone {
                    // Parents of a name exist too (empty non-terminals):
                    // resolvers that minimise query names ask for them.
                    if name == "." || n.ends_with(&format!(".{name}")) {
                        known = true;
                    }
                    if *n == name {
                        known = true;
                        if rdata.record_type() == q.query_type() {
                            reply.add_answer(Record::from_rdata(
                                q.name().clone(),
                                60,
                                rdata.clone(),
                            ));
                        }
                    }
                }
            }
            if !known {
                reply.set_response_code(ResponseCode::NXDomain);
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer);
            }
        }
    });
    let _ = RecordType::A;
}

/// A test CA; certificates for `names` signed by it (and a self-signed one
/// for `e.lilt`) in `dir` as `<name>.crt`/`<name>.key`. Returns the CA file.
fn make_certificates(dir: &Path, names: &[&str]) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lilt s2s test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for name in names {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = if *name == "e.lilt" {
            params.self_signed(&key).unwrap()
        } else {
            params.signed_by(&key, &ca).unwrap()
        };
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    dir.join("ca.pem")
}

struct Server {
    /// `None` for a server that is not lilt.
    _running: Option<lilt::startup::RunningServer>,
    c2s: SocketAddr,
}

async fn start_server(
    dir: &Path,
    certs: &Path,
    ca: &Path,
    host: &str,
    ip: &str,
    s2s_port: u16,
    extra: &str,
) -> Server {
    let text = format!(
        r#"
interfaces = {{ "{ip}" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ {s2s_port} }}
authentication = "internal_hashed"
storage = "memory"
certificates = {certs:?}
ssl = {{ cafile = {ca:?} }}
modules_enabled = {{ "roster"; "disco"; "dialback"; "s2s_auth_certs" }}
{extra}
VirtualHost "{host}"
"#
    );
    let config = lua_compat::config::load_str(&text, &dir.join(format!("{host}.cfg.lua"))).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host(host).unwrap()).unwrap();
    for user in ["alice", "bob"] {
        provider.create_user(user, Some("secret")).unwrap();
    }
    let running = lilt::startup::start(server).await.unwrap();
    assert!(
        running.listening.iter().any(|l| l.kind == "s2s"),
        "{host} listens for servers"
    );
    let c2s = running
        .listening
        .iter()
        .find(|l| l.kind == "c2s")
        .map(|l| l.addr)
        .unwrap();
    Server {
        _running: Some(running),
        c2s,
    }
}

async fn login(server: &Server, jid: &str, ca: &Path) -> ClientLink {
    let mut link = connect(&ConnectOptions {
        address: server.c2s.to_string(),
        jid: Jid::parse(jid).unwrap(),
        password: "secret".into(),
        // e.lilt's own certificate is self-signed.
        insecure_tls: jid.ends_with("@e.lilt"),
        ca_file: Some(ca.to_path_buf()),
    })
    .await
    .unwrap_or_else(|e| panic!("{jid} cannot log in: {e}"));
    // Roster first, then available presence (as clients do).
    link.sender().send(
        Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", "roster")
            .child(Element::new("query", "jabber:iq:roster")),
    );
    wait_for(&mut link, "the roster", |e| e.id() == Some("roster")).await;
    link.sender().send(Element::new("presence", NS_CLIENT));
    link
}

/// The next stanza `pick` accepts (others are skipped), within 30 s.
async fn wait_for(link: &mut ClientLink, what: &str, pick: impl Fn(&Element) -> bool) -> Element {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, link.recv()).await {
            Ok(Some(e)) if pick(&e) => return e,
            Ok(Some(e)) => seen.push(e.to_xml()),
            Ok(None) => panic!("{}: link ended waiting for {what}; got {seen:#?}", link.jid),
            Err(_) => panic!("{}: timed out waiting for {what}; got {seen:#?}", link.jid),
        }
    }
}

fn chat(to: &str, body: &str) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("to", to)
        .attr("type", "chat")
        .child(Element::new("body", NS_CLIENT).text(body))
}

fn bare(e: &Element) -> String {
    e.from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default()
}

/// Messages both ways and a subscription from `a` to `b`, then `b`'s
/// presence reaches `a`.
async fn federate(a: &mut ClientLink, b: &mut ClientLink) {
    let (a_bare, b_bare) = (a.jid.to_bare().to_string(), b.jid.to_bare().to_string());
    a.sender().send(chat(&b_bare, "hello over there"));
    let m = wait_for(b, "a's message", |e| {
        e.name() == "message" && bare(e) == a_bare
    })
    .await;
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some("hello over there")
    );
    b.sender().send(chat(&a_bare, "hello back"));
    let m = wait_for(a, "b's reply", |e| {
        e.name() == "message" && bare(e) == b_bare
    })
    .await;
    assert_eq!(
        m.get_child_text("body", NS_CLIENT).as_deref(),
        Some("hello back")
    );

    a.sender().send(
        Element::new("presence", NS_CLIENT)
            .attr("to", b_bare.clone())
            .attr("type", "subscribe"),
    );
    wait_for(b, "the subscription request", |e| {
        e.name() == "presence" && e.type_() == Some("subscribe") && bare(e) == a_bare
    })
    .await;
    b.sender().send(
        Element::new("presence", NS_CLIENT)
            .attr("to", a_bare.clone())
            .attr("type", "subscribed"),
    );
    wait_for(a, "b's presence after the approval", |e| {
        e.name() == "presence" && e.type_().is_none() && bare(e) == b_bare
    })
    .await;
}

/// Inside the namespace: logs (`LILT_S2S_LOG`), resolver files, the DNS
/// server, the certificates, a runtime.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, tokio::runtime::Runtime) {
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
    let ca = make_certificates(
        &certs,
        &[
            "a.lilt", "b.lilt", "c.lilt", "d.lilt", "e.lilt", "p.lilt", "f.lilt",
        ],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (dir, certs, ca, rt)
}

#[test]
fn lilt_federates_with_lilt() {
    if !enter_namespace("lilt_federates_with_lilt") {
        return;
    }
    let (dir, certs, ca, rt) = setup();
    rt.block_on(async move {
        let d = dir.path();
        let a = start_server(
            d,
            &certs,
            &ca,
            "a.lilt",
            "127.0.0.2",
            5269,
            "s2s_secure_auth = true",
        )
        .await;
        let b = start_server(d, &certs, &ca, "b.lilt", "127.0.0.3", 5270, "").await;

        // A record (b → a) and SRV (a → b), SASL EXTERNAL with CA certificates.
        let mut alice = login(&a, "alice@a.lilt", &ca).await;
        let mut bob = login(&b, "bob@b.lilt", &ca).await;
        federate(&mut alice, &mut bob).await;

        // Dialback only.
        let no_external = "modules_disabled = { \"s2s_auth_certs\" }\ns2s_secure_auth = false";
        let c = start_server(d, &certs, &ca, "c.lilt", "127.0.0.4", 5269, no_external).await;
        let dd = start_server(d, &certs, &ca, "d.lilt", "127.0.0.5", 5269, no_external).await;
        let mut carol = login(&c, "alice@c.lilt", &ca).await;
        let mut dave = login(&dd, "bob@d.lilt", &ca).await;
        federate(&mut carol, &mut dave).await;

        // Direct TLS (XEP-0368) to f.lilt, which has no STARTTLS port.
        let f = start_server(
            d,
            &certs,
            &ca,
            "f.lilt",
            "127.0.0.8",
            5271,
            "s2s_ports = { }\ns2s_direct_tls_ports = { 5271 }",
        )
        .await;
        let mut frank = login(&f, "bob@f.lilt", &ca).await;
        federate(&mut frank, &mut alice).await;

        // a.lilt (s2s_secure_auth) refuses e.lilt's self-signed certificate,
        // both ways: each side's user gets its stanza bounced.
        let e = start_server(d, &certs, &ca, "e.lilt", "127.0.0.6", 5269, "").await;
        let mut eve = login(&e, "alice@e.lilt", &ca).await;
        alice
            .sender()
            .send(chat("alice@e.lilt", "to an untrusted server").attr("id", "m-e"));
        let err = wait_for(&mut alice, "the bounce", |e| e.id() == Some("m-e")).await;
        assert_eq!(err.type_(), Some("error"), "{err}");
        eve.sender()
            .send(chat("alice@a.lilt", "from an untrusted server").attr("id", "m-a"));
        let err = wait_for(&mut eve, "the bounce", |e| e.id() == Some("m-a")).await;
        assert_eq!(err.type_(), Some("error"), "{err}");
        let cond = err
            .get_child("error", NS_CLIENT)
            .and_then(|e| e.children().next().map(|c| c.name().to_string()));
        assert_eq!(cond.as_deref(), Some("remote-server-timeout"), "{err}");
        drop((a, b, c, dd, e, f));
    });
}

/// Debian's Prosody 0.12 as `p.lilt` on 127.0.0.7, run as root inside the
/// namespace (`run_as_root`), with an internal_plain account written as
/// Prosody stores it. Returns the child; its log is `dir/prosody.log`.
fn start_prosody(dir: &Path, certs: &Path, ca: &Path) -> std::process::Child {
    let data = dir.join("prosody-data");
    let accounts = data.join("p%2elilt").join("accounts");
    std::fs::create_dir_all(&accounts).unwrap();
    for user in ["alice", "bob"] {
        std::fs::write(
            accounts.join(format!("{user}.dat")),
            "return {\n\t[\"password\"] = \"secret\";\n};\n",
        )
        .unwrap();
    }
    let log = dir.join("prosody.log");
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
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "dialback" }}
VirtualHost "p.lilt"
"#,
        pid = dir.join("prosody.pid").display(),
        data = data.display(),
        log = log.display(),
        certs = certs.display(),
        ca = ca.display(),
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

async fn wait_for_port(addr: &str) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing listens on {addr}");
}

#[test]
fn lilt_federates_with_prosody() {
    let installed = Command::new("sh")
        .args(["-c", "command -v prosody"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!(
            "SKIPPED lilt_federates_with_prosody: Debian's prosody is not installed (apt-get install prosody)"
        );
        return;
    }
    if !enter_namespace("lilt_federates_with_prosody") {
        return;
    }
    let (dir, certs, ca, rt) = setup();
    let mut prosody = start_prosody(dir.path(), &certs, &ca);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let d = dir.path();
            // SASL EXTERNAL both ways (a.lilt also insists on valid certificates).
            let a = start_server(
                d,
                &certs,
                &ca,
                "a.lilt",
                "127.0.0.2",
                5269,
                "s2s_secure_auth = true",
            )
            .await;
            // Dialback only on lilt's side.
            let c = start_server(
                d,
                &certs,
                &ca,
                "c.lilt",
                "127.0.0.4",
                5269,
                "modules_disabled = { \"s2s_auth_certs\" }",
            )
            .await;
            wait_for_port("127.0.0.7:5222").await;
            let p = Server {
                _running: None,
                c2s: "127.0.0.7:5222".parse().unwrap(),
            };
            let mut palice = login(&p, "alice@p.lilt", &ca).await;
            let mut pbob = login(&p, "bob@p.lilt", &ca).await;
            let mut alice = login(&a, "alice@a.lilt", &ca).await;
            federate(&mut alice, &mut palice).await;
            let mut carol = login(&c, "alice@c.lilt", &ca).await;
            federate(&mut pbob, &mut carol).await;
            drop((a, c));
        })
    }));
    let _ = prosody.kill();
    let _ = prosody.wait();
    let log = std::fs::read_to_string(dir.path().join("prosody.log")).unwrap_or_default();
    if let Err(panic) = outcome {
        eprintln!("Prosody's log:\n{log}");
        std::panic::resume_unwind(panic);
    }
    let external = log
        .lines()
        .any(|l| l.contains("a.lilt") && l.contains("EXTERNAL"));
    if std::env::var_os("LILT_S2S_PROSODY_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(
        external,
        "Prosody did not use SASL EXTERNAL with a.lilt; its log:\n{log}"
    );
    let dialback = log
        .lines()
        .any(|l| l.contains("Received[s2sin_unauthed]: <result") && l.contains("from='c.lilt'"));
    assert!(
        dialback,
        "c.lilt did not authenticate to Prosody by dialback; its log:\n{log}"
    );
    assert!(
        log.contains("connection p.lilt->c.lilt is now authenticated"),
        "Prosody's dialback with c.lilt did not complete; its log:\n{log}"
    );
}
