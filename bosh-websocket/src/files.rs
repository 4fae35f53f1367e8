//! Static files, as Prosody's mod_http_files: `http_files_dir` served at
//! `/files` (moved with `http_paths`), `http_index_files` (index.html,
//! index.htm) for directories. A small built-in type map stands in for
//! `/etc/mime.types`. Paths never leave the directory.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use xmpp_core::{Host, Server, Value};

use crate::routes::{HttpApp, HttpRequest, HttpResponse, handler};
use crate::server::error_page;

/// Registers the app on `host` when `http_files_dir` is set.
pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), crate::LoadError> {
    let Some(dir) = host.option_str("http_files_dir") else {
        tracing::warn!(host = %host.name, "http_files: http_files_dir is not set; nothing to serve");
        return Ok(());
    };
    let root = Arc::new(server.config.resolve_path(dir));
    let index: Arc<Vec<String>> = Arc::new(
        host.option("http_index_files")
            .and_then(Value::as_string_list)
            .unwrap_or_else(|| vec!["index.html".into(), "index.htm".into()]),
    );
    let serve = handler(move |req: HttpRequest| {
        let root = root.clone();
        let index = index.clone();
        async move { serve_file(&root, &index, req.rest.as_deref().unwrap_or("/")).await }
    });
    crate::routes::provide(
        server,
        Some(host),
        HttpApp {
            name: "files".into(),
            default_path: None,
            cors: None,
            routes: vec![("GET /*".into(), serve)],
        },
    )?;
    Ok(())
}

async fn serve_file(root: &Path, index: &[String], rest: &str) -> HttpResponse {
    let Some(relative) = safe_relative(rest) else {
        return error_page(StatusCode::FORBIDDEN, "You're not allowed to do that.");
    };
    let mut path = root.join(relative);
    if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_dir()) {
        let mut found = None;
        for name in index {
            let candidate = path.join(name);
            if tokio::fs::metadata(&candidate)
                .await
                .is_ok_and(|m| m.is_file())
            {
                found = Some(candidate);
                break;
            }
        }
        match found {
            Some(p) => path = p,
            None => return error_page(StatusCode::FORBIDDEN, "You're not allowed to do that."),
        }
    }
    match tokio::fs::read(&path).await {
        Ok(data) => HttpResponse::ok(content_type(&path), data),
        Err(_) => error_page(
            StatusCode::NOT_FOUND,
            "Whatever you were looking for is not here.",
        ),
    }
}

/// The path below the root, refusing `..` and absolute parts.
fn safe_relative(rest: &str) -> Option<PathBuf> {
    let decoded = xmpp_core::transport::percent_decode(&rest.replace('+', "%2B"));
    let mut out = PathBuf::new();
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(safe_relative("/a/b.html"), Some(PathBuf::from("a/b.html")));
        assert_eq!(safe_relative("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative("/a/../../etc/passwd"), None);
        assert_eq!(safe_relative("/%2e%2e/x"), None);
        assert_eq!(safe_relative("/a+b"), Some(PathBuf::from("a+b")));
    }
}
