//! `authentication = "internal_hashed"` (the default): SCRAM keys in the
//! `accounts` store, as Prosody's `mod_auth_internal_hashed`. A record still
//! holding a plaintext `password` is rewritten hashed on its next successful
//! login.

use xmpp_core::{Host, Table};

use crate::accounts::{Accounts, field_str, get_scram, is_disabled, put_scram};
use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;
use crate::hashing::{ScramCredentials, ScramHash, generate_uuid, saslprep, secure_equals};

/// Prosody's `default_iteration_count` default.
pub const DEFAULT_ITERATION_COUNT: u32 = 10000;

pub struct InternalHashed {
    accounts: Accounts,
    /// `password_hash`: `SHA-1` (default) or `SHA-256`. Records do not say
    /// which hash made them, so this must match the one that wrote them.
    hash: ScramHash,
    /// `default_iteration_count`.
    default_iteration_count: u32,
}

impl InternalHashed {
    pub fn load(host: &Host) -> Result<InternalHashed, AuthError> {
        let hash = match host.option("password_hash") {
            None => ScramHash::Sha1,
            Some(v) => v
                .as_str()
                .and_then(ScramHash::from_name)
                .ok_or_else(|| host.option_error("password_hash", "must be \"SHA-1\" or \"SHA-256\" (SCRAM-<hash> must be supported by the SASL library)".into()))?,
        };
        let count = host.option_i64(
            "default_iteration_count",
            i64::from(DEFAULT_ITERATION_COUNT),
        )?;
        let default_iteration_count =
            u32::try_from(count)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    host.option_error(
                        "default_iteration_count",
                        format!("must be a positive whole number, not {count}"),
                    )
                })?;
        Ok(InternalHashed {
            accounts: Accounts::open(host)?,
            hash,
            default_iteration_count,
        })
    }

    fn derive(
        &self,
        user: &str,
        password: &str,
        salt: &str,
        iteration_count: u32,
    ) -> Result<ScramCredentials, AuthError> {
        let prepped = saslprep(password).ok_or_else(|| AuthError::PasswordFailsSaslprep {
            host: self.accounts.host().to_string(),
            user: user.to_string(),
        })?;
        Ok(ScramCredentials::derive(
            self.hash,
            &prepped,
            salt.as_bytes(),
            iteration_count,
        ))
    }

    /// Hashes `password` into `record` with a fresh salt.
    fn hash_into(&self, user: &str, record: &mut Table, password: &str) -> Result<(), AuthError> {
        let salt = generate_uuid();
        let existing = record
            .get("iteration_count")
            .and_then(|v| v.as_i64())
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(0);
        let iteration_count = existing.max(self.default_iteration_count);
        let credentials = self.derive(user, password, &salt, iteration_count)?;
        put_scram(record, &credentials, &salt);
        Ok(())
    }
}

impl Backend for InternalHashed {
    fn name(&self) -> &'static str {
        "internal_hashed"
    }
    fn scram_iteration_count(&self) -> u32 {
        self.default_iteration_count
    }
    fn host(&self) -> &str {
        self.accounts.host()
    }
    fn profile(&self) -> Profile {
        Profile {
            plain_test: true,
            scram: Some(self.hash),
            ..Profile::default()
        }
    }

    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        let Some(record) = self.accounts.get(username)? else {
            // As long as checking a password of an existing account takes:
            // a missing account is not told apart by the time it takes.
            let salt = crate::hashing::stable_fake_salt(username);
            let _ =
                ScramCredentials::derive(self.hash, password, &salt, self.default_iteration_count);
            return Ok(Lookup::NoUser);
        };
        if is_disabled(&record) {
            return Ok(Lookup::Disabled);
        }
        let Some(password) = saslprep(password) else {
            return Ok(Lookup::Found(false));
        };
        if let Some(plain) = field_str(&record, "password").filter(|p| !p.is_empty()) {
            let matches =
                saslprep(plain).is_some_and(|p| secure_equals(p.as_bytes(), password.as_bytes()));
            if matches {
                let plain = plain.to_string();
                self.set_password(username, &plain)?;
            }
            return Ok(Lookup::Found(matches));
        }
        let Some(stored) = get_scram(&self.accounts, username, &record, self.hash)? else {
            return Ok(Lookup::Found(false));
        };
        let attempt =
            ScramCredentials::derive(self.hash, &password, &stored.salt, stored.iteration_count);
        Ok(Lookup::Found(
            secure_equals(&attempt.stored_key, &stored.stored_key)
                & secure_equals(&attempt.server_key, &stored.server_key),
        ))
    }

    fn scram_credentials(
        &self,
        hash: ScramHash,
        username: &str,
    ) -> Result<Lookup<ScramCredentials>, AuthError> {
        if hash != self.hash {
            return Err(self.unsupported("this SCRAM hash (see password_hash)"));
        }
        let Some(mut record) = self.accounts.get(username)? else {
            return Ok(Lookup::NoUser);
        };
        if let Some(plain) = field_str(&record, "password").map(str::to_string) {
            self.set_password(username, &plain)?;
            let Some(upgraded) = self.accounts.get(username)? else {
                return Ok(Lookup::NoUser);
            };
            record = upgraded;
        }
        if is_disabled(&record) {
            return Ok(Lookup::Disabled);
        }
        Ok(
            match get_scram(&self.accounts, username, &record, self.hash)? {
                Some(c) => Lookup::Found(c),
                None => Lookup::NoUser,
            },
        )
    }

    fn user_exists(&self, username: &str) -> Result<bool, AuthError> {
        Ok(self.accounts.get(username)?.is_some())
    }

    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let mut record = self
            .accounts
            .get(username)?
            .ok_or_else(|| AuthError::NoAccount {
                host: self.host().to_string(),
                user: username.to_string(),
            })?;
        self.hash_into(username, &mut record, password)?;
        self.accounts.set(username, Some(record))
    }

    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError> {
        let mut record = Table::new();
        if let Some(password) = password {
            self.hash_into(username, &mut record, password)?;
        }
        self.accounts.set(username, Some(record))
    }

    fn add_user(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        let mut record = Table::new();
        self.hash_into(username, &mut record, password)?;
        self.accounts.create(username, record)
    }

    fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        self.accounts.set(username, None)
    }

    fn users(&self) -> Result<Vec<String>, AuthError> {
        self.accounts.users()
    }
}
