//! `lilt bridge ...`: the bridge as a standalone XMPP client of any server,
//! with the flags of Videobridge's `xmpp-client` settings. The password
//! comes from `--password-file` or the environment variable
//! `LILT_XMPP_PASSWORD`, never from the command line.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use xmpp_core::Jid;
use xmpp_core::client::{ConnectOptions, connect};

use crate::run::{BridgeError, BridgeOptions, run_with_link};

/// The environment variable read when no `--password-file` is given.
pub const PASSWORD_ENV: &str = "LILT_XMPP_PASSWORD";

/// Flags of `lilt bridge`.
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// The XMPP server's c2s address.
    #[arg(long, value_name = "HOST:PORT")]
    pub xmpp: String,
    /// The bridge's account, e.g. jvb@auth.example.com.
    #[arg(long, value_name = "JID")]
    pub jid: String,
    /// File holding the account's password (else $LILT_XMPP_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The brewery room, e.g. jvbbrewery@internal.auth.example.com.
    #[arg(long, value_name = "ROOM_JID")]
    pub brewery: String,
    /// Nick in the brewery (colibri-ws URLs use Videobridge's default
    /// server id, `default-id`).
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,
    /// Accept any server certificate.
    #[arg(long)]
    pub insecure_tls: bool,
    /// The media UDP port, shared by all endpoints.
    #[arg(long, value_name = "PORT", default_value_t = 10000)]
    pub udp_port: u16,
    /// An address offered as an ICE host candidate (repeatable).
    #[arg(long = "address", value_name = "IP")]
    pub addresses: Vec<IpAddr>,
    /// Serve colibri-ws, /colibri/stats and /about/health here.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<SocketAddr>,
    /// Public base of the advertised colibri-ws URL
    /// (e.g. wss://meet.example.com/colibri-ws).
    #[arg(long, value_name = "URL")]
    pub ws_url_base: Option<String>,
    /// Each receiver's last-N until the focus or the client sets one
    /// (Videobridge's `initial-last-n`; -1: unlimited).
    #[arg(long, value_name = "N", default_value_t = -1, allow_hyphen_values = true)]
    pub initial_last_n: i64,
    /// A cap on every receiver's last-N (Videobridge's `jvb-last-n`; -1:
    /// none).
    #[arg(long, value_name = "N", default_value_t = -1, allow_hyphen_values = true)]
    pub last_n: i64,
    /// This bridge's id for bridge-to-bridge relays (Videobridge's
    /// `relay.relay-id`), published as `relay_id` in the brewery stats; a
    /// focus spreads a conference over several bridges only when they have
    /// one.
    #[arg(long, value_name = "ID")]
    pub relay_id: Option<String>,
    /// The region published in the brewery stats (region-based bridge
    /// selection).
    #[arg(long, value_name = "NAME")]
    pub region: Option<String>,
}

/// The password from the file (first line, trailing newline dropped) or
/// the environment.
pub fn read_password(args: &BridgeArgs) -> Result<String, BridgeError> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| BridgeError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    std::env::var(PASSWORD_ENV).map_err(|_| {
        BridgeError::Config(format!(
            "no password: give --password-file or set {PASSWORD_ENV}"
        ))
    })
}

/// A default nick: the host's name, as Videobridge deployments use.
fn default_nick() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or_else(|| "lilt-bridge".to_string())
}

/// The bridge options the flags describe.
pub fn options(args: &BridgeArgs) -> BridgeOptions {
    let mut o = BridgeOptions::new(&args.nick.clone().unwrap_or_else(default_nick));
    o.brewery = Some(args.brewery.clone());
    o.udp_bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), args.udp_port);
    o.addresses = args.addresses.clone();
    o.http = args.http;
    o.ws_url_base = args.ws_url_base.clone();
    o.allocation.initial_last_n = args.initial_last_n;
    o.allocation.jvb_last_n = args.last_n;
    o.relay_id = args.relay_id.clone();
    o.region = args.region.clone();
    o
}

/// How long to wait before logging in again after the link was lost.
const RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Runs a standalone bridge until it is stopped: the first Ctrl-C starts a
/// graceful shutdown (leave once the last conference ends), a second one
/// stops at once. A lost XMPP link is logged in again after a pause, with a
/// fresh bridge (the focus allocates its conferences anew, as after a
/// Videobridge restart).
pub async fn run(args: BridgeArgs) -> Result<(), BridgeError> {
    let password = read_password(&args)?;
    let jid = Jid::parse(&args.jid)
        .map_err(|e| BridgeError::Config(format!("bad --jid {}: {e}", args.jid)))?;
    let connect_options = ConnectOptions {
        address: args.xmpp.clone(),
        jid,
        password,
        insecure_tls: args.insecure_tls,
        ca_file: None,
    };
    let (signal_tx, mut signals) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if signal_tx.send(()).is_err() {
                break;
            }
        }
    });
    let mut interrupts = 0;
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                _ = signals.recv() => return Ok(()),
            }
        }
        let link = match connect(&connect_options).await {
            Ok(link) => link,
            // A bad password or server will not get better: give up at once.
            Err(e) if first => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot log in again; retrying");
                continue;
            }
        };
        first = false;
        tracing::info!(jid = %link.jid, "bridge logged in");
        let running = run_with_link(link, options(&args)).await?;
        let handle = running.handle.clone();
        let mut wait = Box::pin(running.wait());
        let result = loop {
            tokio::select! {
                r = &mut wait => break r,
                Some(()) = signals.recv() => {
                    interrupts += 1;
                    if interrupts == 1 {
                        tracing::info!("graceful shutdown: waiting for the conferences to end");
                        handle.graceful_shutdown();
                    } else {
                        handle.stop();
                    }
                }
            }
        };
        match result {
            Err(BridgeError::LinkClosed) if interrupts == 0 => {
                tracing::warn!("the XMPP link closed; logging in again");
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bridge: BridgeArgs,
    }

    #[test]
    fn flags_of_issue_12() {
        let cli = Cli::try_parse_from([
            "bridge",
            "--xmpp",
            "127.0.0.1:5222",
            "--jid",
            "jvb@auth.d",
            "--password-file",
            "/tmp/pw",
            "--brewery",
            "jvbbrewery@internal.auth.d",
            "--nick",
            "jvb1",
            "--insecure-tls",
            "--udp-port",
            "10001",
            "--address",
            "10.0.0.1",
            "--address",
            "::1",
            "--http",
            "127.0.0.1:8080",
            "--ws-url-base",
            "wss://meet.d/colibri-ws",
            "--relay-id",
            "jvb-eu-1",
            "--region",
            "eu",
        ])
        .unwrap();
        let a = cli.bridge;
        assert_eq!(a.addresses.len(), 2);
        assert!(a.insecure_tls);
        let o = options(&a);
        assert_eq!(o.nick, "jvb1");
        assert_eq!(o.udp_bind.port(), 10001);
        assert_eq!(o.brewery.as_deref(), Some("jvbbrewery@internal.auth.d"));
        assert_eq!(o.relay_id.as_deref(), Some("jvb-eu-1"));
        assert_eq!(o.region.as_deref(), Some("eu"));
        // No --password flag exists.
        assert!(
            Cli::try_parse_from([
                "bridge",
                "--xmpp",
                "h:1",
                "--jid",
                "a@b",
                "--brewery",
                "r@m",
                "--password",
                "x"
            ])
            .is_err()
        );
    }
}
