//! Scenario 1, login rate: `concurrency` clients each log in over and over
//! (plain TCP, SCRAM-SHA-1, bind, initial presence confirmed by a ping
//! round trip, then close) for the measured duration. Each worker cycles
//! through its own accounts, so no account has two sessions at once.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{Figures, ScenarioError};
use crate::accounts;
use crate::client::{Conn, Target};
use crate::stats::{CpuWindow, percentile};

/// Parameters of the login-rate scenario.
#[derive(Debug, Clone, Copy)]
pub struct LoginParams {
    /// Clients logging in at the same time.
    pub concurrency: usize,
    /// Accounts per client to cycle through.
    pub accounts_per_client: usize,
    pub duration: Duration,
}

/// Accounts the scenario uses.
pub fn accounts_needed(p: &LoginParams) -> usize {
    p.concurrency * p.accounts_per_client
}

struct WorkerResult {
    logins: u64,
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(
    target: Target,
    index: usize,
    p: LoginParams,
    until: Option<Instant>,
) -> WorkerResult {
    let mut r = WorkerResult {
        logins: 0,
        latencies_us: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let mut round = 0usize;
    loop {
        // Without a deadline, one pass over the worker's accounts (warm-up).
        match until {
            Some(t) if Instant::now() >= t => break,
            None if round >= p.accounts_per_client => break,
            _ => {}
        }
        let account = index + (round % p.accounts_per_client) * p.concurrency;
        round += 1;
        let started = Instant::now();
        match Conn::login(
            &target,
            &accounts::username(account),
            accounts::PASSWORD,
            true,
        )
        .await
        {
            Ok(conn) => {
                let done = Instant::now();
                if until.is_none_or(|t| done <= t) {
                    r.logins += 1;
                    r.latencies_us
                        .push((done - started).as_micros().min(u128::from(u32::MAX)) as u32);
                }
                conn.close().await;
            }
            Err(e) => {
                r.errors += 1;
                if r.first_error.is_none() {
                    r.first_error = Some(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    r
}

async fn run_workers(target: &Target, p: LoginParams, until: Option<Instant>) -> Vec<WorkerResult> {
    let mut set = JoinSet::new();
    for i in 0..p.concurrency {
        set.spawn(worker(target.clone(), i, p, until));
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out
}

/// One run: a warm-up pass over every account (which also fills the
/// client's SCRAM cache), then logins for the measured duration.
pub async fn run(
    target: &Target,
    server_pid: u32,
    p: LoginParams,
) -> Result<Figures, ScenarioError> {
    let warm = run_workers(target, p, None).await;
    if let Some(err) = warm.iter().find_map(|w| w.first_error.clone()) {
        return Err(ScenarioError::Failed {
            scenario: "login",
            what: format!("warm-up login failed: {err}"),
        });
    }
    let cpu = CpuWindow::start(server_pid);
    let started = Instant::now();
    let results = run_workers(target, p, Some(started + p.duration)).await;
    let cpu = cpu.finish();
    let logins: u64 = results.iter().map(|r| r.logins).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if let Some(err) = results.iter().find_map(|r| r.first_error.clone()) {
        eprintln!("  login: {errors} failed logins; first: {err}");
    }
    let mut lat: Vec<u32> = results.into_iter().flat_map(|r| r.latencies_us).collect();
    let mut f = Figures::default();
    f.push("login.rate", logins as f64 / p.duration.as_secs_f64());
    if let Some(v) = percentile(&mut lat, 50.0) {
        f.push("login.p50", f64::from(v) / 1000.0);
    }
    if let Some(v) = percentile(&mut lat, 99.0) {
        f.push("login.p99", f64::from(v) / 1000.0);
    }
    f.push("login.errors", errors as f64);
    f.push("login.gen_cpu", cpu.generator);
    f.push("login.server_cpu", cpu.server);
    f.push("login.others_cpu", cpu.others);
    Ok(f)
}
