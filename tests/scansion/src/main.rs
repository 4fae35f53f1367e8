//! `scansion-runner --server HOST:PORT [--expected-failures FILE] [--only NAME] [-v] DIR`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use scansion_runner::report::ExpectedFailures;
use scansion_runner::run_dir;
use scansion_runner::runner::RunOptions;

/// Runs scansion (.scs) scripts against a running XMPP server.
#[derive(Debug, Parser)]
#[command(name = "scansion-runner", version)]
struct Cli {
    /// The server's c2s listener (plain TCP), e.g. 127.0.0.1:5222.
    #[arg(long, value_name = "HOST:PORT")]
    server: String,
    /// Scripts that are known to fail, one `name.scs  reason` per line.
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Run only this script (name with or without .scs); repeatable.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Print all traffic to stderr and full details of expected failures.
    #[arg(short, long)]
    verbose: bool,
    /// Seconds a `receives:` waits for its stanza.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    timeout: f64,
    /// Milliseconds `receives: nothing` listens for stray stanzas.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    quiet_period: u64,
    /// Use this SASL mechanism (PLAIN or SCRAM-SHA-1) instead of the best offered.
    #[arg(long, value_name = "MECHANISM")]
    sasl: Option<String>,
    /// Directory of .scs scripts.
    dir: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let expected = match &cli.expected_failures {
        Some(path) => match ExpectedFailures::load(path) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("scansion-runner: {e}");
                return ExitCode::from(2);
            }
        },
        None => ExpectedFailures::default(),
    };
    if !(cli.timeout.is_finite() && cli.timeout > 0.0) {
        eprintln!("scansion-runner: --timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let opts = RunOptions {
        server: cli.server,
        receive_timeout: Duration::from_secs_f64(cli.timeout),
        quiet_period: Duration::from_millis(cli.quiet_period),
        mechanism: cli.sasl,
        verbose: cli.verbose,
    };
    let mut stdout = std::io::stdout();
    match run_dir(&cli.dir, &expected, &cli.only, &opts, &mut stdout).await {
        Ok(summary) if summary.total == 0 => {
            eprintln!(
                "scansion-runner: no scripts selected in {}",
                cli.dir.display()
            );
            ExitCode::from(2)
        }
        Ok(summary) if summary.ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("scansion-runner: {e}");
            ExitCode::from(2)
        }
    }
}
