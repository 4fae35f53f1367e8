//! `muc_domain_mapper` (Jitsi's mod_muc_domain_mapper), loaded on the
//! conference MUC: tenants. Clients of `https://x/tenant/room` address the
//! room as `room@conference.tenant.x`; the room is
//! `[tenant]room@conference.x`. On every host:
//!
//! - stanzas from clients (`pre-<stanza>/<type>`) get their `to` mapped to
//!   the real room (and a room-less `to`, `conference.tenant.x`, to the
//!   component, remembering the stanza id so that the answer's `from` is put
//!   back), and the `room` of a Jicofo `<conference/>` IQ too;
//! - stanzas arriving at a host (`<stanza>/<type>`) from the real MUC get
//!   their `from` mapped back to the virtual address, so every occupant,
//!   Jicofo included, sees `room@conference.tenant.x/nick`;
//! - and, as Jitsi's `filters.add_filter(session, "stanzas/out", ...)`,
//!   every client session gets an outbound filter when it binds a resource
//!   ([`xmpp_core::Session::add_outbound_filter`]), so what the MUC sends
//!   straight to a session (an error to a join, a disco reply, a shared
//!   broadcast) carries the virtual address too.
//!
//! Options: `muc_mapper_domain_base` (without it the module is inactive),
//! `muc_mapper_domain_prefix` (default `conference`), `muc_mapper_domain`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server};

use super::util::TenantMapping;
use muc::events::lock;

/// Jicofo's conference IQ payload.
pub const NS_FOCUS: &str = "http://jitsi.org/protocol/focus";
/// Room-less requests remembered at most (oldest forgotten first).
const ROOMLESS_MAX: usize = 10_000;

/// Room-less requests: (id, sender) → the virtual domain they were sent to.
#[derive(Default)]
struct Roomless {
    map: HashMap<(String, String), String>,
    order: std::collections::VecDeque<(String, String)>,
}

/// The mapper of one deployment, shared by the hooks on every host.
pub struct Mapper {
    pub mapping: TenantMapping,
    roomless: Mutex<Roomless>,
}

impl Mapper {
    pub fn new(mapping: TenantMapping) -> Mapper {
        Mapper {
            mapping,
            roomless: Mutex::new(Roomless::default()),
        }
    }

    /// A stanza on its way in: `to` (and a conference IQ's `room`) from
    /// virtual to real.
    pub fn rewrite_to(&self, stanza: &mut Element) {
        if stanza.name() == "iq"
            && let Some(conf) = stanza.get_child_mut("conference", NS_FOCUS)
            && let Some(real) = conf.get_attr("room").and_then(|r| self.mapping.to_real(r))
        {
            conf.set_attr("room", Some(real));
        }
        let Some(to) = stanza.to().map(str::to_string) else {
            return;
        };
        let Some(real) = self.mapping.to_real(&to) else {
            return;
        };
        if !real.contains('@')
            && let (Some(id), Some(from)) = (stanza.id(), stanza.from())
        {
            let key = (id.to_string(), from.to_string());
            let mut r = lock(&self.roomless);
            if r.map.insert(key.clone(), to.clone()).is_none() {
                r.order.push_back(key);
            }
            while r.order.len() > ROOMLESS_MAX {
                if let Some(old) = r.order.pop_front() {
                    r.map.remove(&old);
                }
            }
        }
        stanza.set_attr("to", Some(real));
    }

    /// A stanza arriving at a host: `from` from real to virtual (and the
    /// answer to a room-less request back to the address it was sent to).
    pub fn rewrite_from(&self, stanza: &mut Element) {
        let Some(from) = stanza.from().map(str::to_string) else {
            return;
        };
        if from == self.mapping.muc_domain {
            if let (Some(id), Some(to)) = (stanza.id(), stanza.to()) {
                let key = (id.to_string(), to.to_string());
                let mut r = lock(&self.roomless);
                if let Some(virtual_) = r.map.remove(&key) {
                    r.order.retain(|k| *k != key);
                    stanza.set_attr("from", Some(virtual_));
                }
            }
            return;
        }
        if let Some(v) = self.mapping.to_virtual(&from) {
            stanza.set_attr("from", Some(v));
        }
    }
}

const STANZAS: [&str; 3] = ["message", "presence", "iq"];
const TYPES: [&str; 3] = ["host", "bare", "full"];

/// Hooks the mapper on one host.
pub fn add_host(host: &Host, mapper: &Arc<Mapper>) {
    let m = mapper.clone();
    host.events
        .hook("resource-bind", 0, move |event: &mut Event| {
            if let Some(session) = &event.origin {
                let domain = m.mapping.muc_domain.clone();
                let m = m.clone();
                // Only what comes from the real MUC domain can change.
                session.add_outbound_filter_from(
                    0,
                    Arc::new(move |from: &str| super::util::split(from).1 == domain),
                    Arc::new(move |_, mut stanza: Element| {
                        m.rewrite_from(&mut stanza);
                        Some(stanza)
                    }),
                );
            }
            false
        });
    for name in STANZAS {
        for kind in TYPES {
            let m = mapper.clone();
            // Before the handlers that deliver (0) and the MUC (-2).
            host.events
                .hook(&format!("{name}/{kind}"), 1, move |event: &mut Event| {
                    if let Some(s) = event.stanza.as_mut() {
                        m.rewrite_from(s);
                    }
                    false
                });
            let m = mapper.clone();
            host.events.hook(
                &format!("pre-{name}/{kind}"),
                0,
                move |event: &mut Event| {
                    if let Some(s) = event.stanza.as_mut() {
                        m.rewrite_to(s);
                    }
                    false
                },
            );
        }
    }
}

/// Whether the mapper is already hooked on the server.
#[derive(Default)]
struct Installed(Mutex<bool>);

pub fn register(
    server: &Arc<Server>,
    host: &Arc<Host>,
) -> Result<(), xmpp_core::config::OptionError> {
    let Some(mapping) = TenantMapping::from_host(host)? else {
        tracing::warn!(host = %host.name, "no 'muc_mapper_domain_base' option set, muc_domain_mapper inactive");
        return Ok(());
    };
    let installed = server.extension::<Installed>();
    let mut installed = lock(&installed.0);
    if *installed {
        return Ok(());
    }
    *installed = true;
    tracing::info!(host = %host.name, "muc_domain_mapper: {}.<tenant>.{} -> [tenant]room@{}", mapping.prefix, mapping.base, mapping.muc_domain);
    let mapper = Arc::new(Mapper::new(mapping));
    for h in server.hosts() {
        add_host(&h, &mapper);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stanza::NS_CLIENT;

    fn mapper() -> Mapper {
        Mapper::new(TenantMapping::new("conference", "x.org", None))
    }

    #[test]
    fn presence_both_ways() {
        let m = mapper();
        let mut join = Element::new("presence", NS_CLIENT)
            .attr("from", "u@x.org/r")
            .attr("to", "room@conference.t.x.org/nick");
        m.rewrite_to(&mut join);
        assert_eq!(join.to(), Some("[t]room@conference.x.org/nick"));
        let mut back = Element::new("presence", NS_CLIENT)
            .attr("from", "[t]room@conference.x.org/nick")
            .attr("to", "u@x.org/r");
        m.rewrite_from(&mut back);
        assert_eq!(back.from(), Some("room@conference.t.x.org/nick"));
    }

    #[test]
    fn conference_iq_room() {
        let m = mapper();
        let mut iq = Element::new("iq", NS_CLIENT)
            .attr("id", "1")
            .attr("to", "focus.x.org")
            .child(Element::new("conference", NS_FOCUS).attr("room", "room@conference.t.x.org"));
        m.rewrite_to(&mut iq);
        assert_eq!(
            iq.get_child("conference", NS_FOCUS)
                .and_then(|c| c.get_attr("room")),
            Some("[t]room@conference.x.org")
        );
        assert_eq!(iq.to(), Some("focus.x.org"));
    }

    #[test]
    fn roomless_answer_comes_back_from_the_virtual_domain() {
        let m = mapper();
        let mut q = Element::new("iq", NS_CLIENT)
            .attr("id", "d1")
            .attr("from", "u@x.org/r")
            .attr("to", "conference.t.x.org");
        m.rewrite_to(&mut q);
        assert_eq!(q.to(), Some("conference.x.org"));
        // Someone else's answer with the same id is not touched.
        let mut other = Element::new("iq", NS_CLIENT)
            .attr("id", "d1")
            .attr("from", "conference.x.org")
            .attr("to", "v@x.org/r");
        m.rewrite_from(&mut other);
        assert_eq!(other.from(), Some("conference.x.org"));
        let mut answer = Element::new("iq", NS_CLIENT)
            .attr("id", "d1")
            .attr("from", "conference.x.org")
            .attr("to", "u@x.org/r");
        m.rewrite_from(&mut answer);
        assert_eq!(answer.from(), Some("conference.t.x.org"));
    }
}
