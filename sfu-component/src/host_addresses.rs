//! The host's own IPv4 addresses, offered as ICE host candidates when no
//! `--address` is given (Videobridge harvests every interface likewise).
//! Read from Linux's `/proc/net/fib_trie` (the local routes): no socket is
//! opened and nothing is sent.

use std::net::{IpAddr, Ipv4Addr};

/// The local non-loopback IPv4 addresses in `fib_trie` text: each address
/// line followed by a `/32 host LOCAL` line.
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(a) = last.take()
            && !a.is_loopback()
            && !out.contains(&IpAddr::V4(a))
        {
            out.push(IpAddr::V4(a));
        }
    }
    out
}

/// The host's non-loopback IPv4 addresses (empty when unknown).
pub fn host_addresses() -> Vec<IpAddr> {
    std::fs::read_to_string("/proc/net/fib_trie")
        .map(|t| parse_fib_trie(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_routes_only() {
        let text = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                    |-- 127.0.0.1\n   /32 host LOCAL\n |-- 192.0.2.0\n  /24 link UNICAST\n\
                    |-- 192.0.2.2\n  /32 host LOCAL\n |-- 192.0.2.255\n /32 link BROADCAST\n\
                    Local:\n |-- 192.0.2.2\n  /32 host LOCAL\n |-- 10.1.0.7\n  /32 host LOCAL\n";
        let want: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap(), "10.1.0.7".parse().unwrap()];
        assert_eq!(parse_fib_trie(text), want);
    }
}
