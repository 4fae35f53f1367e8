//! mod_http_openmetrics: `GET /metrics` in the OpenMetrics text format,
//! for Prometheus, as Prosody serves it with `statistics = "internal"`.
//!
//! Only `openmetrics_allow_ips` (default `::1` and `127.0.0.1`) and the
//! range `openmetrics_allow_cidr` may ask; others get 403. Without
//! `statistics` set, Prosody has no statistics provider and answers 404;
//! so does lilt.
//!
//! Families carry Prosody's names where Prosody has the figure
//! (`prosody_mod_c2s__connections`, `prosody_mod_muc__live_room`), the
//! usual `process_*` names for the process, and lilt's own, in the same
//! style, for what Prosody does not count (`lilt_mod_muc__occupants`,
//! `lilt_mod_bosh__sessions`, `lilt_mod_saslauth__authentications`,
//! `lilt_mod_smacks__hibernating`, `…__hibernations`, `…__resumptions`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use bosh_websocket::{HttpApp, HttpRequest, HttpResponse, handler};
use xmpp_core::{Event, Host, Server, SessionKind, Value};

/// Prosody's content type for the page.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=0.0.4";

/// Who may read the metrics.
#[derive(Debug, Clone, PartialEq)]
struct Access {
    ips: Vec<IpAddr>,
    cidr: Option<(IpAddr, u8)>,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (net, bits) = text.trim().split_once('/')?;
    let net: IpAddr = net.trim().parse().ok()?;
    let bits: u8 = bits.trim().parse().ok()?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((canonical(net), bits))
}

fn same_prefix(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let top = |a: u128, width: u32| {
        let shift = width.saturating_sub(u32::from(bits));
        a.checked_shr(shift).unwrap_or(0)
    };
    match (canonical(ip), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            top(u32::from(a).into(), 32) == top(u32::from(n).into(), 32)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => top(u128::from(a), 128) == top(u128::from(n), 128),
        _ => false,
    }
}

impl Access {
    fn from_config(server: &Server) -> Result<Access, String> {
        let config = &server.config;
        let at = |name: &str| {
            config
                .source_of(None, name)
                .map(|s| format!("{s}: "))
                .unwrap_or_default()
        };
        let ips = match config.get_global("openmetrics_allow_ips") {
            None => vec!["::1".to_string(), "127.0.0.1".to_string()],
            Some(v) => v.as_string_list().unwrap_or_default(),
        };
        let ips = ips
            .iter()
            .map(|ip| {
                ip.parse::<IpAddr>().map(canonical).map_err(|_| {
                    format!(
                        "{}option 'openmetrics_allow_ips': {ip:?} is not an IP address",
                        at("openmetrics_allow_ips")
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let cidr = match config
            .get_global("openmetrics_allow_cidr")
            .and_then(Value::as_str)
        {
            None | Some("") => None,
            Some(text) => Some(parse_cidr(text).ok_or_else(|| {
                format!(
                    "{}option 'openmetrics_allow_cidr': {text:?} is not an address range such as \"172.17.2.0/24\"",
                    at("openmetrics_allow_cidr")
                )
            })?),
        };
        Ok(Access { ips, cidr })
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.ips.contains(&ip)
            || self
                .cidr
                .is_some_and(|(net, bits)| same_prefix(ip, net, bits))
    }
}

/// Counters lilt keeps for the page, fed by host events.
#[derive(Default)]
struct Counters {
    /// (event, host) -> count.
    events: Mutex<BTreeMap<(&'static str, String), Arc<AtomicU64>>>,
    registered: OnceLock<()>,
}

impl Counters {
    fn counter(&self, event: &'static str, host: &str) -> Arc<AtomicU64> {
        let mut map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((event, host.to_string())).or_default().clone()
    }
    /// (host, count) for `event`.
    fn counts(&self, event: &str) -> Vec<(String, u64)> {
        let map = self.events.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|((e, _), _)| *e == event)
            .map(|((_, h), n)| (h.clone(), n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The host events counted.
const COUNTED: &[&str] = &[
    "authentication-success",
    "authentication-failure",
    "smacks-hibernation-start",
    "smacks-hibernation-end",
];

/// Loads the module for `host`: the page once for the server, the login
/// counters on every VirtualHost it is enabled on.
pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), String> {
    let counters = server.extension::<Counters>();
    if !host.is_component() {
        for event in COUNTED {
            let count = counters.counter(event, &host.name);
            // Ahead of every other handler: a handler may stop the event.
            host.events.hook(event, 1_000_000, move |_: &mut Event| {
                count.fetch_add(1, Ordering::Relaxed);
                false
            });
        }
    }
    if counters.registered.set(()).is_err() {
        return Ok(());
    }
    let access = Arc::new(Access::from_config(server)?);
    let enabled = server.config.get_global("statistics").is_some();
    let weak = Arc::downgrade(server);
    let route = handler(move |req: HttpRequest| {
        let allowed = access.allows(req.ip);
        let page = weak.upgrade().map(|s| render(&s));
        async move {
            if !allowed {
                return HttpResponse::new(StatusCode::FORBIDDEN);
            }
            match (enabled, page) {
                (true, Some(page)) => HttpResponse::ok(CONTENT_TYPE, page),
                _ => HttpResponse::new(StatusCode::NOT_FOUND)
                    .with_body("No statistics provider configured\n"),
            }
        }
    });
    bosh_websocket::provide(
        server,
        None,
        HttpApp {
            name: "http_openmetrics".into(),
            default_path: Some("/metrics".into()),
            cors: None,
            routes: vec![("GET".into(), route)],
        },
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// One family being written.
struct Family<'a> {
    out: &'a mut String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Family<'_> {
    fn start<'a>(
        out: &'a mut String,
        name: &str,
        kind: &str,
        unit: &str,
        help: &str,
    ) -> Family<'a> {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        if !unit.is_empty() {
            let _ = writeln!(out, "# UNIT {name} {unit}");
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        Family { out }
    }
    fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "{name}{} {value}", labels(pairs));
    }
}

/// The page: every family, then `# EOF`.
pub fn render(server: &Server) -> String {
    let mut out = String::new();
    let hosts = server.hosts();

    // mod_c2s: established (bound) client sessions, TCP and WebSocket
    // (Prosody's mod_websocket shares mod_c2s's sessions; BOSH has its own).
    // Prosody also counts unauthenticated streams (type "c2s_unauthed");
    // lilt's session registry holds bound sessions only.
    let mut c2s: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for s in server.sessions.all() {
        let bosh = s
            .transport
            .as_ref()
            .is_some_and(|t| matches!(t.kind, xmpp_core::transport::TransportKind::Bosh));
        if s.kind != SessionKind::C2s || bosh {
            continue;
        }
        let ip = s
            .transport
            .as_ref()
            .and_then(|t| t.ip)
            .or(s.peer.map(|p| p.ip()));
        let family = match ip.map(canonical) {
            Some(IpAddr::V4(_)) => "ipv4",
            Some(IpAddr::V6(_)) => "ipv6",
            None => "unknown",
        };
        // As Prosody: both families of a host with sessions, zero or not.
        for other in ["ipv4", "ipv6"] {
            c2s.entry((s.host.clone(), other)).or_default();
        }
        *c2s.entry((s.host.clone(), family)).or_default() += 1;
    }
    let name = "prosody_mod_c2s__connections";
    let mut f = Family::start(&mut out, name, "gauge", "", "Established c2s connections");
    for ((host, family), n) in &c2s {
        f.sample(
            name,
            &[("host", host), ("type", "c2s"), ("ip_family", family)],
            n,
        );
    }

    // mod_muc: rooms in memory, and their occupants.
    let muc: Vec<(String, usize, usize)> = hosts
        .iter()
        .filter_map(|h| {
            let service = muc::service_for(h)?;
            let rooms = service.live_rooms();
            let occupants = rooms.iter().map(|r| r.occupant_count()).sum();
            Some((h.name.clone(), rooms.len(), occupants))
        })
        .collect();
    if !muc.is_empty() {
        let name = "prosody_mod_muc__live_room";
        let mut f = Family::start(&mut out, name, "gauge", "", "mod_muc/live_room amount");
        for (host, rooms, _) in &muc {
            f.sample(name, &[("host", host)], rooms);
        }
        let name = "lilt_mod_muc__occupants";
        let mut f = Family::start(&mut out, name, "gauge", "", "Occupants of the live rooms");
        for (host, _, occupants) in &muc {
            f.sample(name, &[("host", host)], occupants);
        }
    }

    let name = "lilt_mod_bosh__sessions";
    let mut f = Family::start(&mut out, name, "gauge", "", "Open BOSH sessions");
    f.sample(name, &[], bosh_websocket::bosh_sessions(server));

    let counters = server.extension::<Counters>();
    let name = "lilt_mod_saslauth__authentications";
    let mut f = Family::start(
        &mut out,
        name,
        "counter",
        "",
        "SASL authentications by result",
    );
    for (event, result) in [
        ("authentication-failure", "failure"),
        ("authentication-success", "success"),
    ] {
        for (host, n) in counters.counts(event) {
            f.sample(
                &format!("{name}_total"),
                &[("host", &host), ("result", result)],
                n,
            );
        }
    }
    // XEP-0198 (lilt's own: Prosody counts other moments).
    let name = "lilt_mod_smacks__hibernating";
    let mut f = Family::start(
        &mut out,
        name,
        "gauge",
        "",
        "Sessions hibernating, waiting to be resumed",
    );
    f.sample(
        name,
        &[],
        xmpp_core::smacks::registry::Registry::of(server).hibernating_count(),
    );
    for (event, name, help) in [
        (
            "smacks-hibernation-start",
            "lilt_mod_smacks__hibernations",
            "Sessions that lost their connection and started hibernating",
        ),
        (
            "smacks-hibernation-end",
            "lilt_mod_smacks__resumptions",
            "Hibernating sessions resumed",
        ),
    ] {
        let mut f = Family::start(&mut out, name, "counter", "", help);
        for (host, n) in counters.counts(event) {
            f.sample(&format!("{name}_total"), &[("host", &host)], n);
        }
    }

    process_families(&mut out);
    out.push_str("# EOF\n");
    out
}

/// What /proc says about this process.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    start_time: f64,
    virtual_bytes: u64,
    resident_bytes: u64,
    open_fds: u64,
    max_fds: u64,
}

/// Reads `/proc/self/stat` (the fields after the command name, which may
/// hold spaces and parentheses) with the clock tick, page size and boot
/// time it is relative to.
fn parse_stat(stat: &str, tick: f64, page: u64, boot_time: f64) -> Option<ProcessStats> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), so field N is at N - 3.
    let num = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / tick,
        start_time: boot_time + num(22)? as f64 / tick,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        ..ProcessStats::default()
    })
}

fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let boot_time: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let mut stats = parse_stat(&stat, tick.max(1) as f64, page.max(1) as u64, boot_time)?;
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        stats.max_fds = limit.rlim_cur;
    }
    Some(stats)
}

fn process_families(out: &mut String) {
    let Some(p) = process_stats() else { return };
    let mut f = Family::start(
        out,
        "process_cpu_seconds",
        "counter",
        "seconds",
        "Total user and system CPU time spent in seconds",
    );
    f.sample("process_cpu_seconds_total", &[], p.cpu_seconds);
    let gauges: [(&str, &str, &str, f64); 5] = [
        (
            "process_start_time_seconds",
            "seconds",
            "Start time of the process since unix epoch in seconds",
            p.start_time,
        ),
        (
            "process_virtual_memory_bytes",
            "bytes",
            "Virtual memory size in bytes",
            p.virtual_bytes as f64,
        ),
        (
            "process_resident_memory_bytes",
            "bytes",
            "Resident memory size in bytes",
            p.resident_bytes as f64,
        ),
        (
            "process_open_fds",
            "",
            "Number of open file descriptors",
            p.open_fds as f64,
        ),
        (
            "process_max_fds",
            "",
            "Maximum number of open file descriptors",
            p.max_fds as f64,
        ),
    ];
    for (name, unit, help, value) in gauges {
        Family::start(out, name, "gauge", unit, help).sample(name, &[], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 123456789 300 18446744073709551615";
        let p = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.start_time, 1_700_000_010.0);
        assert_eq!(p.virtual_bytes, 123_456_789);
        assert_eq!(p.resident_bytes, 300 * 4096);
        assert_eq!(parse_stat("garbage", 100.0, 4096, 0.0), None);
    }

    #[test]
    fn access_by_address_and_range() {
        let a = Access {
            ips: vec!["127.0.0.1".parse().unwrap()],
            cidr: parse_cidr("10.1.0.0/16"),
        };
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(a.allows("10.1.200.3".parse().unwrap()));
        assert!(!a.allows("10.2.0.1".parse().unwrap()));
        assert!(!a.allows("::1".parse().unwrap()));
        assert_eq!(parse_cidr("10.0.0.0/40"), None);
        let all = Access {
            ips: vec![],
            cidr: parse_cidr("0.0.0.0/0"),
        };
        assert!(all.allows("192.0.2.1".parse().unwrap()));
    }
}
