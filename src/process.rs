//! Process habits of a service: the `pidfile`, the refusal to daemonize,
//! the checks made before listening (data directory, certificate files)
//! and the exit status for each way start-up can fail.
//!
//! lilt runs in the foreground under its service manager (systemd, docker);
//! `daemonize = true` is refused rather than silently ignored. With
//! `pidfile` set, the file holds lilt's process id while it runs, locked
//! (a second server with the same pidfile is refused) and removed at exit;
//! `lilt reload` finds the server through it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use xmpp_core::{ServerConfig, Value};

/// Exit statuses (sysexits.h), as `lilt --help` lists them.
pub mod exit {
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// A certificate or key file named in the config cannot be read.
    pub const NO_INPUT: u8 = 66;
    /// A port is in use (or cannot be bound).
    pub const UNAVAILABLE: u8 = 69;
    /// The data directory or the pidfile cannot be used, or another server
    /// holds the pidfile.
    pub const CANT_CREATE: u8 = 73;
    /// The config cannot be loaded or asks for what lilt refuses.
    pub const CONFIG: u8 = 78;
}

/// Why lilt will not start (or cannot signal the running server).
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "{at}daemonize = true: lilt does not daemonize; it runs in the foreground under a \
         service manager (systemd: Type=simple or Type=exec; docker). Remove the option \
         or set it to false"
    )]
    Daemonize { at: String },
    #[error("{at}{option}: cannot read {path}: {source}")]
    Certificate {
        at: String,
        option: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} (data_path) is not usable: {reason}")]
    DataPath { path: PathBuf, reason: String },
    #[error("cannot write the pidfile {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another server is running with the pidfile {path} (process {pid})")]
    AlreadyRunning { path: PathBuf, pid: String },
    #[error("{0}")]
    NotRunning(String),
}

impl ProcessError {
    /// The exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProcessError::Daemonize { .. } => exit::CONFIG,
            ProcessError::Certificate { .. } => exit::NO_INPUT,
            ProcessError::DataPath { .. }
            | ProcessError::PidFile { .. }
            | ProcessError::AlreadyRunning { .. } => exit::CANT_CREATE,
            ProcessError::NotRunning(_) => exit::FAILURE,
        }
    }
}

fn at(config: &ServerConfig, host: Option<&str>, name: &str) -> String {
    config
        .source_of(host, name)
        .map(|s| format!("{s}: "))
        .unwrap_or_default()
}

/// Refuses `daemonize = true`.
pub fn check_foreground(config: &ServerConfig) -> Result<(), ProcessError> {
    match config.get_global("daemonize") {
        Some(Value::Bool(true)) => Err(ProcessError::Daemonize {
            at: at(config, None, "daemonize"),
        }),
        _ => Ok(()),
    }
}

/// Certificate and key files named in `ssl` tables (global and per host)
/// must be readable: a server that cannot offer the TLS it was configured
/// with is refused at start rather than found out by its clients. (Files
/// found by looking in the `certificates` directory are optional, as in
/// Prosody: a host without one has no TLS, with a warning.)
pub fn check_certificates(config: &ServerConfig) -> Result<(), ProcessError> {
    let mut sections: Vec<(Option<&str>, Option<&Value>)> = vec![(None, config.get_global("ssl"))];
    sections.extend(
        config
            .hosts
            .iter()
            .map(|h| (Some(h.name.as_str()), h.section.get("ssl"))),
    );
    for (host, ssl) in sections {
        let Some(ssl) = ssl else { continue };
        for field in ["certificate", "key"] {
            let Some(file) = ssl.get(field).and_then(Value::as_str) else {
                continue;
            };
            let path = config.resolve_path(file);
            if let Err(source) = File::open(&path) {
                let option = match host {
                    Some(h) => format!("ssl.{field} of {h}"),
                    None => format!("ssl.{field}"),
                };
                return Err(ProcessError::Certificate {
                    at: at(config, host, "ssl"),
                    option,
                    path,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The data directory must be a directory lilt can list and write in; it
/// is created when missing (with its parents), as Prosody's storage does
/// for what it stores there.
pub fn check_data_path(path: &Path) -> Result<(), ProcessError> {
    let fail = |reason: String| ProcessError::DataPath {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(|e| fail(format!("cannot create it: {e}")))?;
    }
    if !path.is_dir() {
        return Err(fail("it is not a directory".into()));
    }
    std::fs::read_dir(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let probe = path.join(format!(".lilt-write-test-{}", std::process::id()));
    File::create(&probe).map_err(|e| fail(format!("cannot write in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Ignores SIGHUP until [`crate::reload::until_stopped`] handles it.
pub fn ignore_hangup() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no code.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
}

/// The `pidfile` option's path, if set.
pub fn pidfile_path(config: &ServerConfig) -> Option<PathBuf> {
    config
        .get_global("pidfile")
        .and_then(Value::as_str)
        .map(|p| config.resolve_path(p))
}

/// The pidfile, held (locked) while the server runs; removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    /// Writes and locks the pidfile when the config names one.
    pub fn create(config: &ServerConfig) -> Result<Option<PidFile>, ProcessError> {
        let Some(path) = pidfile_path(config) else {
            return Ok(None);
        };
        let fail = |source| ProcessError::PidFile {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(fail)?;
        // SAFETY: flock on a descriptor this File owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(ProcessError::AlreadyRunning {
                path,
                pid: pid.trim().to_string(),
            });
        }
        file.set_len(0).map_err(fail)?;
        write!(file, "{}", std::process::id()).map_err(fail)?;
        file.flush().map_err(fail)?;
        Ok(Some(PidFile { path, _file: file }))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `signal` to the server whose pid is in the config's pidfile
/// (`lilt reload`: SIGHUP). Returns the pid signalled.
pub fn signal_running(config: &ServerConfig, signal: libc::c_int) -> Result<i32, ProcessError> {
    let (pid, path) = running_pid(config)?;
    // SAFETY: kill(2) with a positive pid read from a pidfile a running
    // server holds locked.
    if unsafe { libc::kill(pid, signal) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(ProcessError::NotRunning(format!(
            "lilt is not running (process {pid} from {}: {e})",
            path.display()
        )));
    }
    Ok(pid)
}

/// Waits until no server holds the config's pidfile; false on timeout.
pub fn wait_stopped(config: &ServerConfig, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while running_pid(config).is_ok() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    true
}

/// The process id of the server running with this config: the one in its
/// pidfile, while a server holds that file locked.
pub fn running_pid(config: &ServerConfig) -> Result<(i32, PathBuf), ProcessError> {
    let Some(path) = pidfile_path(config) else {
        return Err(ProcessError::NotRunning(
            "No pidfile configured: set pidfile in the config (the running server writes \
             its process id there), or signal the server yourself"
                .into(),
        ));
    };
    let not_running =
        |why: String| ProcessError::NotRunning(format!("lilt is not running ({why})"));
    let mut file = File::open(&path)
        .map_err(|e| not_running(format!("cannot read the pidfile {}: {e}", path.display())))?;
    // The running server holds the lock: if we get it, the file is stale
    // and its process id may belong to someone else by now.
    // SAFETY: flock on a descriptor this File owns; the lock goes with it.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Err(not_running(format!(
            "the pidfile {} is stale: no server holds it",
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| not_running(format!("cannot read the pidfile {}: {e}", path.display())))?;
    let pid: i32 = text.trim().parse().map_err(|_| {
        ProcessError::NotRunning(format!(
            "the pidfile {} does not hold a process id: {:?}",
            path.display(),
            text.trim()
        ))
    })?;
    if pid <= 0 {
        return Err(ProcessError::NotRunning(format!(
            "the pidfile {} holds an invalid process id {pid}",
            path.display()
        )));
    }
    Ok((pid, path))
}
