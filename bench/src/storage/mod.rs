//! `bench storage`: the storage benchmark (issue 20). The same store
//! operations are driven over c2s through lilt and through Debian's
//! Prosody 0.12, with the stores on each driver in turn: `internal`
//! (Prosody's data files), `sql` on SQLite and `sql` on PostgreSQL (a
//! throw-away cluster on 127.0.0.1 that both servers use, a fresh database
//! for each run). The operations ([`ops`]): keyval writes and reads
//! (private XML set/get), archive appends (chat messages to an archiving
//! account) and archive queries (MAM pages with RSM). Each figure is the
//! median of `--repeat` runs; the table shows lilt ÷ Prosody per driver and
//! is printed and saved in `bench/results/`.
//!
//! Start reading at [`main`]; the configs and processes are in [`setup`].

mod ops;
mod report;
mod setup;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio::task::JoinSet;

use crate::client::{Conn, Mechanism, Target};
use crate::sasl::SaltCache;
use crate::{accounts, procfs, workspace_root};
use ops::{Op, Sizes};
use setup::{Driver, PgCluster, Server};

/// Storage benchmark: lilt and Prosody 0.12 on internal, SQLite and PostgreSQL.
#[derive(Parser, Debug, Clone)]
#[command(name = "bench storage")]
pub struct StorageArgs {
    /// Drivers, comma-separated: internal, sqlite, postgresql.
    #[arg(
        long,
        default_value = "internal,sqlite,postgresql",
        value_delimiter = ','
    )]
    pub drivers: Vec<String>,
    /// Servers, comma-separated: lilt, prosody.
    #[arg(long, default_value = "lilt,prosody", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Clients at once (an even number: MAM appends go in pairs).
    #[arg(long, default_value_t = 20)]
    pub clients: usize,
    /// Requests per client for private set/get and MAM queries.
    #[arg(long, default_value_t = 100)]
    pub ops: usize,
    /// Messages each sending client sends (MAM appends).
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Messages in flight per pair.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Items per MAM page.
    #[arg(long, default_value_t = 20)]
    pub page: usize,
    /// Runs of each operation (the table shows medians).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The lilt binary (default: target/release/lilt in this workspace).
    #[arg(long)]
    pub lilt: Option<PathBuf>,
    /// lilt's `internal_storage_sync` (batched, always, never; default: lilt's
    /// own default, batched). Prosody ignores the option.
    #[arg(long)]
    pub lilt_sync: Option<String>,
    /// Where the servers' throw-away directories go.
    #[arg(long, default_value = "/tmp/lilt-bench-storage")]
    pub work_dir: PathBuf,
    /// c2s port of the servers; PostgreSQL gets the next one.
    #[arg(long, default_value_t = 25422)]
    pub port: u16,
    /// CPU of the server under test.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// CPU of the load generator.
    #[arg(long, default_value_t = 1)]
    pub generator_cpu: usize,
    /// Where to save the results (default: bench/results in this workspace).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Print the results only.
    #[arg(long)]
    pub no_save: bool,
}

/// The benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum StorageBenchError {
    #[error("{0}")]
    Setup(String),
}

/// Every figure measured: (driver, server, operation) → rates per run.
pub type Figures = HashMap<(Driver, Server, Op), Vec<f64>>;

pub fn main(argv: Vec<String>) -> Result<(), StorageBenchError> {
    let args = StorageArgs::parse_from(std::iter::once("bench storage".to_string()).chain(argv));
    let drivers = args
        .drivers
        .iter()
        .map(|d| {
            Driver::parse(d.trim())
                .ok_or_else(|| StorageBenchError::Setup(format!("unknown driver {d:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let servers = args
        .servers
        .iter()
        .map(|s| match s.trim() {
            "lilt" => Ok(Server::Lilt),
            "prosody" => Ok(Server::Prosody),
            other => Err(StorageBenchError::Setup(format!(
                "unknown server {other:?}"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.clients < 2 || args.clients % 2 != 0 {
        return Err(StorageBenchError::Setup(
            "--clients must be an even number, at least 2".into(),
        ));
    }
    let _ = procfs::raise_nofile();
    let _ = procfs::pin_self(&[args.generator_cpu]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StorageBenchError::Setup(format!("runtime: {e}")))?;
    let lilt = args
        .lilt
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/lilt"));
    if servers.contains(&Server::Lilt) && !lilt.exists() {
        return Err(StorageBenchError::Setup(format!(
            "no lilt binary at {} (cargo build --release -p lilt)",
            lilt.display()
        )));
    }
    std::fs::create_dir_all(&args.work_dir)
        .map_err(|e| StorageBenchError::Setup(format!("{}: {e}", args.work_dir.display())))?;
    let load_before = crate::report::load_average();
    let mut figures = Figures::new();
    let mut failures: Vec<String> = Vec::new();
    for driver in &drivers {
        let pg = if *driver == Driver::Postgresql {
            match PgCluster::start(&args.work_dir, args.port + 1) {
                Ok(pg) => Some(pg),
                Err(e) => {
                    failures.push(format!("postgresql: cannot start a cluster: {e}"));
                    continue;
                }
            }
        } else {
            None
        };
        for server in &servers {
            eprintln!("bench storage: {server} on {}", driver.label());
            if let Err(e) = runtime.block_on(bench_one(
                &args,
                &lilt,
                *server,
                *driver,
                pg.as_ref(),
                &mut figures,
            )) {
                eprintln!("bench storage: {server} on {}: {e}", driver.label());
                failures.push(format!("{server} on {}: {e}", driver.label()));
            }
        }
    }
    let load_after = crate::report::load_average();
    let doc = report::document(
        &args,
        &lilt,
        &drivers,
        &figures,
        &failures,
        (&load_before, &load_after),
    );
    println!("{doc}");
    if !args.no_save {
        let file = format!("{}-storage.md", crate::report::date());
        let path = crate::report::save(args.results_dir.as_deref(), &file, &doc)
            .map_err(|e| StorageBenchError::Setup(e.to_string()))?;
        eprintln!("bench storage: saved {}", path.display());
    }
    Ok(())
}

/// One server on one driver: start, log every client in, run every
/// operation `--repeat` times, stop.
async fn bench_one(
    args: &StorageArgs,
    lilt: &std::path::Path,
    server: Server,
    driver: Driver,
    pg: Option<&PgCluster>,
    figures: &mut Figures,
) -> Result<(), String> {
    let db = format!("bench_{server}");
    if let Some(pg) = pg {
        pg.create_database(&db).map_err(|e| e.to_string())?;
    }
    let dir = args.work_dir.join(format!("{}-{server}", driver.label()));
    let running = setup::start(&setup::RunSpec {
        server,
        driver,
        dir: &dir,
        port: args.port,
        pg: pg.map(|p| (p, db.as_str())),
        accounts: args.clients,
        lilt,
        cpus: &args.server_cpu.to_string(),
        lilt_sync: args.lilt_sync.as_deref(),
    })
    .map_err(|e| e.to_string())?;
    let result = measure(args, server, driver, figures).await;
    if result.is_err() {
        eprintln!("{}", running.log_tail());
    }
    drop(running);
    result
}

async fn measure(
    args: &StorageArgs,
    server: Server,
    driver: Driver,
    figures: &mut Figures,
) -> Result<(), String> {
    let target = Target {
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], args.port)),
        domain: setup::DOMAIN.into(),
        mechanism: Mechanism::ScramSha1,
        cache: SaltCache::default(),
        step_timeout: Duration::from_secs(60),
    };
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let t = target.clone();
        set.spawn(async move {
            Conn::login(&t, &accounts::username(i), accounts::PASSWORD, true)
                .await
                .map(|c| (i, c))
        });
    }
    let mut logged: Vec<(usize, Conn)> = Vec::new();
    while let Some(done) = set.join_next().await {
        logged.push(
            done.map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
        );
    }
    logged.sort_by_key(|(i, _)| *i);
    let mut conns: Vec<Conn> = logged.into_iter().map(|(_, c)| c).collect();
    let sizes = Sizes {
        ops: args.ops,
        messages: args.messages,
        window: args.window,
        page: args.page,
    };
    for op in Op::ALL {
        for _ in 0..args.repeat.max(1) {
            let (back, m) = ops::run(op, conns, sizes)
                .await
                .map_err(|e| format!("{}: {e}", op.label()))?;
            conns = back;
            eprintln!(
                "  {server} {} {}: {} in {:.2} s = {:.0}/s",
                driver.label(),
                op.label(),
                m.ops,
                m.elapsed.as_secs_f64(),
                m.rate()
            );
            figures
                .entry((driver, server, op))
                .or_default()
                .push(m.rate());
        }
    }
    crate::scenarios::close_all(conns).await;
    Ok(())
}
