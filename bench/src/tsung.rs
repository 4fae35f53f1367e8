//! The tsung cross-check of scenario 2: Debian's tsung runs
//! `bench/tsung/one_to_one.xml` (PLAIN over TCP) against the server the
//! generator has just measured, pinned like the generator; its delivery
//! rate is read from the `xmpp_msg_latency` statistics of `tsung.log`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;
use crate::scenarios::Figures;
use crate::stats::median;

/// Parameters of one tsung run.
#[derive(Debug, Clone)]
pub struct TsungParams {
    pub template: PathBuf,
    pub work_dir: PathBuf,
    pub port: u16,
    pub users: usize,
    /// Messages each user sends.
    pub loops: usize,
    /// Seconds between two messages of one user.
    pub think: f64,
    pub generator_cpu: usize,
}

/// The tsung run failed.
#[derive(Debug, thiserror::Error)]
pub enum TsungError {
    #[error("{what}: {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run tsung: {0}")]
    Spawn(std::io::Error),
    #[error("tsung did not finish within {0} s")]
    Timeout(u64),
    #[error("no xmpp_msg_latency statistics in {0}")]
    NoStats(PathBuf),
}

/// The scenario file with its fields filled in.
pub fn render(template: &str, p: &TsungParams) -> String {
    // Users arrive over about 5 s; the phase is twice as long so that tsung's
    // rounding cannot leave some unstarted (the global ack waits for all).
    let arrival_secs = 10usize;
    let total = arrival_secs as f64 + 10.0 + p.loops as f64 * p.think.max(0.001) * 3.0 + 30.0;
    template
        .replace("@USERS@", &p.users.to_string())
        .replace("@PORT@", &p.port.to_string())
        .replace("@ARRIVAL_SECONDS@", &arrival_secs.to_string())
        .replace(
            "@ARRIVAL_RATE@",
            &(p.users.div_ceil(arrival_secs / 2)).to_string(),
        )
        .replace("@MAX_SECONDS@", &(total.ceil() as u64).to_string())
        .replace("@LOOPS@", &p.loops.to_string())
        .replace("@THINK@", &format!("{}", p.think))
}

/// One statistics block of tsung.log (`# stats: dump at T` and the lines
/// after it): per-interval values.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Block {
    at: f64,
    size_rcv: f64,
    size_sent: f64,
    sent_messages: f64,
}

fn blocks(log: &str) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for line in log.lines() {
        if let Some(t) = line.strip_prefix("# stats: dump at ") {
            out.push(Block {
                at: t.trim().parse().unwrap_or(0.0),
                ..Block::default()
            });
            continue;
        }
        let Some(rest) = line.strip_prefix("stats: ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let Some(block) = out.last_mut() else {
            continue;
        };
        match name {
            "size_rcv" => block.size_rcv = value,
            "size_sent" => block.size_sent = value,
            "request_noack" => block.sent_messages = value,
            _ => {}
        }
    }
    out
}

/// Bytes a delivered message has beyond the one tsung sent: the server
/// adds ` from='tsungN@localhost/tsung'` (N has about 3 digits).
const FROM_BYTES: f64 = 31.0;

/// Messages delivered per second in each statistics interval of the
/// sending phase. tsung samples `xmpp_msg_latency` once per TCP read, not
/// once per message, so deliveries are counted from the bytes received:
/// `size_rcv` over the size of a delivered message (what tsung sent per
/// message in that interval, plus the `from` the server adds).
pub fn delivery_rates(log: &str) -> Vec<f64> {
    let blocks = blocks(log);
    // The chat phase: intervals whose requests are mostly messages (the
    // last interval holds the stream closes, far smaller than a message).
    let sizes: Vec<f64> = blocks
        .iter()
        .filter(|b| b.sent_messages > 0.0)
        .map(|b| b.size_sent / b.sent_messages)
        .collect();
    let Some(typical) = median(&sizes) else {
        return Vec::new();
    };
    let mut rates = Vec::new();
    for pair in blocks.windows(2) {
        let (prev, b) = (pair[0], pair[1]);
        let dt = b.at - prev.at;
        if b.sent_messages <= 0.0 || dt <= 0.0 {
            continue;
        }
        let size = b.size_sent / b.sent_messages;
        if (size - typical).abs() > 0.2 * typical {
            continue;
        }
        rates.push(b.size_rcv / (size + FROM_BYTES) / dt);
    }
    rates
}

/// The steady rate: the median of the sending intervals without the first
/// and last of them (ramp up and down).
pub fn steady_rate(rates: &[f64]) -> Option<f64> {
    if rates.len() > 2 {
        median(&rates[1..rates.len() - 1])
    } else {
        median(rates)
    }
}

fn find_log(dir: &Path) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "tsung.log") {
                return Some(p);
            }
        }
    }
    None
}

/// Runs tsung once; figures `chat.tsung_rate` and `chat.tsung_cpu`.
pub fn run(p: &TsungParams) -> Result<Figures, TsungError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| TsungError::Io { what, path, source }
    };
    let template = std::fs::read_to_string(&p.template).map_err(io("reading", &p.template))?;
    let dir = p.work_dir.join("tsung");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
    }
    let logs = dir.join("log");
    std::fs::create_dir_all(&logs).map_err(io("creating", &logs))?;
    let scenario = dir.join("one_to_one.xml");
    std::fs::write(&scenario, render(&template, p)).map_err(io("writing", &scenario))?;
    let out = std::fs::File::create(dir.join("tsung.out")).map_err(io("creating", &dir))?;
    let err = out.try_clone().map_err(io("creating", &dir))?;
    let cpu_before = procfs::children_cpu_seconds();
    let started = Instant::now();
    // A controller name of its own (a stale or foreign tsung node would
    // otherwise hold the default one), no web GUI, epmd on loopback.
    let id = format!("bench{}", std::process::id());
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(p.generator_cpu.to_string())
        .arg("tsung")
        .args(["-n", "-i", &id, "-f"])
        .arg(&scenario)
        .arg("-l")
        .arg(&logs)
        .arg("start")
        .env("HOME", &dir)
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(TsungError::Spawn)?;
    let limit = 60 + (p.loops as f64 * p.think * 3.0) as u64 + 120;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if started.elapsed() > Duration::from_secs(limit) {
            for pid in procfs::descendants(child.id()) {
                procfs::signal(pid, libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Err(TsungError::Timeout(limit));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = procfs::children_cpu_seconds() - cpu_before;
    let log = find_log(&logs).ok_or_else(|| TsungError::NoStats(logs.clone()))?;
    let text = std::fs::read_to_string(&log).map_err(io("reading", &log))?;
    let rate = steady_rate(&delivery_rates(&text)).ok_or(TsungError::NoStats(log))?;
    let mut f = Figures::default();
    f.push("chat.tsung_rate", rate);
    f.push("chat.tsung_cpu", 100.0 * cpu / wall.max(1e-9));
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rates_from_the_log() {
        let log = "# stats: dump at 1000\n\
                   stats: request_noack 100 100\n\
                   stats: size_rcv 20000 20000\n\
                   stats: size_sent 90000 90000\n\
                   # stats: dump at 1010\n\
                   stats: request_noack 1000 1100\n\
                   stats: size_rcv 131000 151000\n\
                   stats: size_sent 100000 190000\n\
                   # stats: dump at 1020\n\
                   stats: request_noack 2000 3100\n\
                   stats: size_rcv 262000 413000\n\
                   stats: size_sent 200000 390000\n\
                   # stats: dump at 1030\n\
                   stats: request_noack 2000 5100\n\
                   stats: size_rcv 393000 806000\n\
                   stats: size_sent 200000 590000\n\
                   # stats: dump at 1032\n\
                   stats: request_noack 10 5110\n\
                   stats: size_rcv 13100 819100\n\
                   stats: size_sent 160 590160\n";
        let rates = delivery_rates(log);
        // Each message: 100 bytes sent, 131 delivered; the last interval
        // (closes) is left out.
        assert_eq!(rates.len(), 3);
        assert!((rates[0] - 100.0).abs() < 1e-9, "{rates:?}");
        assert!((rates[1] - 200.0).abs() < 1e-9, "{rates:?}");
        assert_eq!(steady_rate(&rates), Some(200.0));
    }

    #[test]
    fn fills_the_template() {
        let p = TsungParams {
            template: PathBuf::new(),
            work_dir: PathBuf::new(),
            port: 5222,
            users: 1000,
            loops: 100,
            think: 0.1,
            generator_cpu: 1,
        };
        let out = render("@USERS@ @PORT@ @ARRIVAL_RATE@ @LOOPS@ @THINK@", &p);
        assert_eq!(out, "1000 5222 200 100 0.1");
    }
}
