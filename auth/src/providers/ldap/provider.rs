//! [`Ldap`]: the `ldap` and `ldap2` providers as a [`Backend`].
//!
//! Passwords are checked by binding as the user's entry (found by a search
//! as the configured DN), or in `ldap_mode = "getpasswd"` by comparing
//! with its `userPassword`. In bind mode the SASL profile is `plain_test`
//! only, so PLAIN is the one mechanism (LDAP cannot do SCRAM); in getpasswd
//! mode it is `plain`, from which Prosody also derives SCRAM — as here.
//! Whether PLAIN may be offered on a given stream is the host's
//! [`SaslPolicy`](crate::SaslPolicy), as for every provider.
//!
//! The display name (`namefield`) found while checking the password is
//! kept until the login's exchange asks for its session attributes, where it
//! becomes [`DISPLAY_NAME_ATTRIBUTE`].

use std::collections::HashMap;
use std::sync::Mutex;

use xmpp_core::{Table, Value};

use super::client::{Directory, LdapError, UserEntry};
use super::config::Mode;
use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;

/// The session attribute holding the directory's display name.
pub const DISPLAY_NAME_ATTRIBUTE: &str = "ldap_display_name";

/// Names kept between a password check and the session attributes; more
/// than this many pending means they are not being collected: start over.
const PENDING_NAMES_LIMIT: usize = 1024;

pub struct Ldap {
    host: String,
    provider: &'static str,
    directory: Directory,
    pending_names: Mutex<HashMap<String, String>>,
}

impl Ldap {
    pub fn new(host: &str, directory: Directory) -> Ldap {
        Ldap {
            host: host.to_string(),
            provider: directory.settings().provider,
            directory,
            pending_names: Mutex::new(HashMap::new()),
        }
    }

    fn error(&self, user: &str, source: LdapError) -> AuthError {
        AuthError::Directory {
            host: self.host.clone(),
            provider: self.provider,
            user: Some(user.to_string()),
            source: Box::new(source),
        }
    }

    fn find(&self, username: &str) -> Result<Option<UserEntry>, AuthError> {
        self.directory
            .find_user(username)
            .map_err(|e| self.error(username, e))
    }

    fn remember_name(&self, username: &str, entry: &UserEntry) {
        let Some(name) = entry.display_name.clone() else {
            return;
        };
        if let Ok(mut pending) = self.pending_names.lock() {
            if pending.len() >= PENDING_NAMES_LIMIT {
                pending.clear();
            }
            pending.insert(username.to_string(), name);
        }
    }
}

impl Backend for Ldap {
    fn name(&self) -> &'static str {
        self.provider
    }

    fn host(&self) -> &str {
        &self.host
    }

    fn profile(&self) -> Profile {
        match self.directory.settings().mode {
            Mode::Bind => Profile {
                plain_test: true,
                ..Profile::default()
            },
            Mode::GetPasswd => Profile {
                plain: true,
                ..Profile::default()
            },
        }
    }

    fn get_password(&self, username: &str) -> Result<Lookup<String>, AuthError> {
        if self.directory.settings().mode != Mode::GetPasswd {
            return Err(self.unsupported("reading passwords"));
        }
        Ok(match self.find(username)? {
            None => Lookup::NoUser,
            Some(entry) => {
                self.remember_name(username, &entry);
                match entry.password {
                    Some(p) => Lookup::Found(p),
                    None => {
                        tracing::debug!(host = %self.host, user = username, "LDAP entry {} has no readable userPassword", entry.dn);
                        Lookup::Found(String::new())
                    }
                }
            }
        })
    }

    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        let found = match self.directory.settings().mode {
            Mode::Bind => self
                .directory
                .authenticate(username, password)
                .map_err(|e| self.error(username, e))?,
            Mode::GetPasswd => self.find(username)?.map(|entry| {
                let ok = entry
                    .password
                    .as_deref()
                    .is_some_and(|stored| !password.is_empty() && stored == password);
                (entry, ok)
            }),
        };
        let Some((entry, ok)) = found else {
            tracing::debug!(host = %self.host, user = username, "LDAP: no such user");
            return Ok(Lookup::NoUser);
        };
        if ok {
            self.remember_name(username, &entry);
        } else {
            tracing::debug!(host = %self.host, user = username, "LDAP: wrong password for {}", entry.dn);
        }
        Ok(Lookup::Found(ok))
    }

    fn login_attributes(&self, username: &str) -> Table {
        let mut attributes = Table::new();
        let name = self
            .pending_names
            .lock()
            .ok()
            .and_then(|mut p| p.remove(username));
        if let Some(name) = name {
            attributes.insert(DISPLAY_NAME_ATTRIBUTE, Value::String(name));
        }
        attributes
    }

    fn user_exists(&self, username: &str) -> Result<bool, AuthError> {
        Ok(self.find(username)?.is_some())
    }

    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        if self.provider == "ldap2" {
            // mod_auth_ldap2: "Passwords unavailable for LDAP."
            return Err(self.unsupported("changing passwords"));
        }
        let Some(entry) = self.find(username)? else {
            return Err(AuthError::NoAccount {
                host: self.host.clone(),
                user: username.to_string(),
            });
        };
        if entry.password.as_deref() == Some(password) {
            return Ok(());
        }
        self.directory
            .set_password(&entry.dn, password)
            .map_err(|e| self.error(username, e))
    }

    fn create_user(&self, _username: &str, _password: Option<&str>) -> Result<(), AuthError> {
        // Prosody: "Account creation not available with LDAP."
        Err(self.unsupported("account creation"))
    }

    fn delete_user(&self, _username: &str) -> Result<(), AuthError> {
        Err(self.unsupported("deleting accounts"))
    }

    fn users(&self) -> Result<Vec<String>, AuthError> {
        Err(self.unsupported("listing users"))
    }
}
