//! `authentication = "insecure"`: every password is right, as Prosody's
//! `mod_auth_insecure` (for tests and load tests only). It refuses to load
//! unless `insecure_open_authentication` is exactly Prosody's confirmation.

use xmpp_core::{Host, Table, Value};

use crate::accounts::Accounts;
use crate::backend::{Backend, Lookup, Profile};
use crate::error::{AuthError, INSECURE_CONFIRMATION};
use crate::hashing::saslprep;

pub struct Insecure {
    accounts: Accounts,
}

impl Insecure {
    /// Loads it, or logs Prosody's line and refuses (Prosody asserts
    /// `get_option_string("insecure_open_authentication") == "Yes please, I
    /// know what I'm doing!"`; any other value, or none, fails).
    pub fn load(host: &Host) -> Result<Insecure, AuthError> {
        let confirmed = match host.option("insecure_open_authentication") {
            Some(Value::String(s)) => s == INSECURE_CONFIRMATION,
            _ => false,
        };
        if !confirmed {
            tracing::error!(
                target: "modulemanager",
                "Error initializing module 'auth_insecure' on '{}': mod_auth_insecure.lua:17: assertion failed! (insecure_open_authentication must be {INSECURE_CONFIRMATION:?})",
                host.name
            );
            return Err(AuthError::InsecureRefused {
                host: host.name.clone(),
                defined_at: host
                    .config()
                    .source_of(Some(&host.name), "authentication")
                    .cloned(),
            });
        }
        tracing::warn!(host = %host.name, "authentication = \"insecure\": any password is accepted for any user");
        Ok(Insecure {
            accounts: Accounts::open(host)?,
        })
    }
}

impl Backend for Insecure {
    fn name(&self) -> &'static str {
        "insecure"
    }
    fn host(&self) -> &str {
        self.accounts.host()
    }
    fn profile(&self) -> Profile {
        Profile {
            plain_test: true,
            ..Profile::default()
        }
    }
    fn test_password(&self, _username: &str, _password: &str) -> Result<Lookup<bool>, AuthError> {
        Ok(Lookup::Found(true))
    }
    fn user_exists(&self, _username: &str) -> Result<bool, AuthError> {
        Ok(true)
    }
    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let password = saslprep(password)
            .ok_or_else(|| AuthError::PasswordFailsSaslprep {
                host: self.host().to_string(),
                user: username.to_string(),
            })?
            .into_owned();
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
    /// Prosody stores the password as given (not SASLprepped) here.
    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError> {
        let mut record = Table::new();
        if let Some(p) = password {
            record.insert("password", Value::str(p));
        }
        self.accounts.set(username, Some(record))
    }
    fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        self.accounts.set(username, None)
    }
    /// Prosody's insecure provider has no user list.
    fn users(&self) -> Result<Vec<String>, AuthError> {
        Err(self.unsupported("listing users"))
    }
}
