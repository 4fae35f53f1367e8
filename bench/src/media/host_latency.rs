//! The server's own added latency, measured inside `bench
//! --media-bridge-host` (lilt-core, lilt-core-alloc): for every forwarded
//! RTP packet, the time from its arrival to the moment the bridge host
//! handed its forwarded copy to the kernel. Two clocks:
//!
//! - from the kernel's receive timestamp (`SO_TIMESTAMPNS`, so the wait in
//!   the socket's receive queue while the bridge was busy counts), and
//! - from the bridge host's `recv` of the datagram (processing, str0m's
//!   send queue and pacer only).
//!
//! An incoming and an outgoing packet are the same packet when their RTP
//! sequence number (low 16 bits) and RTP timestamp match: the bridge keeps
//! both on a stream it forwards from its start (a new receiver-visible
//! SSRC for a simulcast layer, the same numbers), and the bench's streams
//! start at different numbers. Both headers are in the clear under SRTP.
//! What matches nothing (RTCP, RTX, padding, a renumbered packet) is
//! counted apart. The tables are allocated once, at start, so they do not
//! show up in the memory per endpoint.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long an arrival waits for its forwarded copies.
const KEEP: Duration = Duration::from_millis(500);
/// Arrivals held per generation (two generations; more are dropped).
const CAPACITY: usize = 32_768;
/// Histogram resolution and range: 10 µs steps up to 20 ms, then one
/// bucket for everything later.
const STEP_NS: u64 = 10_000;
const BUCKETS: usize = 2_000;

/// When a packet arrived, on both clocks.
#[derive(Clone, Copy)]
struct Arrival {
    kernel_ns: Option<i128>,
    read: Instant,
}

/// Arrivals by (sequence number, RTP timestamp), in two generations.
pub struct Latency {
    current: HashMap<(u16, u32), Arrival>,
    previous: HashMap<(u16, u32), Arrival>,
    rotated: Instant,
    kernel: Histogram,
    read: Histogram,
    unmatched: u64,
}

impl Latency {
    pub fn new(now: Instant) -> Latency {
        Latency {
            current: HashMap::with_capacity(CAPACITY),
            previous: HashMap::with_capacity(CAPACITY),
            rotated: now,
            kernel: Histogram::new(),
            read: Histogram::new(),
            unmatched: 0,
        }
    }

    /// A datagram arrived (kernel time if known, read at `read`).
    pub fn on_receive(&mut self, datagram: &[u8], kernel_ns: Option<i128>, read: Instant) {
        let Some(key) = rtp_key(datagram) else {
            return;
        };
        if read.saturating_duration_since(self.rotated) >= KEEP {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.rotated = read;
        }
        if self.current.len() < CAPACITY {
            self.current.insert(key, Arrival { kernel_ns, read });
        }
    }

    /// A datagram was handed to the kernel at `sent` (`sent_ns` on the
    /// realtime clock).
    pub fn on_send(&mut self, datagram: &[u8], sent: Instant, sent_ns: i128) {
        let Some(key) = rtp_key(datagram) else {
            return;
        };
        let Some(arrival) = self.current.get(&key).or_else(|| self.previous.get(&key)) else {
            self.unmatched += 1;
            return;
        };
        let arrival = *arrival;
        self.read
            .add(sent.saturating_duration_since(arrival.read).as_nanos() as u64);
        if let Some(k) = arrival.kernel_ns {
            self.kernel.add(u64::try_from(sent_ns - k).unwrap_or(0));
        }
    }

    /// The figures since the last report, as one line, and a fresh start.
    pub fn report(&mut self) -> String {
        let line = format!(
            "latency {} {} {} {}",
            self.kernel.count,
            self.unmatched,
            self.kernel.summary(),
            self.read.summary()
        );
        self.kernel.clear();
        self.read.clear();
        self.unmatched = 0;
        line
    }
}

/// Counts in fixed buckets.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_ns: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
            max_ns: 0,
        }
    }

    fn add(&mut self, ns: u64) {
        let i = usize::try_from(ns / STEP_NS).map_or(BUCKETS, |i| i.min(BUCKETS));
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
        self.count = 0;
        self.max_ns = 0;
    }

    /// The upper edge of the bucket holding quantile `q`, in µs.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= rank {
                if i == BUCKETS {
                    return self.max_ns as f64 / 1000.0;
                }
                return ((i as u64 + 1) * STEP_NS) as f64 / 1000.0;
            }
        }
        self.max_ns as f64 / 1000.0
    }

    /// `p50 p99 p99.9 max` in µs.
    fn summary(&self) -> String {
        format!(
            "{:.0} {:.0} {:.0} {:.0}",
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_ns as f64 / 1000.0
        )
    }
}

/// What the bridge host's `latency` line says (see [`Latency::report`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostLatency {
    pub matched: u64,
    pub unmatched: u64,
    /// Kernel arrival to send: p50, p99, p99.9, max (µs).
    pub kernel_us: [f64; 4],
    /// Read to send: p50, p99, p99.9, max (µs).
    pub read_us: [f64; 4],
}

impl HostLatency {
    pub fn parse(line: &str) -> Option<HostLatency> {
        let mut words = line.split_whitespace();
        if words.next()? != "latency" {
            return None;
        }
        let matched = words.next()?.parse().ok()?;
        let unmatched = words.next()?.parse().ok()?;
        let mut numbers = words.map(|w| w.parse::<f64>().unwrap_or(f64::NAN));
        let mut four = || -> Option<[f64; 4]> {
            Some([
                numbers.next()?,
                numbers.next()?,
                numbers.next()?,
                numbers.next()?,
            ])
        };
        let kernel_us = four()?;
        let read_us = four()?;
        Some(HostLatency {
            matched,
            unmatched,
            kernel_us,
            read_us,
        })
    }
}

/// (sequence number, RTP timestamp) of an RTP datagram; `None` for RTCP,
/// padding-only packets and anything that is not RTP.
fn rtp_key(datagram: &[u8]) -> Option<(u16, u32)> {
    let first = *datagram.first()?;
    let second = *datagram.get(1)?;
    if first >> 6 != 2 || (192..=223).contains(&second) || first & 0x20 != 0 {
        return None;
    }
    let seq = u16::from_be_bytes(datagram.get(2..4)?.try_into().ok()?);
    let ts = u32::from_be_bytes(datagram.get(4..8)?.try_into().ok()?);
    Some((seq, ts))
}

/// The realtime clock in nanoseconds (the clock of `SO_TIMESTAMPNS`).
pub fn realtime_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Asks the kernel to stamp every datagram received on `socket`.
pub fn enable_timestamps(socket: &std::net::UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `recv_from` with the kernel's receive timestamp (realtime ns) if the
/// socket has timestamps on.
pub fn recv_stamped(
    socket: &std::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<i128>)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg describes valid buffers of the given sizes.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: the kernel filled msg's control buffer; the CMSG macros walk
    // it within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SO_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let source = sockaddr(&addr)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown address family"))?;
    Ok((n as usize, source, stamp))
}

fn sockaddr(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 100];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p
    }

    #[test]
    fn a_forwarded_copy_is_matched_and_timed() {
        let t0 = Instant::now();
        let mut l = Latency::new(t0);
        l.on_receive(&rtp(7, 900), Some(1_000_000), t0);
        l.on_send(
            &rtp(7, 900),
            t0 + Duration::from_micros(35),
            1_000_000 + 95_000,
        );
        l.on_send(&rtp(8, 900), t0, 0);
        let line = l.report();
        let h = HostLatency::parse(&line).unwrap();
        assert_eq!((h.matched, h.unmatched), (1, 1), "{line}");
        assert_eq!(h.kernel_us[0], 100.0, "{line}");
        assert_eq!(h.read_us[0], 40.0, "{line}");
        // Reported figures start again.
        let h = HostLatency::parse(&l.report()).unwrap();
        assert_eq!(h.matched, 0);
    }

    #[test]
    fn rtcp_is_not_rtp() {
        assert_eq!(rtp_key(&[0x80, 200, 0, 6, 0, 0, 0, 1]), None);
        assert_eq!(rtp_key(&rtp(1, 2)), Some((1, 2)));
    }

    #[test]
    fn the_kernel_stamps_a_loopback_datagram() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_timestamps(&b).unwrap();
        let before = realtime_ns();
        a.send_to(b"hello", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let (n, from, stamp) = recv_stamped(&b, &mut buf).unwrap();
        assert_eq!((n, from), (5, a.local_addr().unwrap()));
        let stamp = stamp.expect("a kernel timestamp");
        assert!(stamp >= before - 1_000_000 && stamp <= realtime_ns());
    }
}
