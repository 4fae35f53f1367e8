//! What a module needs to serve HTTP, without depending on the HTTP
//! server: the request and response a handler sees, the [`HttpApp`] a
//! module provides (Prosody's `module:provides("http", { ... })`), and the
//! [`HttpService`] the transport crate installs to serve them
//! (`bosh-websocket`'s `http` module does, when it loads).
//!
//! A module provides an app with [`crate::ModuleContext::provide_http`],
//! which loads `http` first (as Prosody's modules `depends("http")`) and
//! takes the app's routes away again when the module unloads.

use std::any::Any;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
pub use http::{Extensions, HeaderMap, HeaderValue, Method, StatusCode};

use crate::host::Host;
use crate::server::Server;

/// A request as a route handler sees it.
pub struct HttpRequest {
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address (after `trusted_proxies`).
    pub ip: IpAddr,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// HTTPS, or a trusted proxy's `X-Forwarded-Proto: https`.
    pub secure: bool,
    /// For `/*` routes: the part of the path below the route.
    pub rest: Option<String>,
    /// What the HTTP server attaches (the connection upgrade, for
    /// WebSocket: hyper's `OnUpgrade`).
    pub extensions: Extensions,
}

impl HttpRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn new(status: StatusCode) -> HttpResponse {
        HttpResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A 200 with a body of the given content type.
    pub fn ok(content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse::new(StatusCode::OK)
            .with_header("content-type", content_type)
            .with_body(body)
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> HttpResponse {
        self.body = body.into();
        self
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> HttpResponse {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }
}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;
/// A route handler.
pub type Handler = Arc<dyn Fn(HttpRequest) -> HandlerFuture + Send + Sync>;

/// Wraps an async function as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(HttpRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HttpResponse> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

/// An HTTP app a module provides.
pub struct HttpApp {
    pub name: String,
    /// `/name` when `None`.
    pub default_path: Option<String>,
    /// The app's own `cors = { enabled = ... }`; `None` follows
    /// `http_default_cors_enabled`.
    pub cors: Option<bool>,
    /// Routes keyed as Prosody keys them (`"GET"`, `"POST /"`, `"GET /*"`).
    pub routes: Vec<(String, Handler)>,
}

/// The server's HTTP service, as the transport crate implements it.
pub trait HttpService: Send + Sync + Any {
    /// Serves `app` for `host` (`None`: every host); returns its base path.
    fn provide(
        &self,
        server: &Arc<Server>,
        host: Option<&Arc<Host>>,
        app: HttpApp,
    ) -> Result<String, String>;
    /// Stops serving the app `app` of `host` (`None`: the global one).
    fn remove(&self, server: &Server, host: Option<&str>, app: &str);
}

#[derive(Default)]
struct Slot(RwLock<Option<Arc<dyn HttpService>>>);

/// Installs the server's HTTP service (the first one stays).
pub fn set_service(server: &Server, service: Arc<dyn HttpService>) {
    let slot = server.extension::<Slot>();
    let mut s = slot.0.write().unwrap_or_else(|e| e.into_inner());
    if s.is_none() {
        *s = Some(service);
    }
}

/// Where the HTTP server listens, as bound: a port 0 in `http_ports` is the
/// port the system chose, which modules handing out URLs must use.
#[derive(Default)]
struct Bound(RwLock<Vec<(String, SocketAddr)>>);

/// Records the listeners the HTTP server opened (`http`, `https`), replacing
/// what was recorded before.
pub fn set_bound(server: &Server, listening: &[(&str, SocketAddr)]) {
    let bound = server.extension::<Bound>();
    *bound.0.write().unwrap_or_else(|e| e.into_inner()) = listening
        .iter()
        .map(|(kind, addr)| (kind.to_string(), *addr))
        .collect();
}

/// The addresses the HTTP server listens on for `kind`, in the order of its
/// ports (empty before it started).
pub fn bound(server: &Server, kind: &str) -> Vec<SocketAddr> {
    server
        .extension::<Bound>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, a)| *a)
        .collect()
}

/// The server's HTTP service, once one is installed.
pub fn service(server: &Server) -> Option<Arc<dyn HttpService>> {
    server
        .extension::<Slot>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}
