//! The runner itself, against a real server: Debian's Prosody 0.12 started by
//! `run-reference.sh` (through `../shared/tools/reference-prosody`).
//!
//! - The 0.12 scripts pass as recorded in `conformance/reference-0.12.txt`.
//! - SASL SCRAM-SHA-1 and PLAIN log in to real accounts (internal_hashed),
//!   and a wrong password is reported as an authentication failure.
//! - `receives: nothing` passes in silence and fails, showing the stanza, when
//!   one arrives.
//! - A deliberately broken expectation (an edited copy of a script in a
//!   temporary directory) makes the run fail with a readable diff; listing it
//!   as an expected failure makes it an XFAIL, and listing a passing script
//!   makes the run fail as an unexpected pass.
//!
//! Skipped with a message when `../shared` is absent, when not root (Prosody is
//! run as its own user through runuser) or when Prosody cannot be installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use scansion_runner::{shared_dir, workspace_root};

/// One Prosody at a time: the machine is small and timing matters.
static SERIAL: Mutex<()> = Mutex::new(());

struct Run {
    status: Option<i32>,
    stdout: String,
}

fn usable() -> Option<(PathBuf, PathBuf)> {
    let Some(shared) = shared_dir() else {
        eprintln!("skipping: ../shared not found");
        return None;
    };
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        eprintln!("skipping: reference-prosody needs root (it runs prosody through runuser)");
        return None;
    }
    let root = workspace_root()?;
    Some((shared, root))
}

/// Runs `run-reference.sh SET ARGS...` with this build's runner; `None` when
/// Prosody could not be started (the reason is printed).
fn run_reference(root: &Path, set: &str, args: &[&str]) -> Option<Run> {
    run_reference_with(root, set, args, "")
}

fn run_reference_with(root: &Path, set: &str, args: &[&str], register: &str) -> Option<Run> {
    let out = Command::new(root.join("tests/scansion/run-reference.sh"))
        .arg(set)
        .args(args)
        .env("RUNNER", env!("CARGO_BIN_EXE_scansion-runner"))
        .env("REGISTER", register)
        .output()
        .expect("run-reference.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !stdout.contains("Prosody ") {
        eprintln!("skipping: Debian's Prosody could not be started:\n{stdout}\n{stderr}");
        return None;
    }
    println!("{stdout}");
    Some(Run {
        status: out.status.code(),
        stdout,
    })
}

#[test]
fn prosody_0_12_passes_the_scripts_recorded_as_passing() {
    let Some((_shared, root)) = usable() else {
        return;
    };
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(run) = run_reference(&root, "0.12", &[]) else {
        return;
    };
    assert_eq!(run.status, Some(0), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "passed 46/47 (expected failures: 1, unexpected failures: 0, unexpected passes: 0)"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_broken_expectation_fails_with_a_readable_diff() {
    let Some((shared, root)) = usable() else {
        return;
    };
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let src = shared.join("conformance/prosody-scansion/0.12");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        src.join("prosody.cfg.lua"),
        dir.path().join("prosody.cfg.lua"),
    )
    .expect("copy config");
    let script = std::fs::read_to_string(src.join("version.scs")).expect("version.scs");
    std::fs::write(dir.path().join("version.scs"), &script).expect("write");
    let broken = script.replace("<name>Prosody</name>", "<name>Prosodie</name>");
    assert_ne!(broken, script, "version.scs changed upstream");
    std::fs::write(dir.path().join("version_broken.scs"), broken).expect("write");
    let scripts = dir.path().to_str().expect("utf-8 temp path");

    let Some(run) = run_reference(&root, scripts, &[]) else {
        return;
    };
    assert_eq!(run.status, Some(1), "{}", run.stdout);
    assert!(run.stdout.contains("PASS  version.scs\n"), "{}", run.stdout);
    // The answer is checked as it arrives, or, when it came before the
    // receive step began (a loaded machine), skipped and shown at the
    // timeout: the same mismatch either way.
    let mismatch = "at iq/query/name: text: expected \"Prosodie\", received \"Prosody\"\n";
    assert!(
        run.stdout.contains(&format!(
            "FAIL  version_broken.scs\n      line 18: Romeo receives: stanza does not match {mismatch}"
        )) || run.stdout.contains(&format!(
            "FAIL  version_broken.scs\n      line 18: Romeo receives: no matching stanza within 5.0s; shown as received: a stanza that arrived before this action and was skipped, not matching {mismatch}"
        )),
        "{}",
        run.stdout
    );
    let failure = "      expected:\n        <iq id='lx2' from='localhost' type='result'>\n          <query xmlns='jabber:iq:version' scansion:strict='true'>\n            <name>Prosodie</name>\n            <version scansion:strict='false'/>\n          </query>\n        </iq>\n      received:\n        <iq from='localhost' id='lx2' to='romeo@localhost/dfaZpuxV' type='result'>\n          <query xmlns='jabber:iq:version'>\n            <name>Prosody</name>\n            <version>0.12.3</version>\n          </query>\n        </iq>\n";
    assert!(run.stdout.contains(failure), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "passed 1/2 (expected failures: 0, unexpected failures: 1, unexpected passes: 0)"
        ),
        "{}",
        run.stdout
    );

    // Listed as expected to fail: the run is green.
    let list = dir.path().join("expected.txt");
    std::fs::write(&list, "version_broken.scs  deliberately broken\n").expect("write");
    let list_arg = list.to_str().expect("utf-8");
    let Some(run) = run_reference(&root, scripts, &["--expected-failures", list_arg]) else {
        return;
    };
    assert_eq!(run.status, Some(0), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("XFAIL version_broken.scs  (deliberately broken)\n"),
        "{}",
        run.stdout
    );

    // A passing script on the list: the list must shrink, the run fails.
    std::fs::write(
        &list,
        "version_broken.scs  deliberately broken\nversion.scs  stale entry\n",
    )
    .expect("write");
    let Some(run) = run_reference(&root, scripts, &["--expected-failures", list_arg]) else {
        return;
    };
    assert_eq!(run.status, Some(1), "{}", run.stdout);
    assert!(run.stdout.contains("XPASS version.scs"), "{}", run.stdout);
}

#[test]
fn scram_and_plain_log_in_to_real_accounts() {
    let Some((shared, root)) = usable() else {
        return;
    };
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config =
        std::fs::read_to_string(shared.join("conformance/prosody-scansion/0.12/prosody.cfg.lua"))
            .expect("config");
    let config = config
        .replace(
            "authentication = \"insecure\"",
            "authentication = \"internal_hashed\"",
        )
        .replacen("storage = \"memory\"", "storage = \"internal\"", 1);
    assert!(config.contains("internal_hashed") && config.contains("\"internal\""));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("prosody.cfg.lua"), config).expect("write");
    let script = |password: &str| {
        format!(
            "# login\n\n[Client] Romeo\n\tjid: scram@localhost/res\n\tpassword: {password}\n\n---\n\nRomeo connects\n\nRomeo sends:\n\t<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>\n\nRomeo receives:\n\t<iq type='result' id='v1' from='localhost' to=\"${{Romeo's full JID}}\"/>\n\nRomeo disconnects\n"
        )
    };
    std::fs::write(dir.path().join("login.scs"), script("pencil")).expect("write");
    std::fs::write(dir.path().join("wrong_password.scs"), script("nope")).expect("write");
    let scripts = dir.path().to_str().expect("utf-8 temp path");
    for mechanism in ["SCRAM-SHA-1", "PLAIN"] {
        let Some(run) = run_reference_with(
            &root,
            scripts,
            &["--sasl", mechanism],
            "scram@localhost=pencil",
        ) else {
            return;
        };
        assert_eq!(run.status, Some(1), "{mechanism}: {}", run.stdout);
        assert!(
            run.stdout.contains("PASS  login.scs\n"),
            "{mechanism}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains(
                "FAIL  wrong_password.scs\n      line 9: Romeo connects: connecting failed: authentication as scram failed: not-authorized"
            ),
            "{mechanism}: {}",
            run.stdout
        );
    }
}

#[test]
fn receives_nothing_passes_in_silence_and_fails_on_a_stanza() {
    let Some((shared, root)) = usable() else {
        return;
    };
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        shared.join("conformance/prosody-scansion/0.12/prosody.cfg.lua"),
        dir.path().join("prosody.cfg.lua"),
    )
    .expect("copy config");
    let head =
        "[Client] Romeo\n\tjid: quiet@localhost\n\tpassword: password\n\n---\n\nRomeo connects\n\n";
    let ask = "Romeo sends:\n\t<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>\n\n";
    let answer = "Romeo receives:\n\t<iq type='result' id='v1'/>\n\n";
    let nothing = "Romeo receives: nothing\n\n";
    // Silence after connecting and after the answer: passes.
    std::fs::write(
        dir.path().join("quiet.scs"),
        format!("{head}{nothing}{ask}{answer}{nothing}Romeo disconnects\n"),
    )
    .expect("write");
    // The answer arrives while nothing is expected: fails, showing it.
    std::fs::write(
        dir.path().join("noisy.scs"),
        format!("{head}{ask}{nothing}Romeo disconnects\n"),
    )
    .expect("write");
    let scripts = dir.path().to_str().expect("utf-8 temp path");
    // A long quiet period, so a loaded machine (CI) still sees the answer in it.
    let Some(run) = run_reference(&root, scripts, &["--quiet-period", "5000"]) else {
        return;
    };
    assert_eq!(run.status, Some(1), "{}", run.stdout);
    assert!(run.stdout.contains("PASS  quiet.scs\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "FAIL  noisy.scs\n      line 12: Romeo receives: nothing: expected nothing, but a stanza arrived\n      received:\n        <iq from='localhost' id='v1' to='quiet@localhost/"
        ),
        "{}",
        run.stdout
    );
}
