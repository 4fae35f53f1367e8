//! The invite records as Prosody 0.12's mod_invites keeps them in the map
//! store `invite_token`, so that a data directory (or database) is shared
//! with Prosody both ways:
//!
//! - the host's own map (no user; `<data>/<host>/invite_token.dat` with the
//!   internal driver): key = token, value = the whole invite (`type`,
//!   `jid`, `token`, `allow_registration`, `additional_data`, `uri`,
//!   `created_at`, `expires`, `reusable`), only for invites that allow
//!   registration;
//! - the inviting user's map (`<data>/<host>/invite_token/<user>.dat`):
//!   key = token, value = the expiry time, for roster (contact) invites.
//!
//! Times are Unix seconds, as `os.time()` gives them.

use xmpp_core::value::{Table, Value};

/// The map store's name.
pub const STORE: &str = "invite_token";

/// An invite as created (Prosody's invite table).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    /// `register` or `roster`.
    pub kind: String,
    /// The JID the invite is about: the host (any new account), a
    /// `user@host` the new account must be, or the inviter's bare JID.
    pub jid: String,
    pub token: String,
    pub allow_registration: bool,
    /// `source`, `roles`, `groups`, `allow_reset`, ... kept as given.
    pub additional_data: Option<Value>,
    /// `xmpp:JID?ACTION;preauth=TOKEN[;ibr=y]`.
    pub uri: String,
    pub created_at: i64,
    pub expires: i64,
    /// Several registrations may use it until it expires (group invites).
    pub reusable: Option<bool>,
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)))
}

/// A number stored by Prosody (integer or float) as whole seconds.
pub fn seconds(v: &Value) -> Option<i64> {
    int_of(Some(v))
}

impl Invite {
    /// The record as stored in the host's map.
    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        t.insert("type", Value::str(self.kind.as_str()));
        t.insert("jid", Value::str(self.jid.as_str()));
        t.insert("token", Value::str(self.token.as_str()));
        t.insert("allow_registration", Value::Bool(self.allow_registration));
        if let Some(d) = &self.additional_data {
            t.insert("additional_data", d.clone());
        }
        t.insert("uri", Value::str(self.uri.as_str()));
        t.insert("created_at", Value::Integer(self.created_at));
        t.insert("expires", Value::Integer(self.expires));
        if let Some(r) = self.reusable {
            t.insert("reusable", Value::Bool(r));
        }
        Value::Table(t)
    }

    /// A stored record (`None` without an expiry time, which every invite
    /// has; the other fields default as Lua's nil does).
    pub fn from_value(token: &str, v: &Value) -> Option<Invite> {
        let t = v.as_table()?;
        let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Invite {
            kind: text("type").unwrap_or_else(|| "register".into()),
            jid: text("jid").unwrap_or_default(),
            token: text("token").unwrap_or_else(|| token.to_string()),
            allow_registration: t
                .get("allow_registration")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            additional_data: t.get("additional_data").cloned(),
            uri: text("uri").unwrap_or_default(),
            created_at: int_of(t.get("created_at")).unwrap_or(0),
            expires: int_of(t.get("expires"))?,
            reusable: t.get("reusable").and_then(Value::as_bool),
        })
    }

    /// A field of `additional_data`.
    pub fn data(&self, key: &str) -> Option<&Value> {
        self.additional_data.as_ref().and_then(|d| d.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut extra = Table::new();
        extra.insert("source", Value::str("admin@example.com"));
        let invite = Invite {
            kind: "roster".into(),
            jid: "alice@example.com".into(),
            token: "tok".into(),
            allow_registration: true,
            additional_data: Some(Value::Table(extra)),
            uri: "xmpp:alice@example.com?roster;preauth=tok;ibr=y".into(),
            created_at: 100,
            expires: 200,
            reusable: None,
        };
        let v = invite.to_value();
        assert!(v.get("reusable").is_none());
        assert_eq!(Invite::from_value("tok", &v).unwrap(), invite);
        assert_eq!(
            invite.data("source").and_then(Value::as_str),
            Some("admin@example.com")
        );
    }

    #[test]
    fn prosody_floats_and_missing_expiry() {
        let mut t = Table::new();
        t.insert("expires", Value::Number(1234.0));
        t.insert("type", Value::str("register"));
        let i = Invite::from_value("x", &Value::Table(t)).unwrap();
        assert_eq!((i.expires, i.token.as_str()), (1234, "x"));
        assert!(Invite::from_value("x", &Value::Table(Table::new())).is_none());
        assert!(Invite::from_value("x", &Value::str("nope")).is_none());
    }
}
