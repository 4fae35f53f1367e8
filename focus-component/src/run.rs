//! The thin tokio runtime: one task owns the [`Focus`] and the
//! [`ClientLink`], feeding it stanzas and timeouts and sending what it
//! produces. The stats snapshot is published after every step for the HTTP
//! endpoints.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use xmpp_core::client::ClientLink;

use crate::focus::{Focus, FocusOptions};
use crate::stats::Stats;

/// The latest stats of a running focus (for `/about/health` and `/stats`).
pub type StatsHandle = Arc<Mutex<Option<Stats>>>;

/// Runs the focus on a bound session until the session ends. The focus's
/// JID is the link's. This is how lilt starts it in-process.
pub async fn run_with_link(link: ClientLink, options: FocusOptions) {
    run_with_stats(link, options, Arc::new(Mutex::new(None))).await;
}

/// [`run_with_link`], publishing stats to `stats`.
pub async fn run_with_stats(mut link: ClientLink, mut options: FocusOptions, stats: StatsHandle) {
    options.jid = link.jid.to_string();
    let sender = link.sender();
    let mut focus = Focus::new(options, Instant::now());
    tracing::info!(jid = %link.jid, "focus started");
    loop {
        while let Some(stanza) = focus.poll_output() {
            if !sender.send(stanza) {
                return;
            }
        }
        if let Ok(mut slot) = stats.lock() {
            *slot = Some(focus.stats(Instant::now()));
        }
        let deadline = focus
            .next_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        tokio::select! {
            stanza = link.recv() => match stanza {
                Some(s) => focus.handle_stanza(Instant::now(), s),
                None => {
                    tracing::warn!("the focus's XMPP session ended");
                    return;
                }
            },
            _ = tokio::time::sleep_until(deadline) => focus.handle_timeout(Instant::now()),
        }
    }
}
