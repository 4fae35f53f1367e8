//! The `accounts` keyval store as Prosody's auth modules use it: one table
//! per user, with `password` (plaintext providers, or a not-yet-upgraded
//! hashed account) or `stored_key`, `server_key` (lowercase hex), `salt` (a
//! UUID string) and `iteration_count` (`internal_hashed`).

use std::sync::Arc;

use xmpp_core::storage::{KeyValueStore, StorageError};
use xmpp_core::{Host, Table, Value};

use crate::error::AuthError;
use crate::hashing::{ScramCredentials, ScramHash, from_hex, to_hex};

/// The `accounts` store of one host.
pub struct Accounts {
    host: String,
    store: Arc<dyn KeyValueStore>,
}

impl Accounts {
    /// Opens `accounts` with the host's storage selection.
    pub fn open(host: &Host) -> Result<Accounts, AuthError> {
        let store = host
            .open_keyval("accounts")
            .map_err(|source| AuthError::Storage {
                host: host.name.clone(),
                user: None,
                source,
            })?;
        Ok(Accounts {
            host: host.name.clone(),
            store,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn storage_error(&self, user: Option<&str>, source: StorageError) -> AuthError {
        AuthError::Storage {
            host: self.host.clone(),
            user: user.map(str::to_string),
            source,
        }
    }

    pub fn corrupt(&self, user: &str, reason: impl Into<String>) -> AuthError {
        AuthError::CorruptAccount {
            host: self.host.clone(),
            user: user.to_string(),
            reason: reason.into(),
        }
    }

    /// The user's record; a value that is not a table is corrupt.
    pub fn get(&self, user: &str) -> Result<Option<Table>, AuthError> {
        match self
            .store
            .get(Some(user))
            .map_err(|e| self.storage_error(Some(user), e))?
        {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(t)),
            Some(other) => Err(self.corrupt(
                user,
                format!("the record is a {}, not a table", other.type_name()),
            )),
        }
    }

    /// Writes (or with `None` deletes) the user's record.
    pub fn set(&self, user: &str, record: Option<Table>) -> Result<(), AuthError> {
        self.store
            .set(Some(user), record.map(Value::Table))
            .map_err(|e| self.storage_error(Some(user), e))
    }

    /// Writes a new user's record unless the user has one (`false`): in
    /// one step where the storage driver can (see
    /// [`KeyValueStore::create`]).
    pub fn create(&self, user: &str, record: Table) -> Result<bool, AuthError> {
        self.store
            .create(Some(user), Value::Table(record))
            .map_err(|e| self.storage_error(Some(user), e))
    }

    pub fn users(&self) -> Result<Vec<String>, AuthError> {
        self.store.users().map_err(|e| self.storage_error(None, e))
    }
}

/// A string field of a record.
pub fn field_str<'a>(record: &'a Table, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

/// Prosody 13 marks disabled accounts with `disabled = true`; 0.12 never
/// writes it, and an account so marked may not log in.
pub fn is_disabled(record: &Table) -> bool {
    record.get("disabled").and_then(Value::as_bool) == Some(true)
}

/// Stores SCRAM keys into a record with the fields and encodings Prosody's
/// `internal_hashed` writes, dropping any plaintext `password`.
pub fn put_scram(record: &mut Table, credentials: &ScramCredentials, salt: &str) {
    record.insert("stored_key", Value::String(to_hex(&credentials.stored_key)));
    record.insert("server_key", Value::String(to_hex(&credentials.server_key)));
    record.insert("salt", Value::str(salt));
    record.insert(
        "iteration_count",
        Value::Integer(i64::from(credentials.iteration_count)),
    );
    record.map.remove("password");
}

/// Reads a record's SCRAM keys: `Ok(None)` when it has none (an account
/// created without a password), an error when they are malformed.
pub fn get_scram(
    accounts: &Accounts,
    user: &str,
    record: &Table,
    hash: ScramHash,
) -> Result<Option<ScramCredentials>, AuthError> {
    let (Some(stored), Some(server)) = (
        field_str(record, "stored_key"),
        field_str(record, "server_key"),
    ) else {
        return Ok(None);
    };
    let key = |hex: &str, name: &str| {
        from_hex(hex)
            .filter(|k| k.len() == hash.output_len())
            .ok_or_else(|| {
                accounts.corrupt(
                    user,
                    format!(
                        "{name} is not {} hex digits of a {} key",
                        hash.output_len() * 2,
                        hash.name()
                    ),
                )
            })
    };
    let stored_key = key(stored, "stored_key")?;
    let server_key = key(server, "server_key")?;
    let salt = field_str(record, "salt")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| accounts.corrupt(user, "salt is missing"))?;
    let iteration_count = record
        .get("iteration_count")
        .and_then(Value::as_i64)
        .and_then(|i| u32::try_from(i).ok())
        .filter(|i| *i > 0)
        .ok_or_else(|| {
            accounts.corrupt(
                user,
                "iteration_count is missing or not a positive whole number",
            )
        })?;
    Ok(Some(ScramCredentials {
        stored_key,
        server_key,
        salt: salt.as_bytes().to_vec(),
        iteration_count,
    }))
}
