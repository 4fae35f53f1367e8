//! `prosodyctl mod_invites generate DOMAIN ...` (lilt: `lilt invite generate
//! DOMAIN ...`, or the same words as prosodyctl's): an account invite, or a
//! password reset invite with `--reset USER`; prints the invite's URI.
//!
//! Arguments as Prosody 0.12's: `--reset USERNAME`; `--admin` (the new user
//! gets the role `prosody:admin`), `--role ROLE` (the last of the two wins),
//! `--group GROUPID` / `-g GROUPID` (repeatable). `--reset` does not mix with
//! the others.

use xmpp_core::value::{Table, Value};

use super::{Invite, Invites};

/// What `--help` prints (exit status 2, as Prosody's).
pub fn help(command: &str) -> String {
    format!(
        "usage: {command} generate DOMAIN --reset USERNAME\n\
         usage: {command} generate DOMAIN [--admin] [--role ROLE] [--group GROUPID]...\n\
         \n\
         This command has two modes: password reset and new account.\n\
         If --reset is given, the command operates in password reset mode and in new account mode otherwise.\n\
         \n\
         required arguments in password reset mode:\n\
         \n\
         \x20   --reset USERNAME  Generate a password reset link for the given USERNAME.\n\
         \n\
         optional arguments in new account mode:\n\
         \n\
         \x20   --admin           Make the new user privileged\n\
         \x20                     Equivalent to --role prosody:admin\n\
         \x20   --role ROLE       Grant the given ROLE to the new user\n\
         \x20   --group GROUPID   Add the user to the group with the given ID\n\
         \x20                     Can be specified multiple times\n\
         \n\
         --role and --admin override each other; the last one wins\n\
         --group can be specified multiple times; the user will be added to all groups.\n\
         \n\
         --reset and the other options cannot be mixed."
    )
}

/// The command's options, read from the words after `DOMAIN`.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub reset: Option<String>,
    pub role: Option<String>,
    pub groups: Vec<String>,
    /// `--help` was given.
    pub help: bool,
    /// Words that were not understood (Prosody prints and ignores them).
    pub unexpected: Vec<String>,
}

/// A usage problem: the message, exit status 2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Reads the options.
pub fn parse(args: &[&str]) -> Result<Options, UsageError> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(&word) = it.next() {
        match word {
            "--help" => o.help = true,
            "--reset" => {
                let user = it
                    .next()
                    .and_then(|u| xmpp_core::jid::nodeprep(u).ok())
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| {
                        UsageError(
                            "Please supply a valid username to generate a reset link for".into(),
                        )
                    })?;
                o.reset = Some(user);
            }
            "--admin" => o.role = Some("prosody:admin".into()),
            "--role" => {
                let role = it
                    .next()
                    .ok_or_else(|| UsageError("Please supply a role name".into()))?;
                o.role = Some(role.to_string());
            }
            "--group" | "-g" => {
                let group = it
                    .next()
                    .ok_or_else(|| UsageError("Please supply a group ID".into()))?;
                o.groups.push(group.to_string());
            }
            other => o.unexpected.push(other.to_string()),
        }
    }
    Ok(o)
}

/// Creates the invite the options ask for.
pub fn create(invites: &Invites, o: &Options, now: i64) -> Result<Invite, String> {
    if let Some(user) = &o.reset {
        if o.role.is_some() {
            return Err("--role/--admin and --reset are mutually exclusive".into());
        }
        if !o.groups.is_empty() {
            return Err("--group and --reset are mutually exclusive".into());
        }
        return invites
            .create_account_reset(user, None, now)
            .map_err(|e| e.to_string());
    }
    let mut data = Table::new();
    if let Some(role) = &o.role {
        let mut roles = Table::new();
        roles.insert(role.as_str(), Value::Bool(true));
        data.insert("roles", Value::Table(roles));
    }
    let mut groups = Table::new();
    groups.seq = o.groups.iter().map(|g| Value::str(g.as_str())).collect();
    data.insert("groups", Value::Table(groups));
    invites
        .create_account(None, Some(Value::Table(data)), None, now)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse(&["--admin", "-g", "g1", "--group", "g2", "--role", "r"]).unwrap();
        assert_eq!(o.role.as_deref(), Some("r"));
        assert_eq!(o.groups, vec!["g1", "g2"]);
        assert_eq!(
            parse(&["--reset", "Alice"]).unwrap().reset.as_deref(),
            Some("alice")
        );
        assert!(parse(&["--reset"]).is_err());
        assert!(parse(&["--role"]).is_err());
        assert_eq!(parse(&["what"]).unwrap().unexpected, vec!["what"]);
        assert!(parse(&["--help"]).unwrap().help);
    }
}
