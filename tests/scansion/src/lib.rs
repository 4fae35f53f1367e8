//! A scansion runner: reads `.scs` scripts (Prosody's integration tests,
//! format of Matthew Wild's scansion), connects the declared clients to a
//! running XMPP server over plain TCP, performs the actions in order and
//! matches what the server sends with scansion's rules.
//!
//! The pieces: [`script`] parses the format, [`xml`] holds the tree and the
//! lenient parser for script stanzas, [`matcher`] applies the matching rules,
//! [`sasl`] and [`stream`] are the sans-IO client protocol parts, [`client`]
//! is the tokio client, [`runner`] executes a script and [`report`] judges
//! results against the expected-failures list.

pub mod client;
pub mod matcher;
pub mod report;
pub mod runner;
pub mod sasl;
pub mod script;
pub mod stream;
pub mod xml;

use std::io::Write;
use std::path::{Path, PathBuf};

use report::{ExpectedFailures, Summary, Verdict, format_verdict};
use runner::{Failure, RunOptions, run_script};

/// Could not list the scripts.
#[derive(Debug, thiserror::Error)]
#[error("reading script directory {path}: {source}")]
pub struct DirError {
    pub path: String,
    pub source: std::io::Error,
}

/// The `.scs` files of `dir`, sorted by name (the order runs use, so server
/// state carried from one script to the next is reproducible).
pub fn list_scripts(dir: &Path) -> Result<Vec<PathBuf>, DirError> {
    let err = |source| DirError {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        if path.extension().is_some_and(|e| e == "scs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The name a script is known by in reports and the expected-failures list.
pub fn script_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Whether `name` is selected by `--only` values (with or without `.scs`).
pub fn selected(name: &str, only: &[String]) -> bool {
    only.is_empty() || only.iter().any(|o| o == name || format!("{o}.scs") == name)
}

/// Reads, parses and runs one script file.
pub async fn run_file(path: &Path, opts: &RunOptions) -> Result<(), Failure> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| Failure::parse(format!("reading {}: {e}", path.display())))?;
    let script =
        script::parse_script(&src).map_err(|e| Failure::parse(format!("script error: {e}")))?;
    run_script(&script, opts).await
}

/// Runs the selected scripts of `dir` one after the other, writing one
/// report block per script and the summary line to `out`.
pub async fn run_dir(
    dir: &Path,
    expected: &ExpectedFailures,
    only: &[String],
    opts: &RunOptions,
    out: &mut dyn Write,
) -> Result<Summary, DirError> {
    let scripts = list_scripts(dir)?;
    let names: Vec<String> = scripts.iter().map(|p| script_name(p)).collect();
    if only.is_empty() {
        for listed in expected.entries.keys() {
            if !names.contains(listed) {
                let _ = writeln!(
                    out,
                    "note: expected failure {listed} is not a script in {}",
                    dir.display()
                );
            }
        }
    }
    let mut summary = Summary::default();
    for (path, name) in scripts.iter().zip(names) {
        if !selected(&name, only) {
            continue;
        }
        let result = run_file(path, opts).await;
        let verdict = Verdict::judge(result, expected.reason(&name));
        let _ = out.write_all(format_verdict(&name, &verdict, opts.verbose).as_bytes());
        let _ = out.flush();
        summary.add(&verdict);
    }
    let _ = writeln!(out, "{}", summary.line());
    Ok(summary)
}

/// The workspace root: the nearest ancestor of this crate whose
/// `Cargo.toml` has a `[workspace]` table.
pub fn workspace_root() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|t| t.contains("[workspace]"))
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}

/// `../shared` beside the workspace root, when present (for tests).
pub fn shared_dir() -> Option<PathBuf> {
    let shared = workspace_root()?.join("../shared");
    shared.is_dir().then_some(shared)
}
