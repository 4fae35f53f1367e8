//! `lilt [--config FILE] [COMMAND ...]`: runs the server, or a prosodyctl
//! command. Invoked as `prosodyctl`, it behaves the same.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lilt::process::{self, PidFile, exit};
use lilt::reload::Reloader;
use lilt::{components, ctl, devconfig, logging, startup};
use lua_compat::config::{CredentialFallback, LoadOptions};
use xmpp_core::{Clock, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "lilt",
    version,
    about = "A Prosody-compatible XMPP server",
    override_usage = "lilt [--config FILE] [COMMAND ...]",
    after_help = ctl::help_text()
)]
struct Args {
    /// The Prosody configuration file (prosody.cfg.lua).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Stay in the foreground (accepted for Prosody's habit; lilt always does).
    #[arg(short = 'F', long = "foreground")]
    foreground: bool,
    /// Refused: lilt does not daemonize (it runs in the foreground under
    /// systemd or docker); accepted only to say so.
    #[arg(short = 'D', long = "daemonize")]
    daemonize: bool,
    /// Fix the clock at this Unix time (tests only: timestamps become stable).
    #[arg(long, hide = true)]
    fixed_time: Option<f64>,
    /// A command and its arguments (see Commands below); none runs the server.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The config file (the development setup's when no --config is given),
/// how it is loaded, and the loaded config.
fn load_config(args: &Args) -> Result<(PathBuf, LoadOptions, ServerConfig), String> {
    // As prosodyctl, commands tolerate a missing credentials directory.
    let options = LoadOptions {
        credential_fallback: if args.command.is_empty() {
            CredentialFallback::Error
        } else {
            CredentialFallback::Warn
        },
        ..Default::default()
    };
    let file = match &args.config {
        Some(path) => path.clone(),
        None => devconfig::prepare(&devconfig::dev_dir()).map_err(|e| e.to_string())?,
    };
    let config = lua_compat::config::load_with(&file, &options).map_err(|e| e.to_string())?;
    Ok((file, options, config))
}

/// A start-up failure: logged (so a log file shows why the server is not
/// running), on stderr too when no sink writes there, with its exit status.
fn fail(message: impl std::fmt::Display, code: u8) -> ExitCode {
    tracing::error!("{message}");
    if !logging::has_console() {
        eprintln!("lilt: {message}");
    }
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = Args::parse();
    // `lilt focus ...`, `lilt bridge ...`: standalone components, no config.
    if let Some(code) = components::run(&args.command) {
        return code;
    }
    if args.daemonize {
        eprintln!(
            "lilt: -D/--daemonize: lilt does not daemonize; it runs in the foreground under a \
             service manager (systemd: Type=exec; docker). Run it without -D"
        );
        return ExitCode::from(exit::CONFIG);
    }
    let (file, options, config) = match load_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lilt: {e}");
            return ExitCode::from(if args.command.is_empty() {
                exit::CONFIG
            } else {
                exit::FAILURE
            });
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
                // `shell`'s errors are printed as they come; only its count is left.
                if !e.message.is_empty() {
                    eprintln!("{e}");
                }
                ExitCode::from(e.code)
            }
        };
    }
    // SIGHUP must never end the server, not even before the reload handler
    // is in place (the handler replaces this).
    process::ignore_hangup();
    if let Err(e) = process::check_foreground(&config) {
        eprintln!("lilt: {e}");
        return ExitCode::from(e.exit_code());
    }
    for w in logging::init(Some(&config)) {
        tracing::warn!("{w}");
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let checks = process::check_certificates(&config)
        .and_then(|()| process::check_data_path(&startup::data_path(&config)));
    if let Err(e) = checks {
        return fail(e.to_string(), e.exit_code());
    }
    let pidfile = match PidFile::create(&config) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string(), e.exit_code()),
    };
    let clock = args.fixed_time.map(Clock::Fixed).unwrap_or(Clock::System);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return fail(
                format!("cannot start the async runtime: {e}"),
                exit::FAILURE,
            );
        }
    };
    let dev = args.config.is_none();
    let code = runtime.block_on(async move {
        // Before anything listens: a signal sent once the server answers is kept.
        let signals = lilt::reload::Signals::install();
        let server = match startup::build_server(config.clone(), clock) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string(), e.exit_code()),
        };
        let running = match startup::start(server).await {
            Ok(r) => r,
            Err(e) => return fail(e.to_string(), e.exit_code()),
        };
        // The listeners on stdout first, all at once: scripts wait for them.
        for l in &running.listening {
            println!("lilt: listening {} on {}", l.kind, l.addr);
        }
        tracing::info!(
            target: "startup",
            "Hello and welcome to lilt version {}",
            env!("CARGO_PKG_VERSION")
        );
        for l in &running.listening {
            tracing::info!(
                target: "portmanager",
                "Activated service '{}' on [{}]:{}",
                l.kind,
                l.addr.ip(),
                l.addr.port()
            );
        }
        let hosts: Vec<String> = running
            .server
            .hosts()
            .iter()
            .map(|h| h.name.clone())
            .collect();
        println!("lilt: serving {}", hosts.join(", "));
        if dev {
            println!("{}", devconfig::first_run_hint(&devconfig::dev_dir()));
        }
        let reloader = Reloader::new(file, options, config, running.certificates.clone())
            .with_server(running.server.clone())
            .with_listeners(running.listeners.clone())
            .with_component_listener(
                running.shutdown_signal(),
                running.listening.iter().any(|l| l.kind == "component"),
            );
        lilt::reload::until_stopped(reloader, signals).await;
        tracing::info!(target: "startup", "Shutting down...");
        running.shutdown().await;
        ExitCode::SUCCESS
    });
    drop(pidfile);
    code
}
