//! The results document of `bench storage`: a markdown table of medians
//! per operation and driver, lilt beside Prosody 0.12 with lilt's ratio
//! (higher is better for lilt: every figure is a rate), and how it was run.

use std::fmt::Write;
use std::path::Path;

use super::ops::Op;
use super::setup::{Driver, Server};
use super::{Figures, StorageArgs};
use crate::procfs;

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.0}"))
}

/// The table: one row per (operation, driver).
pub fn table(drivers: &[Driver], figures: &Figures) -> String {
    let mut out = String::new();
    out.push_str("| operation | driver | lilt | Prosody 0.12 | lilt ÷ Prosody |\n");
    out.push_str("|---|---|---:|---:|---:|\n");
    for op in Op::ALL {
        for d in drivers {
            let get = |s: Server| figures.get(&(*d, s, op)).and_then(|v| median(v));
            let (l, p) = (get(Server::Lilt), get(Server::Prosody));
            let ratio = match (l, p) {
                (Some(l), Some(p)) if p > 0.0 => format!("{:.2}×", l / p),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                op.label(),
                d.label(),
                cell(l),
                cell(p),
                ratio
            );
        }
    }
    out
}

/// The whole document.
pub fn document(
    args: &StorageArgs,
    lilt: &Path,
    drivers: &[Driver],
    figures: &Figures,
    failures: &[String],
    (load_before, load_after): (&str, &str),
) -> String {
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# bench storage: lilt beside Prosody 0.12 (issue 20)\n"
    );
    let _ = writeln!(doc, "{}\n", table(drivers, figures));
    let _ = writeln!(
        doc,
        "Medians of {} runs; every figure is operations per second through the server over c2s \
         (higher is better), {} clients at once, each in a closed loop.\n",
        args.repeat, args.clients
    );
    let _ = writeln!(doc, "## What was measured\n");
    let _ = writeln!(
        doc,
        "- keyval writes / reads: XEP-0049 private XML set / get of a ~500-byte fragment \
         (the `private` map store), {} per client, each client on four fragments in turn;",
        args.ops
    );
    let _ = writeln!(
        doc,
        "- archive appends: clients in pairs, one sends {} chat messages to the other's bare JID, \
         {} in flight, and waits for their delivery; each message is two appends (the sender's \
         and the recipient's archive, `default_archive_policy = true`);",
        args.messages, args.window
    );
    let _ = writeln!(
        doc,
        "- archive queries: XEP-0313 queries with RSM, {} items a page, each client paging backwards \
         through its own archive (newest page first), {} per client.",
        args.page, args.ops
    );
    let _ = writeln!(
        doc,
        "\nThe `private` and `archive` stores are on the driver of the row (`storage = {{ private = ..., \
         archive = ... }}`); accounts and rosters stay `internal`. SQLite: `prosody.sqlite` in the \
         data directory (lilt opens it in WAL mode; Prosody 0.12 uses SQLite's default rollback \
         journal). PostgreSQL: one throw-away cluster on 127.0.0.1 (Debian's `postgresql`, fsync on, \
         not pinned), a fresh database for each server.\n"
    );
    let _ = writeln!(doc, "## How it was run\n");
    let _ = writeln!(
        doc,
        "- command: `bench storage --drivers {} --servers {} --clients {} --ops {} --messages {} --window {} --page {} --repeat {}{}`",
        args.drivers.join(","),
        args.servers.join(","),
        args.clients,
        args.ops,
        args.messages,
        args.window,
        args.page,
        args.repeat,
        args.lilt_sync
            .as_deref()
            .map(|m| format!(" --lilt-sync {m}"))
            .unwrap_or_default()
    );
    let _ = writeln!(doc, "- lilt: `{}` ({})", lilt.display(), lilt_commit());
    let _ = writeln!(
        doc,
        "- Prosody: Debian {}",
        crate::servers::package_version("prosody").unwrap_or_else(|| "(not installed)".into())
    );
    let _ = writeln!(
        doc,
        "- PostgreSQL: Debian {}",
        crate::servers::package_version("postgresql").unwrap_or_else(|| "(not installed)".into())
    );
    let _ = writeln!(
        doc,
        "- machine: {}; server pinned to CPU {}, generator to CPU {}",
        procfs::machine_description(),
        args.server_cpu,
        args.generator_cpu
    );
    let _ = writeln!(
        doc,
        "- load average before / after: {load_before} / {load_after}"
    );
    let loaded = [load_before, load_after].iter().any(|l| {
        l.split_whitespace()
            .next()
            .and_then(|x| x.parse::<f64>().ok())
            .is_some_and(|x| x > 0.5)
    });
    if loaded {
        let _ = writeln!(
            doc,
            "\n**The machine was loaded** (other work shared its cores during the run): absolute \
             figures are low and noisy; the ratios, measured one server after the other on the \
             same load, are the figures to read, and even they carry that noise."
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(doc, "\n## Failures\n");
        for f in failures {
            let _ = writeln!(doc, "- {f}");
        }
    }
    doc
}

fn lilt_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("commit {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "commit unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_medians_and_ratios() {
        let mut f = Figures::new();
        f.insert(
            (Driver::Sqlite, Server::Lilt, Op::PrivateSet),
            vec![300.0, 100.0, 200.0],
        );
        f.insert(
            (Driver::Sqlite, Server::Prosody, Op::PrivateSet),
            vec![100.0],
        );
        let t = table(&[Driver::Sqlite], &f);
        assert!(t.contains("| sqlite | 200 | 100 | 2.00× |"), "{t}");
        assert!(
            t.contains("| archive queries/s (MAM page) | sqlite | – | – | – |"),
            "{t}"
        );
    }
}
