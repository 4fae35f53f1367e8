//! `muc_size` (Jitsi's mod_muc_size), on a VirtualHost: HTTP endpoints on
//! the host's HTTP server (base path `/`, movable with `http_paths =
//! { muc_size = … }`):
//!
//! - `GET /room-size?room=NAME&domain=DOMAIN[&subdomain=TENANT]`: the room
//!   `[TENANT]NAME@<muc_mapper_domain_prefix>.DOMAIN` (prefix `conference`
//!   by default): `{"participants":N}`, the occupants without the focus
//!   (N - 1 when there is more than one); 404 when there is no such room,
//!   400 without a query;
//! - `GET /room?…` (same parameters): `[{"jid":occupant JID,"email":…,
//!   "display_name":…}]`, one entry per session of every occupant but the
//!   focus (`<email/>` and `<nick xmlns='http://jabber.org/protocol/nick'/>`
//!   of its presence, `""` when absent);
//! - `GET /sessions`: the number of bound client sessions, as text.
//!
//! `enable_roomsize_token_verification = true` asks `/room-size` and
//! `/room` for a `token` parameter, a JWT verified with the host's token
//! options (`app_id`, `app_secret`/`asap_key_server`/`cache_keys_url`,
//! issuers, audiences: `auth::token::TokenVerifier`) whose `room`/`sub`
//! claims must allow the room asked about (`verify_room`, as
//! `token_verification`); a missing or invalid token is answered 403. As
//! Jitsi's module, the option without a token configuration on the host is
//! an error (lilt refuses the configuration rather than leaving the routes
//! out).
//!
//! It serves its routes through its module context
//! ([`xmpp_core::ModuleContext::provide_http`]), which loads `http`.

use std::sync::{Arc, Weak};

use serde_json::{Value as Json, json};
use xmpp_core::ModuleContext;
use xmpp_core::http::{HttpApp, HttpRequest, HttpResponse, StatusCode, handler};
use xmpp_core::module::ModuleError;
use xmpp_core::{Host, Server};

use super::token_verification::{RoomVerifier, verifier_on};
use super::util::is_focus_nick;
use super::web_session::get_room_from_jid;

const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// The token checks of `enable_roomsize_token_verification`.
struct TokenCheck {
    token: auth::token::TokenVerifier,
    room: RoomVerifier,
}

impl TokenCheck {
    /// Jitsi's `verify_token(token, room_address)`: a token is required, it
    /// must verify, and its claims must allow the room.
    fn allows(&self, token: Option<&str>, room_address: &str) -> bool {
        let Some(token) = token else {
            tracing::warn!("no token provided");
            return false;
        };
        let now = auth::token::unix_now();
        let claims = match auth::token::keys::blocking(|| self.token.process(Some(token), now)) {
            Ok(Some(claims)) => claims,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!("not a valid token {e}");
                return false;
            }
        };
        let mut session = claims.session_fields();
        session.insert("auth_token", xmpp_core::Value::str(token));
        match self.room.verify_room(&session, room_address) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(
                    "Token not allowed to join: {room_address} token room: {:?} token sub: {:?} ({reason:?})",
                    claims.room(),
                    claims.sub()
                );
                false
            }
        }
    }
}

/// Options the handlers need.
#[derive(Clone)]
struct Options {
    prefix: String,
    verify_token: Option<Arc<TokenCheck>>,
}

/// A query parameter, percent-decoded (`+` is a space).
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (xmpp_core::transport::percent_decode(k) == name)
            .then(|| xmpp_core::transport::percent_decode(&v.replace('+', " ")))
    })
}

/// What a request asks for: the room address, or a status to answer.
pub fn room_address(prefix: &str, query: Option<&str>) -> Result<String, StatusCode> {
    let query = query.ok_or(StatusCode::BAD_REQUEST)?;
    let room = param(query, "room").unwrap_or_default();
    let domain = param(query, "domain").unwrap_or_default();
    let mut address = format!("{room}@{prefix}.{domain}");
    if let Some(sub) = param(query, "subdomain").filter(|s| !s.is_empty()) {
        address = format!("[{sub}]{address}");
    }
    Ok(address)
}

/// `{"participants":N}` for `count` occupants (the focus not counted).
pub fn room_size_json(count: usize) -> String {
    let n = if count > 1 { count - 1 } else { count };
    format!("{{\"participants\":{n}}}")
}

fn status(code: StatusCode) -> HttpResponse {
    HttpResponse::new(code)
}

fn lookup(
    server: &Weak<Server>,
    options: &Options,
    req: &HttpRequest,
) -> Result<(Arc<Server>, Arc<muc::Room>), StatusCode> {
    let address = room_address(&options.prefix, req.query.as_deref())?;
    if let Some(check) = &options.verify_token {
        let token = req.query.as_deref().and_then(|q| param(q, "token"));
        if !check.allows(token.as_deref(), &address) {
            return Err(StatusCode::FORBIDDEN);
        }
    }
    let server = server.upgrade().ok_or(StatusCode::SERVICE_UNAVAILABLE)?;
    tracing::debug!("querying room {address}");
    let room = get_room_from_jid(&server, &address).ok_or_else(|| {
        tracing::debug!("no such room exists");
        StatusCode::NOT_FOUND
    })?;
    Ok((server, room))
}

fn room_size(server: &Weak<Server>, options: &Options, req: &HttpRequest) -> HttpResponse {
    match lookup(server, options, req) {
        Ok((_, room)) => {
            HttpResponse::ok("application/json", room_size_json(room.occupant_count()))
        }
        Err(code) => status(code),
    }
}

fn room_occupants(server: &Weak<Server>, options: &Options, req: &HttpRequest) -> HttpResponse {
    let (_, room) = match lookup(server, options, req) {
        Ok(found) => found,
        Err(code) => return status(code),
    };
    let mut list = Vec::new();
    for occupant in room.each_occupant() {
        if is_focus_nick(&occupant.nick) {
            continue;
        }
        for session in &occupant.sessions {
            let pr = &session.presence;
            let nick = pr.get_child_text("nick", NS_NICK).unwrap_or_default();
            let email = pr
                .children()
                .find(|c| c.name() == "email")
                .map(|e| e.text_content())
                .unwrap_or_default();
            list.push(json!({"jid": occupant.nick, "email": email, "display_name": nick}));
        }
    }
    HttpResponse::ok("application/json", Json::Array(list).to_string())
}

/// The token checks when `enable_roomsize_token_verification` is on.
fn token_check(host: &Host) -> Result<Option<Arc<TokenCheck>>, ModuleError> {
    if !host.option_bool("enable_roomsize_token_verification", false)? {
        return Ok(None);
    }
    let token = auth::token::TokenVerifier::from_host(host).map_err(ModuleError::other)?;
    let room = verifier_on(host, &host.name)?.ok_or_else(|| {
        host.option_error(
            "app_id",
            "enable_roomsize_token_verification needs a token configuration".into(),
        )
    })?;
    Ok(Some(Arc::new(TokenCheck { token, room })))
}

pub fn load(ctx: &ModuleContext) -> Result<(), ModuleError> {
    let (server, host) = (ctx.server(), ctx.host());
    let options = Options {
        prefix: host
            .option_str("muc_mapper_domain_prefix")
            .unwrap_or("conference")
            .to_string(),
        verify_token: token_check(host)?,
    };
    let weak = Arc::downgrade(server);
    let (w, o) = (weak.clone(), options.clone());
    let size = handler(move |req| {
        let response = room_size(&w, &o, &req);
        async move { response }
    });
    let (w, o) = (weak.clone(), options);
    let room = handler(move |req| {
        let response = room_occupants(&w, &o, &req);
        async move { response }
    });
    let sessions = handler(move |_req| {
        let count = weak.upgrade().map_or(0, |s| s.sessions.all().len());
        async move { HttpResponse::ok("text/plain", count.to_string()) }
    });
    ctx.provide_http(
        HttpApp {
            name: "muc_size".into(),
            default_path: Some("/".into()),
            cors: None,
            routes: vec![
                ("GET /room-size".into(), size),
                ("GET /room".into(), room),
                ("GET /sessions".into(), sessions),
            ],
        },
        false,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_queries() {
        assert_eq!(
            room_address("conference", None),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            room_address("conference", Some("room=abc&domain=meet.example.com")).as_deref(),
            Ok("abc@conference.meet.example.com")
        );
        assert_eq!(
            room_address("muc", Some("room=abc&domain=meet.jitsi&subdomain=t1")).as_deref(),
            Ok("[t1]abc@muc.meet.jitsi")
        );
        assert_eq!(
            room_address("muc", Some("room=a%20b&domain=meet.jitsi&subdomain=")).as_deref(),
            Ok("a b@muc.meet.jitsi")
        );
    }

    #[test]
    fn the_focus_is_not_counted() {
        assert_eq!(room_size_json(0), "{\"participants\":0}");
        assert_eq!(room_size_json(1), "{\"participants\":1}");
        assert_eq!(room_size_json(3), "{\"participants\":2}");
    }
}
