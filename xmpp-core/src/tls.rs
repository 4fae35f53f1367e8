//! TLS for client streams: certificates found as Prosody finds them, served
//! by SNI with rustls, and the tls-exporter channel binding.
//!
//! Lookup, per host (Prosody's certmanager): the host's `ssl` table
//! (`certificate`/`key`), else the global `ssl` table, else the
//! `certificates` directory (default `certs` next to the config file) with
//! `HOST.crt`+`HOST.key`, `HOST/fullchain.pem`+`HOST/privkey.pem`, and the
//! same for each parent domain (so `conference.example.com` can use the
//! certificate of `example.com`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::ServerConfig;
use crate::value::Value;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate chain and key file pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Finds the certificate files for `host` as Prosody does; None if none exist.
pub fn find_certificate(config: &ServerConfig, host: &str) -> Option<CertPaths> {
    for section_host in [Some(host), None] {
        let ssl = match section_host {
            Some(h) => config.host(h).and_then(|h| h.section.get("ssl")),
            None => config.get_global("ssl"),
        };
        if let Some(paths) = ssl.and_then(|v| ssl_table_paths(config, v)) {
            return Some(paths);
        }
    }
    let dir = config
        .get(Some(host), "certificates")
        .and_then(Value::as_str)
        .map(|d| config.resolve_path(d))
        .unwrap_or_else(|| config.resolve_path("certs"));
    let mut name = host;
    loop {
        for (crt, key) in [
            (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            ),
            (
                dir.join(name).join("fullchain.pem"),
                dir.join(name).join("privkey.pem"),
            ),
            (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}.pem")),
            ),
        ] {
            if crt.is_file() && key.is_file() {
                return Some(CertPaths {
                    certificate: crt,
                    key,
                });
            }
        }
        match name.split_once('.') {
            Some((_, parent)) if parent.contains('.') || parent == "localhost" => name = parent,
            _ => return None,
        }
    }
}

fn ssl_table_paths(config: &ServerConfig, v: &Value) -> Option<CertPaths> {
    let cert = v.get("certificate").and_then(Value::as_str)?;
    let key = v.get("key").and_then(Value::as_str)?;
    Some(CertPaths {
        certificate: config.resolve_path(cert),
        key: config.resolve_path(key),
    })
}

/// Loads a chain and key into a rustls signing key.
pub fn load_certified_key(paths: &CertPaths) -> Result<CertifiedKey, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&paths.certificate)?;
    let key_pem = read(&paths.key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            path: paths.certificate.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: paths.certificate.clone(),
            reason: "no PEM certificate found".into(),
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsError::Invalid {
            path: paths.key.clone(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Invalid {
            path: paths.key.clone(),
            reason: "no PEM private key found".into(),
        })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Invalid {
            path: paths.key.clone(),
            reason: e.to_string(),
        })?;
    Ok(CertifiedKey::new(certs, signing))
}

/// Picks a host's certificate by SNI, falling back to a default host's.
#[derive(Debug)]
pub struct HostCertResolver {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for HostCertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.by_host.get(&n.to_ascii_lowercase()))
            .cloned()
            .or_else(|| self.default.clone())
    }
}

/// TLS for the server's hosts: which hosts have a certificate, and the
/// rustls configuration serving them.
pub struct TlsSetup {
    pub config: Arc<rustls::ServerConfig>,
    pub hosts: Vec<String>,
}

/// Builds TLS for every host that has a certificate; problems are returned
/// as warnings (a host without a certificate simply cannot offer TLS).
pub fn build_tls(config: &ServerConfig) -> (Option<TlsSetup>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut by_host = HashMap::new();
    let mut default = None;
    for h in &config.hosts {
        match find_certificate(config, &h.name) {
            Some(paths) => match load_certified_key(&paths) {
                Ok(k) => {
                    let k = Arc::new(k);
                    if default.is_none() {
                        default = Some(k.clone());
                    }
                    by_host.insert(h.name.clone(), k);
                }
                Err(e) => warnings.push(format!("certificate for {}: {e}", h.name)),
            },
            None => {
                if !matches!(h.kind, crate::config::HostKind::Component { .. }) {
                    warnings.push(format!("no certificate found for {} (looked in the certificates directory); TLS is not available for it", h.name));
                }
            }
        }
    }
    if by_host.is_empty() {
        return (None, warnings);
    }
    let hosts = by_host.keys().cloned().collect();
    let resolver = Arc::new(HostCertResolver { by_host, default });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b,
        Err(e) => {
            warnings.push(format!("TLS setup failed: {e}"));
            return (None, warnings);
        }
    };
    let cfg = builder.with_no_client_auth().with_cert_resolver(resolver);
    (
        Some(TlsSetup {
            config: Arc::new(cfg),
            hosts,
        }),
        warnings,
    )
}

/// RFC 9266 tls-exporter channel-binding data (TLS 1.3 only).
pub fn tls_exporter(conn: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let mut out = vec![0u8; 32];
    conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", Some(&[]))
        .ok()?;
    Some(out)
}
