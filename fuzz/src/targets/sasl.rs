//! SASL exchanges, server side (`auth::sasl` through the host's account
//! provider, as c2s runs them): each part of the input is one client
//! message (`<auth/>` then `<response/>`s). In SCRAM inputs `$NONCE` is
//! replaced by the nonce of the server's first message, so the exchange
//! gets past the nonce check to the proof.
//!
//! The accounts live in a small in-memory keyval store; `juliet`'s
//! password is `pencil`; the iteration count is low to keep inputs fast.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use auth::{AccountProvider, provider_for_host};
use xmpp_core::auth::{SaslContext, SaslExchange, SaslStep};
use xmpp_core::config::{HostConfig, Section};
use xmpp_core::storage::{
    ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError, StorageResult,
};
use xmpp_core::{Clock, HostKind, Server, ServerConfig, Value};

type Cells = Arc<Mutex<HashMap<(String, String, String), Value>>>;

struct MemDriver(Cells);

struct MemKeyval {
    host: String,
    store: String,
    cells: Cells,
}

impl MemKeyval {
    fn key(&self, user: Option<&str>) -> (String, String, String) {
        (
            self.host.clone(),
            self.store.clone(),
            user.unwrap_or("").to_string(),
        )
    }
}

impl KeyValueStore for MemKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        let cells = self.cells.lock().map_err(|_| poisoned())?;
        Ok(cells.get(&self.key(user)).cloned())
    }
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let key = self.key(user);
        let mut cells = self.cells.lock().map_err(|_| poisoned())?;
        match value {
            Some(v) => cells.insert(key, v),
            None => cells.remove(&key),
        };
        Ok(())
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        let cells = self.cells.lock().map_err(|_| poisoned())?;
        Ok(cells
            .keys()
            .filter(|(h, s, _)| *h == self.host && *s == self.store)
            .map(|(_, _, u)| u.clone())
            .collect())
    }
}

fn poisoned() -> StorageError {
    StorageError::Other("poisoned".into())
}

impl StorageDriver for MemDriver {
    fn name(&self) -> &str {
        "internal"
    }
    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(MemKeyval {
            host: host.into(),
            store: store.into(),
            cells: self.0.clone(),
        }))
    }
    fn open_map(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Err(StorageError::Other("no map stores".into()))
    }
    fn open_archive(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Err(StorageError::Other("no archives".into()))
    }
    fn purge_user(&self, _host: &str, _user: &str) -> StorageResult<()> {
        Ok(())
    }
}

struct Providers {
    _server: Arc<Server>,
    hashed: Arc<dyn AccountProvider>,
    anonymous: Arc<dyn AccountProvider>,
}

fn host_config(name: &str, options: &[(&str, Value)]) -> HostConfig {
    let mut section = Section::default();
    for (k, v) in options {
        section.set(*k, v.clone());
    }
    HostConfig {
        name: name.into(),
        kind: HostKind::VirtualHost,
        section,
        defined_at: Default::default(),
    }
}

fn providers() -> Option<&'static Providers> {
    static PROVIDERS: OnceLock<Option<Providers>> = OnceLock::new();
    PROVIDERS
        .get_or_init(|| {
            let cfg = ServerConfig {
                hosts: vec![
                    host_config(
                        "localhost",
                        &[("default_iteration_count", Value::Integer(2))],
                    ),
                    host_config(
                        "anon.localhost",
                        &[("authentication", Value::String("anonymous".into()))],
                    ),
                ],
                ..Default::default()
            };
            let server = Server::new(cfg, Clock::Fixed(1_700_000_000.0));
            server.storage.register(Arc::new(MemDriver(Arc::default())));
            let hashed = provider_for_host(&server.host("localhost")?).ok()?;
            hashed.create_user("juliet", Some("pencil")).ok()?;
            let anonymous = provider_for_host(&server.host("anon.localhost")?).ok()?;
            Some(Providers {
                _server: server,
                hashed,
                anonymous,
            })
        })
        .as_ref()
}

fn context(host: &str, exporter: bool) -> SaslContext {
    SaslContext {
        host: host.into(),
        secure: true,
        tls_exporter: exporter.then(|| b"0123456789abcdef0123456789abcdef".to_vec()),
        ..Default::default()
    }
}

/// Runs one exchange: each part is one client message.
fn exchange(mut exchange: Box<dyn SaslExchange>, parts: &[&[u8]], scram: bool) {
    let mut nonce: Option<Vec<u8>> = None;
    for part in parts {
        let input: Vec<u8> = match (&nonce, scram) {
            (Some(n), true) => replace(part, b"$NONCE", n),
            _ => part.to_vec(),
        };
        let input = (!input.is_empty()).then_some(input.as_slice());
        match exchange.step(input) {
            SaslStep::Challenge(data) => {
                if scram && nonce.is_none() {
                    nonce = auth::sasl::scram_msg::server_first_nonce(&data)
                        .map(|n| n.as_bytes().to_vec());
                }
            }
            SaslStep::Success { .. } => {
                let _ = exchange.session_attributes();
            }
            SaslStep::Failure(_) => {}
        }
        let _ = exchange.authcid();
    }
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

pub fn plain(data: &[u8]) {
    let Some(p) = providers() else { return };
    if let Ok(ex) = p.hashed.sasl_start("PLAIN", &context("localhost", false)) {
        exchange(ex, &crate::parts::split(data), false);
    }
}

/// The first byte picks the mechanism: SCRAM-SHA-1, SCRAM-SHA-256 or
/// their -PLUS variants.
pub fn scram(data: &[u8]) {
    let Some(p) = providers() else { return };
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (mechanism, exporter) = match selector % 4 {
        0 => ("SCRAM-SHA-1", false),
        1 => ("SCRAM-SHA-256", false),
        2 => ("SCRAM-SHA-1-PLUS", true),
        _ => ("SCRAM-SHA-256-PLUS", true),
    };
    if let Ok(ex) = p
        .hashed
        .sasl_start(mechanism, &context("localhost", exporter))
    {
        exchange(ex, &crate::parts::split(rest), true);
    }
}

pub fn anonymous(data: &[u8]) {
    let Some(p) = providers() else { return };
    if let Ok(ex) = p
        .anonymous
        .sasl_start("ANONYMOUS", &context("anon.localhost", false))
    {
        exchange(ex, &crate::parts::split(data), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The targets reach a real exchange: juliet logs in with PLAIN.
    #[test]
    fn plain_logs_juliet_in() {
        let p = providers().expect("providers");
        let mut ex = p
            .hashed
            .sasl_start("PLAIN", &context("localhost", false))
            .expect("PLAIN");
        let step = ex.step(Some(b"\0juliet\0pencil"));
        assert!(matches!(step, SaslStep::Success { .. }), "{step:?}");
        let mut ex = p
            .anonymous
            .sasl_start("ANONYMOUS", &context("anon.localhost", false))
            .expect("ANONYMOUS");
        assert!(matches!(ex.step(None), SaslStep::Success { .. }));
    }
}
