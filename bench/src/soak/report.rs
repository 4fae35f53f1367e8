//! The soak's samples, its verdict and its markdown report.

use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

use super::SoakArgs;
use super::ledger::{Ledger, Verdict};
use crate::procfs;

/// lilt and the load at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: f64,
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
    pub online: u64,
    pub logins: u64,
    pub sent: u64,
    pub arrived: u64,
    pub bounced: u64,
}

impl Sample {
    pub fn take(pid: u32, at: f64, ledger: &Ledger, fds: u64, threads: u64) -> Sample {
        Sample {
            at,
            rss_kib: procfs::rss_kib(pid).unwrap_or(0),
            fds,
            threads,
            online: Ledger::get(&ledger.online),
            logins: Ledger::get(&ledger.logins),
            sent: Ledger::get(&ledger.sent),
            arrived: Ledger::get(&ledger.arrived),
            bounced: Ledger::get(&ledger.bounced),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "soak {:>6.0}s  rss {:>7} KiB  fds {:>6}  threads {:>3}  online {:>6}  logins {:>7}  sent {:>8}  arrived {:>8}  bounced {:>6}",
            self.at,
            self.rss_kib,
            self.fds,
            self.threads,
            self.online,
            self.logins,
            self.sent,
            self.arrived,
            self.bounced
        )
    }
}

/// What the soak concluded.
#[derive(Debug, Default)]
pub struct Outcome {
    pub faults: Vec<String>,
    pub rss_after_warmup: u64,
    pub rss_end: u64,
    pub rss_peak: u64,
    pub fds_after_warmup: u64,
    pub fds_end: u64,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Growth is judged on the median of the samples in a window of a
/// minute (or three samples) just after the warm-up and just before the
/// load ends, with sessions online in both.
pub fn judge(
    samples: &[Sample],
    warmup: f64,
    duration: f64,
    max_growth_pct: f64,
    verdict: &Verdict,
    died: bool,
) -> Outcome {
    let mut o = Outcome::default();
    if died {
        o.faults.push("lilt died during the soak".into());
    }
    if verdict.lost > 0 {
        o.faults.push(format!("{} messages lost", verdict.lost));
    }
    if verdict.duplicated > 0 {
        o.faults.push(format!(
            "{} messages duplicated (or unknown)",
            verdict.duplicated
        ));
    }
    let loaded: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at > 0.0 && s.at <= duration)
        .collect();
    let early: Vec<&Sample> = loaded
        .iter()
        .copied()
        .filter(|s| s.at >= warmup)
        .take(6)
        .collect();
    let late: Vec<&Sample> = loaded.iter().rev().copied().take(6).collect();
    o.rss_peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    if early.len() >= 3 && late.len() >= 3 {
        o.rss_after_warmup = median(early.iter().map(|s| s.rss_kib).collect());
        o.rss_end = median(late.iter().map(|s| s.rss_kib).collect());
        o.fds_after_warmup = median(early.iter().map(|s| s.fds).collect());
        o.fds_end = median(late.iter().map(|s| s.fds).collect());
        let bound = o.rss_after_warmup as f64 * (1.0 + max_growth_pct / 100.0) + 16.0 * 1024.0;
        if o.rss_end as f64 > bound {
            o.faults.push(format!(
                "RSS grew from {} KiB after the warm-up to {} KiB (bound {:.0} KiB)",
                o.rss_after_warmup, o.rss_end, bound
            ));
        }
        let fd_bound = o.fds_after_warmup as f64 * 1.15 + 64.0;
        if o.fds_end as f64 > fd_bound {
            o.faults.push(format!(
                "open descriptors grew from {} after the warm-up to {} (bound {fd_bound:.0})",
                o.fds_after_warmup, o.fds_end
            ));
        }
    } else {
        o.faults
            .push("too few samples after the warm-up to judge growth".into());
    }
    o
}

#[allow(clippy::too_many_arguments)]
pub fn document(
    args: &SoakArgs,
    bin: &Path,
    sessions: usize,
    samples: &[Sample],
    ledger: &Ledger,
    verdict: &Verdict,
    outcome: &Outcome,
    warmup: Duration,
) -> String {
    let mut d = String::new();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::workspace_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        d,
        "# lilt soak ({} s, {sessions} sessions)\n",
        args.duration
    );
    let _ = writeln!(d, "- lilt: `{}` (workspace at {commit})", bin.display());
    let _ = writeln!(d, "- machine: {}", procfs::machine_description());
    let _ = writeln!(
        d,
        "- load: {sessions} sessions, TCP/BOSH/WebSocket {:?} %; per session a message every {} s, presence every {} s, MUC join or leave every {} s, reconnect every {} s (means, exponential); {} rooms; warm-up {} s",
        args.mix,
        args.message_every,
        args.presence_every,
        args.muc_every,
        args.reconnect_every,
        (sessions / args.per_room.max(1)).max(1),
        warmup.as_secs()
    );
    let _ = writeln!(
        d,
        "- result: **{}**\n",
        if outcome.faults.is_empty() {
            "pass".to_string()
        } else {
            format!("FAIL: {}", outcome.faults.join("; "))
        }
    );
    let _ = writeln!(d, "## Messages\n");
    let _ = writeln!(
        d,
        "| sent | arrived once | bounced once | lost | duplicated |"
    );
    let _ = writeln!(d, "|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        d,
        "| {} | {} | {} | {} | {} |\n",
        verdict.sent, verdict.arrived_once, verdict.bounced_once, verdict.lost, verdict.duplicated
    );
    for e in &verdict.examples {
        let _ = writeln!(d, "- {e}");
    }
    let _ = writeln!(d, "## Sessions\n");
    let _ = writeln!(
        d,
        "logins {}, failed logins {}, reconnects {}, dropped by the server {}, presence changes sent {}, presences received {}, MUC joins {} (self-presence seen {}), leaves {}, messages with unknown ids {}\n",
        Ledger::get(&ledger.logins),
        Ledger::get(&ledger.login_failures),
        Ledger::get(&ledger.reconnects),
        Ledger::get(&ledger.disconnects),
        Ledger::get(&ledger.presences_sent),
        Ledger::get(&ledger.presences_received),
        Ledger::get(&ledger.muc_joins),
        Ledger::get(&ledger.muc_joined),
        Ledger::get(&ledger.muc_leaves),
        Ledger::get(&ledger.strangers),
    );
    let _ = writeln!(d, "## lilt over time\n");
    let _ = writeln!(
        d,
        "RSS after warm-up {} KiB, at the end of the load {} KiB, peak {} KiB; descriptors {} → {}; with every session closed: {} KiB, {} descriptors.\n",
        outcome.rss_after_warmup,
        outcome.rss_end,
        outcome.rss_peak,
        outcome.fds_after_warmup,
        outcome.fds_end,
        samples.last().map_or(0, |s| s.rss_kib),
        samples.last().map_or(0, |s| s.fds),
    );
    let _ = writeln!(
        d,
        "| s | RSS KiB | fds | threads | online | logins | sent | arrived | bounced |"
    );
    let _ = writeln!(d, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let stride = (samples.len() / 60).max(1);
    for (k, s) in samples.iter().enumerate() {
        if k % stride != 0 && k + 1 != samples.len() {
            continue;
        }
        let _ = writeln!(
            d,
            "| {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.at, s.rss_kib, s.fds, s.threads, s.online, s.logins, s.sent, s.arrived, s.bounced
        );
    }
    d
}
