//! Percentiles, medians, and CPU use over a measured window.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::procfs;

/// The `p`-th percentile (0..=100) of samples, nearest-rank; sorts them.
pub fn percentile(samples: &mut [u32], p: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// The median of some figures (the mean of the middle two for an even
/// count); `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The CPU the server under test is pinned to (set once by the driver).
pub static SERVER_CPU: AtomicUsize = AtomicUsize::new(0);

/// CPU use over a window, in percent of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// The load generator (this process).
    pub generator: f64,
    /// The server under test.
    pub server: f64,
    /// Everything else that ran on the server's core (other work on the
    /// machine competing with the server: noise).
    pub others: f64,
}

/// CPU use of the generator, the server and the rest of the server's core
/// over a window.
pub struct CpuWindow {
    start: Instant,
    own: f64,
    server_pid: u32,
    server: f64,
    core: Option<(u64, u64)>,
}

impl CpuWindow {
    pub fn start(server_pid: u32) -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            own: procfs::own_cpu_seconds(),
            server_pid,
            server: procfs::cpu_seconds(server_pid).unwrap_or(0.0),
            core: procfs::cpu_jiffies(SERVER_CPU.load(Ordering::Relaxed)),
        }
    }

    /// CPU use since [`CpuWindow::start`].
    pub fn finish(&self) -> CpuUse {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let own = procfs::own_cpu_seconds() - self.own;
        let server = procfs::cpu_seconds(self.server_pid).unwrap_or(self.server) - self.server;
        let server_pct = 100.0 * server / wall;
        let core_pct = match (
            self.core,
            procfs::cpu_jiffies(SERVER_CPU.load(Ordering::Relaxed)),
        ) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
            }
            _ => server_pct,
        };
        CpuUse {
            generator: 100.0 * own / wall,
            server: server_pct,
            others: (core_pct - server_pct).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50));
        assert_eq!(percentile(&mut v, 99.0), Some(99));
        assert_eq!(percentile(&mut v, 100.0), Some(100));
        assert_eq!(percentile(&mut v, 0.0), Some(1));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
