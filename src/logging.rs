//! Logging: Prosody's `log` option mapped onto tracing.
//!
//! Prosody accepts `log = "file"`, `log = "*console"`, a table of
//! `level = sink` pairs and sinks (`{ info = "prosody.log"; error =
//! "prosody.err"; "*syslog" }`), or a list of `{ levels = {...}, to = ... }`
//! rules. lilt logs to the terminal at the lowest level named, and also to
//! the first log file named when it can open it. `RUST_LOG` overrides.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use xmpp_core::{ServerConfig, Value};

const LEVELS: [&str; 5] = ["debug", "info", "warn", "error", "critical"];

/// What the `log` option asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct LogPlan {
    /// The lowest level logged (tracing's name).
    pub level: &'static str,
    /// The first file named.
    pub file: Option<PathBuf>,
}

fn tracing_level(prosody: &str) -> Option<&'static str> {
    Some(match prosody {
        "debug" => "debug",
        "info" => "info",
        "warn" => "warn",
        "error" | "critical" => "error",
        _ => return None,
    })
}

fn rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(1)
}

/// Reads the `log` option.
pub fn plan(config: &ServerConfig) -> LogPlan {
    let mut lowest = "info";
    let mut file = None;
    let sink = |s: &str, file: &mut Option<PathBuf>| {
        if !s.starts_with('*') && file.is_none() {
            *file = Some(config.resolve_path(s));
        }
    };
    match config.get_global("log") {
        Some(Value::String(s)) => sink(s, &mut file),
        Some(Value::Table(t)) => {
            let mut named = Vec::new();
            for (level, v) in &t.map {
                if let (Some(_), Some(s)) = (tracing_level(level), v.as_str()) {
                    named.push(level.as_str());
                    sink(s, &mut file);
                }
            }
            for rule in &t.seq {
                match rule {
                    Value::String(s) => sink(s, &mut file),
                    Value::Table(r) => {
                        if let Some(to) = r.get("to").and_then(Value::as_str) {
                            sink(to, &mut file);
                        }
                        if let Some(min) = r
                            .get("levels")
                            .and_then(|l| l.get("min"))
                            .and_then(Value::as_str)
                        {
                            named.push(
                                LEVELS
                                    .iter()
                                    .find(|l| **l == min)
                                    .copied()
                                    .unwrap_or("info"),
                            );
                        } else if let Some(list) = r.get("levels").and_then(Value::as_string_list) {
                            for l in list {
                                if let Some(x) = LEVELS.iter().find(|x| **x == l) {
                                    named.push(x);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some(min) = named.iter().min_by_key(|l| rank(l)) {
                lowest = min;
            }
        }
        _ => {}
    }
    LogPlan {
        level: tracing_level(lowest).unwrap_or("info"),
        file,
    }
}

/// Installs the global subscriber: as the config's `log` says, or, for the
/// prosodyctl-style commands (`None`), warnings and errors on the terminal
/// only (loading modules for `check config` must not drown its report).
/// Returns a warning if the log file could not be opened (logging then goes
/// to the terminal only).
pub fn init(config: Option<&ServerConfig>) -> Option<String> {
    let plan = config.map(plan).unwrap_or(LogPlan {
        level: "warn",
        file: None,
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(plan.level));
    let mut warning = None;
    let file = plan.file.as_ref().and_then(|p| {
        match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(f),
            Err(e) => {
                warning = Some(format!(
                    "cannot open log file {}: {e}; logging to the terminal only",
                    p.display()
                ));
                None
            }
        }
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match file {
        Some(f) => builder
            .with_writer(std::io::stderr.and(Mutex::new(f)))
            .with_ansi(false)
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    drop(result);
    warning
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::Table;

    #[test]
    fn debian_style_log_table() {
        let mut cfg = ServerConfig::default();
        let mut t = Table::new();
        t.insert("info", Value::str("/var/log/prosody/prosody.log"));
        t.insert("error", Value::str("/var/log/prosody/prosody.err"));
        t.seq.push(Value::str("*syslog"));
        cfg.global.set("log", Value::Table(t));
        let p = plan(&cfg);
        assert_eq!(p.level, "info");
        assert!(p.file.is_some());
    }
}
