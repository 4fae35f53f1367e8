//! Requests that came through a reverse proxy (nginx in front of Jitsi):
//! the client's address and scheme from `X-Forwarded-For` and
//! `X-Forwarded-Proto`, believed only from `trusted_proxies`, as Prosody
//! 13's mod_http does it with `http_legacy_x_forwarded` (its default).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xmpp_core::config::OptionError;
use xmpp_core::{ServerConfig, Value};

/// The `trusted_proxies` option: addresses and CIDR ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<(IpAddr, u8)>,
}

impl Default for TrustedProxies {
    /// Prosody's default: the loopback addresses.
    fn default() -> TrustedProxies {
        TrustedProxies {
            ranges: vec![
                (IpAddr::from(Ipv4Addr::LOCALHOST), 32),
                (IpAddr::from(Ipv6Addr::LOCALHOST), 128),
            ],
        }
    }
}

impl TrustedProxies {
    pub fn from_config(config: &ServerConfig) -> Result<TrustedProxies, OptionError> {
        let Some(value) = config.get_global("trusted_proxies") else {
            return Ok(TrustedProxies::default());
        };
        let bad = |problem: String| OptionError {
            option: "trusted_proxies".into(),
            defined_at: config.source_of(None, "trusted_proxies").cloned(),
            problem,
        };
        let list = value
            .as_string_list()
            .ok_or_else(|| bad(format!("must list addresses, not {}", value_kind(value))))?;
        let ranges = list
            .iter()
            .map(|entry| {
                parse_range(entry).ok_or_else(|| {
                    bad(format!(
                        "has {entry:?}, which is not an address or CIDR range"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { ranges })
    }

    /// Builds the list from entries such as `"10.0.0.0/8"`; `None` when an
    /// entry is neither an address nor a range.
    pub fn parse(entries: &[&str]) -> Option<TrustedProxies> {
        let ranges = entries
            .iter()
            .map(|e| parse_range(e))
            .collect::<Option<_>>()?;
        Some(TrustedProxies { ranges })
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.ranges
            .iter()
            .any(|(net, bits)| in_range(ip, *net, *bits))
    }

    /// The client's address and whether it used HTTPS, for a request from
    /// `peer` carrying these headers. Only a trusted peer's headers count;
    /// the address is the last one in `X-Forwarded-For` (with the peer
    /// appended) that is not itself a trusted proxy.
    pub fn client(
        &self,
        peer: IpAddr,
        secure: bool,
        forwarded_for: Option<&str>,
        forwarded_proto: Option<&str>,
    ) -> (IpAddr, bool) {
        if !self.is_trusted(peer) {
            return (peer, secure);
        }
        let mut ip = peer;
        if let Some(list) = forwarded_for {
            for item in list.split(|c: char| c == ',' || c.is_whitespace()) {
                let Some(candidate) = parse_forwarded_ip(item) else {
                    continue;
                };
                if !self.is_trusted(candidate) {
                    ip = candidate;
                }
            }
        }
        (ip, secure || forwarded_proto == Some("https"))
    }
}

fn value_kind(v: &Value) -> &'static str {
    v.type_name()
}

/// `1.2.3.4`, `[::1]:443` and `1.2.3.4:80` as proxies write them.
fn parse_forwarded_ip(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    if item.is_empty() {
        return None;
    }
    if let Ok(ip) = item.parse() {
        return Some(ip);
    }
    if let Some(rest) = item.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    item.split(':').next()?.parse().ok()
}

fn parse_range(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    let ip = canonical(addr.trim().parse().ok()?);
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix_eq(&a.octets(), &b.octets(), bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix_eq(&a.octets(), &b.octets(), bits),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_as_they_are() {
        let t = TrustedProxies::default();
        assert_eq!(
            t.client(ip("192.0.2.7"), false, Some("203.0.113.9"), Some("https")),
            (ip("192.0.2.7"), false)
        );
    }

    #[test]
    fn the_last_untrusted_forwarded_address_wins() {
        let t = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).unwrap();
        assert_eq!(
            t.client(
                ip("127.0.0.1"),
                false,
                Some("203.0.113.9, 10.1.2.3"),
                Some("https")
            ),
            (ip("203.0.113.9"), true)
        );
        // A spoofed first entry does not win over the real client.
        assert_eq!(
            t.client(ip("127.0.0.1"), false, Some("1.1.1.1, 198.51.100.4"), None),
            (ip("198.51.100.4"), false)
        );
        // All trusted: the peer stays.
        assert_eq!(
            t.client(ip("127.0.0.1"), true, Some("10.0.0.1"), None),
            (ip("127.0.0.1"), true)
        );
        assert_eq!(
            t.client(ip("127.0.0.1"), false, Some("[2001:db8::1]:4711"), None),
            (ip("2001:db8::1"), false)
        );
    }

    #[test]
    fn ranges() {
        let t = TrustedProxies::parse(&["192.168.0.0/16", "2001:db8::/32", "::1"]).unwrap();
        assert!(t.is_trusted(ip("192.168.40.1")));
        assert!(!t.is_trusted(ip("192.169.0.1")));
        assert!(t.is_trusted(ip("2001:db8:ffff::1")));
        assert!(t.is_trusted(ip("::1")));
        assert!(t.is_trusted(ip("::ffff:192.168.1.1")));
        assert!(TrustedProxies::parse(&["10.0.0.0/33"]).is_none());
        assert!(TrustedProxies::parse(&["proxy.example"]).is_none());
    }
}
