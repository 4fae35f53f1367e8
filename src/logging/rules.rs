//! The `log` option read as Prosody's loggingmanager reads it: a list of
//! rules, each a sink (`file`, `console`, `syslog`) and the levels it gets.
//!
//! Forms (Prosody 0.12, `core/loggingmanager.lua`):
//! - no `log`: the console, `info` and up (`debug` and up with `debug = true`);
//! - `log = "FILE"`: that file, `info` and up, with timestamps;
//! - `log = "*console"` / `"*syslog"`: that sink, every level;
//! - a table: each of `debug`/`info`/`warn`/`error` naming a file or
//!   `*sink` sends that level *and above* there (files with timestamps);
//!   each array item is either `"*sink"` (every level) or a rule
//!   `{ to = "file"|"console"|"syslog", filename = ..., levels = ...,
//!   timestamps = ... }` where `levels` is `{ min = L, max = L }`, a list
//!   of levels, or one level's name.

use std::path::PathBuf;

use xmpp_core::{ServerConfig, Table, Value};

/// Prosody's log levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }
}

/// A set of levels (Prosody's `get_levels` result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Levels([bool; 4]);

impl Levels {
    /// `min` and every level above it.
    pub fn from_min(min: Level) -> Levels {
        let mut set = Levels::default();
        for l in Level::ALL.into_iter().filter(|l| *l >= min) {
            set.0[l as usize] = true;
        }
        set
    }
    pub fn contains(self, level: Level) -> bool {
        self.0[level as usize]
    }
    pub fn lowest(self) -> Option<Level> {
        Level::ALL.into_iter().find(|l| self.contains(*l))
    }
    fn insert(&mut self, level: Level) {
        self.0[level as usize] = true;
    }
    /// As Prosody's `get_levels(criteria)`: a level name, `{ min, max }`
    /// (either may be missing) and/or a list of names.
    fn from_value(v: &Value) -> Levels {
        let mut set = Levels::default();
        match v {
            Value::String(s) => {
                if let Some(l) = Level::parse(s) {
                    set.insert(l);
                }
            }
            Value::Table(t) => {
                let min = t.get("min").and_then(Value::as_str).and_then(Level::parse);
                let max = t.get("max").and_then(Value::as_str).and_then(Level::parse);
                if min.is_some() || max.is_some() {
                    // Prosody walks the levels in order: from min (or, with
                    // only max, nothing until max) up to max inclusive.
                    let mut in_range = false;
                    for l in Level::ALL {
                        if Some(l) == min {
                            set.insert(l);
                            in_range = true;
                        } else if Some(l) == max {
                            set.insert(l);
                            break;
                        } else if in_range {
                            set.insert(l);
                        }
                    }
                }
                for item in &t.seq {
                    if let Some(l) = item.as_str().and_then(Level::parse) {
                        set.insert(l);
                    }
                }
            }
            _ => {}
        }
        set
    }
}

/// Where a rule's lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    File(PathBuf),
    Console,
    Syslog,
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkKind::File(p) => write!(f, "{}", p.display()),
            SinkKind::Console => f.write_str("*console"),
            SinkKind::Syslog => f.write_str("*syslog"),
        }
    }
}

/// Prosody's default timestamp format (`os.date` / strftime).
pub const DEFAULT_TIMESTAMP: &str = "%b %d %H:%M:%S";

/// One rule: a sink and the levels it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub to: SinkKind,
    pub levels: Levels,
    /// The strftime format written before each line, if any.
    pub timestamps: Option<String>,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Level::ALL
            .into_iter()
            .filter(|l| self.levels.contains(*l))
            .map(Level::name)
            .collect();
        write!(f, "{} ({})", self.to, names.join(", "))
    }
}

/// What the `log` option asks for: the rules, and what was not understood
/// (Prosody silently ignores those; lilt says so once).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogPlan {
    pub rules: Vec<Rule>,
    pub warnings: Vec<String>,
}

impl LogPlan {
    /// The lowest level any rule receives.
    pub fn lowest(&self) -> Option<Level> {
        self.rules.iter().filter_map(|r| r.levels.lowest()).min()
    }
}

fn sink_type(name: &str, filename: Option<&str>, config: &ServerConfig) -> Option<SinkKind> {
    match name {
        "console" | "stdout" => Some(SinkKind::Console),
        "syslog" => Some(SinkKind::Syslog),
        "file" => filename.map(|f| SinkKind::File(config.resolve_path(f))),
        _ => None,
    }
}

/// Reads the `log` option of `config`.
pub fn plan(config: &ServerConfig) -> LogPlan {
    let debug = config
        .get_global("debug")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let default_min = if debug { Level::Debug } else { Level::Info };
    let mut plan = LogPlan::default();
    match config.get_global("log") {
        None => plan.rules.push(Rule {
            to: SinkKind::Console,
            levels: Levels::from_min(default_min),
            timestamps: None,
        }),
        Some(Value::String(s)) => match s.strip_prefix('*') {
            Some(kind) => match sink_type(kind, None, config) {
                Some(to) => plan.rules.push(Rule {
                    to,
                    levels: Levels::from_min(Level::Debug),
                    timestamps: None,
                }),
                None => plan.warnings.push(format!("log: unknown sink {s:?}")),
            },
            None => plan.rules.push(Rule {
                to: SinkKind::File(config.resolve_path(s)),
                levels: Levels::from_min(default_min),
                timestamps: Some(DEFAULT_TIMESTAMP.into()),
            }),
        },
        Some(Value::Table(t)) => table_rules(t, config, &mut plan),
        Some(other) => plan.warnings.push(format!(
            "log must be a string or a table, not a {}",
            other.type_name()
        )),
    }
    plan
}

fn table_rules(t: &Table, config: &ServerConfig, plan: &mut LogPlan) {
    for level in Level::ALL {
        let Some(target) = t.get(level.name()).and_then(Value::as_str) else {
            continue;
        };
        let levels = Levels::from_min(level);
        match target.strip_prefix('*') {
            Some(kind) => match sink_type(kind, None, config) {
                Some(to) => plan.rules.push(Rule {
                    to,
                    levels,
                    timestamps: None,
                }),
                None => plan
                    .warnings
                    .push(format!("log: unknown sink {target:?} for {}", level.name())),
            },
            None => plan.rules.push(Rule {
                to: SinkKind::File(config.resolve_path(target)),
                levels,
                timestamps: Some(DEFAULT_TIMESTAMP.into()),
            }),
        }
    }
    for key in t.map.keys() {
        if Level::parse(key).is_none() {
            plan.warnings.push(format!("log: unknown level {key:?}"));
        }
    }
    for item in &t.seq {
        match item {
            Value::String(s) => {
                match s.strip_prefix('*').and_then(|k| sink_type(k, None, config)) {
                    Some(to) => plan.rules.push(Rule {
                        to,
                        levels: Levels::from_min(Level::Debug),
                        timestamps: None,
                    }),
                    None => plan.warnings.push(format!("log: unknown sink {s:?}")),
                }
            }
            Value::Table(r) => {
                let to = r.get("to").and_then(Value::as_str).unwrap_or("");
                let filename = r.get("filename").and_then(Value::as_str);
                let Some(kind) = sink_type(to, filename, config) else {
                    plan.warnings.push(if to == "file" {
                        "log: a rule with to = \"file\" needs a filename".to_string()
                    } else {
                        format!("log: unknown sink type {to:?}")
                    });
                    continue;
                };
                let levels = r
                    .get("levels")
                    .map(Levels::from_value)
                    .unwrap_or_else(|| Levels::from_min(Level::Debug));
                let timestamps = match r.get("timestamps") {
                    Some(Value::Bool(true)) => Some(DEFAULT_TIMESTAMP.to_string()),
                    Some(Value::String(f)) => Some(f.clone()),
                    _ => None,
                };
                plan.rules.push(Rule {
                    to: kind,
                    levels,
                    timestamps,
                });
            }
            other => plan.warnings.push(format!(
                "log: a rule must be a string or a table, not a {}",
                other.type_name()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_log(v: Value) -> ServerConfig {
        let mut cfg = ServerConfig::default();
        cfg.global.set("log", v);
        cfg
    }

    fn names(levels: Levels) -> Vec<&'static str> {
        Level::ALL
            .into_iter()
            .filter(|l| levels.contains(*l))
            .map(Level::name)
            .collect()
    }

    #[test]
    fn debian_style_table_gives_each_file_its_levels_and_up() {
        let mut t = Table::new();
        t.insert("info", Value::str("/var/log/prosody/prosody.log"));
        t.insert("error", Value::str("/var/log/prosody/prosody.err"));
        t.seq.push(Value::str("*syslog"));
        let p = plan(&with_log(Value::Table(t)));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.rules.len(), 3);
        assert_eq!(
            p.rules[0].to,
            SinkKind::File("/var/log/prosody/prosody.log".into())
        );
        assert_eq!(names(p.rules[0].levels), ["info", "warn", "error"]);
        assert_eq!(
            p.rules[1].to,
            SinkKind::File("/var/log/prosody/prosody.err".into())
        );
        assert_eq!(names(p.rules[1].levels), ["error"]);
        assert_eq!(p.rules[1].timestamps.as_deref(), Some(DEFAULT_TIMESTAMP));
        assert_eq!(p.rules[2].to, SinkKind::Syslog);
        assert_eq!(names(p.rules[2].levels), ["debug", "info", "warn", "error"]);
        assert_eq!(p.lowest(), Some(Level::Debug));
    }

    #[test]
    fn rule_tables_with_min_max_and_lists() {
        let mut levels = Table::new();
        levels.insert("min", Value::str("warn"));
        let mut rule = Table::new();
        rule.insert("to", Value::str("file"));
        rule.insert("filename", Value::str("/tmp/x.log"));
        rule.insert("levels", Value::Table(levels));
        rule.insert("timestamps", Value::str("%Y"));
        let mut only = Table::new();
        only.seq.push(Value::str("debug"));
        only.seq.push(Value::str("error"));
        let mut console = Table::new();
        console.insert("to", Value::str("console"));
        console.insert("levels", Value::Table(only));
        let mut max = Table::new();
        max.insert("max", Value::str("info"));
        let mut upto = Table::new();
        upto.insert("to", Value::str("syslog"));
        upto.insert("levels", Value::Table(max));
        let mut t = Table::new();
        t.seq = vec![
            Value::Table(rule),
            Value::Table(console),
            Value::Table(upto),
        ];
        let p = plan(&with_log(Value::Table(t)));
        assert_eq!(names(p.rules[0].levels), ["warn", "error"]);
        assert_eq!(p.rules[0].timestamps.as_deref(), Some("%Y"));
        assert_eq!(p.rules[1].to, SinkKind::Console);
        assert_eq!(names(p.rules[1].levels), ["debug", "error"]);
        assert_eq!(p.rules[1].timestamps, None);
        // Prosody's get_levels with only max: nothing is in range until max.
        assert_eq!(names(p.rules[2].levels), ["info"]);
    }

    #[test]
    fn string_forms_and_default() {
        let p = plan(&with_log(Value::str("*console")));
        assert_eq!(p.rules[0].to, SinkKind::Console);
        assert_eq!(p.lowest(), Some(Level::Debug));
        let p = plan(&with_log(Value::str("/tmp/p.log")));
        assert_eq!(p.rules[0].to, SinkKind::File("/tmp/p.log".into()));
        assert_eq!(p.lowest(), Some(Level::Info));
        assert!(p.rules[0].timestamps.is_some());
        let p = plan(&ServerConfig::default());
        assert_eq!(p.rules[0].to, SinkKind::Console);
        assert_eq!(p.lowest(), Some(Level::Info));
        let p = plan(&with_log(Value::str("*nowhere-known")));
        assert!(p.rules.is_empty());
        assert_eq!(p.warnings.len(), 1);
    }
}
