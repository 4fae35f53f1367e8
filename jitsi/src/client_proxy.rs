//! `client_proxy`: prosody-modules' `mod_client_proxy` as Jitsi Meet ships
//! it, loaded as a component:
//!
//! ```lua
//! Component "focus.meet.jitsi" "client_proxy"
//!     target_address = "focus@auth.meet.jitsi"
//! ```
//!
//! IQ requests to the component (any address on it) go to one of the
//! target's available resources, picked at random, with the sender
//! encoded in the resource of the `from` ("JAT": `from` becomes
//! `focus.meet.jitsi/<original sender's full JID>`), so that the target's
//! result or error, addressed there, is sent back to the original sender
//! with `from` set to the component. Exactly as the Lua module:
//!
//! - the component subscribes to the target's presence when it loads, and
//!   follows it: an available presence adds the resource, unavailable
//!   removes it, an error presence forgets them all;
//! - an IQ get/set while no resource is known: `cancel/service-unavailable`;
//! - messages, either way: `cancel/feature-not-implemented`;
//! - a presence from anyone but the target (other than an error):
//!   `cancel/bad-request`;
//! - an IQ get/set from the target to a proxied address (outbound
//!   requests are not translated): `cancel/feature-not-implemented`; any
//!   other stanza from the target addressed to the bare component:
//!   `cancel/bad-request`;
//! - results and errors from others (not the target) are dropped.
//!
//! [`ClientProxy::handle`] is the whole logic, without I/O: a stanza in,
//! what to send out.

use std::sync::{Arc, Mutex};

use rand::Rng;
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{ErrorType, Event, Host, Jid, Server};

use modules::ModuleError;

const EVENTS: &[&str] = &[
    "iq/bare",
    "message/bare",
    "presence/bare",
    "iq/full",
    "message/full",
    "presence/full",
    "iq/host",
    "message/host",
    "presence/host",
];

/// The proxy's state: its own address, the target, the target's
/// resources seen available.
#[derive(Debug)]
pub struct ClientProxy {
    host: String,
    target: Jid,
    resources: Mutex<Vec<String>>,
}

fn error_reply(stanza: &Element, type_: ErrorType, condition: &'static str) -> Element {
    StanzaError::new(type_, condition).reply_to(stanza)
}

impl ClientProxy {
    pub fn new(host: &str, target: Jid) -> ClientProxy {
        ClientProxy {
            host: host.to_string(),
            target: target.to_bare(),
            resources: Mutex::new(Vec::new()),
        }
    }

    /// The target's resources currently known to be available.
    pub fn resources(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The presence subscription the component sends when it loads.
    pub fn subscription_request(&self) -> Element {
        Element::new("presence", NS_CLIENT)
            .attr("type", "subscribe")
            .attr("to", self.target.to_string())
            .attr("from", self.host.as_str())
    }

    /// A stanza addressed to the component (or an address on it): what to
    /// send in return, if anything.
    pub fn handle(&self, stanza: &Element) -> Option<Element> {
        let from = stanza.from().and_then(|f| Jid::parse(f).ok());
        let to = stanza.to().and_then(|t| Jid::parse(t).ok());
        let to_resource = to.as_ref().and_then(|t| t.resource().map(str::to_string));
        if from.as_ref().map(Jid::to_bare).as_ref() == Some(&self.target) {
            match to_resource {
                None if stanza.name() == "presence" => {
                    self.target_presence(stanza, from.as_ref());
                    None
                }
                None => Some(error_reply(stanza, ErrorType::Cancel, "bad-request")),
                Some(original) => self.reply_from_target(stanza, &original),
            }
        } else {
            self.to_target(stanza)
        }
    }

    fn target_presence(&self, stanza: &Element, from: Option<&Jid>) {
        let resource = from.and_then(Jid::resource).map(str::to_string);
        let mut resources = self.lock();
        match (stanza.type_(), resource) {
            (Some("error"), _) => {
                tracing::debug!(host = %self.host, "error presence from the target: forgetting its resources");
                resources.clear();
            }
            (Some("unavailable"), Some(r)) => {
                resources.retain(|known| *known != r);
                tracing::debug!(host = %self.host, "target resource {r} gone");
            }
            (None, Some(r)) if !resources.contains(&r) => {
                tracing::debug!(host = %self.host, "target resource {r} available");
                resources.push(r);
            }
            _ => {}
        }
    }

    /// From the target to `host/<original>`: results and errors go back to
    /// the original sender.
    fn reply_from_target(&self, stanza: &Element, original: &str) -> Option<Element> {
        match (stanza.name(), stanza.type_()) {
            ("iq", Some("result" | "error")) => {
                let Ok(to) = Jid::parse(original) else {
                    tracing::debug!(host = %self.host, "cannot de-NAT a reply to the invalid address {original:?}");
                    return None;
                };
                let mut reply = stanza.clone();
                reply.set_attr("from", Some(self.host.clone()));
                reply.set_attr("to", Some(to.to_string()));
                Some(reply)
            }
            ("iq", _) | ("message", _) => Some(error_reply(
                stanza,
                ErrorType::Cancel,
                "feature-not-implemented",
            )),
            _ => None,
        }
    }

    /// From anyone else: IQ requests go to a target resource.
    fn to_target(&self, stanza: &Element) -> Option<Element> {
        match (stanza.name(), stanza.type_()) {
            ("presence", Some("error")) => None,
            ("presence", _) => Some(error_reply(stanza, ErrorType::Cancel, "bad-request")),
            ("iq", Some("get" | "set")) => {
                let resource = {
                    let resources = self.lock();
                    if resources.is_empty() {
                        None
                    } else {
                        let i = rand::thread_rng().gen_range(0..resources.len());
                        Some(resources[i].clone())
                    }
                };
                let Some(resource) = resource else {
                    tracing::debug!(host = %self.host, "no target resource to send an IQ to");
                    return Some(error_reply(
                        stanza,
                        ErrorType::Cancel,
                        "service-unavailable",
                    ));
                };
                let sender = stanza.from().unwrap_or_default();
                let mut request = stanza.clone();
                request.set_attr("from", Some(format!("{}/{sender}", self.host)));
                request.set_attr("to", Some(format!("{}/{resource}", self.target)));
                Some(request)
            }
            ("message", _) => Some(error_reply(
                stanza,
                ErrorType::Cancel,
                "feature-not-implemented",
            )),
            _ => None,
        }
    }
}

/// Loads the module on a component host (`target_address` is required).
pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    let failed = |reason: String| ModuleError::Failed {
        module: "client_proxy".into(),
        host: host.name.clone(),
        reason,
    };
    if !host.is_component() {
        return Err(failed("client_proxy should be loaded as component".into()));
    }
    let target = match host.option("target_address") {
        Some(v) => v.as_str().and_then(|s| Jid::parse(s).ok()).ok_or_else(|| {
            host.option_error(
                "target_address",
                "must be the JID of the implementing client".into(),
            )
        })?,
        None => {
            return Err(host
                .option_error("target_address", "is required by client_proxy".into())
                .into());
        }
    };
    let proxy = Arc::new(ClientProxy::new(&host.name, target));
    for name in EVENTS {
        let proxy = proxy.clone();
        host.events.hook(name, -1, move |event: &mut Event| {
            let Some(stanza) = event.stanza.as_ref() else {
                return false;
            };
            if let Some(out) = proxy.handle(stanza)
                && let Some(host) = event.host.clone()
            {
                event.server.send_from_host(&host, out);
            }
            true
        });
    }
    tracing::debug!(host = %host.name, "loaded proxy for {}", proxy.target);
    server.send_from_host(host, proxy.subscription_request());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "focus.example";
    const TARGET: &str = "focus@auth.example";

    fn proxy() -> ClientProxy {
        ClientProxy::new(HOST, Jid::parse(TARGET).expect("jid"))
    }

    fn stanza(name: &str, type_: Option<&str>, from: &str, to: &str) -> Element {
        let mut e = Element::new(name, NS_CLIENT)
            .attr("from", from)
            .attr("to", to)
            .attr("id", "x1");
        e.set_attr("type", type_.map(str::to_string));
        e
    }

    fn condition(e: &Element) -> Option<String> {
        e.get_child("error", NS_CLIENT)?
            .children()
            .next()
            .map(|c| c.name().to_string())
    }

    #[test]
    fn iqs_go_to_an_available_resource_and_replies_come_back() {
        let p = proxy();
        let guest = "abc@guest.example/res1";
        let iq = stanza("iq", Some("set"), guest, HOST);
        let refused = p.handle(&iq).expect("an error");
        assert_eq!(condition(&refused).as_deref(), Some("service-unavailable"));
        assert_eq!(refused.to(), Some(guest));

        assert!(
            p.handle(&stanza("presence", None, &format!("{TARGET}/r1"), HOST))
                .is_none()
        );
        assert_eq!(p.resources(), vec!["r1".to_string()]);
        let forwarded = p.handle(&iq).expect("forwarded");
        assert_eq!(forwarded.to(), Some(&*format!("{TARGET}/r1")));
        assert_eq!(forwarded.from(), Some(&*format!("{HOST}/{guest}")));
        assert_eq!(forwarded.id(), Some("x1"));

        let result = stanza(
            "iq",
            Some("result"),
            &format!("{TARGET}/r1"),
            &format!("{HOST}/{guest}"),
        );
        let back = p.handle(&result).expect("de-NATed");
        assert_eq!((back.from(), back.to()), (Some(HOST), Some(guest)));

        assert!(
            p.handle(&stanza(
                "presence",
                Some("unavailable"),
                &format!("{TARGET}/r1"),
                HOST
            ))
            .is_none()
        );
        assert!(p.resources().is_empty());
    }

    #[test]
    fn errors_as_the_lua_module_gives_them() {
        let p = proxy();
        let guest = "abc@guest.example/res1";
        let m = p
            .handle(&stanza("message", Some("chat"), guest, HOST))
            .expect("error");
        assert_eq!(condition(&m).as_deref(), Some("feature-not-implemented"));
        let pr = p
            .handle(&stanza("presence", None, guest, HOST))
            .expect("error");
        assert_eq!(condition(&pr).as_deref(), Some("bad-request"));
        assert!(
            p.handle(&stanza("presence", Some("error"), guest, HOST))
                .is_none()
        );
        assert!(
            p.handle(&stanza("iq", Some("result"), guest, HOST))
                .is_none()
        );
        let out = stanza(
            "iq",
            Some("get"),
            &format!("{TARGET}/r1"),
            &format!("{HOST}/{guest}"),
        );
        assert_eq!(
            condition(&p.handle(&out).expect("error")).as_deref(),
            Some("feature-not-implemented")
        );
        let direct = stanza("iq", Some("get"), &format!("{TARGET}/r1"), HOST);
        assert_eq!(
            condition(&p.handle(&direct).expect("error")).as_deref(),
            Some("bad-request")
        );
        p.handle(&stanza("presence", None, &format!("{TARGET}/r1"), HOST));
        p.handle(&stanza("presence", None, &format!("{TARGET}/r2"), HOST));
        p.handle(&stanza("presence", None, &format!("{TARGET}/r2"), HOST));
        assert_eq!(p.resources().len(), 2);
        p.handle(&stanza("presence", Some("error"), TARGET, HOST));
        assert!(p.resources().is_empty());
    }
}
