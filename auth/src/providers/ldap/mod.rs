//! `authentication = "ldap"` (Prosody's `mod_auth_ldap`) and
//! `authentication = "ldap2"` (prosody-modules' `mod_auth_ldap2` with the
//! `ldap` table of `mod_lib_ldap`): accounts live in an LDAP directory.
//!
//! - [`config`]: both option styles into one [`LdapSettings`];
//! - [`filter`]: RFC 4515 escaping of user input and filter templates;
//! - [`client`]: ldap3 over rustls (ldaps, StartTLS; CA as libldap finds it);
//! - [`provider`]: the [`Backend`](crate::Backend), with the directory's
//!   display name for the session (`ldap_display_name`).

pub mod client;
pub mod config;
pub mod filter;
pub mod provider;

use xmpp_core::Host;

pub use client::{Directory, LdapError, TlsTrust};
pub use config::LdapSettings;
pub use provider::{DISPLAY_NAME_ATTRIBUTE, Ldap};

use crate::error::AuthError;

/// The backend for `provider` (`ldap` or `ldap2`) on `host`.
pub fn load(host: &Host, provider: &str) -> Result<Ldap, AuthError> {
    let settings = if provider == "ldap2" {
        LdapSettings::from_ldap2_table(host)?
    } else {
        LdapSettings::from_ldap_options(host)?
    };
    let directory = Directory::new(settings, &TlsTrust::from_environment()).map_err(|e| {
        AuthError::Directory {
            host: host.name.clone(),
            provider: if provider == "ldap2" { "ldap2" } else { "ldap" },
            user: None,
            source: Box::new(e),
        }
    })?;
    Ok(Ldap::new(&host.name, directory))
}
