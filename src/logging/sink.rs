//! Log sinks writing Prosody's line format.
//!
//! A file line is `TIMESTAMP NAME\tLEVEL\tMESSAGE` (the timestamp, with its
//! trailing space, only when the rule has timestamps); the console pads the
//! name to a column of at least 20 instead of the tab and colours the level
//! only when it is a terminal; syslog gets `NAME: MESSAGE` at the level's
//! priority, as Prosody's mod_posix sends it.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::rules::{Level, Rule, SinkKind};

/// One line to log.
pub struct Record<'a> {
    pub level: Level,
    /// Prosody's logger name: a session id (`c2s1f`), `host:module` or `general`.
    pub name: &'a str,
    pub message: &'a str,
}

enum Output {
    File(Mutex<File>),
    Console { colour: bool, width: AtomicUsize },
    Syslog,
}

/// An open sink and the rule it serves.
pub struct Sink {
    pub rule: Rule,
    out: Output,
}

/// Why a sink could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct OpenError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl Sink {
    /// Opens the rule's sink (a file is opened for appending, created if
    /// missing; opening again after a rotation starts the new file).
    pub fn open(rule: &Rule, syslog_ident: &str, syslog_facility: &str) -> Result<Sink, OpenError> {
        let out = match &rule.to {
            SinkKind::File(path) => {
                Output::File(Mutex::new(open_append(path).map_err(|source| {
                    OpenError {
                        path: path.display().to_string(),
                        source,
                    }
                })?))
            }
            SinkKind::Console => Output::Console {
                colour: std::io::stderr().is_terminal(),
                width: AtomicUsize::new(20),
            },
            SinkKind::Syslog => {
                open_syslog(syslog_ident, syslog_facility);
                Output::Syslog
            }
        };
        Ok(Sink {
            rule: rule.clone(),
            out,
        })
    }

    /// Writes `record` if the rule takes its level.
    pub fn write(&self, record: &Record<'_>) {
        if !self.rule.levels.contains(record.level) {
            return;
        }
        let stamp = self
            .rule
            .timestamps
            .as_deref()
            .map(|f| format!("{} ", strftime_now(f)))
            .unwrap_or_default();
        match &self.out {
            Output::File(file) => {
                let line = format!(
                    "{stamp}{}\t{}\t{}\n",
                    record.name,
                    record.level.name(),
                    record.message
                );
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            Output::Console { colour, width } => {
                let w = width
                    .fetch_max(record.name.len() + 2, Ordering::Relaxed)
                    .max(record.name.len() + 2);
                let level = if *colour {
                    coloured(record.level)
                } else {
                    record.level.name().to_string()
                };
                let line = format!("{stamp}{:<w$}{level}\t{}\n", record.name, record.message);
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Output::Syslog => syslog(record),
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The level as Prosody's console shows it (util.termcolours: bold, bold
/// yellow, bold red; debug plain).
fn coloured(level: Level) -> String {
    let style = match level {
        Level::Debug => return "debug".into(),
        Level::Info => "1",
        Level::Warn => "1;33",
        Level::Error => "1;31",
    };
    format!("\x1b[{style}m{}\x1b[0m", level.name())
}

unsafe extern "C" {
    /// POSIX tzset(3), which the libc crate does not declare.
    fn tzset();
}

/// The local time now, formatted by the C library's strftime as Lua's
/// `os.date` does.
pub fn strftime_now(format: &str) -> String {
    static TZSET: OnceLock<()> = OnceLock::new();
    TZSET.get_or_init(|| {
        // SAFETY: tzset only reads the TZ environment variable and the
        // zone files; it runs once, before any localtime_r call here.
        unsafe { tzset() }
    });
    let Ok(cformat) = CString::new(format) else {
        return String::new();
    };
    // SAFETY: time(NULL) has no pointer argument to misuse.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: tm is plain data; localtime_r fills it from `now`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return String::new();
    }
    let mut buf = [0u8; 256];
    // SAFETY: buf's length is passed; strftime writes at most that many
    // bytes and returns how many it wrote (0 when it did not fit).
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            cformat.as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

fn facility(name: &str) -> libc::c_int {
    match name {
        "auth" => libc::LOG_AUTH,
        "authpriv" => libc::LOG_AUTHPRIV,
        "cron" => libc::LOG_CRON,
        "kern" => libc::LOG_KERN,
        "lpr" => libc::LOG_LPR,
        "mail" => libc::LOG_MAIL,
        "news" => libc::LOG_NEWS,
        "syslog" => libc::LOG_SYSLOG,
        "user" => libc::LOG_USER,
        "uucp" => libc::LOG_UUCP,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => libc::LOG_DAEMON,
    }
}

/// openlog(3) once per process (it keeps the ident pointer, so the string
/// lives for the whole run; a changed `syslog_name` needs a restart).
fn open_syslog(ident: &str, facility_name: &str) {
    static IDENT: OnceLock<CString> = OnceLock::new();
    let mut first = false;
    let ident = IDENT.get_or_init(|| {
        first = true;
        CString::new(ident).unwrap_or_else(|_| c"lilt".to_owned())
    });
    if first {
        // SAFETY: ident is a NUL-terminated string that lives for the
        // rest of the process, as openlog requires.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, facility(facility_name)) };
    }
}

fn syslog(record: &Record<'_>) {
    let priority = match record.level {
        Level::Debug => libc::LOG_DEBUG,
        Level::Info => libc::LOG_INFO,
        Level::Warn => libc::LOG_WARNING,
        Level::Error => libc::LOG_ERR,
    };
    let text = format!("{}: {}", record.name, record.message).replace('\0', " ");
    let Ok(text) = CString::new(text) else { return };
    // SAFETY: a constant "%s" format with one NUL-terminated argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}
