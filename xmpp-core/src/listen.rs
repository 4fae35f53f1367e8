//! Listening sockets from Prosody's network options: port lists
//! (`c2s_ports`, `http_ports`, ...), interface lists (`interfaces`,
//! `c2s_interfaces`, ...) and binding every port on every interface.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpListener;

use crate::config::{OptionError, ServerConfig};
use crate::value::Value;

fn option_error(config: &ServerConfig, name: &str, problem: String) -> OptionError {
    OptionError {
        option: name.to_string(),
        defined_at: config.source_of(None, name).cloned(),
        problem,
    }
}

/// A global port list option (`{ 5222 }`, or a single number; `{ }` disables).
pub fn ports(config: &ServerConfig, name: &str, default: &[u16]) -> Result<Vec<u16>, OptionError> {
    let Some(v) = config.get_global(name) else {
        return Ok(default.to_vec());
    };
    let items: Vec<Value> = match v {
        Value::Table(t) => t.seq.clone(),
        other => vec![other.clone()],
    };
    items
        .iter()
        .map(|p| {
            p.as_i64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    option_error(config, name, format!("must list port numbers, found {p:?}"))
                })
        })
        .collect()
}

/// A global interface list option (`{ "*", "::" }`, or a single string),
/// `default` when unset. `*` is every IPv4 address.
pub fn interfaces(
    config: &ServerConfig,
    name: &str,
    default: &[&str],
) -> Result<Vec<IpAddr>, OptionError> {
    let list = match config.get_global(name) {
        None => default.iter().map(|s| s.to_string()).collect(),
        Some(v) => v.as_string_list().ok_or_else(|| {
            option_error(config, name, format!("must list IP addresses, not {v:?}"))
        })?,
    };
    list.iter()
        .map(|i| match i.as_str() {
            "*" => Ok(IpAddr::from([0u8, 0, 0, 0])),
            other => other.parse().map_err(|_| {
                option_error(
                    config,
                    name,
                    format!("has {other:?}, which is not an IP address"),
                )
            }),
        })
        .collect()
}

/// A service's interfaces as Prosody's portmanager picks them:
/// `<service>_interfaces`, else `interfaces`, else all IPv4 and IPv6.
pub fn service_interfaces(
    config: &ServerConfig,
    service: &str,
) -> Result<Vec<IpAddr>, OptionError> {
    let name = format!("{service}_interfaces");
    if config.get_global(&name).is_some() {
        return interfaces(config, &name, &[]);
    }
    interfaces(config, "interfaces", &["*", "::"])
}

/// A private service's interfaces (Prosody's `component` listener):
/// `<service>_interfaces`, else `local_interfaces`, else loopback
/// (127.0.0.1 and ::1). The global `interfaces` does not apply.
pub fn private_service_interfaces(
    config: &ServerConfig,
    service: &str,
) -> Result<Vec<IpAddr>, OptionError> {
    let name = format!("{service}_interfaces");
    if config.get_global(&name).is_some() {
        return interfaces(config, &name, &[]);
    }
    interfaces(config, "local_interfaces", &["127.0.0.1", "::1"])
}

/// Binds one listening socket (address reuse on, backlog 1024).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Binds every port on every interface. An IPv6 address that cannot be
/// bound next to others (`::` after `*` on a dual-stack system) is skipped,
/// as Prosody does; any other failure is returned with its address.
pub fn bind_all(
    ports: &[u16],
    interfaces: &[IpAddr],
) -> Result<Vec<TcpListener>, (SocketAddr, std::io::Error)> {
    let mut out = Vec::new();
    for port in ports {
        for ip in interfaces {
            let addr = SocketAddr::new(*ip, *port);
            match bind(addr) {
                Ok(l) => out.push(l),
                Err(e) if ip.is_ipv6() && interfaces.len() > 1 => {
                    tracing::debug!("not listening on {addr}: {e}");
                }
                Err(e) => return Err((addr, e)),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Table;

    #[test]
    fn port_and_interface_lists() {
        let mut cfg = ServerConfig::default();
        assert_eq!(ports(&cfg, "c2s_ports", &[5222]).unwrap(), vec![5222]);
        cfg.global.set(
            "c2s_ports",
            Value::Table(Table {
                seq: vec![Value::Integer(1), Value::Integer(2)],
                ..Table::default()
            }),
        );
        assert_eq!(ports(&cfg, "c2s_ports", &[5222]).unwrap(), vec![1, 2]);
        cfg.global.set("c2s_ports", Value::str("x"));
        assert!(ports(&cfg, "c2s_ports", &[]).is_err());
        assert_eq!(service_interfaces(&cfg, "c2s").unwrap().len(), 2);
        cfg.global.set("interfaces", Value::str("127.0.0.1"));
        assert_eq!(
            service_interfaces(&cfg, "c2s").unwrap(),
            vec![IpAddr::from([127, 0, 0, 1])]
        );
        cfg.global.set("c2s_interfaces", Value::str("::1"));
        assert_eq!(
            service_interfaces(&cfg, "c2s").unwrap(),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
        cfg.global.set("c2s_interfaces", Value::str("nope"));
        let e = service_interfaces(&cfg, "c2s").unwrap_err();
        assert_eq!(e.option, "c2s_interfaces");
    }

    #[tokio::test]
    async fn binds_every_port_on_every_interface() {
        let ls = bind_all(&[0, 0], &[IpAddr::from([127, 0, 0, 1])]).unwrap();
        assert_eq!(ls.len(), 2);
    }
}
