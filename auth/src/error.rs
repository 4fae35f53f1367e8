//! [`AuthError`]: why an authentication provider could not be loaded or an
//! account operation failed, with the host, user or option concerned.

use xmpp_core::config::{OptionError, Source};
use xmpp_core::jid::JidError;
use xmpp_core::storage::StorageError;

/// The password Prosody's `mod_auth_insecure` insists on, word for word.
pub const INSECURE_CONFIRMATION: &str = "Yes please, I know what I'm doing!";

fn at(source: &Option<Source>) -> String {
    source
        .as_ref()
        .map(|s| format!("{s}: "))
        .unwrap_or_default()
}

/// An authentication provider or account failure.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `authentication = "..."` names a provider lilt does not know.
    #[error(
        "{}option 'authentication' on host {host}: unknown authentication provider {provider:?} (known: internal_hashed, internal_plain, anonymous, insecure, null, ldap, ldap2, cyrus)",
        at(defined_at)
    )]
    UnknownProvider {
        host: String,
        provider: String,
        defined_at: Option<Source>,
    },

    /// A provider Prosody (or a Prosody community/Jitsi module) has, that lilt
    /// does not implement yet.
    #[error(
        "{}option 'authentication' on host {host}: the {provider:?} provider is not implemented in lilt yet (it is planned in a later issue); use internal_hashed, internal_plain or anonymous for now",
        at(defined_at)
    )]
    ProviderNotYetImplemented {
        host: String,
        provider: String,
        defined_at: Option<Source>,
    },

    /// `authentication = "insecure"` without Prosody's confirmation option.
    #[error(
        "{}option 'authentication' on host {host}: the \"insecure\" provider accepts any password and is refused unless insecure_open_authentication = {INSECURE_CONFIRMATION:?} (as Prosody's mod_auth_insecure asserts)",
        at(defined_at)
    )]
    InsecureRefused {
        host: String,
        defined_at: Option<Source>,
    },

    /// An option with a value of the wrong type or out of range.
    #[error(transparent)]
    Option(#[from] OptionError),

    /// The accounts store could not be opened, read or written.
    #[error("accounts of {user}@{host}: {source}", user = user.as_deref().unwrap_or("*"))]
    Storage {
        host: String,
        user: Option<String>,
        #[source]
        source: StorageError,
    },

    /// An account record that is not shaped as Prosody writes it.
    #[error("account {user}@{host} is corrupt: {reason}")]
    CorruptAccount {
        host: String,
        user: String,
        reason: String,
    },

    /// A username that does not survive nodeprep.
    #[error("invalid username {user:?}: {source}")]
    InvalidUsername {
        user: String,
        #[source]
        source: JidError,
    },

    /// A password that fails SASLprep (Prosody: "Password fails SASLprep.").
    #[error("the password for {user}@{host} fails SASLprep")]
    PasswordFailsSaslprep { host: String, user: String },

    /// The account does not exist (Prosody: "Account not available.").
    #[error("account {user}@{host} not available")]
    NoAccount { host: String, user: String },

    /// The provider does not support this operation (e.g. creating users on
    /// an anonymous host).
    #[error("the {provider} authentication provider of host {host} does not support {operation}")]
    NotSupported {
        host: String,
        provider: &'static str,
        operation: &'static str,
    },

    /// The directory or password service behind the provider failed
    /// (unreachable, refused our search credentials, misconfigured TLS):
    /// logins answer `temporary-auth-failure`. Never carries a password.
    #[error("{provider} authentication on host {host}{}: {source}", user.as_deref().map(|u| format!(" for user {u}")).unwrap_or_default())]
    Directory {
        host: String,
        provider: &'static str,
        user: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
