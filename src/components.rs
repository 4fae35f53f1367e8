//! `lilt focus ...`, `lilt bridge ...` and `lilt recorder ...`: lilt's
//! conference focus, media bridge and recorder as standalone XMPP clients
//! of any server (lilt or Prosody), with the flags of Jicofo's,
//! Videobridge's and Jibri's `xmpp` settings.
//! Each parses its own flags (the component crate's `clap` args) and runs
//! until interrupted; no Prosody config is read.

use std::process::ExitCode;

use clap::Parser;

/// The component commands, as the first word after `lilt`.
pub const COMMANDS: [(&str, &str); 3] = [
    (
        "focus",
        "run the conference focus (Jicofo's job) against an XMPP server",
    ),
    (
        "bridge",
        "run the media bridge (Videobridge's job) against an XMPP server",
    ),
    (
        "recorder",
        "run the recorder (Jibri's job, without a browser) against an XMPP server",
    ),
];

/// Runs `command` if it names a component; `None` otherwise.
pub fn run(command: &[String]) -> Option<ExitCode> {
    let name = command.first()?.as_str();
    if !COMMANDS.iter().any(|(c, _)| *c == name) {
        return None;
    }
    crate::logging::init_console(crate::logging::Level::Info);
    let argv = std::iter::once(format!("lilt {name}")).chain(command[1..].iter().cloned());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lilt: cannot start the async runtime: {e}");
            return Some(ExitCode::FAILURE);
        }
    };
    let result: Result<(), String> = match name {
        "focus" => match focus_component::FocusArgs::try_parse_from(argv) {
            Ok(args) => runtime.block_on(interruptible(async move {
                focus_component::run(args).await.map_err(|e| e.to_string())
            })),
            Err(e) => return Some(usage(e)),
        },
        "recorder" => match recorder_component::cli::RecorderArgs::try_parse_from(argv) {
            Ok(args) => runtime.block_on(interruptible(async move {
                recorder_component::cli::run(args)
                    .await
                    .map_err(|e| e.to_string())
            })),
            Err(e) => return Some(usage(e)),
        },
        _ => match BridgeCommand::try_parse_from(argv) {
            Ok(command) => runtime.block_on(interruptible(async move {
                sfu_component::cli::run(command.args)
                    .await
                    .map_err(|e| e.to_string())
            })),
            Err(e) => return Some(usage(e)),
        },
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lilt {name}: {e}");
            ExitCode::FAILURE
        }
    })
}

/// `lilt bridge`'s flags (the bridge crate's, as a command of their own).
#[derive(Parser, Debug)]
#[command(about = "lilt's media bridge (what Jitsi Videobridge does)")]
struct BridgeCommand {
    #[command(flatten)]
    args: sfu_component::cli::BridgeArgs,
}

/// Prints clap's message (help, version or a usage error) with its exit code.
fn usage(e: clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(e.exit_code().clamp(0, 255) as u8)
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives.
async fn interruptible(
    work: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return work.await;
    };
    tokio::select! {
        r = work => r,
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
    }
}
