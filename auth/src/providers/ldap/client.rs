//! Talking to the directory with ldap3's synchronous API over rustls
//! (`ldaps://` and StartTLS).
//!
//! Why the sync API on a thread of its own: SASL exchanges are synchronous
//! calls made from the c2s task (a tokio worker). ldap3's `LdapConn` owns a
//! current-thread runtime, which may not be started on a thread already
//! running one, so each directory conversation runs on a short-lived scoped
//! thread and the caller waits for it — as Prosody's lualdap blocks its
//! loop. A panic in the library (it `expect`s on some malformed replies)
//! ends that thread only and becomes [`LdapError::Worker`].
//!
//! Trust for TLS follows libldap, which Prosody's lualdap uses: the CA file
//! comes from `LDAPTLS_CACERT`, else `TLS_CACERT` in `ldap.conf` (`LDAPCONF`,
//! else `/etc/ldap/ldap.conf`); `LDAPTLS_REQCERT`/`TLS_REQCERT` `never` or
//! `allow` turns verification off. Without a CA file the system's roots
//! are used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConn, LdapConnSettings, Mod, Scope as LdapScope, SearchEntry, SearchOptions};
use rustls::ClientConfig;

use super::config::{LdapSettings, Scope};

/// How long to wait for a TCP connection, and then for each operation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// LDAP result codes that mean "these credentials are not good".
const INVALID_CREDENTIALS: u32 = 49;
const UNWILLING_TO_PERFORM: u32 = 53;
const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// A failure talking to the directory (never carries a password).
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// No server in the list could be reached (or TLS failed).
    #[error("directory unreachable: {}", attempts.join("; "))]
    Unreachable { attempts: Vec<String> },
    /// An operation failed at the protocol level.
    #[error("{operation} on {server} failed: {source}")]
    Operation {
        server: String,
        operation: &'static str,
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The server answered an operation with an error result.
    #[error("{operation} on {server} refused: result code {rc} {text}")]
    Refused {
        server: String,
        operation: &'static str,
        rc: u32,
        text: String,
    },
    /// The CA file for TLS could not be used.
    #[error("CA file {path} (from {origin}): {reason}")]
    CaFile {
        path: PathBuf,
        origin: &'static str,
        reason: String,
    },
    /// The worker thread ended without an answer.
    #[error("the LDAP client thread failed")]
    Worker,
}

/// What a user search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub dn: String,
    pub display_name: Option<String>,
    /// `userPassword` (getpasswd mode only).
    pub password: Option<String>,
}

/// libldap's TLS trust settings as found in the environment.
#[derive(Debug, Clone, Default)]
pub struct TlsTrust {
    pub ca_file: Option<(PathBuf, &'static str)>,
    pub verify: bool,
}

fn ldap_conf_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            k.eq_ignore_ascii_case(key).then(|| v.trim().to_string())
        })
}

impl TlsTrust {
    /// Reads libldap's variables and configuration file.
    pub fn from_environment() -> TlsTrust {
        let conf_path = std::env::var_os("LDAPCONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/ldap/ldap.conf"));
        let conf = std::fs::read_to_string(&conf_path).unwrap_or_default();
        let ca_file = match std::env::var_os("LDAPTLS_CACERT") {
            Some(p) => Some((PathBuf::from(p), "LDAPTLS_CACERT")),
            None => ldap_conf_value(&conf, "TLS_CACERT")
                .map(|p| (PathBuf::from(p), "ldap.conf TLS_CACERT")),
        };
        let reqcert = std::env::var("LDAPTLS_REQCERT")
            .ok()
            .or_else(|| ldap_conf_value(&conf, "TLS_REQCERT"))
            .unwrap_or_default()
            .to_ascii_lowercase();
        TlsTrust {
            ca_file,
            verify: !matches!(reqcert.as_str(), "never" | "allow"),
        }
    }

    /// A rustls configuration trusting the CA file, if one is set.
    fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, LdapError> {
        let Some((path, origin)) = &self.ca_file else {
            return Ok(None);
        };
        let ca_error = |reason: String| LdapError::CaFile {
            path: path.clone(),
            origin,
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_error("holds no PEM certificate".to_string()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ca_error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }
}

/// The directory of one host.
pub struct Directory {
    settings: LdapSettings,
    tls: Option<Arc<ClientConfig>>,
    verify: bool,
}

/// Runs `f` on a scoped thread of its own (see the module docs).
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, LdapError> + Send) -> Result<T, LdapError> {
    std::thread::scope(|s| s.spawn(f).join().unwrap_or(Err(LdapError::Worker)))
}

fn check(server: &str, operation: &'static str, res: ldap3::LdapResult) -> Result<(), LdapError> {
    if res.rc == 0 {
        Ok(())
    } else {
        Err(LdapError::Refused {
            server: server.to_string(),
            operation,
            rc: res.rc,
            text: res.text,
        })
    }
}

impl Directory {
    pub fn new(settings: LdapSettings, trust: &TlsTrust) -> Result<Directory, LdapError> {
        Ok(Directory {
            tls: trust.client_config()?,
            verify: trust.verify,
            settings,
        })
    }

    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    /// Connects to the first server that answers.
    fn connect(&self) -> Result<(LdapConn, String), LdapError> {
        let mut attempts = Vec::new();
        for server in &self.settings.servers {
            let mut cs = LdapConnSettings::new()
                .set_conn_timeout(CONNECT_TIMEOUT)
                .set_starttls(self.settings.starttls && server.starts_with("ldap://"))
                .set_no_tls_verify(!self.verify);
            // ldap3 ignores no_tls_verify when given a configuration.
            if let Some(tls) = self.tls.as_ref().filter(|_| self.verify) {
                cs = cs.set_config(tls.clone());
            }
            match LdapConn::with_settings(cs, server) {
                Ok(conn) => return Ok((conn, server.clone())),
                Err(e) => attempts.push(format!("{server}: {e}")),
            }
        }
        Err(LdapError::Unreachable { attempts })
    }

    /// Binds as the configured search DN (none: stays anonymous).
    fn bind_for_search(&self, conn: &mut LdapConn, server: &str) -> Result<(), LdapError> {
        if self.settings.bind_dn.is_empty() {
            return Ok(());
        }
        let res = conn
            .with_timeout(OPERATION_TIMEOUT)
            .simple_bind(&self.settings.bind_dn, &self.settings.bind_password)
            .map_err(|source| LdapError::Operation {
                server: server.to_string(),
                operation: "bind as the search DN",
                source: Box::new(source),
            })?;
        check(server, "bind as the search DN", res)
    }

    fn search_user(
        &self,
        conn: &mut LdapConn,
        server: &str,
        username: &str,
    ) -> Result<Option<UserEntry>, LdapError> {
        let s = &self.settings;
        let scope = match s.scope {
            Scope::Base => LdapScope::Base,
            Scope::OneLevel => LdapScope::OneLevel,
            Scope::Subtree => LdapScope::Subtree,
        };
        let filter = s.filter.for_user(username);
        let attrs = s.search_attributes();
        let ldap3::SearchResult(entries, res) = conn
            .with_search_options(SearchOptions::new().sizelimit(1))
            .with_timeout(OPERATION_TIMEOUT)
            .search(&s.base, scope, &filter, attrs)
            .map_err(|source| LdapError::Operation {
                server: server.to_string(),
                operation: "user search",
                source: Box::new(source),
            })?;
        if res.rc != SIZE_LIMIT_EXCEEDED {
            check(server, "user search", res)?;
        }
        let Some(entry) = entries.into_iter().next() else {
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry);
        let value = |name: &str| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        Ok(Some(UserEntry {
            display_name: s.namefield.as_deref().and_then(value),
            password: value("userPassword"),
            dn: entry.dn.clone(),
        }))
    }

    /// Finds the entry of `username` (already nodeprepped).
    pub fn find_user(&self, username: &str) -> Result<Option<UserEntry>, LdapError> {
        off_runtime(|| {
            let (mut conn, server) = self.connect()?;
            self.bind_for_search(&mut conn, &server)?;
            let found = self.search_user(&mut conn, &server, username);
            let _ = conn.unbind();
            found
        })
    }

    /// Binds as `dn` with `password` on `conn`: `Ok(false)` when the
    /// directory says the credentials are wrong.
    fn user_bind(
        conn: &mut LdapConn,
        server: &str,
        dn: &str,
        password: &str,
    ) -> Result<bool, LdapError> {
        if password.is_empty() {
            // An empty password is an unauthenticated bind (RFC 4513 §5.1.2),
            // which some servers answer with success.
            return Ok(false);
        }
        let res = conn
            .with_timeout(OPERATION_TIMEOUT)
            .simple_bind(dn, password)
            .map_err(|source| LdapError::Operation {
                server: server.to_string(),
                operation: "bind as the user",
                source: Box::new(source),
            })?;
        match res.rc {
            0 => Ok(true),
            INVALID_CREDENTIALS | UNWILLING_TO_PERFORM | INAPPROPRIATE_AUTHENTICATION => Ok(false),
            _ => check(server, "bind as the user", res).map(|()| false),
        }
    }

    /// Finds `username` and binds as its entry with `password`, on one
    /// connection (Prosody opens a second one for the bind; the answer is
    /// the same): `None` for no such user, else the entry and whether the
    /// password is right.
    pub fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<(UserEntry, bool)>, LdapError> {
        off_runtime(|| {
            let (mut conn, server) = self.connect()?;
            self.bind_for_search(&mut conn, &server)?;
            let outcome = match self.search_user(&mut conn, &server, username)? {
                None => None,
                Some(entry) => {
                    let ok = Self::user_bind(&mut conn, &server, &entry.dn, password)?;
                    Some((entry, ok))
                }
            };
            let _ = conn.unbind();
            Ok(outcome)
        })
    }

    /// Replaces `userPassword` of `dn` (Prosody's `set_password`, as the
    /// search DN).
    pub fn set_password(&self, dn: &str, password: &str) -> Result<(), LdapError> {
        off_runtime(|| {
            let (mut conn, server) = self.connect()?;
            self.bind_for_search(&mut conn, &server)?;
            let change = vec![Mod::Replace(
                "userPassword".to_string(),
                std::collections::HashSet::from([password.to_string()]),
            )];
            let res = conn
                .with_timeout(OPERATION_TIMEOUT)
                .modify(dn, change)
                .map_err(|source| LdapError::Operation {
                    server: server.clone(),
                    operation: "password change",
                    source: Box::new(source),
                })?;
            let _ = conn.unbind();
            check(&server, "password change", res)
        })
    }
}
