//! `lilt focus`: the focus as a standalone client of any XMPP server, with
//! Jicofo's `xmpp.client` settings as flags:
//!
//! ```text
//! lilt focus --xmpp HOST:PORT --jid focus@auth.D --password-file FILE \
//!     --domain D --muc conference.D --brewery jvbbrewery@internal.auth.D \
//!     [--jibri-brewery jibribrewery@internal.auth.D] [--insecure-tls] [--http ADDR:PORT]
//! ```
//!
//! The password may come from `LILT_XMPP_PASSWORD` instead of a file. The
//! session is made again when it drops (a new focus each time, as a Jicofo
//! restart would be). `--http` serves `/about/health`, `/stats` and
//! `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xmpp_core::Jid;
use xmpp_core::client::{ClientError, ConnectOptions};

use crate::focus::FocusOptions;
use crate::run::{StatsHandle, run_with_stats};

#[derive(Debug, Clone, Parser)]
#[command(name = "focus", about = "lilt's conference focus (what Jicofo does)")]
pub struct FocusArgs {
    /// HOST:PORT of the XMPP server's c2s listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub xmpp: String,
    /// The focus's account, focus@auth.D.
    #[arg(long)]
    pub jid: String,
    /// A file holding the password (else LILT_XMPP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The main domain, D.
    #[arg(long)]
    pub domain: String,
    /// The conference MUC, conference.D.
    #[arg(long)]
    pub muc: String,
    /// The bridges' brewery room, jvbbrewery@internal.auth.D.
    #[arg(long)]
    pub brewery: String,
    /// The recorders' brewery room.
    #[arg(long)]
    pub jibri_brewery: Option<String>,
    /// Accept any server certificate.
    #[arg(long)]
    pub insecure_tls: bool,
    /// Serve /about/health, /stats and /metrics on ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// Bridge selection: single (default), split, region or intra_region
    /// (or Jicofo's strategy class names).
    #[arg(long, value_name = "STRATEGY", default_value = "single")]
    pub bridge_selection: crate::selection::Strategy,
    /// Let a conference span bridges, relayed to each other (Jicofo's
    /// octo.enabled; split always may).
    #[arg(long)]
    pub octo: bool,
    /// Participants of one conference per bridge (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 80)]
    pub max_bridge_participants: usize,
    /// The region the region strategy falls back to (Jicofo's local-region).
    #[arg(long, value_name = "REGION")]
    pub local_region: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FocusError {
    #[error("no password: give --password-file or set LILT_XMPP_PASSWORD")]
    NoPassword,
    #[error("cannot read the password file {0}: {1}")]
    PasswordFile(PathBuf, std::io::Error),
    #[error("invalid JID {0}")]
    Jid(String),
    #[error("cannot serve HTTP on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl FocusArgs {
    fn password(&self) -> Result<String, FocusError> {
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| FocusError::PasswordFile(file.clone(), e))?;
            return Ok(text.trim_end_matches(['\r', '\n']).to_string());
        }
        std::env::var("LILT_XMPP_PASSWORD").map_err(|_| FocusError::NoPassword)
    }

    /// The focus's options from the flags.
    pub fn options(&self) -> FocusOptions {
        let mut o = FocusOptions::new(&self.jid, &self.domain);
        o.muc = self.muc.clone();
        o.brewery = self.brewery.clone();
        o.jibri_brewery = self.jibri_brewery.clone();
        o.selection.strategy = self.bridge_selection;
        o.selection.octo = self.octo;
        o.selection.max_participants_per_bridge = self.max_bridge_participants;
        o.selection.local_region = self.local_region.clone();
        o
    }
}

/// Runs `lilt focus` until interrupted: connects, runs, reconnects.
pub async fn run(args: FocusArgs) -> Result<(), FocusError> {
    let password = args.password()?;
    let jid = Jid::parse(&args.jid).map_err(|_| FocusError::Jid(args.jid.clone()))?;
    let stats: StatsHandle = Arc::new(Mutex::new(None));
    if let Some(addr) = args.http {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| FocusError::Http(addr, e))?;
        tokio::spawn(serve_http(listener, stats.clone()));
    }
    let mut backoff = Duration::from_secs(1);
    loop {
        let connect = ConnectOptions {
            address: args.xmpp.clone(),
            jid: jid.clone(),
            password: password.clone(),
            insecure_tls: args.insecure_tls,
            ca_file: None,
        };
        match xmpp_core::client::connect(&connect).await {
            Ok(link) => {
                backoff = Duration::from_secs(1);
                run_with_stats(link, args.options(), stats.clone()).await;
            }
            Err(ClientError::Auth { jid, condition }) => {
                return Err(ClientError::Auth { jid, condition }.into());
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the XMPP server; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// A minimal HTTP/1.1 responder for the three read-only endpoints.
async fn serve_http(listener: tokio::net::TcpListener, stats: StatsHandle) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let Ok(n) = socket.read(&mut buf).await else {
                return;
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let snapshot = stats.lock().ok().and_then(|s| s.clone());
            let (status, ctype, body) = http_response(&path, snapshot.as_ref());
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        });
    }
}

/// Status line, content type and body for a path (Jicofo's endpoints).
pub fn http_response(
    path: &str,
    stats: Option<&crate::stats::Stats>,
) -> (&'static str, &'static str, String) {
    match (path, stats) {
        ("/about/health", Some(s)) if s.healthy() => ("200 OK", "text/plain", String::new()),
        ("/about/health", _) => (
            "500 Internal Server Error",
            "text/plain",
            "No operational bridges\n".into(),
        ),
        ("/stats", Some(s)) => ("200 OK", "application/json", s.to_json().to_string()),
        ("/metrics", Some(s)) => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            s.to_openmetrics(),
        ),
        ("/stats" | "/metrics", None) => ("503 Service Unavailable", "text/plain", String::new()),
        _ => ("404 Not Found", "text/plain", String::new()),
    }
}
