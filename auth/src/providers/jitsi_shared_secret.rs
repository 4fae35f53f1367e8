//! `authentication = "jitsi-shared-secret"`: Jitsi Meet's
//! `mod_auth_jitsi-shared-secret` — every username exists and its password is
//! the host's `shared_secret` (for Jibri and Jigasi instances that log in
//! under many usernames with one secret). During a rotation,
//! `shared_secret_prev` is accepted too.
//!
//! Jitsi's module gives `util.sasl` a `plain` profile returning
//! `shared_secret`, so SCRAM-SHA-1/-256 (and PLAIN) work with the current
//! secret; its `test_password` also accepts `shared_secret_prev`. lilt offers
//! the same mechanisms and checks PLAIN with `test_password`, so a client
//! still holding the previous secret logs in with PLAIN (Jitsi's own SASL
//! path would refuse it, defeating the rotation the option exists for);
//! SCRAM can only be verified against one password, the current one.
//! Both secrets are compared after SASLprep, in constant time. Accounts
//! cannot be created, changed or listed.

use xmpp_core::{Host, Value};

use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;
use crate::hashing::{saslprep, secure_equals};

pub struct JitsiSharedSecret {
    host: String,
    shared_secret: String,
    shared_secret_prev: Option<String>,
}

fn string_option(host: &Host, name: &str) -> Result<Option<String>, AuthError> {
    match host.option(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(host
            .option_error(name, format!("must be a string, not a {}", v.type_name()))
            .into()),
    }
}

impl JitsiSharedSecret {
    /// Loads the secrets; without `shared_secret` Jitsi's module logs an
    /// error and does not provide a provider, which lilt reports as a
    /// missing option.
    pub fn load(host: &Host) -> Result<JitsiSharedSecret, AuthError> {
        let Some(shared_secret) = string_option(host, "shared_secret")? else {
            tracing::error!(host = %host.name, "No shared_secret specified. No secret to operate on!");
            return Err(host
                .option_error(
                    "shared_secret",
                    "is required by authentication = \"jitsi-shared-secret\"".to_string(),
                )
                .into());
        };
        Ok(JitsiSharedSecret {
            host: host.name.clone(),
            shared_secret,
            shared_secret_prev: string_option(host, "shared_secret_prev")?,
        })
    }

    /// A provider for `host` with these secrets (for tests and embedding).
    pub fn new(host: &str, shared_secret: &str, shared_secret_prev: Option<&str>) -> Self {
        JitsiSharedSecret {
            host: host.to_string(),
            shared_secret: shared_secret.to_string(),
            shared_secret_prev: shared_secret_prev.map(str::to_string),
        }
    }

    fn matches(given: &str, secret: &str) -> bool {
        saslprep(secret).is_some_and(|s| secure_equals(given.as_bytes(), s.as_bytes()))
    }
}

impl Backend for JitsiSharedSecret {
    fn name(&self) -> &'static str {
        "jitsi-shared-secret"
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn profile(&self) -> Profile {
        Profile {
            plain: true,
            plain_test: true,
            ..Profile::default()
        }
    }
    fn get_password(&self, _username: &str) -> Result<Lookup<String>, AuthError> {
        Ok(Lookup::Found(self.shared_secret.clone()))
    }
    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        let Some(given) = saslprep(password) else {
            return Ok(Lookup::Found(false));
        };
        if Self::matches(&given, &self.shared_secret) {
            return Ok(Lookup::Found(true));
        }
        if let Some(prev) = &self.shared_secret_prev
            && Self::matches(&given, prev)
        {
            tracing::info!(host = %self.host, "Accepting login using previous shared secret, username={username}");
            return Ok(Lookup::Found(true));
        }
        Ok(Lookup::Found(false))
    }
    /// All usernames exist.
    fn user_exists(&self, _username: &str) -> Result<bool, AuthError> {
        Ok(true)
    }
    fn set_password(&self, _username: &str, _password: &str) -> Result<(), AuthError> {
        Err(self.unsupported("setting passwords"))
    }
    fn create_user(&self, _username: &str, _password: Option<&str>) -> Result<(), AuthError> {
        Err(self.unsupported("creating users"))
    }
    fn delete_user(&self, _username: &str) -> Result<(), AuthError> {
        Err(self.unsupported("deleting users"))
    }
    fn users(&self) -> Result<Vec<String>, AuthError> {
        Err(self.unsupported("listing users"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::verify_plain;

    fn provider() -> JitsiSharedSecret {
        JitsiSharedSecret::new("auth.meet.example.com", "s3cret", Some("old-s3cret"))
    }

    #[test]
    fn any_username_with_either_secret() {
        let p = provider();
        for user in ["jibri", "jigasi-1", "anything"] {
            assert_eq!(
                p.test_password(user, "s3cret").unwrap(),
                Lookup::Found(true)
            );
            assert_eq!(
                p.test_password(user, "old-s3cret").unwrap(),
                Lookup::Found(true)
            );
            assert_eq!(p.test_password(user, "nope").unwrap(), Lookup::Found(false));
            assert_eq!(p.test_password(user, "").unwrap(), Lookup::Found(false));
            assert!(p.user_exists(user).unwrap());
        }
        let no_prev = JitsiSharedSecret::new("h", "s3cret", None);
        assert_eq!(
            no_prev.test_password("u", "old-s3cret").unwrap(),
            Lookup::Found(false)
        );
        // A password that fails SASLprep (a prohibited control character).
        assert_eq!(
            p.test_password("u", "s3cret\u{7}").unwrap(),
            Lookup::Found(false)
        );
    }

    #[test]
    fn sasl_plain_and_scram_follow_the_secrets() {
        let p = provider();
        assert_eq!(
            verify_plain(&p, "jibri", "", "s3cret").ok().as_deref(),
            Some("jibri")
        );
        assert!(verify_plain(&p, "jibri", "", "old-s3cret").is_ok());
        assert_eq!(
            verify_plain(&p, "jibri", "", "wrong")
                .unwrap_err()
                .condition,
            "not-authorized"
        );
        // SCRAM is derived from the current secret (profile `plain`).
        assert_eq!(p.get_password("x").unwrap(), Lookup::Found("s3cret".into()));
        let mechs = p.profile().mechanisms(false);
        assert!(mechs.contains(&"SCRAM-SHA-1".to_string()) && mechs.contains(&"PLAIN".to_string()));
    }

    #[test]
    fn no_account_management() {
        let p = provider();
        assert!(p.create_user("a", Some("b")).is_err());
        assert!(p.set_password("a", "b").is_err());
        assert!(p.delete_user("a").is_err());
        assert!(p.users().is_err());
    }
}
