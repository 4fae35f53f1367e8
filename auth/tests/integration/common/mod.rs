//! Test support: an in-memory storage driver, hosts with options, a SCRAM
//! client written independently of rsasl, and a tiny reader/writer for the
//! flat account `.dat` files Prosody writes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Mac, SimpleHmac};
use sha2::Digest;
use xmpp_core::auth::{SaslContext, SaslExchange, SaslStep};
use xmpp_core::config::{HostConfig, Section};
use xmpp_core::storage::{
    ArchiveStore, KeyValueStore, MapStore, StorageDriver, StorageError, StorageResult,
};
use xmpp_core::{Clock, Host, HostKind, Server, ServerConfig, Table, Value};

// -- storage ----------------------------------------------------------------

type Cells = Arc<Mutex<BTreeMap<(String, String, String), Value>>>;

/// Keyval-only memory storage: (host, store, user) -> value.
#[derive(Default)]
pub struct MemDriver {
    pub name: String,
    pub cells: Cells,
    pub purged: Mutex<Vec<(String, String)>>,
}

pub struct MemKeyval {
    host: String,
    store: String,
    cells: Cells,
}

impl KeyValueStore for MemKeyval {
    fn get(&self, user: Option<&str>) -> StorageResult<Option<Value>> {
        let key = (
            self.host.clone(),
            self.store.clone(),
            user.unwrap_or("").to_string(),
        );
        Ok(self.cells.lock().unwrap().get(&key).cloned())
    }
    fn set(&self, user: Option<&str>, value: Option<Value>) -> StorageResult<()> {
        let key = (
            self.host.clone(),
            self.store.clone(),
            user.unwrap_or("").to_string(),
        );
        let mut cells = self.cells.lock().unwrap();
        match value {
            Some(v) => cells.insert(key, v),
            None => cells.remove(&key),
        };
        Ok(())
    }
    fn users(&self) -> StorageResult<Vec<String>> {
        let cells = self.cells.lock().unwrap();
        Ok(cells
            .keys()
            .filter(|(h, s, _)| *h == self.host && *s == self.store)
            .map(|(_, _, u)| u.clone())
            .collect())
    }
}

impl StorageDriver for MemDriver {
    fn name(&self) -> &str {
        &self.name
    }
    fn open_keyval(&self, host: &str, store: &str) -> StorageResult<Arc<dyn KeyValueStore>> {
        Ok(Arc::new(MemKeyval {
            host: host.into(),
            store: store.into(),
            cells: self.cells.clone(),
        }))
    }
    fn open_map(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn MapStore>> {
        Err(StorageError::Other("no map stores in tests".into()))
    }
    fn open_archive(&self, _host: &str, _store: &str) -> StorageResult<Arc<dyn ArchiveStore>> {
        Err(StorageError::Other("no archives in tests".into()))
    }
    fn purge_user(&self, host: &str, user: &str) -> StorageResult<()> {
        self.purged.lock().unwrap().push((host.into(), user.into()));
        self.cells
            .lock()
            .unwrap()
            .retain(|(h, _, u), _| !(h == host && u == user));
        Ok(())
    }
}

impl MemDriver {
    pub fn record(&self, user: &str) -> Option<Table> {
        let key = (
            "localhost".to_string(),
            "accounts".to_string(),
            user.to_string(),
        );
        self.cells
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|v| v.as_table().cloned())
    }
    pub fn put(&self, host: &str, store: &str, user: &str, value: Value) {
        self.cells
            .lock()
            .unwrap()
            .insert((host.into(), store.into(), user.into()), value);
    }
}

/// A server with VirtualHost "localhost" carrying `options`, and an
/// "internal" memory driver.
pub fn host_with(options: &[(&str, Value)]) -> (Arc<Server>, Arc<Host>, Arc<MemDriver>) {
    let mut section = Section::default();
    for (k, v) in options {
        section.set(*k, v.clone());
    }
    let cfg = ServerConfig {
        hosts: vec![HostConfig {
            name: "localhost".into(),
            kind: HostKind::VirtualHost,
            section,
            defined_at: Default::default(),
        }],
        ..Default::default()
    };
    let server = Server::new(cfg, Clock::Fixed(1219439344.0));
    let driver = Arc::new(MemDriver {
        name: "internal".into(),
        ..Default::default()
    });
    server.storage.register(driver.clone());
    let host = server.host("localhost").expect("host");
    (server, host, driver)
}

pub fn list(items: &[&str]) -> Value {
    Value::Table(Table {
        seq: items.iter().map(|s| Value::str(*s)).collect(),
        ..Default::default()
    })
}

pub fn insecure_ctx() -> SaslContext {
    SaslContext {
        host: "localhost".into(),
        secure: false,
        tls_exporter: None,
        ..Default::default()
    }
}
pub fn tls_ctx() -> SaslContext {
    SaslContext {
        host: "localhost".into(),
        secure: true,
        tls_exporter: None,
        ..Default::default()
    }
}
pub fn tls13_ctx(exporter: &[u8]) -> SaslContext {
    SaslContext {
        host: "localhost".into(),
        secure: true,
        tls_exporter: Some(exporter.to_vec()),
        ..Default::default()
    }
}

pub fn failure(step: SaslStep) -> (&'static str, Option<String>) {
    match step {
        SaslStep::Failure(f) => (f.condition, f.text),
        other => panic!("expected a failure, got {other:?}"),
    }
}

pub fn challenge(step: SaslStep) -> Vec<u8> {
    match step {
        SaslStep::Challenge(c) => c,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

// -- SCRAM client ---------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hash {
    Sha1,
    Sha256,
}

fn hmac(h: Hash, key: &[u8], data: &[u8]) -> Vec<u8> {
    match h {
        Hash::Sha1 => {
            let mut m = <SimpleHmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Hash::Sha256 => {
            let mut m = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn digest(h: Hash, data: &[u8]) -> Vec<u8> {
    match h {
        Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
    }
}

/// Hi() from RFC 5802 §2.2, written out as the RFC defines it.
pub fn hi(h: Hash, password: &[u8], salt: &[u8], i: u32) -> Vec<u8> {
    let mut u = hmac(h, password, &[salt, &[0, 0, 0, 1]].concat());
    let mut out = u.clone();
    for _ in 1..i {
        u = hmac(h, password, &u);
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}
pub fn unb64(data: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap()
}

/// The client side of one SCRAM exchange.
pub struct ScramClient {
    pub hash: Hash,
    pub username: String,
    pub password: String,
    /// gs2 header, e.g. `n,,` or `p=tls-exporter,,`.
    pub gs2_header: String,
    pub cb_data: Vec<u8>,
    pub nonce: String,
    server_signature: Vec<u8>,
    client_first_bare: String,
}

impl ScramClient {
    pub fn new(hash: Hash, username: &str, password: &str) -> ScramClient {
        ScramClient {
            hash,
            username: username.into(),
            password: password.into(),
            gs2_header: "n,,".into(),
            cb_data: Vec::new(),
            nonce: "fyko+d2lbbFgONRv9qkxdawL".into(),
            server_signature: Vec::new(),
            client_first_bare: String::new(),
        }
    }
    pub fn plus(mut self, exporter: &[u8]) -> ScramClient {
        self.gs2_header = "p=tls-exporter,,".into();
        self.cb_data = exporter.to_vec();
        self
    }
    pub fn first(&mut self) -> Vec<u8> {
        let name = self.username.replace('=', "=3D").replace(',', "=2C");
        self.client_first_bare = format!("n={name},r={}", self.nonce);
        format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes()
    }
    pub fn last(&mut self, server_first: &[u8]) -> Vec<u8> {
        let sf = std::str::from_utf8(server_first).unwrap().to_string();
        let attr = |k: &str| {
            sf.split(',')
                .find_map(|a| a.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        let (nonce, salt, iterations) = (
            attr("r="),
            unb64(&attr("s=")),
            attr("i=").parse::<u32>().unwrap(),
        );
        assert!(
            nonce.starts_with(&self.nonce),
            "server nonce must extend ours"
        );
        let cb = b64(&[self.gs2_header.as_bytes(), &self.cb_data].concat());
        let without_proof = format!("c={cb},r={nonce}");
        let auth_message = format!("{},{sf},{without_proof}", self.client_first_bare);
        let salted = hi(self.hash, self.password.as_bytes(), &salt, iterations);
        let client_key = hmac(self.hash, &salted, b"Client Key");
        let stored_key = digest(self.hash, &client_key);
        let signature = hmac(self.hash, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(self.hash, &salted, b"Server Key");
        self.server_signature = hmac(self.hash, &server_key, auth_message.as_bytes());
        format!("{without_proof},p={}", b64(&proof)).into_bytes()
    }
    /// Checks the server-final message (`v=`) against what we expect.
    pub fn verify(&self, server_final: &[u8]) -> bool {
        server_final == format!("v={}", b64(&self.server_signature)).as_bytes()
    }
}

/// Runs a whole SCRAM exchange; returns the final step and the client.
pub fn scram_login(exchange: &mut Box<dyn SaslExchange>, client: &mut ScramClient) -> SaslStep {
    match exchange.step(Some(&client.first())) {
        SaslStep::Challenge(sf) => exchange.step(Some(&client.last(&sf))),
        other => other,
    }
}

// -- Prosody's account files ---------------------------------------------------

/// Reads a flat `return { ["k"] = v; ... };` file as Prosody's
/// `util.serialization` writes account records (string and number values).
pub fn parse_flat_dat(src: &str) -> Table {
    let mut t = Table::new();
    for line in src.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("[\"") else {
            continue;
        };
        let (key, rest) = rest.split_once("\"] = ").unwrap();
        let value = rest.trim_end_matches(';');
        let v = if let Some(s) = value.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Value::str(s)
        } else {
            Value::Integer(value.parse().unwrap())
        };
        t.insert(key, v);
    }
    t
}

/// Writes a flat record as Prosody does (keys sorted, tab-indented).
pub fn write_flat_dat(t: &Table) -> String {
    let mut out = String::from("return {\n");
    for (k, v) in &t.map {
        let v = match v {
            Value::String(s) => format!("{s:?}"),
            Value::Integer(i) => i.to_string(),
            other => panic!("not flat: {other:?}"),
        };
        out.push_str(&format!("\t[\"{k}\"] = {v};\n"));
    }
    out.push_str("};\n");
    out
}

/// `../shared` next to the workspace root, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let shared = root.parent()?.join("shared");
    shared
        .join("tools/reference-prosody")
        .exists()
        .then_some(shared)
}
