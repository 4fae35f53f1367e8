//! Usernames of resumable `jitsi-anonymous` sessions, so a client that
//! reconnects with `?previd=<id>` in its BOSH/WebSocket URL keeps the random
//! username it had (Jitsi's `mod_auth_jitsi-anonymous`).
//!
//! Prosody looks for a session in `full_sessions` whose stream-management
//! `resumption_token` equals `previd`. lilt keeps a small map per host,
//! `id -> username`, filled two ways:
//!
//! - by the `jitsi-anonymous` provider itself: every session bound on the
//!   host is remembered under its session id (the `id` of the stream header
//!   the client received) from `resource-bind` until `resource-unbind`;
//! - by XEP-0198 stream management: a `previd` not in the map is looked up
//!   among the server's resumable sessions
//!   ([`xmpp_core::smacks::username_of_resumable`], connected or
//!   hibernating), which is what Jitsi clients send. Code that knows other
//!   resumption ids may also call [`remember`] / [`forget`]; a session whose
//!   `SessionState::attributes` carry `resumption_token` (Prosody's field
//!   name) has that id forgotten at `resource-unbind`.
//!
//! Lookups are per host: a `previd` only finds sessions of the host the
//! client logs in to (Prosody searches every host; only this one matters
//! for a guest domain, and it keeps other hosts' usernames out of reach).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, Weak};

use xmpp_core::{Event, Host, Server, Value};

/// The map, kept as an extension of the [`Host`].
#[derive(Debug, Default)]
pub struct ResumableUsernames {
    host: OnceLock<String>,
    by_id: Mutex<HashMap<String, String>>,
    /// The server, known from the first `resource-bind` (a resumable
    /// session has bound a resource on the host before anyone can name it).
    server: OnceLock<Weak<Server>>,
}

impl ResumableUsernames {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn remember(&self, id: &str, username: &str) {
        self.map().insert(id.to_string(), username.to_string());
    }
    pub fn forget(&self, id: &str) {
        self.map().remove(id);
    }
    /// The username for `id`: remembered here, else a session stream
    /// management can resume.
    pub fn lookup(&self, id: &str) -> Option<String> {
        if let Some(found) = self.map().get(id).cloned() {
            return Some(found);
        }
        let server = self.server.get()?.upgrade()?;
        xmpp_core::smacks::username_of_resumable(&server, self.host.get()?, id)
    }
}

/// Remembers that the session resumable as `id` on `host` is `username`.
pub fn remember(host: &Host, id: &str, username: &str) {
    host.extension::<ResumableUsernames>()
        .remember(id, username);
}

/// The session resumable as `id` is gone.
pub fn forget(host: &Host, id: &str) {
    host.extension::<ResumableUsernames>().forget(id);
}

/// The username of the live (or hibernating) session resumable as `id`.
pub fn lookup(host: &Host, id: &str) -> Option<String> {
    host.extension::<ResumableUsernames>().lookup(id)
}

/// Hooks `resource-bind` / `resource-unbind` on `host` to keep its map of
/// session ids (see the module docs).
pub fn track_sessions(host: &Host) {
    host.events.hook("resource-bind", 0, |event: &mut Event| {
        if let (Some(host), Some(session)) = (&event.host, &event.origin)
            && let Some(username) = session.username()
        {
            let usernames = host.extension::<ResumableUsernames>();
            usernames.host.get_or_init(|| host.name.clone());
            usernames
                .server
                .get_or_init(|| std::sync::Arc::downgrade(&event.server));
            usernames.remember(&session.id, &username);
        }
        false
    });
    host.events.hook("resource-unbind", 0, |event: &mut Event| {
        if let (Some(host), Some(session)) = (&event.host, &event.origin) {
            forget(host, &session.id);
            let token = session
                .state()
                .attributes
                .get("resumption_token")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(token) = token {
                forget(host, &token);
            }
        }
        false
    });
}
