//! Scenario 3, MUC fan-out: one room, `occupants` joined, the first
//! `senders` of them sending groupchat messages, each with at most
//! `window` messages not yet reflected back to it. Counts deliveries (to
//! every occupant, the sender's own reflection included) per second and
//! their latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout};

use super::{Figures, ScenarioError, Window, close_all, field, latency_us, login_many, stamp};
use crate::client::{ClientError, Conn, Target};
use crate::servers::MUC_DOMAIN;
use crate::stats::{CpuWindow, percentile};
use crate::xml::{self, Event};

/// Parameters of the fan-out scenario.
#[derive(Debug, Clone, Copy)]
pub struct FanoutParams {
    pub occupants: usize,
    pub senders: usize,
    pub window: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub login_concurrency: usize,
}

/// The join presence for `room/nick`, asking for no history.
pub fn join_presence(room: &str, nick: &str) -> String {
    format!(
        "<presence to='{}/{}'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>",
        xml::escape(room),
        xml::escape(nick)
    )
}

/// Joins `room` as `nick` and waits for the room's presence for ourselves.
pub async fn join(conn: &mut Conn, room: &str, nick: &str) -> Result<(), ClientError> {
    conn.send(join_presence(room, nick).as_bytes(), "room join")
        .await?;
    let me = format!("{room}/{nick}");
    loop {
        let el = conn.wait_element("room join").await?;
        if xml::name(&el) != b"presence" || xml::attr(&el, "from") != Some(me.as_bytes()) {
            continue;
        }
        if xml::attr(&el, "type") == Some(b"error") {
            return Err(ClientError::Refused {
                user: conn.jid.clone(),
                step: "room join",
                stanza: String::from_utf8_lossy(&el).into_owned(),
            });
        }
        return Ok(());
    }
}

#[derive(Default)]
struct Occupant {
    delivered: u64,
    latencies_us: Vec<u32>,
}

async fn occupant(
    mut conn: Conn,
    index: usize,
    sender: bool,
    room: String,
    window_size: u32,
    base: Instant,
    window: Window,
) -> Result<(Occupant, Conn), ClientError> {
    let mut me = Occupant::default();
    let mut in_flight = 0u32;
    let mut out = Vec::new();
    let queue = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"<message type='groupchat' to='");
        out.extend_from_slice(room.as_bytes());
        out.extend_from_slice(
            format!("'><body>s={index} t={}</body></message>", stamp(base)).as_bytes(),
        );
    };
    if sender {
        for _ in 0..window_size {
            queue(&mut out);
        }
        in_flight = window_size;
    }
    let stop_at = window.measure_until + Duration::from_secs(2);
    loop {
        if !out.is_empty() {
            conn.send(&out, "groupchat").await?;
            out.clear();
        }
        let now = Instant::now();
        if now >= stop_at || (!window.sending(now) && in_flight == 0 && sender) {
            break;
        }
        tokio::select! {
            r = conn.read_some("groupchat") => { if !r? { break; } }
            _ = sleep_until(stop_at.into()) => break,
        }
        let now = Instant::now();
        while let Some(ev) = conn.next_event("groupchat")? {
            let Event::Element(r) = ev else { continue };
            let el = conn.element(r);
            if xml::name(el) != b"message" || xml::attr(el, "type") != Some(b"groupchat") {
                continue;
            }
            let Some(body) = xml::child_text(el, "body") else {
                continue;
            };
            let (Some(from), Some(sent)) = (field(body, b"s="), field(body, b"t=")) else {
                continue;
            };
            if window.contains(now) {
                me.delivered += 1;
                me.latencies_us.push(latency_us(base, sent));
            }
            if sender && from == index as u64 {
                in_flight = in_flight.saturating_sub(1);
                if window.sending(now) {
                    queue(&mut out);
                    in_flight += 1;
                }
            }
        }
    }
    Ok((me, conn))
}

/// Logs `count` users in and joins them to `room` (nick = account name).
pub async fn fill_room(
    target: &Target,
    room: &str,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Conn>, ClientError> {
    let conns = login_many(target, 0, count, concurrency).await?;
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let gate = gate.clone();
        let room = room.to_string();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let nick = crate::accounts::username(i);
            let r = timeout(Duration::from_secs(60), join(&mut conn, &room, &nick)).await;
            (i, r, conn)
        });
    }
    let mut out: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let Ok((i, r, conn)) = joined else { continue };
        match r {
            Ok(Ok(())) => out[i] = Some(conn),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ClientError::Timeout {
                    user: conn.jid.clone(),
                    step: "room join",
                });
            }
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// One run in a fresh room.
pub async fn run(
    target: &Target,
    server_pid: u32,
    run_id: usize,
    p: FanoutParams,
) -> Result<Figures, ScenarioError> {
    let room = format!("fanout{run_id}@{MUC_DOMAIN}");
    let conns = fill_room(target, &room, p.occupants, p.login_concurrency).await?;
    let base = Instant::now();
    let window = Window::new(p.warmup, p.duration);
    let mut set = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        set.spawn(occupant(
            conn,
            i,
            i < p.senders,
            room.clone(),
            p.window,
            base,
            window,
        ));
    }
    sleep_until(window.measure_from.into()).await;
    let cpu = CpuWindow::start(server_pid);
    sleep_until(window.measure_until.into()).await;
    let cpu = cpu.finish();
    let mut delivered = 0;
    let mut lat = Vec::new();
    let mut conns = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((o, conn))) => {
                delivered += o.delivered;
                lat.extend(o.latencies_us);
                conns.push(conn);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {}
        }
    }
    close_all(conns).await;
    if let Some(e) = first_err {
        return Err(e.into());
    }
    let mut f = Figures::default();
    f.push("fanout.rate", delivered as f64 / p.duration.as_secs_f64());
    if let Some(v) = percentile(&mut lat, 50.0) {
        f.push("fanout.p50", f64::from(v) / 1000.0);
    }
    if let Some(v) = percentile(&mut lat, 99.0) {
        f.push("fanout.p99", f64::from(v) / 1000.0);
    }
    f.push("fanout.gen_cpu", cpu.generator);
    f.push("fanout.server_cpu", cpu.server);
    f.push("fanout.others_cpu", cpu.others);
    Ok(f)
}
