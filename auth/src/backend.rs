//! [`Backend`]: what one `authentication` provider supplies, shaped as a
//! Prosody `mod_auth_*` module: account operations plus a SASL profile (the
//! `plain`, `plain_test`, `scram_<hash>` and `anonymous` callbacks
//! `util.sasl` derives its mechanisms from).

use xmpp_core::auth::SaslContext;

use crate::error::AuthError;
use crate::hashing::{ScramCredentials, ScramHash, anonymous_username};

/// The outcome of asking a profile about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(T),
    /// No such account (SASL: `not-authorized`).
    NoUser,
    /// The account exists but may not log in (SASL: `account-disabled`).
    Disabled,
}

/// Which profile callbacks a backend has; SASL mechanisms follow from them
/// as in Prosody's `util.sasl`: `PLAIN` from `plain` or `plain_test`,
/// `SCRAM-*` from `plain` (any hash) or `scram_<hash>`, `ANONYMOUS` from
/// `anonymous`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// `plain`: the stored password can be read.
    pub plain: bool,
    /// `plain_test`: a password can be checked.
    pub plain_test: bool,
    /// `scram_sha_1` / `scram_sha_256`: SCRAM keys are stored for this hash.
    pub scram: Option<ScramHash>,
    /// `anonymous`.
    pub anonymous: bool,
}

impl Profile {
    /// Mechanisms in preference order; `plus` adds the `-PLUS` variants.
    pub fn mechanisms(&self, plus: bool) -> Vec<String> {
        let mut hashes = Vec::new();
        if self.plain {
            hashes = vec![ScramHash::Sha256, ScramHash::Sha1];
        } else if let Some(h) = self.scram {
            hashes.push(h);
        }
        let mut out = Vec::new();
        if plus {
            out.extend(hashes.iter().map(|h| h.mechanism(true).to_string()));
        }
        out.extend(hashes.iter().map(|h| h.mechanism(false).to_string()));
        if self.plain || self.plain_test {
            out.push("PLAIN".to_string());
        }
        if self.anonymous {
            out.push("ANONYMOUS".to_string());
        }
        out
    }
}

/// One authentication provider's storage-facing side. Usernames given here
/// are already nodeprepped; passwords are as received (each backend applies
/// SASLprep where Prosody's module does).
pub trait Backend: Send + Sync {
    /// Prosody's provider name (`internal_hashed`, ...).
    fn name(&self) -> &'static str;
    /// The host served.
    fn host(&self) -> &str;
    /// The SASL profile callbacks this backend has.
    fn profile(&self) -> Profile;

    /// Profile `plain`: the stored password.
    fn get_password(&self, username: &str) -> Result<Lookup<String>, AuthError> {
        let _ = username;
        Err(self.unsupported("reading passwords"))
    }
    /// Profile `plain_test` (and the account API's `test_password`).
    /// Providers without accounts (anonymous, token) keep the default.
    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        let _ = (username, password);
        Err(self.unsupported("password based authentication"))
    }
    /// Profile `scram_<hash>`: the stored SCRAM keys.
    fn scram_credentials(
        &self,
        hash: ScramHash,
        username: &str,
    ) -> Result<Lookup<ScramCredentials>, AuthError> {
        let _ = (hash, username);
        Err(self.unsupported("SCRAM"))
    }

    /// The iteration count new SCRAM credentials get (what an account
    /// that does not exist is answered with, see
    /// [`crate::hashing::unknown_account_credentials`]).
    fn scram_iteration_count(&self) -> u32 {
        crate::providers::DEFAULT_ITERATION_COUNT
    }

    /// Facts about `username` to keep on the session after a successful
    /// login (e.g. a directory's display name); none by default.
    fn login_attributes(&self, username: &str) -> xmpp_core::Table {
        let _ = username;
        xmpp_core::Table::new()
    }

    /// Profile `anonymous`: the username an `ANONYMOUS` login gets on a
    /// stream with this context (a fresh random one unless the provider
    /// says otherwise, as `jitsi-anonymous` does for a resumed session).
    fn anonymous_username(&self, ctx: &SaslContext) -> String {
        let _ = ctx;
        anonymous_username()
    }

    /// A provider that runs its own exchange for `mechanism` returns it
    /// here (token authentication's `ANONYMOUS` checks a JWT first); `None`
    /// runs the standard one.
    fn sasl_exchange(
        &self,
        mechanism: &str,
        ctx: &xmpp_core::auth::SaslContext,
    ) -> Option<Box<dyn xmpp_core::auth::SaslExchange>> {
        let _ = (mechanism, ctx);
        None
    }

    // Account management. The defaults are those of a provider without
    // stored accounts (Prosody's mod_auth_anonymous: "Only anonymous users
    // are supported"; the core answers for users with a live session).

    fn user_exists(&self, username: &str) -> Result<bool, AuthError> {
        let _ = username;
        Ok(false)
    }
    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        let _ = (username, password);
        Err(self.unsupported("password based authentication"))
    }
    /// `None` creates an account with no password (Prosody stores `{}`).
    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError> {
        let _ = (username, password);
        Err(self.unsupported("account creation"))
    }
    /// Creates an account with a password unless it exists (`false`): what
    /// `adduser` needs, where two at once must not both succeed. Backends
    /// on the `accounts` store do it in one step; the default checks, then
    /// creates.
    fn add_user(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        if self.user_exists(username)? {
            return Ok(false);
        }
        self.create_user(username, Some(password))?;
        Ok(true)
    }
    /// Removes the account record only (the caller purges the user's data).
    fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        let _ = username;
        Err(self.unsupported("account deletion"))
    }
    /// The stored accounts (none by default).
    fn users(&self) -> Result<Vec<String>, AuthError> {
        Ok(Vec::new())
    }

    /// The error for an operation this backend lacks.
    fn unsupported(&self, operation: &'static str) -> AuthError {
        AuthError::NotSupported {
            host: self.host().to_string(),
            provider: self.name(),
            operation,
        }
    }
}
