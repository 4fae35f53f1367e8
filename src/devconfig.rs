//! The development setup `lilt` serves when started without `--config`:
//! host `localhost` on 127.0.0.1, data and a self-signed certificate in
//! `./lilt-data`, created on first run.

use std::path::{Path, PathBuf};

/// Problems preparing the development directory.
#[derive(Debug, thiserror::Error)]
pub enum DevSetupError {
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate a certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// The directory the development setup keeps its data in.
pub fn dev_dir() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.join("lilt-data")
}

/// The config text, for `dir`.
pub fn dev_config_text(dir: &Path) -> String {
    let d = lua_string(&dir.display().to_string());
    let certs = lua_string(&dir.join("certs").display().to_string());
    format!(
        r#"-- lilt's built-in development configuration (run with --config FILE for your own)
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ 5222 }}
data_path = {d}
certificates = {certs}
authentication = "internal_hashed"
c2s_require_encryption = true
modules_enabled = {{
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "time"; "uptime";
}}
log = {{ info = "*console" }}

VirtualHost "localhost"
"#
    )
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Creates the directory and a self-signed certificate for `localhost`
/// when missing; returns the path of the config file written there.
pub fn prepare(dir: &Path) -> Result<PathBuf, DevSetupError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DevSetupError::Io { path, source }
    };
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(io(&certs))?;
    let crt = certs.join("localhost.crt");
    let key = certs.join("localhost.key");
    if !crt.exists() || !key.exists() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        std::fs::write(&crt, cert.cert.pem()).map_err(io(&crt))?;
        write_private(&key, cert.signing_key.serialize_pem().as_bytes()).map_err(io(&key))?;
        eprintln!(
            "lilt: generated a self-signed certificate for localhost in {}",
            certs.display()
        );
    }
    let cfg = dir.join("lilt.cfg.lua");
    std::fs::write(&cfg, dev_config_text(dir)).map_err(io(&cfg))?;
    Ok(cfg)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}
