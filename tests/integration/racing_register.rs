//! Issue 21, attack 5: many `lilt register` processes creating the same
//! new account at once. Each write of the account file is whole (a
//! scratch file per writer, renamed into place), so the stored account is
//! the one of a writer that reported success, and no scratch file is left.
//! `lilt adduser` creates exclusively: of many at once, one succeeds.

use std::process::{Command, Stdio};

use xmpp_core::Clock;

const RACERS: usize = 100;

#[test]
fn racing_registrations_leave_the_account_of_a_writer_that_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = config_in(dir.path());
    let data = dir.path().join("data");
    let racers: Vec<_> = (0..RACERS)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_lilt"))
                .arg("--config")
                .arg(&config_path)
                .args(["register", "racer", "localhost", &format!("password-{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for (i, racer) in racers.into_iter().enumerate() {
        let out = racer.wait_with_output().unwrap();
        if out.status.success() {
            succeeded.push(i);
        } else {
            failed.push((i, String::from_utf8_lossy(&out.stderr).into_owned()));
        }
    }
    eprintln!("{} succeeded, {} failed", succeeded.len(), failed.len());
    assert!(!succeeded.is_empty(), "{failed:?}");

    // The stored account takes exactly one password, of a writer that
    // reported success.
    let config = lua_compat::config::load(&config_path).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    let matching: Vec<usize> = (0..RACERS)
        .filter(|i| {
            provider
                .test_password("racer", &format!("password-{i}"))
                .unwrap()
        })
        .collect();
    assert_eq!(matching.len(), 1, "passwords that log in: {matching:?}");
    assert!(
        succeeded.contains(&matching[0]),
        "the stored password is writer {}'s, which failed: {failed:?}",
        matching[0]
    );
    // (Every writer should succeed: none may fail over another's scratch file.)
    assert!(failed.is_empty(), "{failed:?}");

    // Nothing but the account file is left.
    let accounts = data.join("localhost").join("accounts");
    let files: Vec<String> = std::fs::read_dir(&accounts)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        vec!["racer.dat".to_string()],
        "in {}",
        accounts.display()
    );
}

/// A config with `internal_hashed` accounts in `dir`'s data directory.
fn config_in(dir: &std::path::Path) -> std::path::PathBuf {
    let config_path = dir.join("prosody.cfg.lua");
    std::fs::write(
        &config_path,
        format!(
            "data_path = {:?}\nauthentication = \"internal_hashed\"\nstorage = \"internal\"\nVirtualHost \"localhost\"\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    config_path
}

#[test]
fn of_racing_addusers_exactly_one_creates_the_account() {
    use std::io::Write as _;
    const ADDERS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let config_path = config_in(dir.path());
    let adders: Vec<_> = (0..ADDERS)
        .map(|i| {
            let mut child = Command::new(env!("CARGO_BIN_EXE_lilt"))
                .arg("--config")
                .arg(&config_path)
                .args(["adduser", "newbie@localhost"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "password-{i}\npassword-{i}").unwrap();
            child
        })
        .collect();
    let mut succeeded = Vec::new();
    for (i, adder) in adders.into_iter().enumerate() {
        let out = adder.wait_with_output().unwrap();
        if out.status.success() {
            succeeded.push(i);
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("already exists"), "adder {i}: {err}");
        }
    }
    assert_eq!(succeeded.len(), 1, "adders that succeeded: {succeeded:?}");
    let config = lua_compat::config::load(&config_path).unwrap();
    let server = lilt::startup::build_server(config, Clock::System).unwrap();
    let provider = auth::provider_for_host(&server.host("localhost").unwrap()).unwrap();
    let matching: Vec<usize> = (0..ADDERS)
        .filter(|i| {
            provider
                .test_password("newbie", &format!("password-{i}"))
                .unwrap()
        })
        .collect();
    assert_eq!(matching, succeeded);
    let files: Vec<String> = std::fs::read_dir(dir.path().join("data/localhost/accounts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["newbie.dat".to_string()]);
}
