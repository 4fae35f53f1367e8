//! Where a remote domain's server listens, as Prosody 0.12's resolver chain
//! for s2s: first `_xmpps-server._tcp.<domain>` SRV records (XEP-0368,
//! direct TLS, no fallback), then `_xmpp-server._tcp.<domain>` SRV records,
//! else the domain itself on port 5269. SRV targets are tried by priority
//! (lowest first), then weight (highest first); a single target `.` means
//! "no such service". Names are resolved through the system configuration
//! (`/etc/resolv.conf`, `/etc/hosts`) with hickory-resolver.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;

use super::DEFAULT_PORT;

/// One address to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// Start TLS at once (XEP-0368) rather than with STARTTLS.
    pub direct_tls: bool,
}

/// One SRV record as far as ordering is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// Without the trailing dot.
    pub target: String,
}

/// Orders SRV records for trying; empty when the service is declared
/// absent (one record with target `.`).
pub fn order_srv(mut records: Vec<Srv>) -> Vec<Srv> {
    if records.len() == 1 && records.first().is_some_and(|r| r.target.is_empty()) {
        return Vec::new();
    }
    records.retain(|r| !r.target.is_empty());
    records.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    records
}

/// The system's resolver.
pub fn system_resolver() -> Result<TokioResolver, String> {
    TokioResolver::builder_tokio()
        .map(|b| b.build())
        .map_err(|e| format!("cannot read the system resolver configuration: {e}"))
}

async fn srv(resolver: &TokioResolver, name: &str) -> Option<Vec<Srv>> {
    let lookup = resolver.srv_lookup(name).await.ok()?;
    let records = lookup
        .iter()
        .map(|r| Srv {
            priority: r.priority(),
            weight: r.weight(),
            port: r.port(),
            target: r.target().to_ascii().trim_end_matches('.').to_string(),
        })
        .collect::<Vec<_>>();
    Some(order_srv(records))
}

async fn addresses(resolver: &TokioResolver, host: &str, port: u16) -> Vec<SocketAddr> {
    // An IP literal needs no lookup.
    if let Ok(ip) = host.parse() {
        return vec![SocketAddr::new(ip, port)];
    }
    match resolver.lookup_ip(format!("{host}.")).await {
        Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
        Err(e) => {
            tracing::debug!(host, "address lookup failed: {e}");
            Vec::new()
        }
    }
}

/// Every address to try for `domain`, in order.
pub async fn resolve(resolver: &TokioResolver, domain: &str) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(records) = srv(resolver, &format!("_xmpps-server._tcp.{domain}.")).await {
        for r in records {
            for addr in addresses(resolver, &r.target, r.port).await {
                out.push(Target {
                    addr,
                    direct_tls: true,
                });
            }
        }
    }
    match srv(resolver, &format!("_xmpp-server._tcp.{domain}.")).await {
        Some(records) if !records.is_empty() => {
            for r in records {
                for addr in addresses(resolver, &r.target, r.port).await {
                    out.push(Target {
                        addr,
                        direct_tls: false,
                    });
                }
            }
        }
        _ => {
            for addr in addresses(resolver, domain, DEFAULT_PORT).await {
                out.push(Target {
                    addr,
                    direct_tls: false,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5269,
            target: target.into(),
        }
    }

    #[test]
    fn srv_order_is_priority_then_weight() {
        let ordered = order_srv(vec![srv(20, 0, "c"), srv(10, 1, "b"), srv(10, 5, "a")]);
        let names: Vec<_> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn a_dot_target_means_no_service() {
        assert!(order_srv(vec![srv(0, 0, "")]).is_empty());
    }
}
