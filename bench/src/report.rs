//! The results table: medians of each figure per server, lilt's advantage
//! over each peer (a factor above 1 means lilt is better, whichever way
//! "better" points for that figure), and the targets; and what
//! every run's results file shares: its date, the `Failed:` list, where
//! it is saved.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::servers::Kind;
use crate::stats::median;

/// `YYYY-MM-DD-HHMMZ` now (UTC), as results files are named.
pub fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d-%H%MZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "undated".into())
}

/// `/proc/loadavg`'s three averages, for a results header.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Figures named by key, as one run measured them.
pub type Run = Vec<(&'static str, f64)>;

/// A table of medians: a row per `(key, label, higher is better)`, a
/// column per server (`servers`: each with its column head) holding the
/// median of that server's runs, then a column per server but `lilt`
/// headed `ratio_head(label)` with `ratio(lilt's, the peer's, higher is
/// better)` (`–` where either median is missing or not positive).
pub fn median_table<K: Copy + PartialEq>(
    servers: &[(K, String, String)],
    lilt: K,
    runs: &[(K, Vec<Run>)],
    rows: &[(&str, &str, bool)],
    ratio_head: impl Fn(&str) -> String,
    ratio: impl Fn(f64, f64, bool) -> String,
) -> String {
    let med = |kind: K, key: &str| -> Option<f64> {
        let values: Vec<f64> = runs
            .iter()
            .filter(|(k, _)| *k == kind)
            .flat_map(|(_, rs)| rs.iter())
            .filter_map(|r| r.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
            .collect();
        median(&values)
    };
    let peers: Vec<&(K, String, String)> = servers.iter().filter(|s| s.0 != lilt).collect();
    let mut out = String::from("| figure |");
    for (_, head, _) in servers {
        let _ = write!(out, " {head} |");
    }
    for (_, _, label) in &peers {
        let _ = write!(out, " {} |", ratio_head(label));
    }
    out.push_str("\n|---|");
    for _ in 0..servers.len() + peers.len() {
        out.push_str("---:|");
    }
    out.push('\n');
    for (key, label, higher_better) in rows {
        let _ = write!(out, "| {label} |");
        for (k, _, _) in servers {
            let cell = med(*k, key).map_or("–".into(), |v| {
                if v >= 100.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            });
            let _ = write!(out, " {cell} |");
        }
        for (p, _, _) in &peers {
            let cell = match (med(lilt, key), med(*p, key)) {
                (Some(l), Some(o)) if l > 0.0 && o > 0.0 => ratio(l, o, *higher_better),
                _ => "–".into(),
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

/// The `Failed:` list closing a results document (nothing when all ran).
pub fn push_failures(doc: &mut String, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    doc.push_str("\nFailed:\n\n");
    for f in failures {
        let _ = writeln!(doc, "- {f}");
    }
}

/// A results file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct SaveError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes a results document as `file` in `results_dir` (default:
/// bench/results in this workspace); returns its path.
pub fn save(results_dir: Option<&Path>, file: &str, doc: &str) -> Result<PathBuf, SaveError> {
    let dir = results_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::workspace_root().join("bench/results"));
    let path = dir.join(file);
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, doc))
        .map_err(|source| SaveError {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// The end of a run: `failures` listed under the document, which is
/// printed and, unless `no_save`, saved as `file` ([`save`]; announced as
/// `<who>: saved <path>`).
pub fn publish(
    mut doc: String,
    failures: &[String],
    no_save: bool,
    results_dir: Option<&Path>,
    file: &str,
    who: &str,
) -> Result<(), SaveError> {
    push_failures(&mut doc, failures);
    println!("{doc}");
    if !no_save {
        let path = save(results_dir, file, &doc)?;
        eprintln!("{who}: saved {}", path.display());
    }
    Ok(())
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// Shown without a ratio (the CPU use of the generator, e.g.).
    Neither,
}

/// A row of the table.
pub struct Metric {
    pub key: &'static str,
    pub scenario: &'static str,
    pub label: &'static str,
    pub better: Better,
    /// Required advantage over Prosody (lilt must also beat ejabberd).
    pub target: Option<f64>,
}

const fn m(
    key: &'static str,
    scenario: &'static str,
    label: &'static str,
    better: Better,
    target: Option<f64>,
) -> Metric {
    Metric {
        key,
        scenario,
        label,
        better,
        target,
    }
}

/// Every figure, in table order.
pub const METRICS: &[Metric] = &[
    m(
        "login.rate",
        "1 login",
        "logins/s",
        Better::Higher,
        Some(3.0),
    ),
    m(
        "login.p50",
        "1 login",
        "login time p50 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "login.p99",
        "1 login",
        "login time p99 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "login.errors",
        "1 login",
        "failed logins",
        Better::Neither,
        None,
    ),
    m(
        "login.server_cpu",
        "1 login",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "login.others_cpu",
        "1 login",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "login.gen_cpu",
        "1 login",
        "generator CPU %",
        Better::Neither,
        None,
    ),
    m(
        "chat.rate",
        "2 one-to-one",
        "messages delivered/s",
        Better::Higher,
        Some(5.0),
    ),
    m(
        "chat.p50",
        "2 one-to-one",
        "latency p50 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "chat.p99",
        "2 one-to-one",
        "latency p99 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "chat.tsung_rate",
        "2 one-to-one",
        "tsung: messages delivered/s",
        Better::Higher,
        None,
    ),
    m(
        "chat.tsung_cpu",
        "2 one-to-one",
        "tsung: its CPU %",
        Better::Neither,
        None,
    ),
    m(
        "chat.server_cpu",
        "2 one-to-one",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "chat.others_cpu",
        "2 one-to-one",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "chat.gen_cpu",
        "2 one-to-one",
        "generator CPU %",
        Better::Neither,
        None,
    ),
    m(
        "lua.rate",
        "6 one-to-one, Lua filter",
        "messages delivered/s",
        Better::Higher,
        Some(5.0),
    ),
    m(
        "lua.p50",
        "6 one-to-one, Lua filter",
        "latency p50 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "lua.p99",
        "6 one-to-one, Lua filter",
        "latency p99 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "lua.server_cpu",
        "6 one-to-one, Lua filter",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "lua.others_cpu",
        "6 one-to-one, Lua filter",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "lua.gen_cpu",
        "6 one-to-one, Lua filter",
        "generator CPU %",
        Better::Neither,
        None,
    ),
    m(
        "fanout.rate",
        "3 MUC fan-out",
        "deliveries/s",
        Better::Higher,
        Some(5.0),
    ),
    m(
        "fanout.p50",
        "3 MUC fan-out",
        "latency p50 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "fanout.p99",
        "3 MUC fan-out",
        "latency p99 (ms)",
        Better::Lower,
        None,
    ),
    m(
        "fanout.server_cpu",
        "3 MUC fan-out",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "fanout.others_cpu",
        "3 MUC fan-out",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "fanout.gen_cpu",
        "3 MUC fan-out",
        "generator CPU %",
        Better::Neither,
        None,
    ),
    m(
        "storm.seconds",
        "4 join storm",
        "time to full lists (s)",
        Better::Lower,
        Some(5.0),
    ),
    m(
        "storm.p50",
        "4 join storm",
        "median client (s)",
        Better::Lower,
        None,
    ),
    m(
        "storm.server_cpu",
        "4 join storm",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "storm.others_cpu",
        "4 join storm",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "storm.gen_cpu",
        "4 join storm",
        "generator CPU %",
        Better::Neither,
        None,
    ),
    m(
        "idle.kib_per_session",
        "5 idle memory",
        "KiB per session",
        Better::Lower,
        Some(4.0),
    ),
    m(
        "idle.rss_before_mib",
        "5 idle memory",
        "RSS before (MiB)",
        Better::Neither,
        None,
    ),
    m(
        "idle.rss_after_mib",
        "5 idle memory",
        "RSS with sessions (MiB)",
        Better::Neither,
        None,
    ),
    m(
        "idle.login_rate",
        "5 idle memory",
        "sessions opened/s",
        Better::Higher,
        None,
    ),
    m(
        "idle.server_cpu",
        "5 idle memory",
        "server CPU %",
        Better::Neither,
        None,
    ),
    m(
        "idle.others_cpu",
        "5 idle memory",
        "other load on server core %",
        Better::Neither,
        None,
    ),
    m(
        "idle.gen_cpu",
        "5 idle memory",
        "generator CPU %",
        Better::Neither,
        None,
    ),
];

/// Every run's figures, by server and key.
#[derive(Debug, Default)]
pub struct Results {
    values: BTreeMap<(&'static str, &'static str), Vec<f64>>,
    /// Scenarios that failed, with the reason (server, scenario, reason).
    pub failures: Vec<(Kind, &'static str, String)>,
}

impl Results {
    pub fn add(&mut self, kind: Kind, figures: &crate::scenarios::Figures) {
        for (key, v) in &figures.0 {
            self.values.entry((kind.label(), key)).or_default().push(*v);
        }
    }

    pub fn median(&self, kind: Kind, key: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|((k, m), _)| *k == kind.label() && *m == key)
            .and_then(|(_, v)| median(v))
    }

    fn runs(&self, kind: Kind, key: &str) -> usize {
        self.values
            .iter()
            .find(|((k, m), _)| *k == kind.label() && *m == key)
            .map_or(0, |(_, v)| v.len())
    }
}

/// lilt's advantage over a peer for a figure (above 1: lilt better).
pub fn advantage(better: Better, lilt: f64, peer: f64) -> Option<f64> {
    let r = match better {
        Better::Higher => lilt / peer,
        Better::Lower => peer / lilt,
        Better::Neither => return None,
    };
    r.is_finite().then_some(r)
}

/// A figure for a table: thousands separated, fewer decimals as it grows.
pub fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let s = format!("{:.0}", v);
        // Thousands separators for readability.
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The Markdown table: one column per server, then lilt's advantage over
/// Prosody and ejabberd, the target and whether it is met.
pub fn table(results: &Results, servers: &[Kind]) -> String {
    let mut out = String::new();
    let mut header = String::from("| scenario | figure |");
    let mut rule = String::from("|---|---|");
    for k in servers {
        let _ = write!(header, " {} |", k.label());
        rule.push_str("---:|");
    }
    let peers: Vec<Kind> = [Kind::Prosody, Kind::Ejabberd]
        .into_iter()
        .filter(|k| servers.contains(k))
        .collect();
    for p in &peers {
        let _ = write!(header, " lilt vs {} |", p.label());
        rule.push_str("---:|");
    }
    header.push_str(" target |");
    rule.push_str("---|");
    let _ = writeln!(out, "{header}\n{rule}");
    for metric in METRICS {
        if servers.iter().all(|k| results.runs(*k, metric.key) == 0) {
            continue;
        }
        let mut row = format!("| {} | {} |", metric.scenario, metric.label);
        for k in servers {
            match results.median(*k, metric.key) {
                Some(v) => {
                    let _ = write!(row, " {} |", fmt_value(v));
                }
                None => row.push_str(" — |"),
            }
        }
        let lilt = results.median(Kind::Lilt, metric.key);
        let mut verdicts = Vec::new();
        for p in &peers {
            let adv = lilt
                .zip(results.median(*p, metric.key))
                .and_then(|(l, v)| advantage(metric.better, l, v));
            match adv {
                Some(a) => {
                    let _ = write!(row, " {a:.2}× |");
                    if let Some(t) = metric.target {
                        let needed = if *p == Kind::Prosody { t } else { 1.0 };
                        verdicts.push(format!(
                            "{} {} ≥{needed}×",
                            if a >= needed { "met" } else { "MISSED" },
                            p.label()
                        ));
                    }
                }
                None => row.push_str(" |"),
            }
        }
        let _ = writeln!(row, " {} |", verdicts.join(", "));
        out.push_str(&row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Figures;

    #[test]
    fn advantages_point_the_right_way() {
        assert_eq!(advantage(Better::Higher, 10.0, 2.0), Some(5.0));
        assert_eq!(advantage(Better::Lower, 2.0, 10.0), Some(5.0));
        assert_eq!(advantage(Better::Neither, 2.0, 10.0), None);
        assert_eq!(advantage(Better::Higher, 1.0, 0.0), None);
    }

    #[test]
    fn table_has_medians_and_verdicts() {
        let mut r = Results::default();
        for (lilt, prosody) in [(900.0, 100.0), (1000.0, 300.0), (1100.0, 200.0)] {
            let mut f = Figures::default();
            f.push("login.rate", lilt);
            r.add(Kind::Lilt, &f);
            let mut f = Figures::default();
            f.push("login.rate", prosody);
            r.add(Kind::Prosody, &f);
        }
        let t = table(&r, &[Kind::Lilt, Kind::Prosody]);
        assert!(
            t.contains("| 1 login | logins/s | 1,000 | 200 | 5.00× | met prosody ≥3× |"),
            "{t}"
        );
        assert!(!t.contains("one-to-one"));
        assert_eq!(fmt_value(1234567.0), "1,234,567");
        assert_eq!(fmt_value(4.5678), "4.57");
    }
}
