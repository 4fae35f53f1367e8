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
    let pidfile = lua_string(&dir.join("lilt.pid").display().to_string());
    format!(
        r#"-- lilt's built-in development configuration (run with --config FILE for your own)
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ 5222 }}
data_path = {d}
pidfile = {pidfile}
certificates = {certs}
authentication = "internal_hashed"
c2s_require_encryption = true
modules_enabled = {{
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "time"; "uptime";
	"carbons"; -- messages on every device (XEP-0280)
	"csi_simple"; -- mobile clients' inactive state (XEP-0352)
	"admin_shell"; -- `lilt shell` (as prosodyctl shell)
}}
-- Prosody loads these on its own; "localhost" is not reachable from other
-- servers, so there is no federation here.
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}
log = {{ info = "*console" }}

VirtualHost "localhost"
"#
    )
}

/// How the user runs this same binary from their shell: `cargo run
/// [--release] --` under cargo, the bare name when that name on the PATH
/// is this binary, else the binary's full path.
pub fn command_prefix(
    under_cargo: bool,
    release: bool,
    exe: Option<&Path>,
    path_env: Option<&std::ffi::OsStr>,
) -> String {
    if under_cargo {
        return if release {
            "cargo run --release --".into()
        } else {
            "cargo run --".into()
        };
    }
    let Some(exe) = exe else {
        return "lilt".into();
    };
    if let (Some(name), Some(path_env)) = (exe.file_name(), path_env) {
        let same = |p: &Path| match (p.canonicalize(), exe.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if std::env::split_paths(path_env)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .is_some_and(|p| same(&p))
        {
            return name.to_string_lossy().into_owned();
        }
    }
    exe.display().to_string()
}

/// What the development setup prints once it listens: where it keeps its
/// data and commands that work when pasted as shown.
pub fn first_run_hint(dir: &Path) -> String {
    let exe = std::env::current_exe().ok();
    let prefix = command_prefix(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        !cfg!(debug_assertions),
        exe.as_deref(),
        std::env::var_os("PATH").as_deref(),
    );
    format!(
        "lilt: development setup in {} (host localhost, self-signed certificate).\n\
         \x20     Create an account:   {prefix} register alice localhost PASSWORD\n\
         \x20     Then log in as alice@localhost on 127.0.0.1:5222 (STARTTLS; the client must \
         accept the self-signed certificate).\n\
         \x20     BOSH and WebSocket are off here; with modules_enabled \"bosh\"/\"websocket\" in \
         your own config they are at http://127.0.0.1:5280/http-bind and \
         ws://127.0.0.1:5280/xmpp-websocket.\n\
         \x20     Your own config: {prefix} --config /etc/prosody/prosody.cfg.lua (commands: \
         {prefix} --help)",
        dir.display()
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

/// The host the development setup serves.
pub const DEV_HOST: &str = "localhost";

/// A self-signed certificate for `host`: the host as subject (CN) and as
/// subjectAltName, as Prosody's `prosodyctl cert generate` makes them.
pub fn self_signed(host: &str) -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, host);
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
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
        let (cert, signing_key) = self_signed(DEV_HOST)?;
        std::fs::write(&crt, cert.pem()).map_err(io(&crt))?;
        write_private(&key, signing_key.serialize_pem().as_bytes()).map_err(io(&key))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_prefix_is_what_works_in_a_shell() {
        assert_eq!(command_prefix(true, false, None, None), "cargo run --");
        assert_eq!(
            command_prefix(true, true, None, None),
            "cargo run --release --"
        );
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("lilt");
        std::fs::write(&exe, "").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            command_prefix(false, false, Some(&exe), Some(&path)),
            "lilt"
        );
        // Another `lilt` first on the PATH, or none: the full path.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("lilt"), "").unwrap();
        let path = std::env::join_paths([other.path(), dir.path()]).unwrap();
        assert_eq!(
            command_prefix(false, false, Some(&exe), Some(&path)),
            exe.display().to_string()
        );
        assert_eq!(
            command_prefix(false, false, Some(&exe), None),
            exe.display().to_string()
        );
    }
}
