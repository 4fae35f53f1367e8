//! What the example's tests share: a config with free loopback ports, a
//! hook count over every bus, an IQ round trip and a plain HTTP GET.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xmpp_core::client::ClientLink;
use xmpp_core::{Element, Server, Table, Value};

pub const NS_CLIENT: &str = "jabber:client";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

pub fn port_zero() -> Value {
    Value::Table(Table {
        seq: vec![Value::Integer(0)],
        ..Table::default()
    })
}

/// Every handler hooked on the server's bus and on every host's.
pub fn total_hooks(server: &Server) -> usize {
    server.events.total_count()
        + server
            .hosts()
            .iter()
            .map(|h| h.events.total_count())
            .sum::<usize>()
}

/// Sends an IQ and waits for the answer with its id.
pub async fn iq(link: &mut ClientLink, id: &str, payload: Element) -> Element {
    let sent = link.sender().send(
        Element::new("iq", NS_CLIENT)
            .attr("type", "get")
            .attr("id", id)
            .attr("to", "localhost")
            .child(payload),
    );
    assert!(sent, "link is up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, link.recv()).await {
            Ok(Some(e)) if e.name() == "iq" && e.id() == Some(id) => return e,
            Ok(Some(_)) => continue,
            other => panic!("no answer to {id}: {other:?}"),
        }
    }
}

/// `GET path` over plain HTTP/1.1: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
