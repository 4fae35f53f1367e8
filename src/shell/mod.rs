//! Prosody's admin console: `mod_admin_shell` served on `mod_admin_socket`'s
//! Unix socket (`admin_socket`, default `prosody.sock` in the data
//! directory), and `lilt shell`, the client (`prosodyctl shell`'s habits).
//! Prosody's own `prosodyctl shell` works against lilt's socket too, and
//! `lilt shell` against Prosody's.
//!
//! - [`line`](mod@line): a console line (`user:create("a@b", "pw")`) parsed as the
//!   Lua call it is; lilt runs no Lua here, so only literal arguments.
//! - [`commands`]: what each call does, in Prosody's words ([`sessions`]:
//!   the calls about sessions, rooms, the config and statistics).
//! - [`modules`]: the calls `module:load`, `module:unload` and `module:reload`.
//! - [`session`]: the admin stream, sans-IO.
//! - [`client`]: `lilt shell [COMMAND [ARGS...]]`.
//!
//! Loaded when `admin_shell` (or `admin_socket`) is enabled, as Prosody
//! 0.12's default config has it.

pub mod client;
pub mod commands;
pub mod line;
pub mod modules;
pub mod session;
pub mod sessions;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xmpp_core::{Server, ServerConfig, Value};

use commands::Effect;
use session::{Action, AdminStream};

/// Is the console enabled for this config (some host loads `admin_shell`
/// or `admin_socket`)?
pub fn enabled(config: &ServerConfig) -> bool {
    lua_compat::modulemanager::global_modules(config)
        .iter()
        .any(|m| m == "admin_shell" || m == "admin_socket")
}

/// The console's socket: `admin_socket`, relative to the data directory,
/// default `prosody.sock`.
pub fn socket_path(config: &ServerConfig) -> PathBuf {
    let name = config
        .get_global("admin_socket")
        .and_then(Value::as_str)
        .unwrap_or("prosody.sock");
    crate::startup::data_path(config).join(name)
}

/// Listens on the console socket (replacing a stale one, as Prosody does)
/// until `shutdown`; the socket file is removed when it stops.
pub fn start(
    server: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(PathBuf, JoinHandle<()>)> {
    let path = socket_path(&server.config);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    let task_path = path.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(serve(server.clone(), stream));
                    }
                    Err(e) => tracing::warn!(target: "admin_socket", "accepting a console connection: {e}"),
                },
                _ = shutdown.changed() => break,
            }
        }
        let _ = std::fs::remove_file(&task_path);
    });
    Ok((path, task))
}

/// One console connection.
async fn serve(server: Arc<Server>, mut conn: UnixStream) {
    let id = xmpp_core::session::new_session_id("admin");
    tracing::debug!(session = %id, "Admin client connected");
    let mut stream = AdminStream::new(id.clone());
    let mut buf = vec![0u8; 16 * 1024];
    'conn: loop {
        let actions = match conn.read(&mut buf).await {
            Ok(0) | Err(_) => stream.eof(),
            Ok(n) => stream.feed(buf.get(..n).unwrap_or_default()),
        };
        let mut pending = actions;
        while !pending.is_empty() {
            let mut next = Vec::new();
            for action in pending {
                match action {
                    Action::Send(bytes) => {
                        if conn.write_all(bytes.as_bytes()).await.is_err() {
                            break 'conn;
                        }
                    }
                    Action::Run(line) => {
                        let srv = server.clone();
                        let reply = tokio::task::spawn_blocking(move || {
                            let reply = match line::parse(&line) {
                                Ok(parsed) => commands::run(&srv, &parsed),
                                Err(e) => commands::Reply {
                                    output: Vec::new(),
                                    outcome: commands::Outcome::NotUnderstood(e.0),
                                    effect: Effect::None,
                                },
                            };
                            (line, reply)
                        })
                        .await;
                        let Ok((line, reply)) = reply else {
                            break 'conn;
                        };
                        tracing::info!(session = %id, "Console command: {}", redact(&line));
                        next.extend(stream.reply(&reply));
                        match reply.effect {
                            Effect::None => {}
                            Effect::Close => next.push(Action::Close),
                            Effect::Shutdown => {
                                // As SIGTERM: the server's own shutdown path.
                                // SAFETY: kill on our own pid.
                                unsafe {
                                    libc::kill(libc::getpid(), libc::SIGTERM);
                                }
                            }
                        }
                    }
                    Action::Close => {
                        let _ = conn.shutdown().await;
                        break 'conn;
                    }
                }
            }
            pending = next;
        }
    }
    tracing::debug!(session = %id, "Admin client disconnected");
}

/// A console line for the log, without the passwords it may carry.
fn redact(line: &str) -> String {
    match line::parse(line) {
        Ok(line::Line::Call { object, method, .. }) if object == "user" => {
            format!("user:{method}(...)")
        }
        _ => line.to_string(),
    }
}
