//! `authentication = "anonymous"`: only `ANONYMOUS`, no accounts, as
//! Prosody's `mod_auth_anonymous`. (Its side effects on storage and s2s,
//! `allow_anonymous_storage` and `allow_anonymous_s2s`, belong to the
//! modules that store and route.)

use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;

pub struct Anonymous {
    host: String,
}

impl Anonymous {
    pub fn new(host: &str) -> Anonymous {
        Anonymous {
            host: host.to_string(),
        }
    }
}

impl Backend for Anonymous {
    fn name(&self) -> &'static str {
        "anonymous"
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
    fn test_password(&self, _username: &str, _password: &str) -> Result<Lookup<bool>, AuthError> {
        Err(self.unsupported("password based authentication"))
    }
    /// Prosody: "Only anonymous users are supported." (the core answers for
    /// users with a live session).
    fn user_exists(&self, _username: &str) -> Result<bool, AuthError> {
        Ok(false)
    }
    fn set_password(&self, _username: &str, _password: &str) -> Result<(), AuthError> {
        Err(self.unsupported("password based authentication"))
    }
    fn create_user(&self, _username: &str, _password: Option<&str>) -> Result<(), AuthError> {
        Err(self.unsupported("account creation"))
    }
    fn delete_user(&self, _username: &str) -> Result<(), AuthError> {
        Err(self.unsupported("account deletion"))
    }
    /// Prosody lists the host's connected sessions; there are no stored ones.
    fn users(&self) -> Result<Vec<String>, AuthError> {
        Ok(Vec::new())
    }
}
