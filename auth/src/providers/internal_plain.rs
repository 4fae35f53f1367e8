//! `authentication = "internal_plain"`: SASLprepped plaintext passwords in
//! the `accounts` store, as Prosody's `mod_auth_internal_plain`. Having the
//! password, it offers every SCRAM hash as well as PLAIN.

use xmpp_core::{Host, Table, Value};

use crate::accounts::{Accounts, field_str, is_disabled};
use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;
use crate::hashing::{saslprep, secure_equals};

pub struct InternalPlain {
    accounts: Accounts,
}

impl InternalPlain {
    pub fn load(host: &Host) -> Result<InternalPlain, AuthError> {
        Ok(InternalPlain {
            accounts: Accounts::open(host)?,
        })
    }

    fn prep(&self, user: &str, password: &str) -> Result<String, AuthError> {
        saslprep(password)
            .map(|p| p.into_owned())
            .ok_or_else(|| AuthError::PasswordFailsSaslprep {
                host: self.host().to_string(),
                user: user.to_string(),
            })
    }
}

impl Backend for InternalPlain {
    fn name(&self) -> &'static str {
        "internal_plain"
    }
    fn host(&self) -> &str {
        self.accounts.host()
    }
    fn profile(&self) -> Profile {
        Profile {
            plain: true,
            ..Profile::default()
        }
    }

    fn get_password(&self, username: &str) -> Result<Lookup<String>, AuthError> {
        Ok(match self.accounts.get(username)? {
            None => Lookup::NoUser,
            Some(record) if is_disabled(&record) => Lookup::Disabled,
            Some(record) => match field_str(&record, "password") {
                Some(p) => Lookup::Found(p.to_string()),
                None => Lookup::NoUser,
            },
        })
    }

    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        Ok(match self.get_password(username)? {
            Lookup::Found(stored) => Lookup::Found(match (saslprep(password), saslprep(&stored)) {
                (Some(given), Some(stored)) => secure_equals(given.as_bytes(), stored.as_bytes()),
                _ => false,
            }),
            Lookup::NoUser => Lookup::NoUser,
            Lookup::Disabled => Lookup::Disabled,
        })
    }

    fn user_exists(&self, username: &str) -> Result<bool, AuthError> {
        Ok(self.accounts.get(username)?.is_some())
    }

    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let password = self.prep(username, password)?;
        let mut record = self
            .accounts
            .get(username)?
            .ok_or_else(|| AuthError::NoAccount {
                host: self.host().to_string(),
                user: username.to_string(),
            })?;
        record.insert("password", Value::String(password));
        self.accounts.set(username, Some(record))
    }

    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError> {
        let mut record = Table::new();
        if let Some(password) = password {
            record.insert("password", Value::String(self.prep(username, password)?));
        }
        self.accounts.set(username, Some(record))
    }

    fn add_user(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        let mut record = Table::new();
        record.insert("password", Value::String(self.prep(username, password)?));
        self.accounts.create(username, record)
    }

    fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        self.accounts.set(username, None)
    }

    fn users(&self) -> Result<Vec<String>, AuthError> {
        self.accounts.users()
    }
}
