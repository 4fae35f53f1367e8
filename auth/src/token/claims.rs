//! [`Claims`]: a verified token's body, and the session fields Jitsi's
//! `process_and_verify_token` binds from it (`session.jitsi_meet_room`,
//! `jitsi_meet_domain`, `jitsi_meet_context_user`, ...).

use serde_json::{Map, Value as Json};
use xmpp_core::{Table, Value};

/// Session field names, as Jitsi's Prosody modules read them.
pub mod field {
    /// The raw token (`session.auth_token`).
    pub const AUTH_TOKEN: &str = "auth_token";
    /// The `room` claim.
    pub const ROOM: &str = "jitsi_meet_room";
    /// The `sub` claim (domain or tenant).
    pub const DOMAIN: &str = "jitsi_meet_domain";
    /// The `iss` claim.
    pub const AUTH_ISSUER: &str = "jitsi_meet_auth_issuer";
    /// `context.tenant`.
    pub const STR_TENANT: &str = "jitsi_meet_str_tenant";
    /// `context.user` (or `{id = user_id}`).
    pub const CONTEXT_USER: &str = "jitsi_meet_context_user";
    /// `context.group`.
    pub const CONTEXT_GROUP: &str = "jitsi_meet_context_group";
    /// `context.features`.
    pub const CONTEXT_FEATURES: &str = "jitsi_meet_context_features";
    /// `context.room` (e.g. `{regex = true}`).
    pub const CONTEXT_ROOM: &str = "jitsi_meet_context_room";
    /// The URL's `room` parameter.
    pub const WEB_QUERY_ROOM: &str = "jitsi_web_query_room";
    /// The URL's `prefix` parameter (the tenant of the page), `""` if none.
    pub const WEB_QUERY_PREFIX: &str = "jitsi_web_query_prefix";
    /// Deprecated aliases Jitsi still sets.
    pub const BOSH_QUERY_ROOM: &str = "jitsi_bosh_query_room";
    pub const BOSH_QUERY_PREFIX: &str = "jitsi_bosh_query_prefix";
    /// The URL's `previd` (stream-management resumption).
    pub const PREVID: &str = "previd";
}

/// The body of a token whose signature and claims were checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    body: Map<String, Json>,
}

impl Claims {
    pub fn new(body: Map<String, Json>) -> Claims {
        Claims { body }
    }

    /// Any claim.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.body.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Json::as_str)
    }

    pub fn room(&self) -> Option<&str> {
        self.str("room")
    }
    pub fn sub(&self) -> Option<&str> {
        self.str("sub")
    }
    pub fn iss(&self) -> Option<&str> {
        self.str("iss")
    }

    /// `context.<name>`.
    pub fn context(&self, name: &str) -> Option<&Json> {
        self.get("context")
            .and_then(|c| c.get(name))
            .filter(|v| !v.is_null())
    }

    /// The session fields Jitsi binds from these claims.
    pub fn session_fields(&self) -> Table {
        let mut t = Table::new();
        let mut put = |name: &str, value: Option<&Json>| {
            if let Some(v) = value.and_then(json_to_value) {
                t.insert(name, v);
            }
        };
        put(field::ROOM, self.get("room"));
        put(field::DOMAIN, self.get("sub"));
        put(field::AUTH_ISSUER, self.get("iss"));
        if self.get("context").is_some() {
            put(field::STR_TENANT, self.context("tenant"));
            put(field::CONTEXT_USER, self.context("user"));
            put(field::CONTEXT_GROUP, self.context("group"));
            put(field::CONTEXT_FEATURES, self.context("features"));
            put(field::CONTEXT_ROOM, self.context("room"));
        } else if let Some(id) = self.get("user_id").and_then(json_to_value) {
            let mut user = Table::new();
            user.insert("id", id);
            t.insert(field::CONTEXT_USER, Value::Table(user));
        }
        t
    }
}

/// A JSON value as the Lua value cjson would make (`null` is absence).
pub fn json_to_value(json: &Json) -> Option<Value> {
    Some(match json {
        Json::Null => return None,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64()?),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => {
            let mut t = Table::new();
            t.seq = items.iter().filter_map(json_to_value).collect();
            Value::Table(t)
        }
        Json::Object(map) => {
            let mut t = Table::new();
            for (k, v) in map {
                if let Some(v) = json_to_value(v) {
                    t.insert(k.clone(), v);
                }
            }
            Value::Table(t)
        }
    })
}

/// Jitsi's `is_feature_allowed`: with a `features` claim, the feature must
/// be `true` or `"true"` in it; without one, moderators have every feature.
pub fn is_feature_allowed(features: Option<&Value>, feature: &str, is_moderator: bool) -> bool {
    match features {
        Some(Value::Table(t)) => match t.get(feature) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        },
        Some(_) => false,
        None => is_moderator,
    }
}
