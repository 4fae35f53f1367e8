//! How a client stream reached the server when it did not come over plain
//! TCP: BOSH (XEP-0206) or WebSocket (RFC 7395), with the HTTP request that
//! opened it.
//!
//! Prosody keeps that request on the session (`session.websocket_request`,
//! and the `request` of the `bosh-session` / `websocket-session` events);
//! modules read the URL query (`?room=...&token=...`: Jitsi's token
//! authentication reads `token`, `room` and `previd`) and the headers from
//! it. lilt keeps the same facts on [`crate::Session::transport`].

use std::net::IpAddr;

use crate::value::{Table, Value};

/// The transport a client stream runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// XEP-0124/XEP-0206: `<body/>` wrappers over HTTP long polling.
    Bosh,
    /// RFC 7395: one XML element per WebSocket text frame.
    WebSocket,
}

impl TransportKind {
    /// The event fired when a session of this kind starts, as Prosody names
    /// it: `bosh-session` or `websocket-session`.
    pub fn session_event(self) -> &'static str {
        match self {
            TransportKind::Bosh => "bosh-session",
            TransportKind::WebSocket => "websocket-session",
        }
    }
}

/// The HTTP request a BOSH or WebSocket session was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInfo {
    pub kind: TransportKind,
    /// `GET`, `POST`.
    pub method: String,
    /// The request path, without the query.
    pub path: String,
    /// The raw query string, without `?` (Prosody's `request.url.query`).
    pub query: Option<String>,
    /// The request headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The client's address: the peer's, or the one a trusted proxy named
    /// in `X-Forwarded-For`.
    pub ip: Option<IpAddr>,
    /// The request came over HTTPS (or a trusted proxy said so), or the
    /// transport is configured as secure (`consider_bosh_secure`,
    /// `consider_websocket_secure`).
    pub secure: bool,
}

impl TransportInfo {
    /// The decoded query parameters (`application/x-www-form-urlencoded`),
    /// in order; a name without `=` has an empty value.
    pub fn query_params(&self) -> Vec<(String, String)> {
        let Some(query) = &self.query else {
            return Vec::new();
        };
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(name), percent_decode(value))
            })
            .collect()
    }

    /// The first value of query parameter `name` (`token`, `room`, ...).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The request as Prosody's HTTP request object looks to modules (the
    /// `request` of `bosh-session` / `websocket-session`): `method`,
    /// `path`, `url` (`path`, `query`), `headers` (names lower-cased with
    /// `-` as `_`, the first value of each), `ip`, `secure`.
    pub fn request_table(&self) -> Table {
        let mut headers = Table::new();
        for (name, value) in &self.headers {
            let key = name.to_ascii_lowercase().replace('-', "_");
            if headers.get(&key).is_none() {
                headers.insert(key, Value::str(value.clone()));
            }
        }
        let mut url = Table::new();
        url.insert("path", Value::str(self.path.clone()));
        if let Some(q) = &self.query {
            url.insert("query", Value::str(q.clone()));
        }
        let mut request = Table::new();
        request.insert("method", Value::str(self.method.clone()));
        request.insert("path", Value::str(self.path.clone()));
        request.insert("url", Value::Table(url));
        request.insert("headers", Value::Table(headers));
        if let Some(ip) = self.ip {
            request.insert("ip", Value::str(ip.to_string()));
        }
        request.insert("secure", Value::Bool(self.secure));
        request
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes `%XX` escapes and `+` (a space in form encoding); invalid escapes
/// and invalid UTF-8 are kept as they are / replaced, never an error.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(query: Option<&str>) -> TransportInfo {
        TransportInfo {
            kind: TransportKind::WebSocket,
            method: "GET".into(),
            path: "/xmpp-websocket".into(),
            query: query.map(str::to_string),
            headers: vec![("origin".into(), "https://meet.example".into())],
            ip: None,
            secure: false,
        }
    }

    #[test]
    fn query_parameters_are_decoded() {
        let t = info(Some("room=my%20room&token=a.b.c&previd=&x+y=1%2B1&flag"));
        assert_eq!(t.query_param("room").as_deref(), Some("my room"));
        assert_eq!(t.query_param("token").as_deref(), Some("a.b.c"));
        assert_eq!(t.query_param("previd").as_deref(), Some(""));
        assert_eq!(t.query_param("x y").as_deref(), Some("1+1"));
        assert_eq!(t.query_param("flag").as_deref(), Some(""));
        assert_eq!(t.query_param("missing"), None);
        assert!(info(None).query_params().is_empty());
    }

    #[test]
    fn bad_escapes_are_kept() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[test]
    fn headers_are_case_insensitive() {
        assert_eq!(info(None).header("Origin"), Some("https://meet.example"));
        assert_eq!(info(None).header("host"), None);
    }
}
