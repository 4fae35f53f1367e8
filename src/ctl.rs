//! prosodyctl's commands: `register`, `unregister`, `adduser`, `passwd`,
//! `deluser`, `check config`, `reload`, `status`, `stop`, `about`, with
//! Prosody's argument
//! forms and messages. Every command is a row of [`COMMANDS`]: dispatch
//! and `--help` both read that table.

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

/// One command: its name, its arguments as `--help` shows them, a line
/// saying what it does, and the function running it (given the words
/// after the name). Add a command by adding a row to [`COMMANDS`].
pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub about: &'static str,
    pub run: fn(&ServerConfig, &[&str]) -> Result<Option<String>, CtlError>,
}

/// Every command, in the order `--help` lists them.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "register",
        args: "USER HOST [PASSWORD]",
        about: "create an account, or set its password (asked twice when not given)",
        run: cmd_register,
    },
    Command {
        name: "unregister",
        args: "USER HOST",
        about: "delete an account",
        run: cmd_unregister,
    },
    Command {
        name: "adduser",
        args: "JID",
        about: "create an account (the password is asked twice)",
        run: cmd_adduser,
    },
    Command {
        name: "passwd",
        args: "JID",
        about: "change an account's password (asked twice)",
        run: cmd_passwd,
    },
    Command {
        name: "deluser",
        args: "JID",
        about: "delete an account",
        run: cmd_deluser,
    },
    Command {
        name: "check",
        args: "[config]",
        about: "check the configuration file (exit 2 when it has problems)",
        run: cmd_check,
    },
    Command {
        name: "reload",
        args: "",
        about: "ask the running server (found through pidfile) to reload its config \
                and reopen its logs (SIGHUP)",
        run: cmd_reload,
    },
    Command {
        name: "status",
        args: "",
        about: "say whether the server is running, and its process id (exit 1 when not)",
        run: cmd_status,
    },
    Command {
        name: "stop",
        args: "",
        about: "stop the running server (SIGTERM to the process in pidfile) and wait for it",
        run: cmd_stop,
    },
    Command {
        name: "start",
        args: "",
        about: "refused: lilt runs in the foreground (run lilt with no command, or under systemd)",
        run: cmd_start,
    },
    Command {
        name: "shell",
        args: "[--socket PATH] [COMMAND ...]",
        about: "the running server's admin console (mod_admin_shell's commands: \
                `shell user list HOST`, or interactive without a command)",
        run: cmd_shell,
    },
    Command {
        name: "migrate",
        args: "--to DST.cfg.lua",
        about: "copy every store of every host from this config's storage into DST's \
                (e.g. a data directory into PostgreSQL); resumable",
        run: crate::migrate::cmd_migrate,
    },
    Command {
        name: "invite",
        args: "generate HOST [OPTIONS]",
        about: "create an invite to register an account on HOST (--reset USER: to set \
                USER's password) and print its URI, as `prosodyctl mod_invites generate` \
                (`lilt invite generate --help`)",
        run: crate::invite_cli::cmd_invite,
    },
    Command {
        name: "mod_invites",
        args: "generate HOST [OPTIONS]",
        about: "the same as `invite`, in prosodyctl's words",
        run: crate::invite_cli::cmd_mod_invites,
    },
    Command {
        name: "about",
        args: "",
        about: "show the version, the config file and the data directory",
        run: cmd_about,
    },
    Command {
        name: "help",
        args: "",
        about: "show this list",
        run: cmd_help,
    },
];

/// The commands, one line each, and the exit statuses: what `lilt --help`
/// shows after the options.
pub fn help_text() -> String {
    let mut out = String::from(
        "With no command, lilt runs the server in the foreground (with no --config: a \
         development setup for host localhost on 127.0.0.1, kept in ./lilt-data).\n\n\
         Commands (as prosodyctl's):\n",
    );
    let width = COMMANDS
        .iter()
        .map(|c| c.name.len() + 1 + c.args.len())
        .max()
        .unwrap_or(0);
    for c in COMMANDS {
        let usage = format!("{} {}", c.name, c.args);
        out.push_str(&format!("  {:<width$}  {}\n", usage.trim_end(), c.about));
    }
    out.push_str("\nJitsi components (no config; `lilt focus --help`, `lilt bridge --help`, `lilt recorder --help`):\n");
    for (name, about) in crate::components::COMMANDS {
        out.push_str(&format!(
            "  {:<width$}  {}\n",
            format!("{name} FLAGS..."),
            about
        ));
    }
    out.push_str(
        "\nSignals: SIGHUP reloads the config and reopens the log files; SIGTERM and \
         SIGINT stop the server.\n\n\
         Exit status:\n\
         \x20 0   success\n\
         \x20 1   a command failed\n\
         \x20 2   check config found problems\n\
         \x20 66  (server) a certificate or key file named in an ssl option cannot be read\n\
         \x20 69  (server) a port is in use\n\
         \x20 73  (server) the data directory or the pidfile cannot be used, or another \
         server holds the pidfile\n\
         \x20 78  (server) the config cannot be loaded, or asks to daemonize (daemonize = true, -D)\n",
    );
    out
}

/// Usage text, listing what `lilt`/`prosodyctl` accept.
pub fn usage() -> String {
    format!(
        "Usage: lilt [--config FILE] [COMMAND ...]\n\n{}",
        help_text()
    )
}

fn usage_of(name: &str) -> CtlError {
    let args = COMMANDS
        .iter()
        .find(|c| c.name == name)
        .map_or("", |c| c.args);
    err(format!("Usage: lilt {name} {args}").trim_end().to_string())
}

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
    let name = match a.first() {
        Some(&("--help" | "-h")) => "help",
        Some(n) => *n,
        None => "help",
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => (c.run)(config, a.get(1..).unwrap_or_default()),
        None => Err(err(format!(
            "Unknown command: {}\n\n{}",
            args.join(" "),
            usage()
        ))),
    }
}

fn storage_err(e: auth::AuthError) -> CtlError {
    err(e.to_string())
}

fn cmd_register(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    let (user, host, password) = match a {
        [user, host] => (*user, *host, None),
        [user, host, password] => (*user, *host, Some(password.to_string())),
        _ => return Err(usage_of("register")),
    };
    let Account {
        user,
        provider,
        _server,
    } = account(config, user, host, Existing::Either)?;
    let password = match password {
        Some(p) => p,
        None => read_password_twice()?,
    };
    provider
        .create_user(&user, Some(&password))
        .map_err(|e| err(format!("Failed to register {user}@{host}: {e}")))?;
    Ok(None)
}

fn cmd_unregister(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    let [user, host] = a else {
        return Err(usage_of("unregister"));
    };
    let Account {
        user,
        provider,
        _server,
    } = account(config, user, host, Existing::Required)?;
    provider.delete_user(&user).map_err(storage_err)?;
    Ok(None)
}

/// The one JID argument of adduser/passwd/deluser, as an account.
fn jid_account(
    config: &ServerConfig,
    a: &[&str],
    command: &str,
    existing: Existing,
) -> Result<Account, CtlError> {
    let [jid] = a else {
        return Err(usage_of(command));
    };
    let (user, host) = split_user_jid(jid)?;
    account(config, &user, &host, existing)
}

fn cmd_adduser(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    let acc = jid_account(config, a, "adduser", Existing::Forbidden)?;
    let password = read_password_twice()?;
    // Exclusive: of two adduser at once, the second finds the account the
    // first made.
    if !acc
        .provider
        .add_user(&acc.user, &password)
        .map_err(storage_err)?
    {
        return Err(err("That user already exists"));
    }
    Ok(None)
}

fn cmd_passwd(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    let acc = jid_account(config, a, "passwd", Existing::Required)?;
    let password = read_password_twice()?;
    acc.provider
        .set_password(&acc.user, &password)
        .map_err(storage_err)?;
    Ok(None)
}

fn cmd_deluser(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    let acc = jid_account(config, a, "deluser", Existing::Required)?;
    acc.provider.delete_user(&acc.user).map_err(storage_err)?;
    Ok(None)
}

fn cmd_check(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    match a {
        [] | ["config"] => check_config(config),
        _ => Err(usage_of("check")),
    }
}

fn cmd_reload(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    if !a.is_empty() {
        return Err(usage_of("reload"));
    }
    crate::process::signal_running(config, libc::SIGHUP).map_err(|e| err(e.to_string()))?;
    Ok(Some(
        "lilt: the server was asked to reload its config and reopen its log files \
         (its log says what changed)"
            .into(),
    ))
}

fn cmd_status(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    if !a.is_empty() {
        return Err(usage_of("status"));
    }
    match crate::process::running_pid(config) {
        Ok((pid, _)) => Ok(Some(format!("lilt is running with PID {pid}"))),
        Err(e) => Err(err(e.to_string())),
    }
}

fn cmd_stop(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    if !a.is_empty() {
        return Err(usage_of("stop"));
    }
    let pid =
        crate::process::signal_running(config, libc::SIGTERM).map_err(|e| err(e.to_string()))?;
    if !crate::process::wait_stopped(config, std::time::Duration::from_secs(30)) {
        return Err(err(format!(
            "lilt (PID {pid}) was asked to stop but is still running after 30 s"
        )));
    }
    Ok(Some("lilt stopped".into()))
}

fn cmd_shell(config: &ServerConfig, a: &[&str]) -> Result<Option<String>, CtlError> {
    match crate::shell::client::run(config, a) {
        Ok(0) => Ok(None),
        Ok(errors) => Err(CtlError {
            message: String::new(),
            code: errors,
        }),
        Err(e) => Err(err(e.to_string())),
    }
}

fn cmd_start(_: &ServerConfig, _: &[&str]) -> Result<Option<String>, CtlError> {
    Err(err(
        "lilt does not start itself in the background: run `lilt --config FILE` (it stays in \
         the foreground) under systemd, docker or your terminal",
    ))
}

fn cmd_about(config: &ServerConfig, _: &[&str]) -> Result<Option<String>, CtlError> {
    Ok(Some(about(config)))
}

fn cmd_help(_: &ServerConfig, _: &[&str]) -> Result<Option<String>, CtlError> {
    Ok(Some(usage()))
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
    let notes = match crate::startup::build_server_reporting(config.clone(), Clock::System) {
        Ok((_, unsupported)) => {
            problems.extend(
                unsupported
                    .requested()
                    .into_iter()
                    .map(|l| format!("lilt: {l}")),
            );
            unsupported.not_needed()
        }
        Err(e) => return Err(err(format!("Problem found in the config: {e}"))),
    };
    let mut message = String::from("Checking config...\n");
    for n in &notes {
        message.push_str(&format!("  (note) lilt: {n}\n"));
    }
    if problems.is_empty() {
        message.push_str("Done.\n\nAll checks passed, congratulations!");
        return Ok(Some(message));
    }
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
