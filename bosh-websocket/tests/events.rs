//! The HTTP service in process, spoken to over loopback sockets: the
//! request that opens a BOSH or WebSocket session (URL query, headers, the
//! client address a trusted proxy names) reaches modules in
//! `bosh-session` / `websocket-session` and stays on the session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use xmpp_core::transport::{TransportInfo, TransportKind};
use xmpp_core::value::Table;
use xmpp_core::{Clock, HostConfig, HostKind, Server, ServerConfig, Value};

fn list(items: &[&str]) -> Value {
    Value::Table(Table {
        seq: items.iter().map(|s| Value::str(*s)).collect(),
        ..Table::default()
    })
}

fn server() -> Arc<Server> {
    server_with(|_| {})
}

fn server_with(adjust: impl FnOnce(&mut ServerConfig)) -> Arc<Server> {
    let mut cfg = ServerConfig::default();
    cfg.global.set(
        "http_ports",
        Value::Table(Table {
            seq: vec![Value::Integer(0)],
            ..Table::default()
        }),
    );
    cfg.global
        .set("https_ports", Value::Table(Table::default()));
    cfg.global.set("http_interfaces", list(&["127.0.0.1"]));
    cfg.hosts.push(HostConfig {
        name: "localhost".into(),
        kind: HostKind::VirtualHost,
        section: Default::default(),
        defined_at: Default::default(),
    });
    adjust(&mut cfg);
    Server::new(cfg, Clock::System)
}

type Seen = Arc<Mutex<Vec<(String, Arc<TransportInfo>, Option<Value>)>>>;

fn watch_events(server: &Arc<Server>) -> Seen {
    let seen: Seen = Arc::default();
    let host = server.host("localhost").unwrap();
    for name in ["bosh-session", "websocket-session"] {
        for (bus, label) in [(&server.events, "global"), (&host.events, "host")] {
            let seen = seen.clone();
            bus.hook(name, 0, move |ev| {
                let transport = ev
                    .origin
                    .as_ref()
                    .and_then(|o| o.transport.clone())
                    .unwrap();
                // Prosody's payload names the session `session`.
                let session = ev.object::<xmpp_core::Session>("session").unwrap();
                assert!(Arc::ptr_eq(&session, ev.origin.as_ref().unwrap()));
                seen.lock().unwrap().push((
                    format!("{label} {}", ev.name),
                    transport,
                    ev.fields.get("request").cloned(),
                ));
                false
            });
        }
    }
    seen
}

async fn start(server: &Arc<Server>) -> (u16, watch::Sender<bool>) {
    start_tls(server, None).await
}

async fn start_tls(
    server: &Arc<Server>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, watch::Sender<bool>) {
    let host = server.host("localhost").unwrap();
    for m in ["bosh", "websocket"] {
        bosh_websocket::load_module(server, &host, m).unwrap();
    }
    let (tx, rx) = watch::channel(false);
    let started = bosh_websocket::start(server, tls, rx).unwrap();
    (started.listening[0].addr.port(), tx)
}

/// Reads until `needle` has arrived (or the peer closes).
async fn read_until<S: AsyncRead + Unpin>(s: &mut S, needle: &str) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let text = loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if text.contains(needle) {
            break text;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("read timed out")
            .unwrap();
        if n == 0 {
            break String::from_utf8_lossy(&data).into_owned();
        }
        data.extend_from_slice(&buf[..n]);
    };
    assert!(text.contains(needle), "no {needle:?} in {text:?}");
    text
}

fn masked_text_frame(payload: &str) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let bytes = payload.as_bytes();
    assert!(bytes.len() < 126);
    let mut f = vec![0x81, 0x80 | bytes.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(bytes.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[tokio::test]
async fn bosh_session_event_carries_the_request() {
    let server = server();
    let seen = watch_events(&server);
    let (port, _shutdown) = start(&server).await;
    let body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='10' to='localhost' wait='5' hold='1' ver='1.6'/>";
    let request = format!(
        "POST /http-bind?room=lobby&token=a.b.c HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: text/xml\r\nX-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: https\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let response = read_until(&mut s, "</body>").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("<stream:features"), "{response}");
    assert!(response.contains("sid='"));
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["global bosh-session", "host bosh-session"]);
    let (_, t, request) = &seen[0];
    assert_eq!(t.kind, TransportKind::Bosh);
    assert_eq!(t.query_param("room").as_deref(), Some("lobby"));
    assert_eq!(t.query_param("token").as_deref(), Some("a.b.c"));
    assert_eq!(t.path, "/http-bind");
    // 127.0.0.1 is a trusted proxy by default: its X-Forwarded-* count.
    assert_eq!(t.ip, Some("203.0.113.5".parse().unwrap()));
    assert!(t.secure);
    assert_eq!(t.header("x-forwarded-for"), Some("203.0.113.5"));
    let request = request.as_ref().unwrap();
    assert_eq!(
        request
            .get("url")
            .and_then(|u| u.get("query"))
            .and_then(Value::as_str),
        Some("room=lobby&token=a.b.c")
    );
    assert_eq!(
        request
            .get("headers")
            .and_then(|h| h.get("x_forwarded_for"))
            .and_then(Value::as_str),
        Some("203.0.113.5")
    );
    assert_eq!(bosh_websocket::bosh_sessions(&server), 1);
}

#[tokio::test]
async fn websocket_session_event_carries_the_request() {
    let server = server();
    let seen = watch_events(&server);
    let (port, _shutdown) = start(&server).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!(
        "GET /xmpp-websocket?token=t2&previd=p1 HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\nOrigin: https://meet.example\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let head = read_until(&mut s, "\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=")
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: xmpp")
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "announced when the stream opens"
    );
    s.write_all(&masked_text_frame(
        "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>",
    ))
    .await
    .unwrap();
    read_until(&mut s, "</stream:features>").await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (name, t, _) = &seen[0];
    assert_eq!(name, "global websocket-session");
    assert_eq!(t.kind, TransportKind::WebSocket);
    assert_eq!(t.query_param("token").as_deref(), Some("t2"));
    assert_eq!(t.query_param("previd").as_deref(), Some("p1"));
    assert_eq!(t.header("origin"), Some("https://meet.example"));
    assert_eq!(t.ip, Some("127.0.0.1".parse().unwrap()));
    assert!(!t.secure);
}

#[tokio::test]
async fn unknown_paths_and_hosts() {
    let server = server();
    let (port, _shutdown) = start(&server).await;
    for (request, status) in [
        ("GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n", "404"),
        ("GET /http-bind HTTP/1.1\r\nHost: localhost\r\n\r\n", "200"),
        // bosh is loaded for localhost only, and there is no http_default_host.
        (
            "GET /http-bind HTTP/1.1\r\nHost: meet.example\r\n\r\n",
            "404",
        ),
        (
            "OPTIONS /http-bind HTTP/1.1\r\nHost: localhost\r\nOrigin: https://x\r\n\r\n",
            "200",
        ),
        (
            "HEAD /http-bind/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "200",
        ),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let r = read_until(&mut s, "\r\n\r\n").await;
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}: {r}"
        );
    }
}

#[tokio::test]
async fn https_requests_are_secure() {
    let server = server_with(|cfg| {
        cfg.global.set("http_ports", Value::Table(Table::default()));
        cfg.global.set(
            "https_ports",
            Value::Table(Table {
                seq: vec![Value::Integer(0)],
                ..Table::default()
            }),
        );
        cfg.global.set("https_interfaces", list(&["127.0.0.1"]));
    });
    let seen = watch_events(&server);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let (port, _shutdown) = start_tls(&server, Some(Arc::new(server_tls))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(client_tls))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='5' hold='1'/>";
    let request = format!(
        "POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let response = read_until(&mut s, "</body>").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = seen.lock().unwrap().clone();
    let (_, t, _) = &seen[0];
    // 127.0.0.1 is not behind a proxy here: HTTPS itself makes it secure.
    assert!(t.secure);
}
