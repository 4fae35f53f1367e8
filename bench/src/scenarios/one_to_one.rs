//! Scenario 2, one-to-one throughput: online users in pairs send each other
//! chat messages (to the bare JID), each direction keeping at most `window`
//! messages sent but not yet delivered. Counts deliveries per second in the
//! measured window and the latency (send to read) of each.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::{Figures, ScenarioError, Window, close_all, field, latency_us, login_many, stamp};
use crate::client::{ClientError, Conn, Target};
use crate::stats::{CpuWindow, percentile};
use crate::xml::{self, Event};

/// Parameters of the one-to-one scenario.
#[derive(Debug, Clone, Copy)]
pub struct OneToOneParams {
    /// Online users (an even number: they pair up).
    pub users: usize,
    /// Unacknowledged messages allowed per direction.
    pub window: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub login_concurrency: usize,
}

/// One direction of a pair: what it delivered in the measured window.
#[derive(Default)]
pub(crate) struct Flow {
    in_flight: u32,
    pub(crate) delivered: u64,
    pub(crate) latencies_us: Vec<u32>,
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

fn queue_message(out: &mut Vec<u8>, to: &str, base: Instant) {
    out.extend_from_slice(b"<message type='chat' to='");
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(b"'><body>t=");
    out.extend_from_slice(stamp(base).to_string().as_bytes());
    out.extend_from_slice(b" hello from the load generator</body></message>");
}

/// Reads what `conn` has: deliveries of the flow towards it. Returns how
/// many arrived.
fn take_deliveries(
    conn: &mut Conn,
    flow: &mut Flow,
    base: Instant,
    window: &Window,
) -> Result<u32, ClientError> {
    let mut n = 0;
    let now = Instant::now();
    while let Some(ev) = conn.next_event("chat")? {
        let Event::Element(r) = ev else { continue };
        let el = conn.element(r);
        if xml::name(el) != b"message" || xml::attr(el, "type") == Some(b"error") {
            continue;
        }
        let Some(sent) = xml::child_text(el, "body").and_then(|b| field(b, b"t=")) else {
            continue;
        };
        n += 1;
        flow.in_flight = flow.in_flight.saturating_sub(1);
        if window.contains(now) {
            flow.delivered += 1;
            flow.latencies_us.push(latency_us(base, sent));
        }
    }
    Ok(n)
}

/// Drives one pair until the window closes and in-flight messages drain
/// (also the chat of `bench mam`, [`super::mam`]).
pub(crate) async fn pair(
    mut a: Conn,
    mut b: Conn,
    window_size: u32,
    base: Instant,
    window: Window,
) -> Result<(Flow, Flow, Conn, Conn), ClientError> {
    let to_a = bare(&a.jid).to_string();
    let to_b = bare(&b.jid).to_string();
    // a_to_b counts what b receives.
    let mut a_to_b = Flow::default();
    let mut b_to_a = Flow::default();
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for _ in 0..window_size {
        queue_message(&mut out_a, &to_b, base);
        queue_message(&mut out_b, &to_a, base);
    }
    a_to_b.in_flight = window_size;
    b_to_a.in_flight = window_size;
    let drain_until = window.measure_until + Duration::from_secs(5);
    loop {
        if !out_a.is_empty() {
            a.send(&out_a, "chat").await?;
            out_a.clear();
        }
        if !out_b.is_empty() {
            b.send(&out_b, "chat").await?;
            out_b.clear();
        }
        let now = Instant::now();
        let drained = a_to_b.in_flight == 0 && b_to_a.in_flight == 0;
        if now >= drain_until || (!window.sending(now) && drained) {
            break;
        }
        let wake = if window.sending(now) {
            window.measure_until
        } else {
            drain_until
        };
        tokio::select! {
            r = a.read_some("chat") => {
                if !r? { break; }
                let n = take_deliveries(&mut a, &mut b_to_a, base, &window)?;
                if window.sending(Instant::now()) {
                    for _ in 0..n {
                        queue_message(&mut out_b, &to_a, base);
                    }
                    b_to_a.in_flight += n;
                }
            }
            r = b.read_some("chat") => {
                if !r? { break; }
                let n = take_deliveries(&mut b, &mut a_to_b, base, &window)?;
                if window.sending(Instant::now()) {
                    for _ in 0..n {
                        queue_message(&mut out_a, &to_b, base);
                    }
                    a_to_b.in_flight += n;
                }
            }
            _ = sleep_until(wake.into()) => {}
        }
    }
    Ok((a_to_b, b_to_a, a, b))
}

/// One run: log the users in, pair them, measure, close.
pub async fn run(
    target: &Target,
    server_pid: u32,
    p: OneToOneParams,
) -> Result<Figures, ScenarioError> {
    let users = p.users & !1;
    let conns = login_many(target, 0, users, p.login_concurrency).await?;
    let base = Instant::now();
    let window = Window::new(p.warmup, p.duration);
    let mut set = JoinSet::new();
    let mut it = conns.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        set.spawn(pair(a, b, p.window, base, window));
    }
    sleep_until(window.measure_from.into()).await;
    let cpu = CpuWindow::start(server_pid);
    sleep_until(window.measure_until.into()).await;
    let cpu = cpu.finish();
    let mut delivered = 0u64;
    let mut lat = Vec::new();
    let mut conns = Vec::new();
    let mut first_err = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((f1, f2, a, b))) => {
                for f in [f1, f2] {
                    delivered += f.delivered;
                    lat.extend(f.latencies_us);
                }
                conns.push(a);
                conns.push(b);
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
    f.push("chat.rate", delivered as f64 / p.duration.as_secs_f64());
    if let Some(v) = percentile(&mut lat, 50.0) {
        f.push("chat.p50", f64::from(v) / 1000.0);
    }
    if let Some(v) = percentile(&mut lat, 99.0) {
        f.push("chat.p99", f64::from(v) / 1000.0);
    }
    f.push("chat.gen_cpu", cpu.generator);
    f.push("chat.server_cpu", cpu.server);
    f.push("chat.others_cpu", cpu.others);
    Ok(f)
}
