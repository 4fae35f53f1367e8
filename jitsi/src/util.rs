//! What several of Jitsi's modules share (Jitsi's `util.lib.lua`): the
//! health-check rooms, the focus, admins, recorders and transcribers
//! (`recorder_prefixes`, `transcriber_prefixes`), status codes in a presence, and
//! the tenant mapping between `room@conference.tenant.example.com` (what
//! clients use) and `[tenant]room@conference.example.com` (the room).

use xmpp_core::stanza::Element;
use xmpp_core::{Host, Value, config::OptionError};

use muc::util::{NS_MUC_USER, bare_of};

/// Jicofo's health-check rooms start with this name.
pub const HEALTHCHECK_PREFIX: &str = "__jicofo-health-check";

/// Is this one of Jicofo's health-check rooms (`is_healthcheck_room`)?
pub fn is_healthcheck_room(room_jid: &str) -> bool {
    room_jid.starts_with(HEALTHCHECK_PREFIX)
}

/// Is this occupant JID the focus's (`ends_with(nick, '/focus')`)? Jicofo
/// joins every conference under the nickname `focus`.
pub fn is_focus_nick(occupant_jid: &str) -> bool {
    occupant_jid.ends_with("/focus")
}

/// Is `jid` an admin of `host` (Prosody's `usermanager.is_admin(jid,
/// module.host)`: the host's `admins`, which fall back to the global ones)?
/// Jicofo's `focus@auth.<domain>` is one in Jitsi's configurations.
pub fn is_admin(host: &Host, jid: &str) -> bool {
    if let Some(service) = muc::service_for(host) {
        return service.is_admin(jid);
    }
    let bare = bare_of(jid);
    let global = host
        .config()
        .get_global("admins")
        .and_then(Value::as_string_list)
        .unwrap_or_default();
    !bare.is_empty()
        && (host.option_list("admins").iter().any(|a| a == bare)
            || global.iter().any(|a| a == bare))
}

/// Jitsi's default `recorder_prefixes` (`RECORDER_PREFIXES`).
pub const DEFAULT_RECORDER_PREFIXES: [&str; 3] =
    ["recorder@recorder.", "jibria@recorder.", "jibrib@recorder."];
/// Jitsi's default `transcriber_prefixes` (`TRANSCRIBER_PREFIXES`).
pub const DEFAULT_TRANSCRIBER_PREFIXES: [&str; 3] = [
    "transcriber@recorder.",
    "transcribera@recorder.",
    "transcriberb@recorder.",
];

/// Prosody's `module:get_option_inherited_set(name, default)`: the host's
/// value (which itself falls back to the global one, then to `default`)
/// joined with the global value (or `default`). A single string counts as a
/// one-item list.
fn inherited_set(
    host_value: Option<&Value>,
    global: Option<&Value>,
    default: &[&str],
) -> Vec<String> {
    let or_default = |v: Option<&Value>| {
        v.and_then(Value::as_string_list)
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
    };
    let mut set = or_default(host_value);
    for item in or_default(global) {
        if !set.contains(&item) {
            set.push(item);
        }
    }
    set
}

/// The host's `recorder_prefixes` (an inherited set, Jitsi's defaults).
pub fn recorder_prefixes(host: &Host) -> Vec<String> {
    let global = host.config().get_global("recorder_prefixes");
    inherited_set(
        host.option("recorder_prefixes"),
        global,
        &DEFAULT_RECORDER_PREFIXES,
    )
}

/// The host's `transcriber_prefixes` (an inherited set, Jitsi's defaults).
pub fn transcriber_prefixes(host: &Host) -> Vec<String> {
    let global = host.config().get_global("transcriber_prefixes");
    inherited_set(
        host.option("transcriber_prefixes"),
        global,
        &DEFAULT_TRANSCRIBER_PREFIXES,
    )
}

/// Does `s` start with one of `prefixes` (`starts_with_one_of`)?
pub fn starts_with_one_of(s: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|p| s.starts_with(p.as_str()))
}

/// Is this real JID a Jibri recorder's (`is_jibri(occupant)`: the
/// occupant's real JID starts with one of `recorder_prefixes`)?
pub fn is_jibri(host: &Host, real_jid: &str) -> bool {
    starts_with_one_of(real_jid, &recorder_prefixes(host))
}

/// Is this JID a transcriber's (`is_transcriber(jid)`: it starts with one
/// of `transcriber_prefixes`)?
pub fn is_transcriber(host: &Host, jid: &str) -> bool {
    starts_with_one_of(jid, &transcriber_prefixes(host))
}

/// Does the `<x xmlns='…muc#user'/>` carry status `code`
/// (`presence_check_status`)?
pub fn presence_check_status(x: Option<&Element>, code: &str) -> bool {
    x.is_some_and(|x| {
        x.children()
            .any(|c| c.is("status", NS_MUC_USER) && c.get_attr("code") == Some(code))
    })
}

/// Splits a room node `[tenant]room` into the tenant and the room name
/// (`extract_subdomain`).
pub fn extract_subdomain(node: &str) -> Option<(&str, &str)> {
    let rest = node.strip_prefix('[')?;
    let end = rest.find(']')?;
    let (tenant, room) = (&rest[..end], &rest[end + 1..]);
    (!tenant.is_empty() && !room.is_empty()).then_some((tenant, room))
}

/// Splits a JID into node, domain and resource (`util.jid.split`).
pub fn split(jid: &str) -> (Option<&str>, &str, Option<&str>) {
    let (bare, resource) = match jid.find('/') {
        Some(i) => (&jid[..i], Some(&jid[i + 1..])),
        None => (jid, None),
    };
    match bare.find('@') {
        Some(i) => (Some(&bare[..i]), &bare[i + 1..], resource),
        None => (None, bare, resource),
    }
}

fn join(node: Option<&str>, host: &str, resource: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(n) = node {
        out.push_str(n);
        out.push('@');
    }
    out.push_str(host);
    if let Some(r) = resource {
        out.push('/');
        out.push_str(r);
    }
    out
}

/// The tenant mapping of a deployment: options `muc_mapper_domain_base`,
/// `muc_mapper_domain_prefix` (default `conference`) and
/// `muc_mapper_domain` (default prefix + "." + base).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMapping {
    pub prefix: String,
    pub base: String,
    /// The real MUC domain.
    pub muc_domain: String,
}

impl TenantMapping {
    pub fn new(prefix: &str, base: &str, muc_domain: Option<&str>) -> TenantMapping {
        TenantMapping {
            prefix: prefix.to_string(),
            base: base.to_string(),
            muc_domain: muc_domain
                .map(str::to_string)
                .unwrap_or_else(|| format!("{prefix}.{base}")),
        }
    }

    /// The mapping a host's options give; `None` without
    /// `muc_mapper_domain_base` (the mapper is then inactive).
    pub fn from_host(host: &Host) -> Result<Option<TenantMapping>, OptionError> {
        let string = |name: &str| -> Result<Option<String>, OptionError> {
            match host.option(name) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()))
                    .ok_or_else(|| host.option_error(name, "expected a string".to_string())),
            }
        };
        let Some(base) = string("muc_mapper_domain_base")? else {
            return Ok(None);
        };
        let prefix = string("muc_mapper_domain_prefix")?.unwrap_or_else(|| "conference".into());
        let domain = string("muc_mapper_domain")?;
        Ok(Some(TenantMapping::new(&prefix, &base, domain.as_deref())))
    }

    /// The tenant of a virtual MUC domain `<prefix>.<tenant>.<base>` (Lua's
    /// pattern `^prefix.([^.]+)%.base`: one label, and the base may be
    /// followed by anything).
    pub fn tenant_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let rest = host.strip_prefix(self.prefix.as_str())?;
        let mut chars = rest.char_indices();
        chars.next()?;
        let rest = &rest[chars.next().map_or(rest.len(), |(i, _)| i)..];
        let end = rest.find('.')?;
        let tenant = &rest[..end];
        (!tenant.is_empty() && rest[end + 1..].starts_with(self.base.as_str())).then_some(tenant)
    }

    /// Virtual to real (`room_jid_match_rewrite`):
    /// `room@conference.tenant.x/nick` → `[tenant]room@conference.x/nick`,
    /// `conference.tenant.x` → `conference.x`; `None` when `jid` is not a
    /// virtual one.
    pub fn to_real(&self, jid: &str) -> Option<String> {
        let (node, host, resource) = split(jid);
        let tenant = self.tenant_of(host)?;
        let node = node.map(|n| format!("[{tenant}]{n}"));
        Some(join(node.as_deref(), &self.muc_domain, resource))
    }

    /// Real to virtual (`internal_room_jid_match_rewrite`):
    /// `[tenant]room@conference.x/nick` → `room@conference.tenant.x/nick`;
    /// `None` when `jid` is not a tenant room of the real MUC domain.
    pub fn to_virtual(&self, jid: &str) -> Option<String> {
        let (node, host, resource) = split(jid);
        if host != self.muc_domain {
            return None;
        }
        let (tenant, room) = extract_subdomain(node?)?;
        let host = format!("{}.{tenant}.{}", self.prefix, self.base);
        Some(join(Some(room), &host, resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debian() -> TenantMapping {
        TenantMapping::new("conference", "meet.example.com", None)
    }

    #[test]
    fn virtual_to_real_and_back() {
        let m = debian();
        assert_eq!(m.muc_domain, "conference.meet.example.com");
        let real = m
            .to_real("room1@conference.acme.meet.example.com/abcd")
            .unwrap();
        assert_eq!(real, "[acme]room1@conference.meet.example.com/abcd");
        assert_eq!(
            m.to_virtual(&real).as_deref(),
            Some("room1@conference.acme.meet.example.com/abcd")
        );
        assert_eq!(
            m.to_real("room1@conference.acme.meet.example.com")
                .as_deref(),
            Some("[acme]room1@conference.meet.example.com")
        );
        assert_eq!(
            m.to_real("conference.acme.meet.example.com").as_deref(),
            Some("conference.meet.example.com")
        );
    }

    #[test]
    fn other_jids_are_left_alone() {
        let m = debian();
        assert_eq!(m.to_real("room1@conference.meet.example.com"), None);
        assert_eq!(m.to_real("user@meet.example.com/r"), None);
        assert_eq!(m.to_real("room@conference.a.b.meet.example.com"), None);
        assert_eq!(m.to_virtual("room1@conference.meet.example.com/x"), None);
        assert_eq!(m.to_virtual("[t]room@elsewhere.example.com"), None);
        assert_eq!(m.to_virtual("conference.meet.example.com"), None);
        assert_eq!(m.to_virtual("[]room@conference.meet.example.com"), None);
    }

    #[test]
    fn docker_prefix() {
        let m = TenantMapping::new("muc", "meet.jitsi", None);
        assert_eq!(
            m.to_real("r@muc.t1.meet.jitsi/n").as_deref(),
            Some("[t1]r@muc.meet.jitsi/n")
        );
        assert_eq!(
            m.to_virtual("[t1]r@muc.meet.jitsi").as_deref(),
            Some("r@muc.t1.meet.jitsi")
        );
    }

    #[test]
    fn service_prefixes_are_an_inherited_set() {
        let list = |items: &[&str]| {
            let mut t = xmpp_core::value::Table::new();
            t.seq = items.iter().map(|s| Value::str(*s)).collect();
            Value::Table(t)
        };
        // Nothing configured: Jitsi's defaults.
        let d = inherited_set(None, None, &DEFAULT_RECORDER_PREFIXES);
        assert_eq!(d, DEFAULT_RECORDER_PREFIXES.to_vec());
        // Only the global option (docker-jitsi-meet): the host sees it too.
        let g = list(&["recorder@hidden.meet.jitsi"]);
        let set = inherited_set(Some(&g), Some(&g), &DEFAULT_RECORDER_PREFIXES);
        assert_eq!(set, vec!["recorder@hidden.meet.jitsi".to_string()]);
        // A host value joins the global one; a lone string is a list.
        let h = Value::str("jibri@x.");
        let set = inherited_set(Some(&h), Some(&g), &DEFAULT_RECORDER_PREFIXES);
        assert_eq!(
            set,
            vec!["jibri@x.".to_string(), "recorder@hidden.meet.jitsi".into()]
        );
        // A host value without a global one joins the defaults.
        let set = inherited_set(Some(&h), None, &DEFAULT_TRANSCRIBER_PREFIXES);
        assert_eq!(set.len(), 4);
        assert!(starts_with_one_of("transcriberb@recorder.x/r", &set));
        assert!(starts_with_one_of(
            "recorder@hidden.meet.jitsi/abc",
            &["recorder@hidden.meet.jitsi".to_string()]
        ));
        assert!(!starts_with_one_of("someone@meet.jitsi/r", &set));
        assert!(!starts_with_one_of("x", &[]));
    }

    #[test]
    fn is_jibri_and_is_transcriber_read_the_host() {
        use xmpp_core::config::{HostConfig, HostKind, Section, ServerConfig};
        let mut cfg = ServerConfig::default();
        cfg.global.set(
            "recorder_prefixes",
            Value::str("recorder@hidden.meet.jitsi"),
        );
        cfg.hosts.push(HostConfig {
            name: "muc.meet.jitsi".into(),
            kind: HostKind::Component {
                module: Some("muc".into()),
            },
            section: Section::default(),
            defined_at: Default::default(),
        });
        let server = xmpp_core::Server::new(cfg, xmpp_core::Clock::Fixed(0.0));
        let host = server.host("muc.meet.jitsi").unwrap();
        assert!(is_jibri(&host, "recorder@hidden.meet.jitsi/x1"));
        assert!(!is_jibri(&host, "recorder@recorder.meet.jitsi/x1"));
        assert!(!is_jibri(&host, "focus@auth.meet.jitsi/f"));
        // No transcriber_prefixes: Jitsi's defaults.
        assert!(is_transcriber(&host, "transcriber@recorder.meet.jitsi/t"));
        assert!(!is_transcriber(&host, "transcriber@hidden.meet.jitsi/t"));
    }

    #[test]
    fn helpers() {
        assert!(is_healthcheck_room("__jicofo-health-check-1@c.x"));
        assert!(!is_healthcheck_room("room@c.x"));
        assert!(is_focus_nick("room@c.x/focus"));
        assert!(!is_focus_nick("room@c.x/focuss"));
        assert_eq!(extract_subdomain("[a]b"), Some(("a", "b")));
        assert_eq!(extract_subdomain("ab"), None);
        let x = Element::new("x", NS_MUC_USER)
            .child(Element::new("status", NS_MUC_USER).attr("code", "307"));
        assert!(presence_check_status(Some(&x), "307"));
        assert!(!presence_check_status(Some(&x), "110"));
        assert!(!presence_check_status(None, "307"));
    }
}
