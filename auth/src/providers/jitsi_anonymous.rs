//! `authentication = "jitsi-anonymous"`: Jitsi Meet's guest-domain provider
//! (`mod_auth_jitsi-anonymous.lua`). `ANONYMOUS` only, no accounts, like
//! `anonymous`, with one extra: a client whose BOSH/WebSocket URL carries
//! `previd=<id>` of a session that is still there (connected, or hibernating
//! for stream-management resumption) gets that session's username again
//! instead of a fresh random one, so a reconnecting Jitsi participant keeps
//! its identity. See [`crate::resumption`] for how sessions are found.
//!
//! As in Jitsi's module, usernames are UUIDs, and a `previd` that matches
//! nothing simply gives a fresh one.

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::auth::SaslContext;

use crate::backend::{Backend, Profile};
use crate::hashing::generate_uuid;
use crate::resumption::{self, ResumableUsernames};

pub struct JitsiAnonymous {
    host: String,
    resumable: Arc<ResumableUsernames>,
}

impl JitsiAnonymous {
    /// The backend for `host`; hooks the host's session events to know its
    /// resumable sessions.
    pub fn load(host: &Host) -> JitsiAnonymous {
        resumption::track_sessions(host);
        JitsiAnonymous {
            host: host.name.clone(),
            resumable: host.extension::<ResumableUsernames>(),
        }
    }
}

impl Backend for JitsiAnonymous {
    fn name(&self) -> &'static str {
        "jitsi-anonymous"
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn profile(&self) -> Profile {
        Profile {
            anonymous: true,
            ..Profile::default()
        }
    }
    fn anonymous_username(&self, ctx: &SaslContext) -> String {
        let previd = ctx
            .transport
            .as_ref()
            .and_then(|t| t.query_param("previd"))
            .filter(|id| !id.is_empty());
        if let Some(previd) = previd {
            if let Some(username) = self.resumable.lookup(&previd) {
                tracing::debug!(host = %self.host, session = %ctx.session_id, "previd {previd}: resuming username {username}");
                return username;
            }
            tracing::debug!(host = %self.host, session = %ctx.session_id, "previd {previd} matches no session; new username");
        }
        generate_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::transport::{TransportInfo, TransportKind};

    fn host() -> Arc<Host> {
        let server = xmpp_core::Server::for_tests();
        server.hosts().into_iter().next().expect("a test host")
    }

    fn ctx(query: Option<&str>) -> SaslContext {
        SaslContext {
            transport: Some(Arc::new(TransportInfo {
                kind: TransportKind::WebSocket,
                method: "GET".into(),
                path: "/xmpp-websocket".into(),
                query: query.map(str::to_string),
                headers: Vec::new(),
                ip: None,
                secure: true,
            })),
            ..SaslContext::default()
        }
    }

    #[test]
    fn previd_of_a_known_session_reuses_its_username() {
        let host = host();
        let backend = JitsiAnonymous::load(&host);
        resumption::remember(&host, "sess-1", "guest-one");
        assert_eq!(
            backend.anonymous_username(&ctx(Some("room=x&previd=sess-1"))),
            "guest-one"
        );
        let fresh = backend.anonymous_username(&ctx(Some("previd=unknown")));
        assert_ne!(fresh, "guest-one");
        assert_eq!(fresh.len(), 36, "a UUID: {fresh}");
        assert_ne!(backend.anonymous_username(&ctx(None)), fresh);
        resumption::forget(&host, "sess-1");
        assert_ne!(
            backend.anonymous_username(&ctx(Some("previd=sess-1"))),
            "guest-one"
        );
    }
}
