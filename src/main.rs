//! `lilt [--config FILE] [COMMAND ...]`: runs the server, or a prosodyctl
//! command. Invoked as `prosodyctl`, it behaves the same.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lilt::{ctl, devconfig, logging, startup};
use xmpp_core::{Clock, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "lilt",
    version,
    about = "A Prosody-compatible XMPP server",
    override_usage = "lilt [--config FILE] [COMMAND ...]"
)]
struct Args {
    /// The Prosody configuration file (prosody.cfg.lua).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Stay in the foreground (accepted for Prosody's habit; lilt always does).
    #[arg(short = 'F', long = "foreground")]
    foreground: bool,
    /// Fix the clock at this Unix time (tests only: timestamps become stable).
    #[arg(long, hide = true)]
    fixed_time: Option<f64>,
    /// A prosodyctl command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn load_config(args: &Args) -> Result<ServerConfig, String> {
    // As prosodyctl, commands tolerate a missing credentials directory.
    let options = lua_compat::config::LoadOptions {
        credential_fallback: if args.command.is_empty() {
            lua_compat::config::CredentialFallback::Error
        } else {
            lua_compat::config::CredentialFallback::Warn
        },
        ..Default::default()
    };
    let file = match &args.config {
        Some(path) => path.clone(),
        None => devconfig::prepare(&devconfig::dev_dir()).map_err(|e| e.to_string())?,
    };
    lua_compat::config::load_with(&file, &options).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lilt: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.command.is_empty() {
        let _ = logging::init(None);
        return match ctl::run(&config, &args.command) {
            Ok(Some(msg)) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Ok(None) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(e.code)
            }
        };
    }
    for w in logging::init(Some(&config)) {
        tracing::warn!("{w}");
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let clock = args.fixed_time.map(Clock::Fixed).unwrap_or(Clock::System);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lilt: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dev = args.config.is_none();
    runtime.block_on(async move {
        let server = match startup::build_server(config, clock) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("lilt: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match startup::start(server).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lilt: {e}");
                return ExitCode::FAILURE;
            }
        };
        for l in &running.listening {
            println!("lilt: listening {} on {}", l.kind, l.addr);
        }
        let hosts: Vec<String> = running.server.hosts().iter().map(|h| h.name.clone()).collect();
        println!("lilt: serving {}", hosts.join(", "));
        if dev {
            println!(
                "lilt: development setup in {} (self-signed certificate for localhost).\n      Create an account: lilt register alice localhost PASSWORD",
                devconfig::dev_dir().display()
            );
        }
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
