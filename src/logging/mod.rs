//! Logging as Prosody does it: the `log` option ([`rules`]) opens sinks
//! ([`sink`]) that each receive exactly their levels, in Prosody's line
//! format. lilt's `tracing` events are the log calls: an event's `session`
//! field names its logger as Prosody's session loggers are named (`c2s1f`),
//! else its `host` field (`localhost:guard`), else its target when that is
//! one of Prosody's own logger names (`startup`, `portmanager`), else
//! `general`.
//!
//! [`init`] installs the global subscriber once; [`reload`] (SIGHUP)
//! replaces the sinks from a new config, which also reopens every log file
//! (for logrotate).

pub mod rules;
pub mod sink;

use std::fmt::Write as _;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use xmpp_core::{ServerConfig, Value};

pub use rules::{Level, LogPlan, Rule, SinkKind, plan};
use sink::{Record, Sink};

/// Logger names Prosody uses for start-up and shutdown lines; an event
/// with one of these as its target (`tracing::info!(target: "startup",
/// ...)`) is logged under that name.
const PROSODY_LOGGERS: &[&str] = &["startup", "portmanager", "certmanager", "mod_posix"];

/// The sinks in force.
static SINKS: RwLock<Vec<Sink>> = RwLock::new(Vec::new());
/// The lowest level any sink takes (4: none), checked before an event's
/// fields are even formatted.
static LOWEST: AtomicU8 = AtomicU8::new(4);

fn level_of(meta: &Metadata<'_>) -> Option<Level> {
    match *meta.level() {
        tracing::Level::ERROR => Some(Level::Error),
        tracing::Level::WARN => Some(Level::Warn),
        tracing::Level::INFO => Some(Level::Info),
        tracing::Level::DEBUG => Some(Level::Debug),
        tracing::Level::TRACE => None,
    }
}

/// The tracing layer writing to [`SINKS`].
struct ProsodyLog;

impl<S: Subscriber> Layer<S> for ProsodyLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // Levels change on reload, so interest is asked every time.
        match level_of(meta) {
            Some(_) => Interest::sometimes(),
            None => Interest::never(),
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        level_of(meta).is_some_and(|l| l as u8 >= LOWEST.load(Ordering::Relaxed))
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(level) = level_of(event.metadata()) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let name = match (&fields.session, &fields.host) {
            (Some(s), _) => s.clone(),
            (None, Some(h)) => {
                let module = event.metadata().target().rsplit("::").next().unwrap_or("");
                format!("{h}:{module}")
            }
            // Prosody's own loggers, named by an event's target.
            (None, None) if PROSODY_LOGGERS.contains(&event.metadata().target()) => {
                event.metadata().target().to_string()
            }
            (None, None) => "general".to_string(),
        };
        let mut message = fields.message;
        if !fields.extra.is_empty() {
            let _ = write!(message, " ({})", fields.extra.join(", "));
        }
        let record = Record {
            level,
            name: &name,
            message: &message,
        };
        if let Ok(sinks) = SINKS.read() {
            for s in sinks.iter() {
                s.write(&record);
            }
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    session: Option<String>,
    host: Option<String>,
    extra: Vec<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        // `session = ?Option<String>`: the id, or no session at all.
        let value = match value
            .strip_prefix("Some(")
            .and_then(|v| v.strip_suffix(')'))
        {
            Some(inner) => inner.trim_matches('"').to_string(),
            None if value == "None" => return,
            None => value,
        };
        match field.name() {
            // Bridged `log` records (rustls): where they come from is noise.
            name if name.starts_with("log.") => {}
            "message" => self.message = value,
            "session" => self.session = Some(value),
            "host" => self.host = Some(value),
            name => self.extra.push(format!("{name}={value}")),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// What a reload did to logging.
#[derive(Debug, Default)]
pub struct Applied {
    /// Sinks added, removed or given other levels, one line each.
    pub changes: Vec<String>,
    /// Problems: rules not understood, files that could not be opened.
    pub warnings: Vec<String>,
}

fn syslog_settings(config: Option<&ServerConfig>) -> (String, String) {
    let get = |name: &str| {
        config
            .and_then(|c| c.get_global(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Prosody's default ident is its program name (arg[0]'s last part).
    let program = std::env::args()
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .unwrap_or_else(|| "lilt".into());
    (
        get("syslog_name").unwrap_or(program),
        get("syslog_facility").unwrap_or_else(|| "daemon".into()),
    )
}

/// Opens the sinks of `plan` and puts them in force; returns what changed
/// against the previous sinks.
fn apply(plan: &LogPlan, config: Option<&ServerConfig>) -> Applied {
    let (ident, facility) = syslog_settings(config);
    let mut applied = Applied {
        warnings: plan.warnings.clone(),
        ..Applied::default()
    };
    let mut opened = Vec::new();
    for rule in &plan.rules {
        match Sink::open(rule, &ident, &facility) {
            Ok(s) => opened.push(s),
            Err(e) => applied.warnings.push(e.to_string()),
        }
    }
    let lowest = opened
        .iter()
        .filter_map(|s| s.rule.levels.lowest())
        .min()
        .map(|l| l as u8)
        .unwrap_or(4);
    if let Ok(mut sinks) = SINKS.write() {
        for old in sinks.iter() {
            if !opened.iter().any(|s| s.rule == old.rule) {
                applied
                    .changes
                    .push(format!("log: no longer to {}", old.rule));
            }
        }
        for new in &opened {
            if !sinks.iter().any(|s| s.rule == new.rule) {
                applied.changes.push(format!("log: now to {}", new.rule));
            }
        }
        // The old sinks (and their files) are closed here.
        *sinks = opened;
    }
    LOWEST.store(lowest, Ordering::Relaxed);
    applied
}

/// Installs the global subscriber: as the config's `log` says, or, for the
/// prosodyctl-style commands (`None`), warnings and errors on the terminal
/// only (loading modules for `check config` must not drown its report).
/// Returns the problems found (rules not understood, files that could not
/// be opened); a file that cannot be opened is also reported on stderr, as
/// its lines go nowhere.
pub fn init(config: Option<&ServerConfig>) -> Vec<String> {
    let plan = match config {
        Some(c) => plan(c),
        None => console_plan(Level::Warn),
    };
    install(&plan, config)
}

/// The standalone components (`lilt focus`, `lilt bridge`, ...), which have
/// no config file: `min` and above on the console with timestamps, as
/// Jicofo and Videobridge log (they run for months; their lines are read
/// in journals).
pub fn init_console(min: Level) {
    let mut plan = console_plan(min);
    for rule in &mut plan.rules {
        rule.timestamps = Some(rules::DEFAULT_TIMESTAMP.into());
    }
    install(&plan, None);
}

fn console_plan(min: Level) -> LogPlan {
    LogPlan {
        rules: vec![Rule {
            to: SinkKind::Console,
            levels: rules::Levels::from_min(min),
            timestamps: None,
        }],
        warnings: Vec::new(),
    }
}

fn install(plan: &LogPlan, config: Option<&ServerConfig>) -> Vec<String> {
    let applied = apply(plan, config);
    let _ = tracing_subscriber::registry().with(ProsodyLog).try_init();
    for w in &applied.warnings {
        if w.starts_with("cannot open") {
            eprintln!("lilt: {w}");
        }
    }
    applied.warnings
}

/// Whether a sink writes to the terminal (stderr).
pub fn has_console() -> bool {
    SINKS
        .read()
        .map(|s| s.iter().any(|s| s.rule.to == SinkKind::Console))
        .unwrap_or(false)
}

/// Re-reads the `log` option (SIGHUP): new sinks replace the old ones and
/// every file is opened again.
pub fn reload(config: &ServerConfig) -> Applied {
    let applied = apply(&plan(config), Some(config));
    tracing::callsite::rebuild_interest_cache();
    applied
}
