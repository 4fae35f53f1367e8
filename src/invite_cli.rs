//! `lilt invite generate HOST [...]` and prosodyctl's spelling `lilt
//! mod_invites generate HOST [...]`: an invite to register an account on
//! HOST (or, with `--reset USER`, to set USER's password), written to the
//! host's invite store as Prosody's mod_invites writes it; the invite's URI
//! (`xmpp:HOST?register;preauth=TOKEN`) is printed. The running server (lilt
//! or Prosody, sharing the data) accepts it with `invites_register`. The
//! options are `modules::invites::generate`'s.

use xmpp_core::{Clock, ServerConfig};

use crate::ctl::CtlError;
use modules::invites::{Invites, generate, now};

fn usage(command: &str, message: Option<&str>) -> CtlError {
    let usage = format!("usage: lilt {command} generate example.com");
    CtlError {
        message: match message {
            Some(m) => format!("{m}\n{usage}"),
            None => usage,
        },
        code: 2,
    }
}

/// `lilt invite ...`.
pub fn cmd_invite(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    run(config, "invite", a)
}

/// `lilt mod_invites ...` (prosodyctl's words).
pub fn cmd_mod_invites(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    run(config, "mod_invites", a)
}

fn run(config: &ServerConfig, command: &str, a: &[&str]) -> Result<Option<String>, CtlError> {
    let (host, rest) = match a {
        ["generate", "--help", ..] => {
            return Err(CtlError {
                message: generate::help(&format!("lilt {command}")),
                code: 2,
            });
        }
        ["generate", host, rest @ ..] => (*host, rest),
        _ => return Err(usage(command, None)),
    };
    let options = generate::parse(rest).map_err(|e| usage(command, Some(&e.0)))?;
    if options.help {
        return Err(CtlError {
            message: generate::help(&format!("lilt {command}")),
            code: 2,
        });
    }
    for word in &options.unexpected {
        eprintln!("unexpected argument: {word}");
    }
    if !matches!(
        config.host(host).map(|h| &h.kind),
        Some(xmpp_core::HostKind::VirtualHost)
    ) {
        return Err(CtlError {
            message: format!("Host {host} does not exist"),
            code: 1,
        });
    }
    let server = crate::startup::build_storage_only(config.clone(), Clock::System);
    let h = server.host(host).ok_or_else(|| CtlError {
        message: format!("Host {host} does not exist"),
        code: 1,
    })?;
    let invites = Invites::open(&h).map_err(|e| CtlError {
        message: e.to_string(),
        code: 1,
    })?;
    let invite = generate::create(&invites, &options, now(&server)).map_err(|e| CtlError {
        message: e,
        code: if options.reset.is_some() { 2 } else { 1 },
    })?;
    Ok(Some(invite.uri))
}
