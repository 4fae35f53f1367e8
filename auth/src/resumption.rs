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
//! - by XEP-0198 stream management, once it gives a session a resumption id:
//!   it calls [`remember`] with that id (and [`forget`] when the session is
//!   gone for good, hibernation included). A session whose
//!   `SessionState::attributes` carry `resumption_token` (Prosody's field
//!   name) has that id forgotten at `resource-unbind` as well.
//!
//! Lookups are per host: a `previd` only finds sessions of the host the
//! client logs in to (Prosody searches every host; only this one matters
//! for a guest domain, and it keeps other hosts' usernames out of reach).

use std::collections::HashMap;
use std::sync::Mutex;

use xmpp_core::{Event, Host, Value};

/// The map, kept as an extension of the [`Host`].
#[derive(Debug, Default)]
pub struct ResumableUsernames {
    by_id: Mutex<HashMap<String, String>>,
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
    pub fn lookup(&self, id: &str) -> Option<String> {
        self.map().get(id).cloned()
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
            remember(host, &session.id, &username);
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
