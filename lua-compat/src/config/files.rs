//! File helpers of the config environment: relative paths, `Include` globs,
//! and the read modes of `FileContents`/`FileLine`/`Credential`.

use std::io;
use std::path::{Path, PathBuf};

/// Prosody's `resolve_relative_path`: an absolute path stays as it is, a
/// relative one is taken from `base` (the including file's directory).
/// A leading `./` is dropped, as Prosody does.
pub(crate) fn resolve(base: &Path, path: &str) -> PathBuf {
    let trimmed = path.trim_start_matches("./");
    let p = Path::new(if trimmed.is_empty() { path } else { trimmed });
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Whether `Include` treats its argument as a wildcard (Prosody: any `*` or `?`).
pub(crate) fn is_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Splits `dir/*.cfg.lua` into the directory (resolved against `base`) and
/// the glob of the last component, which alone may hold wildcards.
pub(crate) fn split_wildcard(base: &Path, pattern: &str) -> (PathBuf, String) {
    match pattern.rfind('/') {
        Some(pos) => {
            let dir = &pattern[..pos];
            let dir = if dir.is_empty() {
                PathBuf::from("/")
            } else {
                resolve(base, dir)
            };
            (dir, pattern[pos + 1..].to_string())
        }
        None => (base.to_path_buf(), pattern.to_string()),
    }
}

/// Prosody's glob: `*` is any run of characters, `?` any one character,
/// everything else (including `[`) stands for itself.
pub(crate) fn glob_matches(glob: &str, name: &str) -> bool {
    let g: Vec<char> = glob.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Classic backtracking matcher: remember the last `*` and retry from it.
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || (g[gi] != '*' && g[gi] == n[ni])) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// The files of `dir` matching `glob`, hidden files left out (as Prosody),
/// sorted by name so the result does not depend on the directory order
/// (Prosody takes whatever order the file system gives).
pub(crate) fn expand_wildcard(dir: &Path, glob: &str) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !glob_matches(glob, name) {
            continue;
        }
        let path = entry.path();
        if path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// How much of a file `FileContents`-style readers return (Lua's `f:read` formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// `"*a"`: everything.
    All,
    /// `"*l"`: the first line, without its end of line.
    Line,
    /// `"*L"`: the first line, with its end of line.
    LineWithEnd,
    /// A number: that many bytes.
    Bytes(usize),
}

impl ReadMode {
    /// Parses a Lua read format (`"*a"`, `"a"`, `"l"`, `"L"`, ...).
    pub(crate) fn parse(format: &str) -> Option<ReadMode> {
        match format.trim_start_matches('*').chars().next() {
            Some('a') => Some(ReadMode::All),
            Some('l') => Some(ReadMode::Line),
            Some('L') => Some(ReadMode::LineWithEnd),
            _ => None,
        }
    }

    /// What Lua's `f:read(mode)` gives for a file holding `data`;
    /// `None` where Lua gives nil (a line or bytes asked of an empty file).
    pub(crate) fn apply(self, data: &[u8]) -> Option<Vec<u8>> {
        match self {
            ReadMode::All => Some(data.to_vec()),
            ReadMode::Line | ReadMode::LineWithEnd => {
                if data.is_empty() {
                    return None;
                }
                let end = data.iter().position(|b| *b == b'\n');
                Some(match (end, self) {
                    (Some(pos), ReadMode::Line) => data[..pos].to_vec(),
                    (Some(pos), _) => data[..=pos].to_vec(),
                    (None, _) => data.to_vec(),
                })
            }
            ReadMode::Bytes(n) => {
                if data.is_empty() && n > 0 {
                    return None;
                }
                Some(data[..n.min(data.len())].to_vec())
            }
        }
    }
}

/// Lua's `io.lines`: the lines of `data` without their `\n` (a `\r` stays).
pub(crate) fn split_lines(data: &[u8]) -> Vec<Vec<u8>> {
    if data.is_empty() {
        return Vec::new();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_prosody() {
        let base = Path::new("/etc/prosody");
        assert_eq!(
            resolve(base, "conf.d/x.cfg.lua"),
            PathBuf::from("/etc/prosody/conf.d/x.cfg.lua")
        );
        assert_eq!(
            resolve(base, "./certs"),
            PathBuf::from("/etc/prosody/certs")
        );
        assert_eq!(resolve(base, "/abs/file"), PathBuf::from("/abs/file"));
    }

    #[test]
    fn globs() {
        assert!(glob_matches("*.cfg.lua", "meet.example.com.cfg.lua"));
        assert!(!glob_matches("*.cfg.lua", "meet.example.com.cfg.lua.bak"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("[x].lua", "[x].lua"));
        assert!(!glob_matches("[x].lua", "x.lua"));
        assert!(glob_matches("*a*b", "xxaxxbxb"));
    }

    #[test]
    fn splits_wildcards() {
        let base = Path::new("/etc/prosody");
        assert_eq!(
            split_wildcard(base, "conf.d/*.cfg.lua"),
            (
                PathBuf::from("/etc/prosody/conf.d"),
                "*.cfg.lua".to_string()
            )
        );
        assert_eq!(
            split_wildcard(base, "*.lua"),
            (PathBuf::from("/etc/prosody"), "*.lua".to_string())
        );
    }

    #[test]
    fn read_modes() {
        let data = b"first\nsecond\n";
        assert_eq!(
            ReadMode::parse("*a").and_then(|m| m.apply(data)),
            Some(data.to_vec())
        );
        assert_eq!(
            ReadMode::parse("*l").and_then(|m| m.apply(data)),
            Some(b"first".to_vec())
        );
        assert_eq!(
            ReadMode::parse("L").and_then(|m| m.apply(data)),
            Some(b"first\n".to_vec())
        );
        assert_eq!(ReadMode::Line.apply(b""), None);
        assert_eq!(ReadMode::Bytes(3).apply(data), Some(b"fir".to_vec()));
        assert_eq!(
            split_lines(b"a\r\nb\n\nc"),
            vec![b"a\r".to_vec(), b"b".to_vec(), Vec::new(), b"c".to_vec()]
        );
        assert!(split_lines(b"").is_empty());
    }
}
