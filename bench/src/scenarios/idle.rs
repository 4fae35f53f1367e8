//! Scenario 5, idle memory: `sessions` authenticated sessions with initial
//! presence held open; the server's resident memory growth per session.

use std::time::Duration;

use super::{Figures, ScenarioError, login_many};
use crate::client::Target;
use crate::stats::CpuWindow;

/// Parameters of the idle-memory scenario.
#[derive(Debug, Clone, Copy)]
pub struct IdleParams {
    pub sessions: usize,
    pub login_concurrency: usize,
    /// Time left for the server to settle before measuring.
    pub settle: Duration,
}

/// One run on a freshly started server. `rss_kib` reads the server's
/// resident memory.
pub async fn run(
    target: &Target,
    server_pid: u32,
    rss_kib: impl Fn() -> u64,
    p: IdleParams,
) -> Result<Figures, ScenarioError> {
    tokio::time::sleep(p.settle).await;
    let before = rss_kib();
    let cpu = CpuWindow::start(server_pid);
    let started = std::time::Instant::now();
    let conns = login_many(target, 0, p.sessions, p.login_concurrency).await?;
    let login_secs = started.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    tokio::time::sleep(p.settle).await;
    let after = rss_kib();
    let mut f = Figures::default();
    f.push(
        "idle.kib_per_session",
        (after.saturating_sub(before)) as f64 / p.sessions.max(1) as f64,
    );
    f.push("idle.rss_before_mib", before as f64 / 1024.0);
    f.push("idle.rss_after_mib", after as f64 / 1024.0);
    f.push("idle.login_rate", p.sessions as f64 / login_secs.max(1e-9));
    f.push("idle.gen_cpu", cpu.generator);
    f.push("idle.server_cpu", cpu.server);
    f.push("idle.others_cpu", cpu.others);
    // The server is stopped after this run: dropping is enough.
    drop(conns);
    Ok(f)
}
