//! `invites`, `invites_adhoc`, `invites_register`: Prosody 0.12's invitation
//! modules (XEP-0401 Easy User Onboarding, XEP-0379 Pre-Authenticated Roster
//! Subscription).
//!
//! - [`Invites`] (mod_invites): creates invites (an account on the host, a
//!   given account, a password reset, a contact of a local user), checks a
//!   token ([`Invites::get`]) and spends it ([`ValidInvite::spend`]). The
//!   records are Prosody's, in the same store ([`store`]), so Prosody's
//!   invites are used by lilt in place and the reverse. Option:
//!   `invite_expiry` (seconds, default one week).
//! - [`adhoc`] (mod_invites_adhoc): the commands `urn:xmpp:invite#invite`
//!   (a contact invite, for local users; it also allows registration when
//!   `allow_user_invites` or the user is an admin) and
//!   `urn:xmpp:invite#create-account` (admins).
//! - [`register`] (mod_invites_register): the `<preauth/>` IQ before
//!   registration, `registration_invite_only` (default true: in-band
//!   registration needs a token, and is offered even without
//!   `allow_registration`), mutual subscription between the inviter and
//!   the new account, the roles an invite grants, and the inbound
//!   `subscribe` carrying a `<preauth/>` approved automatically.
//! - [`generate`]: `lilt mod_invites generate HOST` (`lilt invite ...`), as
//!   `prosodyctl mod_invites generate HOST`.

pub mod adhoc;
pub mod generate;
pub mod register;
pub mod store;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use xmpp_core::storage::{MapStore, StorageError};
use xmpp_core::value::Value;
use xmpp_core::{Host, Jid, Server};

use crate::ModuleError;
pub use store::Invite;

/// `invite_expiry`'s default: one week.
pub const DEFAULT_EXPIRY: i64 = 7 * 86400;

/// Why a token is not good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("no-token")]
    NoToken,
    #[error("token-invalid")]
    TokenInvalid,
    #[error("token-expired")]
    TokenExpired,
    #[error("internal-server-error: {0}")]
    Storage(String),
}

impl From<StorageError> for InviteError {
    fn from(e: StorageError) -> Self {
        InviteError::Storage(e.to_string())
    }
}

/// A token that was checked (Prosody's validated invite); spend it once
/// it has been used.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidInvite {
    pub token: String,
    /// The local user whose contact invite this is.
    pub username: Option<String>,
    /// For a roster invite used to register: who invited (the new account
    /// and they become mutual contacts).
    pub inviter: Option<String>,
    pub kind: String,
    pub uri: String,
    pub additional_data: Option<Value>,
    pub reusable: bool,
}

impl ValidInvite {
    /// The invite was used: gone from the stores, unless it is reusable.
    pub fn spend(&self, invites: &Invites) -> Result<(), InviteError> {
        if self.reusable {
            return Ok(());
        }
        if let Some(user) = &self.username {
            invites.store.set(Some(user), &self.token, None)?;
        }
        invites.store.set(None, &self.token, None)?;
        Ok(())
    }

    /// A field of the invite's `additional_data`.
    pub fn data(&self, key: &str) -> Option<&Value> {
        self.additional_data.as_ref().and_then(|d| d.get(key))
    }
}

/// mod_invites on one host.
#[derive(Clone)]
pub struct Invites {
    /// The host's name (the host itself is not kept: the host keeps this).
    pub host: String,
    store: Arc<dyn MapStore>,
    /// `invite_expiry`.
    pub default_ttl: i64,
}

/// Prosody's `util.id.medium()`: 18 random bytes, base64url.
pub fn new_token() -> String {
    let mut b = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// `xmpp:JID?ACTION;preauth=TOKEN[;PARAMS]`, as `socket.url.build` makes it.
pub fn uri(action: &str, jid: &str, token: &str, params: Option<&str>) -> String {
    match params {
        Some(p) => format!("xmpp:{jid}?{action};preauth={token};{p}"),
        None => format!("xmpp:{jid}?{action};preauth={token}"),
    }
}

impl Invites {
    /// Opens the host's invite store and reads `invite_expiry`.
    pub fn open(host: &Host) -> Result<Invites, ModuleError> {
        let default_ttl = match host.option("invite_expiry") {
            None => DEFAULT_EXPIRY,
            Some(v) => store::seconds(v).ok_or_else(|| {
                host.option_error(
                    "invite_expiry",
                    format!("must be a number, not a {}", v.type_name()),
                )
            })?,
        };
        let store = host.open_map(store::STORE).map_err(ModuleError::other)?;
        Ok(Invites {
            host: host.name.clone(),
            store,
            default_ttl,
        })
    }

    /// Prosody's `create_invite`.
    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        action: &str,
        jid: &str,
        allow_registration: bool,
        additional_data: Option<Value>,
        ttl: Option<i64>,
        reusable: Option<bool>,
        now: i64,
    ) -> Result<Invite, InviteError> {
        let token = new_token();
        let params = (action == "roster" && allow_registration).then_some("ibr=y");
        let invite = Invite {
            kind: action.to_string(),
            jid: jid.to_string(),
            uri: uri(action, jid, &token, params),
            token,
            allow_registration,
            additional_data,
            created_at: now,
            expires: now + ttl.unwrap_or(self.default_ttl),
            reusable,
        };
        if allow_registration {
            self.store
                .set(None, &invite.token, Some(invite.to_value()))
                .inspect_err(|e| tracing::warn!("Failed to store account invite: {e}"))?;
        }
        if action == "roster" {
            let user = Jid::parse(jid)
                .ok()
                .and_then(|j| j.node().map(str::to_string));
            self.store
                .set(
                    user.as_deref(),
                    &invite.token,
                    Some(Value::Integer(invite.expires)),
                )
                .inspect_err(|e| tracing::warn!("Failed to store subscription invite: {e}"))?;
        }
        Ok(invite)
    }

    /// An invite to register an account (`username`'s only, when given).
    pub fn create_account(
        &self,
        username: Option<&str>,
        additional_data: Option<Value>,
        ttl: Option<i64>,
        now: i64,
    ) -> Result<Invite, InviteError> {
        let jid = match username {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        };
        self.create("register", &jid, true, additional_data, ttl, None, now)
    }

    /// An invite to set a new password for `username` (one day by default).
    pub fn create_account_reset(
        &self,
        username: &str,
        ttl: Option<i64>,
        now: i64,
    ) -> Result<Invite, InviteError> {
        let mut data = xmpp_core::value::Table::new();
        data.insert("allow_reset", Value::str(username));
        self.create_account(
            Some(username),
            Some(Value::Table(data)),
            Some(ttl.unwrap_or(86400)),
            now,
        )
    }

    /// An invite to become a contact of local user `username`, which may
    /// also register an account.
    pub fn create_contact(
        &self,
        username: &str,
        allow_registration: bool,
        additional_data: Option<Value>,
        ttl: Option<i64>,
        now: i64,
    ) -> Result<Invite, InviteError> {
        let jid = format!("{username}@{}", self.host);
        self.create(
            "roster",
            &jid,
            allow_registration,
            additional_data,
            ttl,
            None,
            now,
        )
    }

    /// The invite behind `token` if it is still good. With `username`: as a
    /// contact invite of that local user; without: as an account invite.
    pub fn get(
        &self,
        token: Option<&str>,
        username: Option<&str>,
        now: i64,
    ) -> Result<ValidInvite, InviteError> {
        let token = token.ok_or(InviteError::NoToken)?;
        let info = self
            .store
            .get(None, token)?
            .and_then(|v| Invite::from_value(token, &v));
        let mut username = username.map(str::to_string);
        let mut inviter = None;
        let valid_until = match &username {
            Some(user) => self
                .store
                .get(Some(user), token)?
                .as_ref()
                .and_then(store::seconds),
            None => {
                if let Some(i) = info.as_ref().filter(|i| i.kind == "roster") {
                    username = Jid::parse(&i.jid)
                        .ok()
                        .and_then(|j| j.node().map(str::to_string));
                    inviter = username.clone();
                }
                info.as_ref().map(|i| i.expires)
            }
        };
        let Some(valid_until) = valid_until else {
            tracing::debug!("Got unknown token: {token}");
            return Err(InviteError::TokenInvalid);
        };
        if now > valid_until {
            tracing::debug!("Got expired token: {token}");
            return Err(InviteError::TokenExpired);
        }
        let fallback_uri = || {
            let jid = format!("{}@{}", username.as_deref().unwrap_or(""), self.host);
            uri("roster", &jid, token, None)
        };
        Ok(ValidInvite {
            token: token.to_string(),
            kind: info
                .as_ref()
                .map_or_else(|| "roster".to_string(), |i| i.kind.clone()),
            uri: info.as_ref().map_or_else(fallback_uri, |i| i.uri.clone()),
            additional_data: info.as_ref().and_then(|i| i.additional_data.clone()),
            reusable: info.as_ref().and_then(|i| i.reusable).unwrap_or(false),
            username,
            inviter,
        })
    }

    /// Removes an account invite.
    pub fn delete_account_invite(&self, token: &str) -> Result<(), InviteError> {
        self.store.set(None, token, None)?;
        Ok(())
    }
}

/// The mod_invites of `host`, kept on the host while the module is loaded
/// (None when it is not).
#[derive(Default)]
struct Loaded(std::sync::RwLock<Option<Invites>>);

/// The loaded mod_invites of `host`.
pub fn loaded(host: &Host) -> Option<Invites> {
    host.extension::<Loaded>()
        .0
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

/// Loads `invites`: opens the store; the other two modules and the CLI use
/// [`loaded`] (or [`Invites::open`]).
pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let invites = Invites::open(host)?;
    let slot = host.extension::<Loaded>();
    *slot.0.write().unwrap_or_else(|p| p.into_inner()) = Some(invites);
    xmpp_core::module::scope::on_unload(move || {
        *slot.0.write().unwrap_or_else(|p| p.into_inner()) = None;
    });
    Ok(())
}

/// The host's Unix time in whole seconds, as `os.time()`.
pub fn now(server: &Server) -> i64 {
    server.clock.now().floor() as i64
}

#[cfg(test)]
mod tests;
