//! The lilt binary as a service manager sees it (issue 18): the exit
//! status and message for each way start-up fails (`daemonize = true`, a
//! port in use, a certificate file that cannot be read, a data directory
//! that is not one, a pidfile held by a running server), the pidfile
//! written at start and removed at exit, and `status`/`stop` finding the
//! server through it. Each case starts the real binary
//! as a child process on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LILT: &str = env!("CARGO_BIN_EXE_lilt");

fn base(dir: &Path, extra: &str) -> String {
    format!(
        "interfaces = {{ \"127.0.0.1\" }}\nc2s_ports = {{ 0 }}\ndata_path = \"{}\"\n{extra}\nVirtualHost \"localhost\"\n",
        dir.join("data").display()
    )
}

/// Runs lilt on `config` until it exits (at most 20 s).
fn run_until_exit(dir: &Path, config: &str) -> Output {
    let file = dir.join("prosody.cfg.lua");
    std::fs::write(&file, config).unwrap();
    let child = Command::new(LILT)
        .arg("--config")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("lilt kept running on a config it should refuse:\n{config}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    waiter.join().unwrap()
}

fn refused(out: &Output, code: i32, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    for w in words {
        assert!(stderr.contains(w), "{w:?} not in stderr:\n{stderr}");
    }
}

#[test]
fn daemonize_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_until_exit(dir.path(), &base(dir.path(), "daemonize = true"));
    refused(&out, 78, &["prosody.cfg.lua:4", "daemonize", "foreground"]);
    // daemonize = false is what lilt does anyway: accepted (checked by the
    // pidfile test below, which runs a server with it).
}

#[test]
fn daemonize_flag_is_refused() {
    let out = Command::new(LILT).arg("-D").output().unwrap();
    refused(&out, 78, &["does not daemonize", "foreground"]);
}

#[test]
fn port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config =
        base(dir.path(), "").replace("c2s_ports = { 0 }", &format!("c2s_ports = {{ {port} }}"));
    let out = run_until_exit(dir.path(), &config);
    refused(
        &out,
        69,
        &[
            &format!("127.0.0.1:{port}"),
            "already running and using this port",
        ],
    );
}

#[test]
fn missing_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.crt");
    let extra = format!(
        "ssl = {{ certificate = \"{}\"; key = \"{}\" }}",
        missing.display(),
        dir.path().join("nope.key").display()
    );
    let out = run_until_exit(dir.path(), &base(dir.path(), &extra));
    refused(
        &out,
        66,
        &[
            "ssl.certificate",
            &missing.display().to_string(),
            "prosody.cfg.lua:4",
        ],
    );
}

#[test]
fn data_directory_that_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data"), "a file").unwrap();
    let out = run_until_exit(dir.path(), &base(dir.path(), ""));
    refused(&out, 73, &["data_path", "not a directory"]);
}

fn start(dir: &Path, name: &str, config: &str) -> (Child, Vec<String>) {
    let file = dir.join(name);
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(LILT)
        .arg("--config")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let serving = line.starts_with("lilt: serving");
        lines.push(line);
        if serving {
            break;
        }
    }
    (child, lines)
}

#[test]
fn pidfile_written_locked_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("run").join("lilt.pid");
    let config = base(
        dir.path(),
        &format!("pidfile = \"{}\"\ndaemonize = false", pidfile.display()),
    );
    let (mut first, lines) = start(dir.path(), "first.cfg.lua", &config);
    assert!(
        lines.iter().any(|l| l.starts_with("lilt: serving")),
        "{lines:?}"
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), first.id().to_string());
    // A second server with the same pidfile is refused; the file is kept.
    let out = run_until_exit(dir.path(), &config);
    refused(&out, 73, &["another server is running", pid.trim()]);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid);
    // prosodyctl status / stop, through the pidfile.
    let file = dir.path().join("first.cfg.lua");
    let ctl = |command: &str| {
        Command::new(LILT)
            .arg("--config")
            .arg(&file)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let status = ctl("status");
    assert_eq!(status.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains(&format!("running with PID {}", pid.trim()))
    );
    let stop = ctl("stop");
    assert_eq!(stop.status.code(), Some(0), "{stop:?}");
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert!(!pidfile.exists(), "pidfile left behind at exit");
    let status = ctl("status");
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stderr).contains("not running"));
}
