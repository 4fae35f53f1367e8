//! prosodyctl's commands: `register`, `unregister`, `adduser`, `passwd`,
//! `deluser`, `check config`, `about`, with Prosody's argument forms and
//! messages.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use xmpp_core::{Clock, Jid, ServerConfig};

/// A command's failure: the message to print and prosodyctl's exit code
/// (1 for a failed command, 2 for `check config` finding problems).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CtlError {
    pub message: String,
    pub code: u8,
}

fn err(s: impl Into<String>) -> CtlError {
    CtlError {
        message: s.into(),
        code: 1,
    }
}

/// Usage text, listing what `lilt`/`prosodyctl` accept.
pub const USAGE: &str = "\
Usage: lilt [--config FILE] [COMMAND ...]

With no command, runs the server in the foreground (with no --config, a
development setup for host localhost on 127.0.0.1).

Commands (as prosodyctl's):
  register USER HOST [PASSWORD]   create or replace an account
  unregister USER HOST            delete an account
  adduser JID                     create an account (password prompted twice)
  passwd JID                      change a password (prompted twice)
  deluser JID                     delete an account
  check config                    check the configuration file
  about                           show version information
";

/// The host's account provider, with the server it lives in (the provider
/// reaches storage through the host, so the server must outlive it).
fn account_provider(
    config: &ServerConfig,
    host: &str,
) -> Result<(Arc<xmpp_core::Server>, Arc<dyn auth::AccountProvider>), CtlError> {
    let Some(hc) = config.host(host) else {
        return Err(err(format!(
            "The given hostname does not exist in the config: {host}"
        )));
    };
    if !matches!(hc.kind, xmpp_core::HostKind::VirtualHost) {
        return Err(err(format!(
            "{host} is a component, not a VirtualHost; it has no accounts"
        )));
    }
    let server = crate::startup::build_storage_only(config.clone(), Clock::System);
    let h = server.host(host).ok_or_else(|| {
        err(format!(
            "The given hostname does not exist in the config: {host}"
        ))
    })?;
    let provider = auth::provider_for_host(&h).map_err(|e| err(e.to_string()))?;
    Ok((server, provider))
}

fn split_user_jid(jid: &str) -> Result<(String, String), CtlError> {
    let j = Jid::parse(jid).map_err(|e| err(e.to_string()))?;
    match j.node() {
        Some(n) if j.resource().is_none() => Ok((n.to_string(), j.domain().to_string())),
        _ => Err(err(format!(
            "Please specify a JID, including a host. e.g. alice@example.com (got {jid})"
        ))),
    }
}

fn prep_user(user: &str) -> Result<String, CtlError> {
    xmpp_core::jid::nodeprep(user).map_err(|e| err(format!("Invalid username {user:?}: {e}")))
}

/// Reads a password twice (prompting on a terminal; two lines from a pipe).
fn read_password_twice() -> Result<String, CtlError> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let mut lines = stdin.lock().lines();
    let mut ask = |prompt: &str| -> Result<String, CtlError> {
        if tty {
            // Prompted without echo, as prosodyctl does.
            return rpassword::prompt_password(prompt)
                .map_err(|e| err(format!("Cannot read the password: {e}")));
        }
        match lines.next() {
            Some(Ok(l)) => Ok(l.trim_end_matches(['\r', '\n']).to_string()),
            _ => Err(err("No password given")),
        }
    };
    let first = ask("Enter new password: ")?;
    let second = ask("Retype new password: ")?;
    if first != second {
        return Err(err("Passwords did not match"));
    }
    Ok(first)
}

/// Whether a command needs the account to exist already.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    Required,
    Forbidden,
    Either,
}

/// An account a command works on.
struct Account {
    user: String,
    provider: Arc<dyn auth::AccountProvider>,
    _server: Arc<xmpp_core::Server>,
}

/// Opens the provider for `user@host`, checking existence as the command needs.
fn account(
    config: &ServerConfig,
    user: &str,
    host: &str,
    existing: Existing,
) -> Result<Account, CtlError> {
    let user = prep_user(user)?;
    let (server, provider) = account_provider(config, host)?;
    if existing != Existing::Either {
        let exists = provider
            .user_exists(&user)
            .map_err(|e| err(e.to_string()))?;
        match (existing, exists) {
            (Existing::Required, false) => return Err(err("No such user")),
            (Existing::Forbidden, true) => return Err(err("That user already exists")),
            _ => {}
        }
    }
    Ok(Account {
        user,
        provider,
        _server: server,
    })
}

/// Runs a command; `Ok(message)` is printed on success.
pub fn run(config: &ServerConfig, args: &[String]) -> Result<Option<String>, CtlError> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let storage_err = |e: auth::AuthError| err(e.to_string());
    match a.as_slice() {
        ["register", user, host, rest @ ..] => {
            let Account {
                user,
                provider,
                _server,
            } = account(config, user, host, Existing::Either)?;
            let password = match rest.first() {
                Some(p) => p.to_string(),
                None => read_password_twice()?,
            };
            provider
                .create_user(&user, Some(&password))
                .map_err(|e| err(format!("Failed to register {user}@{host}: {e}")))?;
        }
        ["unregister", user, host] => {
            let Account {
                user,
                provider,
                _server,
            } = account(config, user, host, Existing::Required)?;
            provider.delete_user(&user).map_err(storage_err)?;
        }
        ["adduser", jid] => {
            let (user, host) = split_user_jid(jid)?;
            let Account {
                user,
                provider,
                _server,
            } = account(config, &user, &host, Existing::Forbidden)?;
            let password = read_password_twice()?;
            // Exclusive: of two adduser at once, the second finds the
            // account the first made.
            if !provider.add_user(&user, &password).map_err(storage_err)? {
                return Err(err("That user already exists"));
            }
        }
        ["passwd", jid] => {
            let (user, host) = split_user_jid(jid)?;
            let Account {
                user,
                provider,
                _server,
            } = account(config, &user, &host, Existing::Required)?;
            let password = read_password_twice()?;
            provider
                .set_password(&user, &password)
                .map_err(storage_err)?;
        }
        ["deluser", jid] => {
            let (user, host) = split_user_jid(jid)?;
            let Account {
                user,
                provider,
                _server,
            } = account(config, &user, &host, Existing::Required)?;
            provider.delete_user(&user).map_err(storage_err)?;
        }
        ["check", "config"] | ["check"] => return check_config(config),
        ["about"] => return Ok(Some(about(config))),
        ["help"] | ["--help"] | ["-h"] => return Ok(Some(USAGE.to_string())),
        _ => {
            return Err(err(format!(
                "Unknown command: {}\n\n{USAGE}",
                args.join(" ")
            )));
        }
    }
    Ok(None)
}

/// prosodyctl's `check config`: exit 0 when all is well, 2 when the config
/// loads but has problems (Prosody's advice, and what lilt does not support
/// yet), 1 when it cannot be used at all.
fn check_config(config: &ServerConfig) -> Result<Option<String>, CtlError> {
    let mut problems: Vec<String> = config.warnings.clone();
    problems.extend(lua_compat::config::check(config));
    if config
        .hosts
        .iter()
        .all(|h| !matches!(h.kind, xmpp_core::HostKind::VirtualHost))
    {
        problems.push("No hosts defined (no VirtualHost in the config)".to_string());
    }
    // Building the server catches bad option values (with file and line).
    match crate::startup::build_server_reporting(config.clone(), Clock::System) {
        Ok((_, unsupported)) => problems.extend(
            unsupported
                .requested()
                .into_iter()
                .map(|l| format!("lilt: {l}")),
        ),
        Err(e) => return Err(err(format!("Problem found in the config: {e}"))),
    }
    if problems.is_empty() {
        return Ok(Some(
            "Checking config...\nDone.\n\nAll checks passed, congratulations!".to_string(),
        ));
    }
    let mut message = String::from("Checking config...\n");
    for p in &problems {
        message.push_str(&format!("  - {p}\n"));
    }
    message.push_str("\nProblems found, see above.");
    Err(CtlError { message, code: 2 })
}

fn about(config: &ServerConfig) -> String {
    format!(
        "lilt {} (a Prosody-compatible XMPP server)\nConfig file: {}\nData directory: {}\n",
        env!("CARGO_PKG_VERSION"),
        config
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(built-in development config)".into()),
        crate::startup::data_path(config).display()
    )
}
