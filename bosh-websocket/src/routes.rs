//! The route API modules use to serve HTTP, as Prosody's
//! `module:provides("http", { name = ..., default_path = ..., route = {...} })`.
//!
//! An [`HttpApp`] has a name, a default base path (`/name` unless given;
//! `http_paths = { name = "/other" }` moves it, per host or globally, with
//! `$host` replaced) and routes keyed as Prosody keys them: `"GET"` (the
//! base path itself), `"GET /"`, `"POST /rooms"`, `"GET /*"` (anything
//! below; the rest of the path is handed to the handler). An app provided
//! for a host answers requests whose `Host` header names that host (its
//! `http_host` option, else its name), or any request when the host is
//! `http_default_host` and the header names no HTTP host. An app provided
//! globally (a module in the global `modules_enabled`) answers on every
//! host. Requests are matched as net.http.server does: global routes
//! first, then the host's; `HEAD` falls back to `GET`; `OPTIONS` on a path
//! with a CORS-enabled route is a preflight; a path missing only its
//! trailing slash is redirected.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::http::Method;
use xmpp_core::{Host, Server, Value};

use crate::cors::{CorsOptions, CorsPolicy};

pub use xmpp_core::http::{Handler, HandlerFuture, HttpApp, HttpRequest, HttpResponse, handler};

/// A route as registered.
#[derive(Clone)]
pub struct Route {
    /// `None`: global (any host).
    pub host: Option<String>,
    pub method: String,
    /// The full path; for wildcard routes, the prefix before `/*`.
    pub path: String,
    pub wildcard: bool,
    pub app: String,
    pub cors: Option<Arc<CorsPolicy>>,
    /// The app's own CORS wish and every method it serves, for the policy
    /// made again when a reload changes the CORS options.
    pub app_cors: Option<bool>,
    pub app_methods: Arc<Vec<String>>,
    pub handler: Handler,
}

/// Why a route could not be added.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("HTTP app {app:?}: invalid route {key:?} (expected \"METHOD\" or \"METHOD /path\")")]
    InvalidRoute { app: String, key: String },
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
}

/// Every route of the server, kept as a server extension.
#[derive(Default)]
pub struct HttpRoutes {
    routes: RwLock<Vec<Route>>,
    /// Host names (`http_host`) with at least one app.
    hosts: RwLock<Vec<String>>,
    /// Every app provided: (host name, `None` when global; app name; its
    /// default path).
    apps: RwLock<Vec<(Option<String>, String, String)>>,
    /// Whole axum routers served before the apps (an in-process component's
    /// own routes, such as the media bridge's WebSocket channel); mounted
    /// before the HTTP server starts.
    mounted: RwLock<Vec<axum::Router>>,
}

/// What to do with a request.
pub enum Resolution {
    Route {
        route: Route,
        rest: Option<String>,
    },
    /// `OPTIONS` on a path served with CORS: an empty 200 with its headers.
    Preflight(Option<Arc<CorsPolicy>>),
    Redirect(String),
    NotFound(String),
    BadRequest(String),
}

/// Normalises a base path as Prosody's `util.http.normalize_path`: a
/// leading slash, no trailing one (except for `/` itself).
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

/// The base path of `app` on `host` (`http_paths`, host then global, else
/// the default), `$host` replaced.
pub fn base_path(server: &Server, host: Option<&Host>, app: &str, default_path: &str) -> String {
    let from = |v: Option<&Value>| {
        v.and_then(|p| p.get(app))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let configured = host
        .and_then(|h| server.config.host(&h.name))
        .and_then(|h| from(h.section.get("http_paths")))
        .or_else(|| from(server.config.get_global("http_paths")));
    let path = normalize_path(configured.as_deref().unwrap_or(default_path));
    match host {
        Some(h) => path.replace("$host", &h.name),
        None => path,
    }
}

/// The name an app on `host` is served under (`http_host`, else the host).
pub fn http_host(host: &Host) -> String {
    host.option_str("http_host")
        .unwrap_or(&host.name)
        .to_string()
}

/// Registers `app` for `host` (`None`: global). Returns its base path.
pub fn provide(
    server: &Arc<Server>,
    host: Option<&Arc<Host>>,
    app: HttpApp,
) -> Result<String, RouteError> {
    let cors_options = CorsOptions::from_config(&server.config)?;
    let default_path = app
        .default_path
        .clone()
        .unwrap_or_else(|| format!("/{}", app.name));
    let base = base_path(server, host.map(|h| h.as_ref()), &app.name, &default_path);
    let mut parsed = Vec::new();
    for (key, handler) in app.routes {
        let (method, sub) = match key.split_once(char::is_whitespace) {
            Some((m, p)) => (m.to_string(), p.trim().to_string()),
            None => (key.clone(), String::new()),
        };
        if method.is_empty() || method.starts_with('/') || !(sub.is_empty() || sub.starts_with('/'))
        {
            return Err(RouteError::InvalidRoute { app: app.name, key });
        }
        let full = if base == "/" && sub.starts_with('/') {
            sub.clone()
        } else {
            format!("{base}{sub}")
        };
        let full = if full.is_empty() {
            "/".to_string()
        } else {
            full
        };
        parsed.push((method.to_ascii_uppercase(), full, handler));
    }
    let methods: Vec<String> = parsed.iter().map(|(m, _, _)| m.clone()).collect();
    let cors = cors_options
        .policy_for(&app.name, app.cors, &methods)
        .map(Arc::new);
    let app_methods = Arc::new(methods);
    let host_name = host.map(|h| http_host(h));
    let routes = server.extension::<HttpRoutes>();
    // The module loading now owns the app: unloading it stops serving it.
    {
        let routes = routes.clone();
        let (xmpp_host, http_host, app) = (
            host.map(|h| h.name.clone()),
            host_name.clone(),
            app.name.clone(),
        );
        xmpp_core::module::scope::on_unload(move || {
            routes.remove_app(xmpp_host.as_deref(), http_host.as_deref(), &app)
        });
    }
    {
        let mut table = routes.routes.write().unwrap_or_else(|e| e.into_inner());
        for (method, path, handler) in parsed {
            let (path, wildcard) = match path.strip_suffix("/*") {
                Some(prefix) => (prefix.to_string(), true),
                None => (path, false),
            };
            let duplicate = table.iter().any(|r| {
                r.host == host_name
                    && r.method == method
                    && r.path == path
                    && r.wildcard == wildcard
            });
            if duplicate {
                tracing::warn!(
                    "App {} added handler twice for '{method} {path}', ignoring",
                    app.name
                );
                continue;
            }
            table.push(Route {
                host: host_name.clone(),
                method,
                path,
                wildcard,
                app: app.name.clone(),
                cors: cors.clone(),
                app_cors: app.cors,
                app_methods: app_methods.clone(),
                handler,
            });
        }
    }
    routes
        .apps
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push((
            host.map(|h| h.name.clone()),
            app.name.clone(),
            default_path.clone(),
        ));
    if let Some(h) = host_name {
        let mut hosts = routes.hosts.write().unwrap_or_else(|e| e.into_inner());
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    }
    Ok(base)
}

/// The public URL of an app, as Prosody's `module:http_url()`:
/// `http_external_url` with the base path, else `scheme://host:port/path`
/// for the first listening HTTPS (else HTTP) port.
pub fn http_url(
    server: &Server,
    host: Option<&Host>,
    app: &str,
    default_path: &str,
    listening: &[(&str, SocketAddr)],
) -> String {
    let base = base_path(server, host, app, default_path);
    let option = |name: &str| match host {
        Some(h) => h.option_str(name).map(str::to_string),
        None => server
            .config
            .get_global(name)
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(external) = option("http_external_url") {
        let external = external.trim_end_matches('/');
        return format!("{external}{base}");
    }
    let pick = listening
        .iter()
        .find(|(k, _)| *k == "https")
        .or_else(|| listening.iter().find(|(k, _)| *k == "http"));
    let Some((scheme, addr)) = pick else {
        return "http://disabled.invalid/".to_string();
    };
    let name = option("http_host")
        .or_else(|| host.map(|h| h.name.clone()))
        .or_else(|| option("http_default_host"))
        .unwrap_or_else(|| addr.ip().to_string());
    let default_port = if *scheme == "https" { 443 } else { 80 };
    if addr.port() == default_port {
        format!("{scheme}://{name}{base}")
    } else {
        format!("{scheme}://{name}:{}{base}", addr.port())
    }
}

impl HttpRoutes {
    /// Serves `router`'s routes too (they win over the apps' for the paths
    /// they name). Takes effect when the HTTP server starts.
    pub fn mount(&self, router: axum::Router) {
        self.mounted
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(router);
    }

    /// The routers given to [`HttpRoutes::mount`].
    pub fn mounted(&self) -> Vec<axum::Router> {
        self.mounted
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Logs where each app is served, as Prosody does at start.
    pub fn log_urls(&self, server: &Server, listening: &[(&str, SocketAddr)]) {
        for (host, app, default_path) in self.apps.read().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let host = host.as_deref().and_then(|h| server.host(h));
            let url = http_url(server, host.as_deref(), app, default_path, listening);
            tracing::info!("Serving '{app}' at {url}");
        }
    }

    /// Stops serving app `app` of XMPP host `host` (`None`: global), whose
    /// routes are under `http_host`.
    pub fn remove_app(&self, host: Option<&str>, http_host: Option<&str>, app: &str) {
        self.routes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r| !(r.app == app && r.host.as_deref() == http_host));
        self.apps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(h, a, _)| !(a == app && h.as_deref() == host));
    }

    /// Makes every route's CORS policy again from `options` (the CORS
    /// options a reload put in force).
    pub fn refresh_cors(&self, options: &CorsOptions) {
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        for r in routes.iter_mut() {
            r.cors = options
                .policy_for(&r.app, r.app_cors, &r.app_methods)
                .map(Arc::new);
        }
    }

    /// How many routes are served (every app's, not the mounted routers').
    pub fn route_count(&self) -> usize {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Is any route registered?
    pub fn is_empty(&self) -> bool {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
            && self
                .mounted
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
    }

    /// Finds what serves `method path` for a request naming `host_header`.
    pub fn resolve(
        &self,
        method: &Method,
        host_header: Option<&str>,
        path: &str,
        default_host: Option<&str>,
    ) -> Resolution {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&routes, None, method, path) {
            return found;
        }
        let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
        let named = host_header.map(strip_port);
        let host = match named {
            Some(h) if hosts.iter().any(|x| x.eq_ignore_ascii_case(h)) => h.to_ascii_lowercase(),
            _ => match default_host.filter(|d| hosts.iter().any(|x| x == d)) {
                Some(d) => d.to_string(),
                None => {
                    return match named {
                        Some(h) => Resolution::NotFound(format!("Unknown host: {h}")),
                        None => Resolution::BadRequest("Missing or invalid 'Host' header".into()),
                    };
                }
            },
        };
        if let Some(found) = find(&routes, Some(&host), method, path) {
            return found;
        }
        // A path missing only its trailing slash.
        let slashed = format!("{path}/");
        let same_method = |r: &Route| {
            r.method == method.as_str() || (method == Method::HEAD && r.method == "GET")
        };
        if routes.iter().any(|r| {
            (r.host.is_none() || r.host.as_deref() == Some(&host))
                && same_method(r)
                && (r.path == slashed || (r.wildcard && r.path == path))
        }) {
            return Resolution::Redirect(slashed);
        }
        Resolution::NotFound("Not found".into())
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| h.trim_start_matches('['));
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The route for `method path` among the routes of `host` (`None`: global).
fn find(routes: &[Route], host: Option<&str>, method: &Method, path: &str) -> Option<Resolution> {
    let of_host = |r: &&Route| r.host.as_deref() == host;
    let lookup = |m: &str| -> Option<(Route, Option<String>)> {
        let exact = routes
            .iter()
            .filter(of_host)
            .find(|r| r.method == m && !r.wildcard && r.path == path);
        if let Some(r) = exact {
            return Some((r.clone(), None));
        }
        routes
            .iter()
            .filter(of_host)
            .filter(|r| r.method == m && r.wildcard)
            .filter_map(|r| {
                let rest = path.strip_prefix(r.path.as_str())?;
                (rest.starts_with('/') || (rest.is_empty() && r.path.ends_with('/')))
                    .then(|| (r, rest.to_string()))
            })
            .max_by_key(|(r, _)| r.path.len())
            .map(|(r, rest)| (r.clone(), Some(rest)))
    };
    if let Some((route, rest)) = lookup(method.as_str()) {
        return Some(Resolution::Route { route, rest });
    }
    if method == Method::HEAD
        && let Some((route, rest)) = lookup("GET")
    {
        return Some(Resolution::Route { route, rest });
    }
    if method == Method::OPTIONS {
        let cors = routes
            .iter()
            .filter(of_host)
            .find(|r| r.path == path && r.cors.is_some())
            .map(|r| r.cors.clone());
        if let Some(cors) = cors {
            return Some(Resolution::Preflight(cors));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn ok() -> Handler {
        handler(|_req| async { HttpResponse::new(StatusCode::OK) })
    }

    fn app(name: &str, keys: &[&str]) -> HttpApp {
        HttpApp {
            name: name.into(),
            default_path: None,
            cors: None,
            routes: keys.iter().map(|k| (k.to_string(), ok())).collect(),
        }
    }

    fn route_of(r: Resolution) -> (String, Option<String>) {
        match r {
            Resolution::Route { route, rest } => (
                format!("{} {:?} {}", route.method, route.host, route.path),
                rest,
            ),
            Resolution::Preflight(_) => ("preflight".into(), None),
            Resolution::Redirect(l) => (format!("redirect {l}"), None),
            Resolution::NotFound(m) => (format!("404 {m}"), None),
            Resolution::BadRequest(m) => (format!("400 {m}"), None),
        }
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_path("http-bind/"), "/http-bind");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn host_and_global_routes() {
        let server = Server::for_tests();
        let host = server.host("localhost").unwrap();
        provide(
            &server,
            Some(&host),
            app("bosh", &["GET", "POST /", "POST"]),
        )
        .unwrap();
        provide(&server, None, app("health", &["GET", "GET /*"])).unwrap();
        let routes = server.extension::<HttpRoutes>();
        let r = |m: Method, h: Option<&str>, p: &str| route_of(routes.resolve(&m, h, p, None));
        assert_eq!(
            r(Method::POST, Some("localhost:5280"), "/bosh").0,
            "POST Some(\"localhost\") /bosh"
        );
        assert_eq!(
            r(Method::POST, Some("LOCALHOST"), "/bosh/").0,
            "POST Some(\"localhost\") /bosh/"
        );
        assert_eq!(
            r(Method::HEAD, Some("localhost"), "/bosh").0,
            "GET Some(\"localhost\") /bosh"
        );
        assert_eq!(
            r(Method::GET, Some("elsewhere"), "/bosh").0,
            "404 Unknown host: elsewhere"
        );
        assert_eq!(
            r(Method::GET, None, "/bosh").0,
            "400 Missing or invalid 'Host' header"
        );
        assert_eq!(
            r(Method::GET, Some("elsewhere"), "/health").0,
            "GET None /health"
        );
        assert_eq!(
            r(Method::GET, Some("x"), "/health/a/b"),
            ("GET None /health".into(), Some("/a/b".into()))
        );
        assert_eq!(
            r(Method::OPTIONS, Some("localhost"), "/bosh").0,
            "preflight"
        );
        assert_eq!(
            r(Method::DELETE, Some("localhost"), "/bosh").0,
            "404 Not found"
        );
        // The default host answers for names that are not HTTP hosts.
        assert_eq!(
            route_of(routes.resolve(
                &Method::POST,
                Some("127.0.0.1:5280"),
                "/bosh",
                Some("localhost")
            ))
            .0,
            "POST Some(\"localhost\") /bosh"
        );
    }

    #[test]
    fn paths_and_redirects() {
        let mut cfg = xmpp_core::ServerConfig::default();
        cfg.hosts.push(xmpp_core::HostConfig {
            name: "example.com".into(),
            kind: xmpp_core::HostKind::VirtualHost,
            section: Default::default(),
            defined_at: Default::default(),
        });
        let mut paths = xmpp_core::value::Table::new();
        paths.insert("files", Value::str("/$host/files/"));
        cfg.global.set("http_paths", Value::Table(paths));
        let server = Server::new(cfg, xmpp_core::Clock::System);
        let host = server.host("example.com").unwrap();
        let base = provide(&server, Some(&host), app("files", &["GET /"])).unwrap();
        assert_eq!(base, "/example.com/files");
        let routes = server.extension::<HttpRoutes>();
        let r = routes.resolve(
            &Method::GET,
            Some("example.com"),
            "/example.com/files",
            None,
        );
        assert_eq!(route_of(r).0, "redirect /example.com/files/");
        assert!(matches!(
            provide(&server, Some(&host), app("bad", &["/path"])),
            Err(RouteError::InvalidRoute { .. })
        ));
        let url = http_url(
            &server,
            Some(&host),
            "files",
            "/files",
            &[("http", "127.0.0.1:5280".parse().unwrap())],
        );
        assert_eq!(url, "http://example.com:5280/example.com/files");
    }
}
