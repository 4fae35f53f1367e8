//! TLS for s2s streams, as Prosody's certmanager and mod_s2s_auth_certs:
//!
//! - our certificates are the hosts' (found as for c2s, see
//!   [`crate::tls::find_certificate`]), served by SNI on incoming streams and
//!   presented as client certificates on outgoing ones;
//! - the peer's certificate is accepted during the handshake whatever it
//!   is (signatures are still checked) and judged afterwards, per domain,
//!   against the trusted roots: the global `ssl` table's `cafile` (Prosody's
//!   option), else the system bundle `/etc/ssl/certs/ca-certificates.crt`.
//!   What it proves ([`CertStatus`]) is then applied by the streams
//!   according to `s2s_secure_auth` and friends.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use super::policy::{CertStatus, PeerCert, no_cert};
use crate::client::tls::AnyCertificate;
use crate::config::ServerConfig;
use crate::tls::{find_certificate, load_certified_key};
use crate::value::Value;

/// The system's CA bundle on Debian.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Everything TLS on s2s streams needs.
#[derive(Clone)]
pub struct S2sTls {
    /// Incoming streams: our certificate by SNI, the peer's requested.
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// The same, with the host's own certificate when the peer sends no
    /// SNI (STARTTLS after a stream header naming the host, as Prosody
    /// uses the `to` host's context), by local host.
    servers: HashMap<String, Arc<rustls::ServerConfig>>,
    /// Outgoing streams, by local host: our certificate offered.
    clients: HashMap<String, Arc<rustls::ClientConfig>>,
    /// Outgoing streams from a host without a certificate.
    anonymous_client: Arc<rustls::ClientConfig>,
    /// `None` without trusted roots: every chain is untrusted.
    judge: Option<Arc<WebPkiServerVerifier>>,
}

impl S2sTls {
    /// Loads every host's certificate and the trusted roots; what could
    /// not be loaded is returned as warnings.
    pub fn from_config(config: &ServerConfig) -> (S2sTls, Vec<String>) {
        let mut warnings = Vec::new();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut keys = HashMap::new();
        for h in &config.hosts {
            if let Some(paths) = find_certificate(config, &h.name) {
                match load_certified_key(&paths) {
                    Ok(k) => {
                        keys.insert(h.name.clone(), Arc::new(k));
                    }
                    Err(e) => warnings.push(format!("s2s certificate for {}: {e}", h.name)),
                }
            }
        }
        let mut roots = RootCertStore::empty();
        let cafile = config
            .get_global("ssl")
            .and_then(|s| s.get("cafile"))
            .and_then(Value::as_str)
            .map(|p| config.resolve_path(p))
            .unwrap_or_else(|| SYSTEM_BUNDLE.into());
        match std::fs::read(&cafile) {
            Ok(pem) => {
                for c in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
                    let _ = roots.add(c);
                }
            }
            Err(e) => warnings.push(format!(
                "cannot read the trusted certificates {}: {e}",
                cafile.display()
            )),
        }
        let judge =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build();
        let judge = match judge {
            Ok(j) => Some(j),
            Err(e) => {
                // No roots: no certificate is trusted.
                warnings.push(format!("no trusted roots for s2s: {e}"));
                None
            }
        };
        let algs = provider.signature_verification_algorithms;
        let server_with = |default: Option<Arc<CertifiedKey>>| {
            let resolver = Arc::new(ByName {
                keys: keys.clone(),
                default,
            });
            rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .ok()
                .map(|b| {
                    b.with_client_cert_verifier(Arc::new(AcceptAnyPeer(AnyCertificate(algs))))
                        .with_cert_resolver(resolver)
                })
                .map(Arc::new)
        };
        let server = if keys.is_empty() {
            None
        } else {
            server_with(keys.values().next().cloned())
        };
        let servers = keys
            .iter()
            .filter_map(|(host, key)| Some((host.clone(), server_with(Some(key.clone()))?)))
            .collect();
        let client = |key: Option<Arc<CertifiedKey>>| {
            let b = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algs)))
                });
            b.map(|b| match key {
                Some(k) => b.with_client_cert_resolver(Arc::new(OurCert(k))),
                None => b.with_no_client_auth(),
            })
            .map(Arc::new)
        };
        let mut clients = HashMap::new();
        for (host, key) in &keys {
            if let Ok(c) = client(Some(key.clone())) {
                clients.insert(host.clone(), c);
            }
        }
        let anonymous_client = match client(None) {
            Ok(c) => c,
            Err(e) => {
                warnings.push(format!("s2s TLS client setup failed: {e}"));
                Arc::new(
                    rustls::ClientConfig::builder()
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algs)))
                        .with_no_client_auth(),
                )
            }
        };
        (
            S2sTls {
                server,
                servers,
                clients,
                anonymous_client,
                judge,
            },
            warnings,
        )
    }

    /// The server side of TLS for a stream to `host` (when its header
    /// named it): SNI first, else `host`'s certificate.
    pub fn server_for(&self, host: Option<&str>) -> Option<Arc<rustls::ServerConfig>> {
        host.and_then(|h| self.servers.get(h))
            .cloned()
            .or_else(|| self.server.clone())
    }

    /// Can `host` take part in TLS as a server (it has a certificate)?
    pub fn has_certificate(&self, host: &str) -> bool {
        self.clients.contains_key(host)
    }

    /// The client configuration for streams from `host`.
    pub fn client(&self, host: &str) -> Arc<rustls::ClientConfig> {
        self.clients
            .get(host)
            .cloned()
            .unwrap_or_else(|| self.anonymous_client.clone())
    }

    /// What a presented chain proves, per domain.
    pub fn judge(&self, chain: Option<Vec<CertificateDer<'static>>>) -> PeerCert {
        let Some(chain) = chain.filter(|c| !c.is_empty()) else {
            return no_cert();
        };
        let judge = self.judge.clone();
        Arc::new(move |domain: &str| {
            let Some((end, rest)) = chain.split_first() else {
                return CertStatus::Missing;
            };
            let Some(judge) = &judge else {
                return CertStatus::Untrusted;
            };
            let Ok(name) = ServerName::try_from(domain.to_string()) else {
                return CertStatus::NameMismatch;
            };
            match judge.verify_server_cert(end, rest, &name, &[], UnixTime::now()) {
                Ok(_) => CertStatus::Valid,
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => CertStatus::NameMismatch,
                Err(_) => CertStatus::Untrusted,
            }
        })
    }
}

/// Our certificate by SNI on incoming streams.
#[derive(Debug)]
struct ByName {
    keys: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for ByName {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.keys.get(&n.to_ascii_lowercase()))
            .cloned()
            .or_else(|| self.default.clone())
    }
}

/// Our certificate on outgoing streams.
#[derive(Debug)]
struct OurCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for OurCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// Takes any client certificate during the handshake (checking only that
/// the peer holds its key, as [`AnyCertificate`] does for servers); it is
/// judged per domain afterwards.
#[derive(Debug)]
struct AcceptAnyPeer(AnyCertificate);

impl ClientCertVerifier for AcceptAnyPeer {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
