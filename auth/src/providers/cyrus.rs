//! `authentication = "cyrus"` (Prosody's `mod_auth_cyrus`), for the case
//! deployments use it for — docker-jitsi-meet's LDAP setup: Cyrus SASL with
//! `pwcheck_method: saslauthd`, where `saslauthd` checks the password
//! (against LDAP, PAM, ...). lilt talks to saslauthd's socket directly.
//!
//! Options as Prosody's: `cyrus_service_name` (default `"xmpp"`; the
//! service saslauthd is told), `cyrus_application_name` (default
//! `"prosody"`; which `<name>.conf` Cyrus SASL reads), `cyrus_service_realm`
//! (else `sasl_realm`, else the host: the realm sent).
//!
//! The socket is found as libsasl2 finds it: `saslauthd_path` in the
//! application's config file, searched in `SASL_CONF_PATH` (colon-separated
//! directories), else `/etc/sasl2`, `/etc/sasl`,
//! `/usr/lib/x86_64-linux-gnu/sasl2`, `/usr/lib/sasl2`; default
//! `/var/run/saslauthd/mux`. Other `pwcheck_method`s (sasldb, auxprop) are
//! not supported: start-up says so and what to use instead.
//!
//! saslauthd's protocol: four strings (login, password, service, realm),
//! each as a 16-bit big-endian length and its bytes; the answer is one such
//! string, `OK ...` or `NO ...`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xmpp_core::Host;

use crate::backend::{Backend, Lookup, Profile};
use crate::error::AuthError;

/// libsasl2's default configuration directories on Debian.
const SASL_CONF_DIRS: &[&str] = &[
    "/etc/sasl2",
    "/etc/sasl",
    "/usr/lib/x86_64-linux-gnu/sasl2",
    "/usr/lib/sasl2",
];
/// libsasl2's default `saslauthd_path`.
pub const DEFAULT_SASLAUTHD_PATH: &str = "/var/run/saslauthd/mux";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A saslauthd conversation failure (never carries the password).
#[derive(Debug, thiserror::Error)]
pub enum SaslauthdError {
    #[error("saslauthd at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("saslauthd at {path} gave an unexpected answer {answer:?}")]
    Answer { path: PathBuf, answer: String },
    #[error("{field} is longer than saslauthd accepts")]
    TooLong { field: &'static str },
}

/// What the application's Cyrus SASL config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CyrusConfig {
    /// The file read, if one was found.
    pub file: Option<PathBuf>,
    pub pwcheck_method: String,
    pub saslauthd_path: PathBuf,
}

fn conf_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

impl CyrusConfig {
    /// Reads `<application>.conf` from the first directory that has it.
    pub fn find(application: &str, search_path: Option<&str>) -> CyrusConfig {
        let dirs: Vec<PathBuf> = match search_path {
            Some(p) => p.split(':').map(PathBuf::from).collect(),
            None => SASL_CONF_DIRS.iter().map(PathBuf::from).collect(),
        };
        let found = dirs.iter().find_map(|d| {
            let file = d.join(format!("{application}.conf"));
            std::fs::read_to_string(&file).ok().map(|t| (file, t))
        });
        let (file, text) = match found {
            Some((f, t)) => (Some(f), t),
            None => (None, String::new()),
        };
        CyrusConfig {
            file,
            pwcheck_method: conf_value(&text, "pwcheck_method")
                .unwrap_or_else(|| "saslauthd".to_string()),
            saslauthd_path: conf_value(&text, "saslauthd_path")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SASLAUTHD_PATH)),
        }
    }
}

fn put(out: &mut Vec<u8>, field: &'static str, value: &[u8]) -> Result<(), SaslauthdError> {
    let len = u16::try_from(value.len()).map_err(|_| SaslauthdError::TooLong { field })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    Ok(())
}

/// saslauthd's request: the four counted strings.
fn request(
    login: &str,
    password: &str,
    service: &str,
    realm: &str,
) -> Result<Vec<u8>, SaslauthdError> {
    let mut request = Vec::new();
    put(&mut request, "username", login.as_bytes())?;
    put(&mut request, "password", password.as_bytes())?;
    put(&mut request, "service", service.as_bytes())?;
    put(&mut request, "realm", realm.as_bytes())?;
    Ok(request)
}

/// Asks saslauthd at `path`; `Ok(true)` for `OK`, `Ok(false)` for `NO`.
pub fn saslauthd_check(
    path: &Path,
    login: &str,
    password: &str,
    service: &str,
    realm: &str,
) -> Result<bool, SaslauthdError> {
    let io = |source| SaslauthdError::Io {
        path: path.to_path_buf(),
        source,
    };
    let request = request(login, password, service, realm)?;
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.write_all(&request).map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(io)?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).map_err(io)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if answer.starts_with("OK") {
        Ok(true)
    } else if answer.starts_with("NO") {
        tracing::debug!(service, "saslauthd: {answer}");
        Ok(false)
    } else {
        Err(SaslauthdError::Answer {
            path: path.to_path_buf(),
            answer,
        })
    }
}

pub struct Cyrus {
    host: String,
    service: String,
    realm: String,
    socket: PathBuf,
}

impl Cyrus {
    pub fn load(host: &Host) -> Result<Cyrus, AuthError> {
        let string = |name: &str| -> Result<Option<String>, AuthError> {
            match host.option(name) {
                None => Ok(None),
                Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                    host.option_error(name, format!("must be a string, not a {}", v.type_name()))
                        .into()
                }),
            }
        };
        let service = string("cyrus_service_name")?.unwrap_or_else(|| "xmpp".to_string());
        let application =
            string("cyrus_application_name")?.unwrap_or_else(|| "prosody".to_string());
        let realm = match string("cyrus_service_realm")? {
            Some(r) => r,
            None => string("sasl_realm")?.unwrap_or_else(|| host.name.clone()),
        };
        let search_path = std::env::var("SASL_CONF_PATH").ok();
        let conf = CyrusConfig::find(&application, search_path.as_deref());
        let from = conf
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| format!("no {application}.conf found, libsasl2's default"));
        if conf.pwcheck_method != "saslauthd" {
            tracing::error!(host = %host.name, "authentication = \"cyrus\": pwcheck_method {:?} ({from}) is not supported by lilt, which talks to saslauthd only. Use pwcheck_method: saslauthd, or authentication = \"ldap\" (ldap_server, ldap_base, ...) or \"ldap2\" to check passwords against LDAP directly", conf.pwcheck_method);
        } else if !conf.saslauthd_path.exists() {
            tracing::error!(host = %host.name, "authentication = \"cyrus\": the saslauthd socket {} (saslauthd_path from {from}) does not exist; logins fail until saslauthd runs. Start saslauthd, or use authentication = \"ldap\" (ldap_server, ldap_base, ...) or \"ldap2\" to check passwords against LDAP directly", conf.saslauthd_path.display());
        } else {
            tracing::debug!(host = %host.name, "authentication = \"cyrus\" through saslauthd at {} ({from})", conf.saslauthd_path.display());
        }
        Ok(Cyrus {
            host: host.name.clone(),
            service,
            realm,
            socket: conf.saslauthd_path,
        })
    }
}

impl Backend for Cyrus {
    fn name(&self) -> &'static str {
        "cyrus"
    }

    fn host(&self) -> &str {
        &self.host
    }

    fn profile(&self) -> Profile {
        Profile {
            plain_test: true,
            ..Profile::default()
        }
    }

    fn test_password(&self, username: &str, password: &str) -> Result<Lookup<bool>, AuthError> {
        saslauthd_check(&self.socket, username, password, &self.service, &self.realm)
            .map(Lookup::Found)
            .map_err(|e| AuthError::Directory {
                host: self.host.clone(),
                provider: "cyrus",
                user: Some(username.to_string()),
                source: Box::new(e),
            })
    }

    fn user_exists(&self, _username: &str) -> Result<bool, AuthError> {
        // As mod_auth_cyrus: Cyrus SASL cannot tell.
        Ok(true)
    }

    fn set_password(&self, _username: &str, _password: &str) -> Result<(), AuthError> {
        Err(self.unsupported("changing passwords"))
    }

    fn create_user(&self, _username: &str, _password: Option<&str>) -> Result<(), AuthError> {
        Err(self.unsupported("account creation"))
    }

    fn delete_user(&self, _username: &str) -> Result<(), AuthError> {
        Err(self.unsupported("deleting accounts"))
    }

    fn users(&self) -> Result<Vec<String>, AuthError> {
        Err(self.unsupported("listing users"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_is_found_in_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("xmpp.conf"),
            "pwcheck_method: saslauthd\nmech_list: PLAIN\nsaslauthd_path: /run/x/mux\n",
        )
        .unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        let conf = CyrusConfig::find("xmpp", Some(&path));
        assert_eq!(conf.file, Some(dir.path().join("xmpp.conf")));
        assert_eq!(conf.saslauthd_path, PathBuf::from("/run/x/mux"));
        let none = CyrusConfig::find("prosody", Some(&path));
        assert_eq!(none.file, None);
        assert_eq!(none.pwcheck_method, "saslauthd");
        assert_eq!(none.saslauthd_path, PathBuf::from(DEFAULT_SASLAUTHD_PATH));
    }

    #[test]
    fn request_bytes() {
        let bytes = request("alice", "pä", "xmpp", "").unwrap();
        assert_eq!(
            bytes,
            b"\x00\x05alice\x00\x03p\xc3\xa4\x00\x04xmpp\x00\x00".to_vec()
        );
        let long = "x".repeat(70_000);
        assert!(matches!(
            request("a", &long, "xmpp", ""),
            Err(SaslauthdError::TooLong { field: "password" })
        ));
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = saslauthd_check(&dir.path().join("absent"), "a", "b", "c", "d").unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
