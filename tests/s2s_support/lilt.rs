//! lilt servers in the namespace, clients logged in to any server, and the
//! exchanges every pair of servers is checked with.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use xmpp_core::client::{ClientLink, ConnectOptions, connect};
use xmpp_core::{Clock, Element, Jid};

use super::Net;

pub const NS_CLIENT: &str = "jabber:client";

pub struct Server {
    /// `None` for a server that is not lilt.
    pub running: Option<lilt::startup::RunningServer>,
    pub c2s: SocketAddr,
}

impl Server {
    /// A server that is not lilt, by its client port.
    pub fn other(c2s: &str) -> Server {
        Server {
            running: None,
            c2s: c2s.parse().unwrap(),
        }
    }
}

/// lilt serving `host` on `ip` (c2s 5222, s2s `s2s_port`), with the
/// accounts alice and bob (password `secret`); `extra` goes into the
/// global section, `hosts` after the VirtualHost (components).
pub async fn start_server(net: &Net, host: &str, ip: &str, s2s_port: u16, extra: &str) -> Server {
    start_server_with(net, host, ip, s2s_port, extra, "").await
}

pub async fn start_server_with(
    net: &Net,
    host: &str,
    ip: &str,
    s2s_port: u16,
    extra: &str,
    hosts: &str,
) -> Server {
    let text = config_text(net, host, ip, s2s_port, extra, hosts);
    let file = net.dir.path().join(format!("{host}.cfg.lua"));
    std::fs::write(&file, &text).unwrap();
    start_from(host, lua_compat::config::load_str(&text, &file).unwrap()).await
}

/// The config [`start_server_with`] starts with.
pub fn config_text(
    net: &Net,
    host: &str,
    ip: &str,
    s2s_port: u16,
    extra: &str,
    hosts: &str,
) -> String {
    let (certs, ca) = (&net.certs, &net.ca);
    format!(
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
{hosts}
"#
    )
}

/// lilt serving `host` (and any other VirtualHost of `config`) from
/// `config`, with the accounts alice and bob on each VirtualHost.
pub async fn start_from(host: &str, config: xmpp_core::config::ServerConfig) -> Server {
    let vhosts: Vec<String> = config
        .hosts
        .iter()
        .filter(|h| h.kind == xmpp_core::HostKind::VirtualHost)
        .map(|h| h.name.clone())
        .collect();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    assert!(vhosts.iter().any(|h| h == host), "{host} is no VirtualHost");
    for vhost in &vhosts {
        let provider = auth::provider_for_host(&server.host(vhost).unwrap()).unwrap();
        for user in ["alice", "bob"] {
            provider.create_user(user, Some("secret")).unwrap();
        }
    }
    let running = lilt::startup::start(server).await.unwrap();
    let c2s = running
        .listening
        .iter()
        .find(|l| l.kind == "c2s")
        .map(|l| l.addr)
        .unwrap();
    Server {
        running: Some(running),
        c2s,
    }
}

/// Logs in (TLS with the test CA), fetches the roster and sends available
/// presence, as clients do.
pub async fn login(server: &Server, jid: &str, ca: &Path) -> ClientLink {
    let mut link = connect(&ConnectOptions {
        address: server.c2s.to_string(),
        jid: Jid::parse(jid).unwrap(),
        password: "secret".into(),
        // e.lilt's, pe.lilt's and xe.lilt's certificates are self-signed.
        insecure_tls: ["@e.lilt", "@pe.lilt", "@xe.lilt"]
            .iter()
            .any(|d| jid.ends_with(d)),
        ca_file: Some(ca.to_path_buf()),
    })
    .await
    .unwrap_or_else(|e| panic!("{jid} cannot log in: {e}"));
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
pub async fn wait_for(
    link: &mut ClientLink,
    what: &str,
    pick: impl Fn(&Element) -> bool,
) -> Element {
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

pub fn chat(to: &str, body: &str) -> Element {
    Element::new("message", NS_CLIENT)
        .attr("to", to)
        .attr("type", "chat")
        .child(Element::new("body", NS_CLIENT).text(body))
}

pub fn bare(e: &Element) -> String {
    e.from()
        .and_then(|f| Jid::parse(f).ok())
        .map(|j| j.to_bare().to_string())
        .unwrap_or_default()
}

pub fn body(e: &Element) -> Option<String> {
    e.get_child_text("body", NS_CLIENT)
}

/// Messages both ways and a subscription from `a` to `b`, then `b`'s
/// presence reaches `a`.
pub async fn federate(a: &mut ClientLink, b: &mut ClientLink) {
    let (a_bare, b_bare) = (a.jid.to_bare().to_string(), b.jid.to_bare().to_string());
    a.sender().send(chat(&b_bare, "hello over there"));
    let m = wait_for(b, "a's message", |e| {
        e.name() == "message" && bare(e) == a_bare
    })
    .await;
    assert_eq!(body(&m).as_deref(), Some("hello over there"));
    b.sender().send(chat(&a_bare, "hello back"));
    let m = wait_for(a, "b's reply", |e| {
        e.name() == "message" && bare(e) == b_bare
    })
    .await;
    assert_eq!(body(&m).as_deref(), Some("hello back"));

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
