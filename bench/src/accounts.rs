//! The benchmark's accounts: `bench0` ... `benchN` with one password, and
//! Prosody's `internal_hashed` account files for them (lilt reads the same
//! data directory). The SCRAM keys are derived once with one salt: the
//! server's work per login does not depend on the salt.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};

/// The password every benchmark account has.
pub const PASSWORD: &str = "bench-secret";
/// Prosody's default iteration count.
pub const ITERATIONS: u32 = 4096;
const SALT: &str = "6a1b2c3d-bench-salt-0000-000000000000";

/// The node part of account `i`.
pub fn username(i: usize) -> String {
    format!("bench{i}")
}

/// Account `i` (from 1) of the tsung cross-check: tsung derives both the
/// name and the password from its `username`/`passwd` prefixes and the
/// user's number, and bench/tsung/one_to_one.xml uses `tsung` for both.
pub fn tsung_username(i: usize) -> String {
    format!("tsung{i}")
}

/// Writing account files failed.
#[derive(Debug, thiserror::Error)]
#[error("writing account files in {path}: {source}")]
pub struct AccountsError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The body of one `accounts/USER.dat` file, as Prosody 0.12's
/// internal_hashed provider writes it.
pub fn account_record(password: &str) -> String {
    let mut salted = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(
        password.as_bytes(),
        SALT.as_bytes(),
        ITERATIONS,
        &mut salted,
    );
    let stored_key = Sha1::digest(hmac(&salted, b"Client Key"));
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "return {{\n\t[\"iteration_count\"] = {ITERATIONS};\n\t[\"salt\"] = \"{SALT}\";\n\t[\"server_key\"] = \"{}\";\n\t[\"stored_key\"] = \"{}\";\n}};\n",
        hex(&server_key),
        hex(&stored_key)
    )
}

/// Writes `count` accounts for `host` under Prosody's `data_path`.
pub fn write_prosody_accounts(
    data_path: &Path,
    host: &str,
    count: usize,
) -> Result<(), AccountsError> {
    let record = account_record(PASSWORD);
    let accounts = (0..count).map(|i| (username(i), record.clone()));
    write_records(data_path, host, accounts)
}

/// Writes the `count` accounts of the tsung cross-check (password = name).
pub fn write_tsung_accounts(
    data_path: &Path,
    host: &str,
    count: usize,
) -> Result<(), AccountsError> {
    let accounts = (1..=count).map(|i| {
        let name = tsung_username(i);
        let record = account_record(&name);
        (name, record)
    });
    write_records(data_path, host, accounts)
}

fn write_records(
    data_path: &Path,
    host: &str,
    accounts: impl Iterator<Item = (String, String)>,
) -> Result<(), AccountsError> {
    // Prosody encodes the host directory name: only [a-z0-9] pass as is.
    let encoded: String = host
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let dir = data_path.join(encoded).join("accounts");
    let err = |path: &Path, source| AccountsError {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    for (name, record) in accounts {
        let path = dir.join(format!("{name}.dat"));
        let mut f = std::fs::File::create(&path).map_err(|e| err(&path, e))?;
        f.write_all(record.as_bytes()).map_err(|e| err(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_hashed_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_prosody_accounts(dir.path(), "localhost", 3).expect("written");
        let text = std::fs::read_to_string(dir.path().join("localhost/accounts/bench2.dat"))
            .expect("read");
        assert!(text.starts_with("return {"));
        assert!(text.contains("[\"iteration_count\"] = 4096;"));
        let stored = text
            .lines()
            .find(|l| l.contains("stored_key"))
            .expect("stored_key line");
        assert!(stored.matches(|c: char| c.is_ascii_hexdigit()).count() >= 40);
        assert!(!dir.path().join("localhost/accounts/bench3.dat").exists());
    }
}
