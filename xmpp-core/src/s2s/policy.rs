//! What the s2s streams need to know about the configuration and about the
//! peer's certificate, as Prosody's mod_s2s and mod_s2s_auth_certs decide:
//! `s2s_require_encryption` (default true), `s2s_secure_auth` (default
//! false), `s2s_secure_domains` and `s2s_insecure_domains`; and which
//! remote domains may federate at all, as the community modules
//! mod_s2s_whitelist (`s2s_whitelist`: only these) and mod_s2s_blacklist
//! (`s2s_blacklist`: never these) decide when enabled.

use std::collections::HashSet;
use std::sync::Arc;

use super::filter::DomainFilter;
use crate::config::ServerConfig;
use crate::value::Value;

/// What a peer's certificate proves about one domain (Prosody's
/// `cert_chain_status` and `cert_identity_status` together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Chain trusted and the certificate names the domain.
    Valid,
    /// Chain trusted, but the certificate is for other names.
    NameMismatch,
    /// The chain does not lead to a trusted root (or has expired).
    Untrusted,
    /// No certificate (plain TCP, or none presented).
    Missing,
}

impl CertStatus {
    /// Prosody's wording, after "Your server's certificate ".
    pub fn reason(self) -> &'static str {
        match self {
            CertStatus::Valid => "is valid",
            CertStatus::NameMismatch => "is not valid for this name",
            CertStatus::Untrusted => "is not trusted",
            CertStatus::Missing => "is missing",
        }
    }
}

/// The peer's certificate, as the runtime verified it: a pure function of
/// the domain asked about.
pub type PeerCert = Arc<dyn Fn(&str) -> CertStatus + Send + Sync>;

/// A peer without a certificate.
pub fn no_cert() -> PeerCert {
    Arc::new(|_| CertStatus::Missing)
}

/// The options both directions follow.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Hosts served here (a stream to any other is `host-unknown`).
    pub local_hosts: HashSet<String>,
    /// `s2s_require_encryption`.
    pub require_encryption: bool,
    /// `s2s_secure_auth`.
    pub secure_auth: bool,
    pub secure_domains: HashSet<String>,
    pub insecure_domains: HashSet<String>,
    /// This side can do TLS (it has a certificate for the stream's host).
    pub tls_available: bool,
    /// `s2s_auth_certs` is on: SASL EXTERNAL is offered and used.
    pub sasl_external: bool,
    /// `dialback` is on.
    pub dialback: bool,
    /// `s2s_bidi` is on (XEP-0288).
    pub bidi: bool,
    /// `s2s_whitelist` and `s2s_blacklist` of each local host (as the
    /// stream began: a reload that changes them closes the streams they
    /// no longer allow, see [`super::S2sManager`]).
    pub filter: DomainFilter,
}

/// The text Prosody's community modules give when refusing a domain.
pub const RESTRICTED: &str = "Communication with this domain is restricted";

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            local_hosts: HashSet::new(),
            require_encryption: true,
            secure_auth: false,
            secure_domains: HashSet::new(),
            insecure_domains: HashSet::new(),
            tls_available: true,
            sasl_external: true,
            dialback: true,
            bidi: false,
            filter: DomainFilter::default(),
        }
    }
}

impl Policy {
    /// Reads Prosody's global options; hosts are every configured host.
    pub fn from_config(config: &ServerConfig) -> Policy {
        let flag = |name: &str, default: bool| {
            config
                .get_global(name)
                .and_then(Value::as_bool)
                .unwrap_or(default)
        };
        let set = |name: &str| -> HashSet<String> {
            match config.get_global(name) {
                Some(v) => v
                    .as_string_list()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
                None => HashSet::new(),
            }
        };
        Policy {
            local_hosts: config.hosts.iter().map(|h| h.name.clone()).collect(),
            require_encryption: flag("s2s_require_encryption", true),
            secure_auth: flag("s2s_secure_auth", false),
            secure_domains: set("s2s_secure_domains"),
            insecure_domains: set("s2s_insecure_domains"),
            tls_available: true,
            sasl_external: true,
            dialback: true,
            bidi: false,
            filter: DomainFilter::default(),
        }
    }

    /// May `local` (when known) federate with `domain` (`s2s_whitelist`,
    /// `s2s_blacklist`)?
    pub fn remote_allowed(&self, local: Option<&str>, domain: &str) -> bool {
        self.filter.allows(local, domain)
    }

    /// Must `domain` prove itself with a valid certificate?
    pub fn must_secure(&self, domain: &str) -> bool {
        if self.secure_auth {
            !self.insecure_domains.contains(domain)
        } else {
            self.secure_domains.contains(domain)
        }
    }

    /// Must a stream with `domain` be encrypted?
    pub fn must_encrypt(&self, domain: &str) -> bool {
        self.require_encryption || self.must_secure(domain)
    }

    pub fn is_local(&self, domain: &str) -> bool {
        self.local_hosts.contains(domain)
    }
}
