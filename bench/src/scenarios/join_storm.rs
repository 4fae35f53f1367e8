//! Scenario 4, join storm: `clients` online users join one fresh room at
//! the same instant; the figure is the time until every one of them has
//! received the presence of every occupant (the full occupant list).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::muc_fanout::join_presence;
use super::{Figures, ScenarioError, close_all, login_many};
use crate::accounts;
use crate::client::{ClientError, Conn, Target};
use crate::servers::MUC_DOMAIN;
use crate::stats::{CpuWindow, percentile};
use crate::xml::{self, Event};

/// Parameters of the join-storm scenario.
#[derive(Debug, Clone, Copy)]
pub struct StormParams {
    pub clients: usize,
    pub login_concurrency: usize,
    /// Give up after this long.
    pub limit: Duration,
}

/// Joins and reads presences until `expected` distinct occupants are seen.
async fn joiner(
    mut conn: Conn,
    room: String,
    nick: String,
    expected: usize,
    start: Arc<Barrier>,
) -> Result<(Instant, Instant, Conn), ClientError> {
    let join = join_presence(&room, &nick);
    let prefix = format!("{room}/");
    let mut seen: HashSet<Vec<u8>> = HashSet::with_capacity(expected);
    start.wait().await;
    let sent = Instant::now();
    conn.send(join.as_bytes(), "join storm").await?;
    while seen.len() < expected {
        if !conn.read_some("join storm").await? {
            return Err(ClientError::Closed {
                user: conn.jid.clone(),
                step: "join storm",
                detail: None,
            });
        }
        while let Some(ev) = conn.next_event("join storm")? {
            let Event::Element(r) = ev else { continue };
            let el = conn.element(r);
            if xml::name(el) != b"presence" {
                continue;
            }
            let Some(from) = xml::attr(el, "from") else {
                continue;
            };
            match xml::attr(el, "type") {
                None => {
                    if let Some(occupant) = from.strip_prefix(prefix.as_bytes()) {
                        seen.insert(occupant.to_vec());
                    }
                }
                Some(b"error") => {
                    return Err(ClientError::Refused {
                        user: conn.jid.clone(),
                        step: "join storm",
                        stanza: String::from_utf8_lossy(el).into_owned(),
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok((sent, Instant::now(), conn))
}

/// One run in a fresh room.
pub async fn run(
    target: &Target,
    server_pid: u32,
    run_id: usize,
    p: StormParams,
) -> Result<Figures, ScenarioError> {
    let room = format!("storm{run_id}@{MUC_DOMAIN}");
    let conns = login_many(target, 0, p.clients, p.login_concurrency).await?;
    let barrier = Arc::new(Barrier::new(conns.len() + 1));
    let mut set = JoinSet::new();
    let n = conns.len();
    for (i, conn) in conns.into_iter().enumerate() {
        set.spawn(joiner(
            conn,
            room.clone(),
            accounts::username(i),
            n,
            barrier.clone(),
        ));
    }
    let cpu = CpuWindow::start(server_pid);
    barrier.wait().await;
    let t0 = Instant::now();
    let mut done = Vec::with_capacity(n);
    let mut conns = Vec::new();
    let mut first_err = None;
    let gathered = timeout(p.limit, async {
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok((_, finished, conn))) => {
                    done.push((finished - t0).as_micros().min(u128::from(u32::MAX)) as u32);
                    conns.push(conn);
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
    })
    .await;
    let cpu = cpu.finish();
    set.abort_all();
    close_all(conns).await;
    if let Some(e) = first_err {
        return Err(e.into());
    }
    if gathered.is_err() || done.len() < n {
        return Err(ScenarioError::Failed {
            scenario: "join storm",
            what: format!(
                "{} of {n} clients had the full occupant list after {} s",
                done.len(),
                p.limit.as_secs()
            ),
        });
    }
    let mut f = Figures::default();
    if let Some(v) = percentile(&mut done, 100.0) {
        f.push("storm.seconds", f64::from(v) / 1e6);
    }
    if let Some(v) = percentile(&mut done, 50.0) {
        f.push("storm.p50", f64::from(v) / 1e6);
    }
    f.push("storm.gen_cpu", cpu.generator);
    f.push("storm.server_cpu", cpu.server);
    f.push("storm.others_cpu", cpu.others);
    Ok(f)
}
