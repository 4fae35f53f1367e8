//! [`Provider`]: a [`Backend`] with the host's SASL policy, as the core
//! ([`AuthProvider`]) and account management ([`AccountProvider`]: the CLI's
//! register/passwd/deluser, in-band registration) use it.

use std::sync::{Arc, Weak};

use xmpp_core::Host;
use xmpp_core::auth::{AuthProvider, SaslContext, SaslExchange, SaslFailure};
use xmpp_core::storage::{StorageError, StorageResult};

use crate::backend::{Backend, Lookup};
use crate::error::AuthError;
use crate::guard::LoginGuard;
use crate::policy::SaslPolicy;
use crate::sasl;
use crate::throttle::ThrottleSettings;

/// Account management on top of authentication (Prosody's usermanager
/// API). Usernames are nodeprepped here; an invalid one is an error.
pub trait AccountProvider: AuthProvider {
    /// Is this the user's password? (false for no such user)
    fn test_password(&self, username: &str, password: &str) -> Result<bool, AuthError>;
    /// Changes the password of an existing account. The caller fires
    /// `user-password-changed`.
    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError>;
    /// Creates (or overwrites) an account; `None` makes one without a
    /// password, as Prosody's `create_user(username, nil)`.
    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError>;
    /// Creates an account unless it exists (`false`, nothing written), in
    /// one step where the backend can: of two at once, one succeeds.
    fn add_user(&self, username: &str, password: &str) -> Result<bool, AuthError>;
    /// Deletes the account, then purges all the user's stored data through
    /// the host's storage drivers. The caller fires `user-deleted`.
    fn delete_user(&self, username: &str) -> Result<(), AuthError>;
    /// The users with an account.
    fn users(&self) -> Result<Vec<String>, AuthError>;
    /// This provider as the core's [`AuthProvider`] (for
    /// `Host::set_auth_provider`).
    fn as_auth_provider(self: Arc<Self>) -> Arc<dyn AuthProvider>;
}

/// The provider for one host.
pub struct Provider {
    backend: Arc<dyn Backend>,
    policy: SaslPolicy,
    /// For purging deleted users' data; weak, as the host holds us.
    host: Weak<Host>,
    /// Failed-login throttling and logging (see [`crate::guard`]).
    guard: Arc<LoginGuard>,
}

impl Provider {
    pub fn new(backend: Arc<dyn Backend>, policy: SaslPolicy, host: &Arc<Host>) -> Provider {
        Provider {
            guard: Arc::new(LoginGuard::new(&host.name, ThrottleSettings::disabled())),
            backend,
            policy,
            host: Arc::downgrade(host),
        }
    }

    /// Throttles failed logins with these settings (none by default;
    /// `ThrottleSettings::from_host` reads the `limit_auth_*` options).
    pub fn with_throttle(mut self, settings: ThrottleSettings) -> Provider {
        self.guard = Arc::new(LoginGuard::new(self.backend.host(), settings));
        self
    }

    pub fn policy(&self) -> &SaslPolicy {
        &self.policy
    }

    fn prep(&self, username: &str) -> Result<String, AuthError> {
        xmpp_core::jid::nodeprep(username).map_err(|source| AuthError::InvalidUsername {
            user: username.to_string(),
            source,
        })
    }
}

impl AuthProvider for Provider {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn sasl_mechanisms(&self, ctx: &SaslContext) -> Vec<String> {
        let available = sasl::available_mechanisms(self.backend.as_ref(), ctx);
        self.policy.usable(available, ctx, self.backend.name())
    }

    fn sasl_start(
        &self,
        mechanism: &str,
        ctx: &SaslContext,
    ) -> Result<Box<dyn SaslExchange>, SaslFailure> {
        self.guard.check_start(ctx)?;
        if let Some(refusal) = self.policy.refuse(mechanism, ctx) {
            return Err(refusal);
        }
        let exchange = sasl::start(self.backend.clone(), mechanism, ctx)?;
        Ok(self.guard.wrap(mechanism, ctx, exchange))
    }

    fn user_exists(&self, username: &str) -> StorageResult<bool> {
        self.backend.user_exists(username).map_err(|e| match e {
            AuthError::Storage { source, .. } => source,
            other => StorageError::Other(other.to_string()),
        })
    }
}

impl AccountProvider for Provider {
    fn test_password(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        Ok(self
            .backend
            .test_password(&self.prep(username)?, password)?
            == Lookup::Found(true))
    }

    fn set_password(&self, username: &str, password: &str) -> Result<(), AuthError> {
        self.backend.set_password(&self.prep(username)?, password)
    }

    fn create_user(&self, username: &str, password: Option<&str>) -> Result<(), AuthError> {
        self.backend.create_user(&self.prep(username)?, password)
    }

    fn add_user(&self, username: &str, password: &str) -> Result<bool, AuthError> {
        self.backend.add_user(&self.prep(username)?, password)
    }

    fn delete_user(&self, username: &str) -> Result<(), AuthError> {
        let user = self.prep(username)?;
        self.backend.delete_user(&user)?;
        let storage_error = |source| AuthError::Storage {
            host: self.backend.host().to_string(),
            user: Some(user.clone()),
            source,
        };
        let host = self.host.upgrade().ok_or_else(|| {
            storage_error(StorageError::Other(format!(
                "host {} is gone; the user's data was not purged",
                self.backend.host()
            )))
        })?;
        host.purge_user(&user).map_err(storage_error)
    }

    fn users(&self) -> Result<Vec<String>, AuthError> {
        self.backend.users()
    }

    fn as_auth_provider(self: Arc<Self>) -> Arc<dyn AuthProvider> {
        self
    }
}
