//! The HTTP listeners (`http_ports`, `https_ports`) and the request path:
//! hyper 1 serves each connection (HTTP/1.1, keep-alive, upgrades), axum's
//! router hands every request to `dispatch`, which finds the module route
//! as Prosody's net.http.server and mod_http do, applies
//! `trusted_proxies` and CORS, and renders Prosody-like error pages.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use xmpp_core::Server;
use xmpp_core::stanza::escape;

use crate::config::HttpConfig;
use crate::io::TimeoutIo;
use crate::routes::{HttpRequest, HttpResponse, HttpRoutes, Resolution};

/// Why the HTTP service could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} for {kind}: {source}")]
    Bind {
        kind: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A listening socket: `http` or `https`.
#[derive(Debug, Clone, Copy)]
pub struct HttpListening {
    pub kind: &'static str,
    pub addr: SocketAddr,
}

/// What every request handler shares.
struct Context {
    routes: Arc<HttpRoutes>,
    /// The options read at start, used when the server is gone.
    config: Arc<HttpConfig>,
    /// Whose config in force each request reads ([`crate::config::in_force`]).
    server: Weak<Server>,
}

impl Context {
    /// The options in force for a new request.
    fn options(&self) -> Arc<HttpConfig> {
        self.server
            .upgrade()
            .and_then(|s| crate::config::in_force(&s))
            .unwrap_or_else(|| self.config.clone())
    }
}

/// Facts about the connection a request came on.
#[derive(Debug, Clone, Copy)]
struct ConnInfo {
    peer: SocketAddr,
    tls: bool,
}

/// What opening another HTTP or HTTPS listener needs (a reload that adds
/// a port to `http_ports` or `https_ports`).
#[derive(Clone)]
pub struct HttpListeners {
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    send_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl HttpListeners {
    /// Can `kind` (`http`, `https`) be served? HTTPS needs a certificate.
    pub fn serves(&self, kind: &str) -> bool {
        kind == "http" || (kind == "https" && self.tls.is_some())
    }

    /// Listens on `addr` for `kind`; connections are served until the
    /// returned task is aborted (only the listener closes: connections
    /// made through it go on) or the server shuts down.
    pub fn listen(
        &self,
        kind: &'static str,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, JoinHandle<()>), HttpError> {
        let listener = xmpp_core::listen::bind(addr).map_err(|source| HttpError::Bind {
            kind,
            addr,
            source,
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        let tls = if kind == "https" {
            self.tls.clone()
        } else {
            None
        };
        Ok((bound, self.spawn(listener, tls)))
    }

    fn spawn(&self, listener: TcpListener, tls: Option<TlsAcceptor>) -> JoinHandle<()> {
        tokio::spawn(accept_loop(
            listener,
            self.router.clone(),
            tls,
            self.send_timeout,
            self.shutdown.clone(),
        ))
    }
}

/// The listeners [`start`] opened.
pub struct Started {
    pub listening: Vec<HttpListening>,
    /// Each listener's accept task, in the order of `listening`.
    pub tasks: Vec<JoinHandle<()>>,
    /// For listeners opened later.
    pub listeners: HttpListeners,
}

/// Opens the HTTP and HTTPS listeners; connections are served until
/// `shutdown` flips. HTTPS needs `tls` (the hosts' certificates); without
/// it `https_ports` are skipped with a warning. Each request reads the
/// options of `server`'s config in force.
pub fn start(
    server: &Arc<Server>,
    routes: Arc<HttpRoutes>,
    config: HttpConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: watch::Receiver<bool>,
) -> Result<Started, HttpError> {
    let ctx = Arc::new(Context {
        routes,
        config: Arc::new(config.clone()),
        server: Arc::downgrade(server),
    });
    let router = ctx.routes.mounted().into_iter().fold(
        axum::Router::new()
            .fallback(dispatch)
            .with_state(ctx.clone()),
        |router, mounted| router.merge(mounted),
    );
    let tls = tls.map(|t| {
        let mut t = (*t).clone();
        t.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(t))
    });
    if tls.is_none() && !config.https_ports.is_empty() {
        tracing::warn!(
            "https_ports is set but no certificate is available; not listening for HTTPS"
        );
    }
    let listeners = HttpListeners {
        router,
        tls,
        send_timeout: config.send_timeout,
        shutdown,
    };
    let mut listening = Vec::new();
    let mut tasks = Vec::new();
    let plans = [
        ("http", &config.http_ports, &config.http_interfaces),
        ("https", &config.https_ports, &config.https_interfaces),
    ];
    for (kind, ports, interfaces) in plans {
        if !listeners.serves(kind) {
            continue;
        }
        let bound = xmpp_core::listen::bind_all(ports, interfaces)
            .map_err(|(addr, source)| HttpError::Bind { kind, addr, source })?;
        for listener in bound {
            if let Ok(addr) = listener.local_addr() {
                listening.push(HttpListening { kind, addr });
                let tls = if kind == "https" {
                    listeners.tls.clone()
                } else {
                    None
                };
                tasks.push(listeners.spawn(listener, tls));
            }
        }
    }
    Ok(Started {
        listening,
        tasks,
        listeners,
    })
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    send_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let router = router.clone();
                    let tls = tls.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        serve_connection(tcp, peer, router, tls, send_timeout, shutdown).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    send_timeout: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let io = TimeoutIo::new(tcp, send_timeout);
    match tls {
        None => {
            let info = ConnInfo { peer, tls: false };
            http1(TokioIo::new(io), router, info, shutdown).await;
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(Duration::from_secs(60), acceptor.accept(io)).await;
            match handshake {
                Ok(Ok(stream)) => {
                    let info = ConnInfo { peer, tls: true };
                    http1(TokioIo::new(stream), router, info, shutdown).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "HTTPS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
            }
        }
    }
}

async fn http1<I>(io: I, router: axum::Router, info: ConnInfo, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // The connection's facts go into each request; the router is shared.
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info);
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// Every request: find its route and run it.
async fn dispatch(
    State(ctx): State<Arc<Context>>,
    Extension(conn): Extension<ConnInfo>,
    mut req: axum::extract::Request,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header(header::HOST)
        .map(str::to_string)
        .or_else(|| req.uri().host().map(str::to_string));
    let config = ctx.options();
    let (ip, secure) = config.trusted_proxies.client(
        conn.peer.ip(),
        conn.tls,
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok()),
    );
    let origin = header(header::ORIGIN).map(str::to_string);
    let resolution = ctx.routes.resolve(
        &method,
        host.as_deref(),
        &path,
        config.default_host.as_deref(),
    );
    let response = match resolution {
        Resolution::Route { route, rest } => {
            let mut extensions = xmpp_core::http::Extensions::new();
            if let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() {
                extensions.insert(upgrade);
            }
            let body = match axum::body::to_bytes(req.into_body(), config.max_content_size).await {
                Ok(b) => b,
                Err(_) => {
                    return into_response(
                        error_page(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
                        &method,
                    );
                }
            };
            let request = HttpRequest {
                method: method.clone(),
                path,
                query,
                headers,
                body,
                ip,
                peer: conn.peer,
                secure,
                rest,
                extensions,
            };
            let mut response = (route.handler)(request).await;
            if let Some(cors) = &route.cors {
                cors.apply(origin.as_deref(), &mut response.headers);
            }
            response
        }
        Resolution::Preflight(cors) => {
            let mut response = HttpResponse::new(StatusCode::OK);
            if let Some(cors) = cors {
                cors.apply(origin.as_deref(), &mut response.headers);
            }
            response
        }
        Resolution::Redirect(location) => {
            let location = match &query {
                Some(q) => format!("{location}?{q}"),
                None => location,
            };
            HttpResponse::new(StatusCode::MOVED_PERMANENTLY).with_header("location", &location)
        }
        Resolution::NotFound(message) => error_page(StatusCode::NOT_FOUND, &message),
        Resolution::BadRequest(message) => error_page(StatusCode::BAD_REQUEST, &message),
    };
    into_response(response, &method)
}

fn into_response(r: HttpResponse, method: &Method) -> Response {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(r.body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = r.status;
    *response.headers_mut() = r.headers;
    response
}

/// An HTML error page, as mod_http_errors serves them.
pub fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    page(status, title, message)
}

/// The page an endpoint shows a browser ("It works!").
pub fn message_page(title: &str, message: &str) -> HttpResponse {
    page(StatusCode::OK, title, message)
}

fn page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{message}</p>\n</body>\n</html>\n",
        title = escape(title),
        message = escape(message),
    );
    let mut r = HttpResponse::new(status).with_body(body);
    r.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Headers as (lower-case name, value) pairs.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}
