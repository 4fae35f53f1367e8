//! [`ConfigError`]: what can go wrong loading `prosody.cfg.lua`, always naming
//! the file (and the line, when there is one) in plain words.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in a config file: `file:line`, or just `file` when no line is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<u32>,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: Option<u32>) -> Location {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The main config file is missing or unreadable.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: Arc<io::Error>,
    },

    /// The Lua parser refused the file.
    #[error("{at}: syntax error: {message}")]
    Syntax { at: Location, message: String },

    /// The file parsed but failed while running (a call to an unknown
    /// function, `error(...)`, a bad argument to a directive, ...).
    #[error("{at}: {message}")]
    Runtime { at: Location, message: String },

    /// `VirtualHost`/`Component` with a name that is not a valid host name.
    #[error("{at}: the name of {directive} {name:?} is not a valid host name: {reason}")]
    InvalidHostName {
        at: Location,
        directive: &'static str,
        name: String,
        reason: String,
    },

    /// A `VirtualHost` and a `Component` with the same name (Prosody refuses it).
    #[error("{at}: {message}")]
    HostClash {
        at: Location,
        host: String,
        message: String,
    },

    /// `Include "file"` naming a file that cannot be read.
    #[error("{at}: cannot read included file {}: {source}", path.display())]
    Include {
        at: Location,
        path: PathBuf,
        source: Arc<io::Error>,
    },

    /// `Include "dir/*.cfg.lua"` whose directory cannot be listed.
    #[error("{at}: cannot list directory {} for Include {pattern:?}: {source}", dir.display())]
    IncludeDir {
        at: Location,
        dir: PathBuf,
        pattern: String,
        source: Arc<io::Error>,
    },

    /// Includes nested too deeply: a file including itself, directly or not.
    #[error(
        "{at}: Include nested more than {limit} levels deep; is a config file including itself?"
    )]
    IncludeLoop { at: Location, limit: usize },

    /// `FileContents`, `FileLine`, `FileLines` or `Credential` could not read its file.
    #[error("{at}: {directive} cannot read {}: {problem}", path.display())]
    FileRead {
        at: Location,
        directive: &'static str,
        path: PathBuf,
        problem: String,
    },

    /// `Credential "name"` without `$CREDENTIALS_DIRECTORY`.
    #[error(
        "{at}: Credential() requires the $CREDENTIALS_DIRECTORY environment variable to be set"
    )]
    NoCredentialsDirectory { at: Location },

    /// `RunScript "file"` failed.
    #[error("{at}: RunScript {}: {message}", path.display())]
    RunScript {
        at: Location,
        path: PathBuf,
        message: String,
    },

    /// The Lua interpreter itself failed (out of memory, ...).
    #[error("{}: the Lua interpreter failed: {message}", file.display())]
    Interpreter { file: PathBuf, message: String },
}

impl ConfigError {
    /// The file the problem is in.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. } => path,
            ConfigError::Interpreter { file, .. } => file,
            other => other
                .location()
                .map(|l| l.file.as_path())
                .unwrap_or(Path::new("")),
        }
    }

    /// The line the problem is on, when known.
    pub fn line(&self) -> Option<u32> {
        self.location().and_then(|l| l.line)
    }

    /// File and line, for every error that happened inside a file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } | ConfigError::Interpreter { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::Runtime { at, .. }
            | ConfigError::InvalidHostName { at, .. }
            | ConfigError::HostClash { at, .. }
            | ConfigError::Include { at, .. }
            | ConfigError::IncludeDir { at, .. }
            | ConfigError::IncludeLoop { at, .. }
            | ConfigError::FileRead { at, .. }
            | ConfigError::NoCredentialsDirectory { at }
            | ConfigError::RunScript { at, .. } => Some(at),
        }
    }
}

/// The prefix of every chunk name the loader gives a config file; Lua then
/// writes positions as `lilt-config#N:LINE:`, which [`find_position`] reads
/// back whatever the length of the real path.
pub(crate) const CHUNK_PREFIX: &str = "lilt-config#";

/// Finds the first `lilt-config#N:LINE:` in a Lua message or traceback:
/// the file index, the line, and the byte range it covers.
pub(crate) fn find_position(text: &str) -> Option<(usize, u32, std::ops::Range<usize>)> {
    let mut from = 0;
    while let Some(found) = text[from..].find(CHUNK_PREFIX) {
        let start = from + found;
        let rest = &text[start + CHUNK_PREFIX.len()..];
        if let Some((index, line, used)) = parse_index_and_line(rest) {
            return Some((index, line, start..start + CHUNK_PREFIX.len() + used));
        }
        from = start + CHUNK_PREFIX.len();
    }
    None
}

/// Reads `N:LINE:` and returns (N, LINE, bytes used).
fn parse_index_and_line(s: &str) -> Option<(usize, u32, usize)> {
    let index_len = s.bytes().take_while(u8::is_ascii_digit).count();
    let index = s.get(..index_len)?.parse().ok()?;
    let after = s.get(index_len..)?.strip_prefix(':')?;
    let line_len = after.bytes().take_while(u8::is_ascii_digit).count();
    let line = after.get(..line_len)?.parse().ok()?;
    after.get(line_len..)?.strip_prefix(':')?;
    Some((index, line, index_len + 1 + line_len + 1))
}

/// Turns a Lua message into plain words: drops the position prefix and any
/// traceback, and rewords what Lua says in its own jargon.
pub(crate) fn plain_message(raw: &str) -> String {
    let mut msg = raw;
    if let Some(cut) = msg.find("\nstack traceback:") {
        msg = &msg[..cut];
    }
    let mut msg = msg.trim().to_string();
    if let Some((_, _, range)) = find_position(&msg)
        && range.start == 0
    {
        msg = msg[range.end..].trim_start().to_string();
    }
    // "runtime error: " is how mlua labels some errors; it adds nothing here.
    if let Some(rest) = msg.strip_prefix("runtime error: ") {
        msg = rest.to_string();
    }
    if let Some(name) = called_nil_global(&msg) {
        return format!(
            "'{name}' is not a known directive or function (attempt to call a nil value)"
        );
    }
    let msg = msg.replace("near <eof>", "at the end of the file");
    // The usual cause of "'}' expected near 'x'" in a config file.
    if msg.starts_with("'}' expected") && !msg.ends_with("at the end of the file") {
        return format!("{msg} (is a ',' or ';' missing between two entries?)");
    }
    msg
}

/// `attempt to call a nil value (global 'Foo')` → `Foo`.
fn called_nil_global(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("attempt to call a nil value (global '")?;
    rest.strip_suffix("')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_positions_in_messages_and_tracebacks() {
        assert_eq!(
            find_position("lilt-config#3:12: boom"),
            Some((3, 12, 0..17))
        );
        let tb = "x\nstack traceback:\n\t[C]: in ?\n\tlilt-config#0:7: in main chunk";
        assert_eq!(find_position(tb).map(|(i, l, _)| (i, l)), Some((0, 7)));
        assert_eq!(find_position("lilt-config#x:1: no"), None);
    }

    #[test]
    fn plain_messages() {
        assert_eq!(
            plain_message("lilt-config#0:3: unexpected symbol near <eof>"),
            "unexpected symbol at the end of the file"
        );
        assert_eq!(
            plain_message(
                "lilt-config#1:4: attempt to call a nil value (global 'Compnent')\nstack traceback:\n..."
            ),
            "'Compnent' is not a known directive or function (attempt to call a nil value)"
        );
        assert_eq!(
            plain_message("lilt-config#0:3: '}' expected (to close '{' at line 2) near '\"y\"'"),
            "'}' expected (to close '{' at line 2) near '\"y\"' (is a ',' or ';' missing between two entries?)"
        );
    }

    #[test]
    fn locations_display() {
        assert_eq!(
            Location::new("a.cfg.lua", Some(3)).to_string(),
            "a.cfg.lua:3"
        );
        assert_eq!(Location::new("a.cfg.lua", None).to_string(), "a.cfg.lua");
    }
}
