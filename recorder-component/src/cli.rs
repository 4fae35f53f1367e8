//! `lilt recorder`: the recorder as a standalone client of any XMPP server,
//! with Jibri's `xmpp.environments` settings as flags:
//!
//! ```text
//! lilt recorder --xmpp HOST:PORT --jid jibri@auth.D --password-file FILE \
//!     --brewery jibribrewery@internal.auth.D \
//!     --recorder-jid recorder@recorder.D --recorder-password-file FILE \
//!     --dir DIR [--max-concurrent N] [--finalize-script PATH] [--insecure-tls]
//! ```
//!
//! The passwords may come from `LILT_XMPP_PASSWORD` (control login) and
//! `LILT_RECORDER_PASSWORD` (call login) instead of files.

use std::path::PathBuf;

use clap::Parser;

use crate::recorder::RecorderOptions;

/// The environment variable for the control login's password.
pub const XMPP_PASSWORD_ENV: &str = "LILT_XMPP_PASSWORD";
/// The environment variable for the call login's password.
pub const RECORDER_PASSWORD_ENV: &str = "LILT_RECORDER_PASSWORD";

#[derive(Debug, Clone, Parser, PartialEq, Eq)]
#[command(name = "recorder", about = "lilt's recorder (what Jibri does)")]
pub struct RecorderArgs {
    /// HOST:PORT of the XMPP server's c2s listener.
    #[arg(long, value_name = "HOST:PORT")]
    pub xmpp: String,
    /// The control account, jibri@auth.D.
    #[arg(long)]
    pub jid: String,
    /// A file holding its password (else LILT_XMPP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The recorders' brewery room, jibribrewery@internal.auth.D.
    #[arg(long)]
    pub brewery: String,
    /// The call account on the hidden domain, recorder@recorder.D.
    #[arg(long)]
    pub recorder_jid: String,
    /// A file holding its password (else LILT_RECORDER_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub recorder_password_file: Option<PathBuf>,
    /// Where recordings go, one directory per session.
    #[arg(long)]
    pub dir: PathBuf,
    /// Recordings at once before the recorder reports busy.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_concurrent: usize,
    /// Run with each finished recording's directory.
    #[arg(long, value_name = "PATH")]
    pub finalize_script: Option<PathBuf>,
    /// Accept any server certificate.
    #[arg(long)]
    pub insecure_tls: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("invalid JID {0}")]
    Jid(String),
    #[error(transparent)]
    Client(#[from] xmpp_core::client::ClientError),
    #[error("no password for {0}: give {1} or set {2}")]
    NoPassword(&'static str, &'static str, &'static str),
    #[error("cannot read the password file {0}: {1}")]
    PasswordFile(PathBuf, std::io::Error),
}

fn read_password(
    file: Option<&PathBuf>,
    env: &'static str,
    what: &'static str,
    flag: &'static str,
) -> Result<String, CliError> {
    if let Some(file) = file {
        let text =
            std::fs::read_to_string(file).map_err(|e| CliError::PasswordFile(file.clone(), e))?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_string());
    }
    std::env::var(env).map_err(|_| CliError::NoPassword(what, flag, env))
}

impl RecorderArgs {
    /// The control login's password.
    pub fn password(&self) -> Result<String, CliError> {
        read_password(
            self.password_file.as_ref(),
            XMPP_PASSWORD_ENV,
            "--jid",
            "--password-file",
        )
    }

    /// The call login's password.
    pub fn recorder_password(&self) -> Result<String, CliError> {
        read_password(
            self.recorder_password_file.as_ref(),
            RECORDER_PASSWORD_ENV,
            "--recorder-jid",
            "--recorder-password-file",
        )
    }

    /// The recorder's options once both links are bound to these full JIDs.
    pub fn options(&self, bound_jid: &str, bound_recorder_jid: &str) -> RecorderOptions {
        let mut o = RecorderOptions::new(
            bound_jid,
            &self.brewery,
            bound_recorder_jid,
            self.dir.clone(),
        );
        o.max_concurrent = self.max_concurrent.max(1);
        o.insecure_tls = self.insecure_tls;
        o
    }
}

/// Runs `lilt recorder` until interrupted: logs in on both accounts, runs,
/// and logs in again when a session drops.
pub async fn run(args: RecorderArgs) -> Result<(), CliError> {
    use xmpp_core::Jid;
    use xmpp_core::client::{ClientError, ConnectOptions, connect};
    let connect_options = |jid: &str, password: String| -> Result<ConnectOptions, CliError> {
        Ok(ConnectOptions {
            address: args.xmpp.clone(),
            jid: Jid::parse(jid).map_err(|_| CliError::Jid(jid.to_string()))?,
            password,
            insecure_tls: args.insecure_tls,
            ca_file: None,
        })
    };
    let control_options = connect_options(&args.jid, args.password()?)?;
    let call_options = connect_options(&args.recorder_jid, args.recorder_password()?)?;
    let mut backoff = std::time::Duration::from_secs(1);
    loop {
        let links = match connect(&control_options).await {
            Ok(control) => connect(&call_options).await.map(|call| (control, call)),
            Err(e) => Err(e),
        };
        match links {
            Ok((control, call)) => {
                backoff = std::time::Duration::from_secs(1);
                let options = args.options(&control.jid.to_string(), &call.jid.to_string());
                crate::run::run_with_links(control, call, options, args.finalize_script.clone())
                    .await;
            }
            Err(ClientError::Auth { jid, condition }) => {
                return Err(ClientError::Auth { jid, condition }.into());
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the XMPP server; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_the_issue_gives_them() {
        let args = RecorderArgs::try_parse_from([
            "recorder",
            "--xmpp",
            "127.0.0.1:5222",
            "--jid",
            "jibri@auth.meet.test",
            "--password-file",
            "/tmp/p1",
            "--brewery",
            "jibribrewery@internal.auth.meet.test",
            "--recorder-jid",
            "recorder@recorder.meet.test",
            "--recorder-password-file",
            "/tmp/p2",
            "--dir",
            "/srv/recordings",
            "--max-concurrent",
            "20",
            "--finalize-script",
            "/usr/local/bin/fin.sh",
            "--insecure-tls",
        ])
        .unwrap();
        assert_eq!(args.max_concurrent, 20);
        assert!(args.insecure_tls);
        assert_eq!(args.dir, PathBuf::from("/srv/recordings"));
        let o = args.options("jibri@auth.meet.test/r1", "recorder@recorder.meet.test/r2");
        assert_eq!(o.max_concurrent, 20);
        assert_eq!(o.brewery_nick, "jibri_r1");
        // Required flags are required; the others have defaults.
        assert!(RecorderArgs::try_parse_from(["recorder", "--xmpp", "h:1"]).is_err());
        let min = RecorderArgs::try_parse_from([
            "recorder",
            "--xmpp",
            "h:1",
            "--jid",
            "j@a",
            "--brewery",
            "b@c",
            "--recorder-jid",
            "r@d",
            "--dir",
            "x",
        ])
        .unwrap();
        assert_eq!(min.max_concurrent, 4);
        assert_eq!(min.finalize_script, None);
    }

    #[test]
    fn passwords_from_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let mut args = RecorderArgs::try_parse_from([
            "recorder",
            "--xmpp",
            "h:1",
            "--jid",
            "j@a",
            "--brewery",
            "b@c",
            "--recorder-jid",
            "r@d",
            "--dir",
            "x",
        ])
        .unwrap();
        args.password_file = Some(f.clone());
        args.recorder_password_file = Some(d.path().join("missing"));
        assert_eq!(args.password().unwrap(), "s3cret");
        assert!(matches!(
            args.recorder_password(),
            Err(CliError::PasswordFile(..))
        ));
    }
}
