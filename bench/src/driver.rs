//! The benchmark run: for each server, prepare its directory, start it
//! pinned, run the chosen scenarios `repeat` times from the generator's
//! core, stop it; then print and save the table.

use std::process::Command;
use std::time::Duration;

use crate::Args;
use crate::client::Target;
use crate::report::{self, Results};
use crate::sasl::SaltCache;
use crate::scenarios::idle::IdleParams;
use crate::scenarios::join_storm::StormParams;
use crate::scenarios::login::LoginParams;
use crate::scenarios::muc_fanout::FanoutParams;
use crate::scenarios::one_to_one::OneToOneParams;
use crate::scenarios::{self, Figures, ScenarioError};
use crate::servers::{self, DOMAIN, Kind, Running, ServerError, Setup};
use crate::tsung::{self, TsungParams};
use crate::{accounts, procfs, workspace_root};

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Scenario numbers, in the order they run on a started server.
const RUNNING_ORDER: [u8; 5] = [1, 2, 6, 3, 4];

fn scenario_name(n: u8) -> &'static str {
    match n {
        1 => "1 login rate",
        2 => "2 one-to-one",
        3 => "3 MUC fan-out",
        4 => "4 join storm",
        5 => "5 idle memory",
        6 => "6 one-to-one, Lua filter",
        _ => "unknown",
    }
}

fn require_program(name: &str, hint: &str) -> Result<(), BenchError> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(BenchError::Usage(format!(
            "{name} is not installed ({hint})"
        )))
    }
}

fn login_params(args: &Args) -> LoginParams {
    LoginParams {
        concurrency: args.login_clients,
        accounts_per_client: 4,
        duration: args.duration(),
    }
}

fn accounts_needed(args: &Args) -> usize {
    let mut n = 0;
    for s in &args.scenarios {
        n = n.max(match s {
            1 => scenarios::login::accounts_needed(&login_params(args)),
            2 | 6 => args.chat_users,
            3 => args.muc_occupants,
            4 => args.storm_clients,
            5 => args.idle_sessions,
            _ => 0,
        });
    }
    n
}

fn summary(f: &Figures) -> String {
    f.0.iter()
        .map(|(k, v)| format!("{}={v:.2}", k.split('.').nth(1).unwrap_or(k)))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Bench<'a> {
    args: &'a Args,
    setup: Setup,
    rt: tokio::runtime::Runtime,
    results: Results,
}

impl Bench<'_> {
    fn target(&self, running: &Running, cache: &SaltCache) -> Result<Target, BenchError> {
        Ok(Target {
            addr: running.addr,
            domain: DOMAIN.to_string(),
            mechanism: self.args.mechanism().map_err(BenchError::Usage)?,
            cache: cache.clone(),
            step_timeout: Duration::from_secs(60),
        })
    }

    /// Starts the server; registers the accounts the first time if it needs
    /// that.
    fn start(
        &self,
        kind: Kind,
        cache: &SaltCache,
        registered: &mut bool,
    ) -> Result<Running, BenchError> {
        let running = servers::start(kind, &self.setup)?;
        if running.needs_registration && !*registered {
            let mut list: Vec<(String, String)> = (0..self.setup.accounts)
                .map(|i| (accounts::username(i), accounts::PASSWORD.to_string()))
                .collect();
            list.extend((1..=self.setup.tsung_accounts).map(|i| {
                let name = accounts::tsung_username(i);
                (name.clone(), name)
            }));
            eprintln!("  registering {} accounts in-band", list.len());
            let target = self.target(&running, cache)?;
            let conc = self.args.setup_concurrency;
            if let Err(e) = self
                .rt
                .block_on(scenarios::register_all(&target, list, conc))
            {
                let log = running.log_tail();
                running.stop();
                return Err(BenchError::Usage(format!(
                    "registration failed: {e}\n{log}"
                )));
            }
            *registered = true;
        }
        Ok(running)
    }

    fn run_one(
        &self,
        n: u8,
        rep: usize,
        running: &Running,
        target: &Target,
    ) -> Result<Figures, ScenarioError> {
        let a = self.args;
        let pid = running.pid;
        let run_id = rep + 1;
        self.rt.block_on(async {
            match n {
                1 => scenarios::login::run(target, pid, login_params(a)).await,
                2 => {
                    let p = OneToOneParams {
                        users: a.chat_users,
                        window: a.chat_window,
                        warmup: a.warmup(),
                        duration: a.duration(),
                        login_concurrency: a.setup_concurrency,
                    };
                    scenarios::one_to_one::run(target, pid, p).await
                }
                6 => {
                    let p = OneToOneParams {
                        users: a.chat_users,
                        window: a.chat_window,
                        warmup: a.warmup(),
                        duration: a.duration(),
                        login_concurrency: a.setup_concurrency,
                    };
                    scenarios::lua_filter::run(target, pid, p).await
                }
                3 => {
                    let p = FanoutParams {
                        occupants: a.muc_occupants,
                        senders: a.muc_senders,
                        window: a.muc_window,
                        warmup: a.warmup(),
                        duration: a.duration(),
                        login_concurrency: a.setup_concurrency,
                    };
                    scenarios::muc_fanout::run(target, pid, run_id, p).await
                }
                4 => {
                    let p = StormParams {
                        clients: a.storm_clients,
                        login_concurrency: a.setup_concurrency,
                        limit: Duration::from_secs(120),
                    };
                    scenarios::join_storm::run(target, pid, run_id, p).await
                }
                _ => {
                    let p = IdleParams {
                        sessions: a.idle_sessions,
                        login_concurrency: a.setup_concurrency,
                        settle: Duration::from_secs(3),
                    };
                    scenarios::idle::run(target, pid, || running.rss_kib(), p).await
                }
            }
        })
    }

    fn record(&mut self, kind: Kind, n: u8, rep: usize, r: Result<Figures, ScenarioError>) -> bool {
        match r {
            Ok(f) => {
                eprintln!(
                    "  {} run {}/{}: {}",
                    scenario_name(n),
                    rep + 1,
                    self.args.repeat,
                    summary(&f)
                );
                self.results.add(kind, &f);
                true
            }
            Err(e) => {
                eprintln!("  {} run {}: FAILED: {e}", scenario_name(n), rep + 1);
                self.results
                    .failures
                    .push((kind, scenario_name(n), e.to_string()));
                false
            }
        }
    }

    /// The tsung cross-check of scenario 2 on a running server.
    fn run_tsung(&mut self, kind: Kind, running: &Running) {
        let p = TsungParams {
            template: workspace_root().join("bench/tsung/one_to_one.xml"),
            work_dir: self.args.work_dir.clone(),
            port: running.addr.port(),
            users: self.setup.tsung_accounts,
            loops: self.args.tsung_loops,
            think: self.args.tsung_think,
            generator_cpu: self.args.generator_cpu,
        };
        eprintln!("  tsung cross-check of scenario 2");
        match tsung::run(&p) {
            Ok(f) => {
                eprintln!("  tsung: {}", summary(&f));
                self.results.add(kind, &f);
            }
            Err(e) => {
                eprintln!("  tsung: FAILED: {e}");
                self.results.failures.push((kind, "tsung", e.to_string()));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    fn bench_server(&mut self, kind: Kind) -> Result<(), BenchError> {
        eprintln!("== {}", kind.label());
        servers::prepare(kind, &self.setup)?;
        let cache = SaltCache::default();
        let mut registered = false;
        let wanted = |n: u8| self.args.scenarios.contains(&n);
        if wanted(5) {
            // Idle memory on a freshly started server each time.
            for rep in 0..self.args.repeat {
                let running = self.start(kind, &cache, &mut registered)?;
                let target = self.target(&running, &cache)?;
                let r = self.run_one(5, rep, &running, &target);
                running.stop();
                if !self.record(kind, 5, rep, r) {
                    break;
                }
            }
        }
        if !RUNNING_ORDER.iter().any(|n| wanted(*n)) {
            return Ok(());
        }
        let running = self.start(kind, &cache, &mut registered)?;
        let target = self.target(&running, &cache)?;
        // ejabberd runs no Prosody modules: no Lua filter scenario.
        let runs_lua = kind != Kind::Ejabberd;
        for n in RUNNING_ORDER
            .into_iter()
            .filter(|n| wanted(*n) && (*n != 6 || runs_lua))
        {
            for rep in 0..self.args.repeat {
                let r = self.run_one(n, rep, &running, &target);
                let ok = self.record(kind, n, rep, r);
                // Let the server finish closing sessions before the next run.
                std::thread::sleep(Duration::from_secs(1));
                if !running.alive() {
                    let log = running.log_tail();
                    running.stop();
                    return Err(BenchError::Usage(format!("{} died:\n{log}", kind.label())));
                }
                if !ok {
                    break;
                }
            }
            if n == 2 && self.args.tsung.iter().any(|t| t == kind.label()) {
                self.run_tsung(kind, &running);
            }
        }
        running.stop();
        Ok(())
    }
}

fn command_output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The results file: what ran where, then the table.
fn results_document(
    args: &Args,
    kinds: &[Kind],
    table: &str,
    results: &Results,
    date: &str,
) -> String {
    let commit = args
        .lilt_commit
        .clone()
        .or_else(|| {
            command_output(Command::new("git").arg("-C").arg(workspace_root()).args([
                "rev-parse",
                "--short",
                "HEAD",
            ]))
        })
        .unwrap_or_else(|| "unknown".into());
    let version = |p: &str| servers::package_version(p).unwrap_or_else(|| "not installed".into());
    let mut doc = format!(
        "# Benchmark run {date}\n\n\
         - Machine: {}\n\
         - lilt: release build of commit {commit}; Prosody {} (Debian, epoll); ejabberd {} (Debian)\n\
         - Server pinned to CPU {} (`lilt-2cores`: CPUs {},{}), generator pinned to CPU {}; SASL {} over plain TCP\n\
         - Command: `bench {}`\n\
         - Each figure is the median of {} runs. \"lilt vs X\" is lilt's advantage (above 1: lilt better; \
           for times and memory it is X's figure divided by lilt's).\n\n",
        procfs::machine_description(),
        version("prosody"),
        version("ejabberd"),
        args.server_cpu,
        args.server_cpu,
        args.generator_cpu,
        args.generator_cpu,
        args.mechanism,
        std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        args.repeat,
    );
    doc.push_str(table);
    if !results.failures.is_empty() {
        doc.push_str("\nFailed scenarios:\n\n");
        for (k, s, why) in &results.failures {
            doc.push_str(&format!(
                "- {} / {s}: {}\n",
                k.label(),
                why.replace('\n', " ")
            ));
        }
    }
    let _ = kinds;
    doc
}

pub fn run(args: Args) -> Result<(), BenchError> {
    let kinds = args.kinds().map_err(BenchError::Usage)?;
    args.mechanism().map_err(BenchError::Usage)?;
    if let Some(bad) = args.scenarios.iter().find(|s| !(1..=6).contains(*s)) {
        return Err(BenchError::Usage(format!(
            "unknown scenario {bad} (1 to 6)"
        )));
    }
    require_program("taskset", "util-linux")?;
    if kinds.contains(&Kind::Prosody) {
        require_program("prosody", "apt-get install prosody")?;
    }
    if !args.tsung.is_empty() {
        require_program("tsung", "apt-get install tsung")?;
    }
    if kinds.contains(&Kind::Ejabberd) {
        require_program("ejabberdctl", "apt-get install ejabberd")?;
    }
    let lilt_bin = args
        .lilt
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/lilt"));
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::Lilt | Kind::LiltBothCores))
        && !lilt_bin.is_file()
    {
        return Err(BenchError::Usage(format!(
            "{} not found: cargo build --release -p lilt",
            lilt_bin.display()
        )));
    }
    crate::stats::SERVER_CPU.store(args.server_cpu, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = procfs::set_nice(servers::NICE) {
        eprintln!("bench: warning: cannot raise the generator's priority: {e}");
    }
    procfs::pin_self(&[args.generator_cpu]).map_err(|source| BenchError::Io {
        what: format!("pinning the generator to CPU {}", args.generator_cpu),
        source,
    })?;
    let nofile = procfs::raise_nofile().map_err(|source| BenchError::Io {
        what: "raising the open files limit".into(),
        source,
    })?;
    let accounts = accounts_needed(&args);
    if (nofile as usize) < accounts + 100 {
        eprintln!("bench: warning: open files limit {nofile} is below {accounts} sessions");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| BenchError::Io {
            what: "starting the runtime".into(),
            source,
        })?;
    std::fs::create_dir_all(&args.work_dir).map_err(|source| BenchError::Io {
        what: format!("creating {}", args.work_dir.display()),
        source,
    })?;
    let mut bench = Bench {
        args: &args,
        setup: Setup {
            base: args.work_dir.clone(),
            port: args.port,
            accounts,
            tsung_accounts: if args.tsung.is_empty() {
                0
            } else {
                args.chat_users
            },
            lilt_bin,
            server_cpus: args.server_cpu.to_string(),
            all_cpus: format!("{},{}", args.server_cpu, args.generator_cpu),
        },
        rt,
        results: Results::default(),
    };
    for kind in &kinds {
        if let Err(e) = bench.bench_server(*kind) {
            eprintln!("bench: {}: {e}", kind.label());
            bench
                .results
                .failures
                .push((*kind, "server", e.to_string()));
        }
    }
    let table = report::table(&bench.results, &kinds);
    println!("{table}");
    let date = report::date();
    let doc = results_document(&args, &kinds, &table, &bench.results, &date);
    if !args.no_save {
        let path = report::save(args.results_dir.as_deref(), &format!("{date}.md"), &doc).map_err(
            |e| BenchError::Io {
                what: format!("writing {}", e.path.display()),
                source: e.source,
            },
        )?;
        eprintln!("bench: saved {}", path.display());
    }
    if !bench.results.failures.is_empty() {
        for (k, s, why) in &bench.results.failures {
            eprintln!("bench: {} / {s}: {why}", k.label());
        }
    }
    Ok(())
}
