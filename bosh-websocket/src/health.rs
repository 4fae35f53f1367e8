//! mod_http_health: `GET /health` answers `200 OK` while the server runs,
//! for container and load-balancer health checks (docker-jitsi-meet's
//! image loads it globally). As the Prosody module, only the addresses in
//! `http_health_allow_ips` (default `::1` and `127.0.0.1`) and the range
//! `http_health_allow_cidr` (e.g. `"172.17.2.0/24"`) may ask; others get
//! 403. Prosody answers 500 when a module has reported an error status;
//! lilt's modules fail at start-up instead, so a running lilt is healthy.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use xmpp_core::config::OptionError;
use xmpp_core::{Host, Server};

use crate::routes::{HttpApp, HttpRequest, HttpResponse, handler};

/// Who may ask.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthAccess {
    ips: Vec<IpAddr>,
    cidr: Option<(IpAddr, u8)>,
}

impl HealthAccess {
    /// Reads `http_health_allow_ips` and `http_health_allow_cidr`.
    pub fn from_host(host: &Host) -> Result<HealthAccess, OptionError> {
        let ips = match host.option("http_health_allow_ips") {
            None => vec!["::1".to_string(), "127.0.0.1".to_string()],
            Some(_) => host.option_list("http_health_allow_ips"),
        };
        let ips = ips
            .iter()
            .map(|ip| {
                ip.parse().map_err(|_| {
                    host.option_error(
                        "http_health_allow_ips",
                        format!("{ip:?} is not an IP address"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let cidr = match host.option_str("http_health_allow_cidr") {
            None | Some("") => None,
            Some(text) => Some(parse_cidr(text).ok_or_else(|| {
                host.option_error(
                    "http_health_allow_cidr",
                    format!("{text:?} is not an address range such as \"172.17.2.0/24\""),
                )
            })?),
        };
        Ok(HealthAccess { ips, cidr })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.ips.iter().any(|a| canonical(*a) == ip)
            || self.cidr.is_some_and(|(net, bits)| in_range(ip, net, bits))
    }
}

/// Registers the app (globally when `http_health` is in the global
/// `modules_enabled`, as docker-jitsi-meet has it).
pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), crate::LoadError> {
    let access = Arc::new(HealthAccess::from_host(host)?);
    let route = handler(move |req: HttpRequest| {
        let allowed = access.allows(req.ip);
        async move {
            if allowed {
                HttpResponse::ok("text/plain", "OK\n")
            } else {
                HttpResponse::new(StatusCode::FORBIDDEN)
            }
        }
    });
    crate::provide_app(
        server,
        host,
        HttpApp {
            name: "health".into(),
            default_path: None,
            cors: None,
            routes: vec![("GET".into(), route)],
        },
    )
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (net, bits) = text.trim().split_once('/')?;
    let net: IpAddr = net.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((canonical(net), bits))
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let prefix = |a: u128, width: u32| {
        let shift = width - u32::from(bits);
        if shift >= 128 { 0 } else { a >> shift }
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            prefix(u32::from(a).into(), 32) == prefix(u32::from(n).into(), 32)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => prefix(u128::from(a), 128) == prefix(u128::from(n), 128),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(ips: &[&str], cidr: Option<&str>) -> HealthAccess {
        HealthAccess {
            ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            cidr: cidr.map(|c| parse_cidr(c).unwrap()),
        }
    }

    #[test]
    fn loopback_by_default_and_mapped_addresses() {
        let a = access(&["::1", "127.0.0.1"], None);
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(a.allows("::1".parse().unwrap()));
        assert!(!a.allows("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn ranges() {
        let a = access(&[], Some("172.17.2.0/24"));
        assert!(a.allows("172.17.2.200".parse().unwrap()));
        assert!(!a.allows("172.17.3.1".parse().unwrap()));
        let all = access(&[], Some("0.0.0.0/0"));
        assert!(all.allows("8.8.8.8".parse().unwrap()));
        let v6 = access(&[], Some("fd00::/8"));
        assert!(v6.allows("fd12::1".parse().unwrap()));
        assert!(!v6.allows("fe80::1".parse().unwrap()));
        assert_eq!(parse_cidr("10.0.0.0/33"), None);
        assert_eq!(parse_cidr("nonsense"), None);
    }
}
