//! Runs one parsed script against a server: its actions in order, each
//! client on a fresh connection, stopping at the first failure.
//!
//! Timing follows scansion. scansion only looks at a client's stanzas while
//! one of that client's `receives` is waiting; a stanza that arrives at any
//! other moment is dropped unseen (Prosody's scripts rely on this, e.g. MUC
//! scripts do not list the status 104 message that follows a configuration
//! change). This runner queues every stanza with its arrival time instead,
//! so nothing is lost to the order in which sockets happen to be read, and a
//! `receives` then:
//! - skips queued stanzas that arrived before the action started and do not
//!   match (scansion would have dropped them),
//! - accepts the first one that matches, even if it arrived early,
//! - requires the first stanza arriving after it started to match.
//!
//! `receives: nothing` likewise ignores stanzas that arrived before it and
//! fails on any stanza arriving during the quiet period.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::{Client, Login, Received};
use crate::matcher::{Captures, match_stanza, substitute};
use crate::script::{Action, ActionKind, ClientDecl, Script};
use crate::xml::{Element, NS_CLIENT};

/// How scripts are run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Default `host:port` of the server's c2s listener.
    pub server: String,
    /// How long a `receives:` waits for its stanza.
    pub receive_timeout: Duration,
    /// How long `receives: nothing` listens.
    pub quiet_period: Duration,
    /// Force a SASL mechanism.
    pub mechanism: Option<String>,
    /// Trace all traffic to stderr.
    pub verbose: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            server: "127.0.0.1:5222".into(),
            receive_timeout: Duration::from_secs(5),
            quiet_period: Duration::from_millis(500),
            mechanism: None,
            verbose: false,
        }
    }
}

/// The first thing that went wrong in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Script line of the failing action (none for parse errors).
    pub line: Option<usize>,
    /// E.g. `Romeo receives`.
    pub action: Option<String>,
    pub message: String,
    /// The expected stanza after substitution, pretty-printed.
    pub expected: Option<String>,
    /// What arrived instead, pretty-printed.
    pub received: Option<String>,
}

impl Failure {
    fn at(action: &Action, message: impl Into<String>) -> Failure {
        Failure {
            line: Some(action.line),
            action: Some(action.describe()),
            message: message.into(),
            expected: None,
            received: None,
        }
    }

    /// A script that did not parse.
    pub fn parse(message: impl Into<String>) -> Failure {
        Failure {
            line: None,
            action: None,
            message: message.into(),
            expected: None,
            received: None,
        }
    }
}

fn pretty(el: &Element) -> String {
    el.to_pretty_xml(NS_CLIENT, "  ")
}

struct Run<'a> {
    script: &'a Script,
    opts: &'a RunOptions,
    clients: HashMap<String, Client>,
    vars: HashMap<String, String>,
    captures: Captures,
    /// The client of the previous action, if it was a send, and when.
    last_send: Option<(String, Instant)>,
    /// Clients that connected and then disconnected: what they send later
    /// goes nowhere, as with scansion (Prosody's muc_outcast_reason does it).
    gone: std::collections::HashSet<String>,
}

/// A send right after another client's send waits this long after it, so
/// the server has read the first before the second arrives (scansion waits
/// for each send to drain; servers may read two sockets in either order).
const CROSS_CLIENT_SEND_GAP: Duration = Duration::from_millis(20);

/// Runs `script`; `Ok(())` when every action succeeded.
pub async fn run_script(script: &Script, opts: &RunOptions) -> Result<(), Failure> {
    let mut vars = HashMap::new();
    for decl in &script.clients {
        vars.insert(format!("{}'s JID", decl.name), decl.bare_jid().to_string());
        if let Some(res) = &decl.resource {
            vars.insert(
                format!("{}'s full JID", decl.name),
                format!("{}/{}", decl.bare_jid(), res),
            );
        }
    }
    let mut run = Run {
        script,
        opts,
        clients: HashMap::new(),
        vars,
        captures: Captures::new(),
        last_send: None,
        gone: Default::default(),
    };
    let mut result = Ok(());
    for action in &script.actions {
        if let Err(f) = run.step(action).await {
            result = Err(f);
            break;
        }
    }
    // Close whatever is still open, so the next script starts clean.
    let linger = if result.is_ok() {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(300)
    };
    let closing: Vec<_> = run
        .clients
        .drain()
        .map(|(_, c)| tokio::spawn(c.disconnect(linger)))
        .collect();
    for task in closing {
        let _ = task.await;
    }
    result
}

impl Run<'_> {
    fn decl(&self, action: &Action) -> Result<&ClientDecl, Failure> {
        self.script
            .client(&action.client)
            .ok_or_else(|| Failure::at(action, "undeclared client"))
    }

    fn connected(&mut self, action: &Action) -> Result<&mut Client, Failure> {
        self.clients
            .get_mut(&action.client)
            .ok_or_else(|| Failure::at(action, format!("{} is not connected", action.client)))
    }

    async fn step(&mut self, action: &Action) -> Result<(), Failure> {
        let previous_send = self.last_send.take();
        match &action.kind {
            ActionKind::Connect => self.connect(action).await,
            ActionKind::Disconnect => {
                if let Some(client) = self.clients.remove(&action.client) {
                    client.disconnect(Duration::from_secs(2)).await;
                    self.gone.insert(action.client.clone());
                }
                Ok(())
            }
            ActionKind::Send(_)
                if self.gone.contains(&action.client)
                    && !self.clients.contains_key(&action.client) =>
            {
                if self.opts.verbose {
                    eprintln!(
                        "{}: sends after disconnecting; dropped, as scansion does",
                        action.client
                    );
                }
                Ok(())
            }
            ActionKind::Send(stanza) => {
                let stanza = substitute(stanza, &self.vars)
                    .map_err(|e| Failure::at(action, e.to_string()))?;
                if let Some((other, at)) = previous_send
                    && other != action.client
                {
                    tokio::time::sleep_until(at + CROSS_CLIENT_SEND_GAP).await;
                }
                let client = self.connected(action)?;
                let sending = Instant::now();
                client
                    .send(&stanza)
                    .await
                    .map_err(|e| Failure::at(action, format!("sending failed: {e}")))?;
                self.last_send = Some((action.client.clone(), sending));
                Ok(())
            }
            ActionKind::Receive(expected) => self.receive(action, expected).await,
            ActionKind::ReceiveNothing => {
                let listening = settle().await;
                let deadline = listening + self.opts.quiet_period;
                // Right after this client's own send, what answers it counts
                // even when it arrived before this step began listening (a
                // runner descheduled between the two steps must not miss it).
                let started = match previous_send {
                    Some((sender, at)) if sender == action.client => at,
                    _ => listening,
                };
                let client = self.connected(action)?;
                loop {
                    match client.receive(deadline).await {
                        Received::Stanza(_, at) if at < started => continue,
                        Received::Stanza(el, _) => {
                            return Err(Failure {
                                received: Some(pretty(&el)),
                                ..Failure::at(action, "expected nothing, but a stanza arrived")
                            });
                        }
                        Received::Timeout | Received::Closed(_) => return Ok(()),
                    }
                }
            }
        }
    }

    async fn connect(&mut self, action: &Action) -> Result<(), Failure> {
        if self.clients.contains_key(&action.client) {
            return Err(Failure::at(action, "already connected"));
        }
        let decl = self.decl(action)?.clone();
        let addr = match (&decl.connect_host, decl.connect_port) {
            (None, None) => self.opts.server.clone(),
            (host, port) => {
                let (default_host, default_port) = self
                    .opts
                    .server
                    .rsplit_once(':')
                    .unwrap_or((self.opts.server.as_str(), "5222"));
                format!(
                    "{}:{}",
                    host.as_deref().unwrap_or(default_host),
                    port.map_or(default_port.to_string(), |p| p.to_string())
                )
            }
        };
        let login = Login {
            label: decl.name.clone(),
            addr,
            domain: decl.domain().to_string(),
            username: decl.username().to_string(),
            password: decl.password.clone(),
            resource: decl.resource.clone(),
            mechanism: self.opts.mechanism.clone(),
            step_timeout: self.opts.receive_timeout,
            verbose: self.opts.verbose,
        };
        let client = Client::connect(login)
            .await
            .map_err(|e| Failure::at(action, format!("connecting failed: {e}")))?;
        self.vars
            .insert(format!("{}'s full JID", decl.name), client.full_jid.clone());
        self.clients.insert(decl.name.clone(), client);
        Ok(())
    }

    async fn receive(&mut self, action: &Action, expected: &Element) -> Result<(), Failure> {
        let expected =
            substitute(expected, &self.vars).map_err(|e| Failure::at(action, e.to_string()))?;
        let wait = self.opts.receive_timeout;
        let verbose = self.opts.verbose;
        let started = settle().await;
        let deadline = started + wait;
        // The stanza skipped (arrived before this action, did not match) that
        // best explains a timeout: the first one with the expected name.
        let mut skipped: Option<(Element, String)> = None;
        // Borrow the field directly: `self.captures` is used alongside.
        let client = self
            .clients
            .get_mut(&action.client)
            .ok_or_else(|| Failure::at(action, format!("{} is not connected", action.client)))?;
        loop {
            let (received, at) = match client.receive(deadline).await {
                Received::Stanza(el, at) => (el, at),
                Received::Timeout => {
                    let mut message =
                        format!("no matching stanza within {:.1}s", wait.as_secs_f32());
                    if let Some((_, why)) = &skipped {
                        message.push_str(&format!(
                            "; shown as received: a stanza that arrived before this action and was skipped, not matching {why}"
                        ));
                    }
                    return Err(Failure {
                        expected: Some(pretty(&expected)),
                        received: skipped.as_ref().map(|(el, _)| pretty(el)),
                        ..Failure::at(action, message)
                    });
                }
                Received::Closed(reason) => {
                    return Err(Failure {
                        expected: Some(pretty(&expected)),
                        ..Failure::at(
                            action,
                            format!(
                                "connection closed before the stanza arrived{}",
                                reason.map(|r| format!(" ({r})")).unwrap_or_default()
                            ),
                        )
                    });
                }
            };
            match match_stanza(&expected, &received, &mut self.captures) {
                Ok(()) => return Ok(()),
                Err(m) if at < started => {
                    if verbose {
                        eprintln!(
                            "  [{}] skipped (arrived before line {}): {}",
                            action.client,
                            action.line,
                            received.to_xml(NS_CLIENT)
                        );
                    }
                    let better = match &skipped {
                        None => true,
                        Some((prev, _)) => {
                            prev.name != expected.name && received.name == expected.name
                        }
                    };
                    if better {
                        skipped = Some((received, m.to_string()));
                    }
                }
                Err(m) => {
                    return Err(Failure {
                        expected: Some(pretty(&expected)),
                        received: Some(pretty(&received)),
                        ..Failure::at(action, format!("stanza does not match {m}"))
                    });
                }
            }
        }
    }
}

/// The instant the current action starts listening. Client readers run on
/// the runtime's worker threads, so what the server sent before now has
/// already been read and time-stamped.
async fn settle() -> Instant {
    tokio::task::yield_now().await;
    Instant::now()
}
