//! Routing to a component host, as Prosody's mod_component: stanzas to
//! `comp.example`, `user@comp.example` and `user@comp.example/res` go to the
//! connected component; while none is connected they bounce with
//! `remote-server-timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{ErrorType, StanzaError};
use crate::hooks::Event;
use crate::host::Host;
use crate::router::is_reply_type;
use crate::server::Server;
use crate::session::Session;
use crate::session::SessionKind;
use crate::stanza::Element;

/// The namespace of Prosody's `<not-connected/>` error extension.
pub const NS_COMPONENT_STATUS: &str = "xmpp:prosody.im/protocol/component";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// The events mod_component hooks, each at priority -1 so that modules
/// loaded on the component host see stanzas first.
const ROUTED_EVENTS: [&str; 9] = [
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

/// Which session serves a component host (Prosody's `env.connected` and
/// `env.session` of mod_component). One per host, as a host extension.
#[derive(Default)]
pub struct ComponentLink {
    /// Routing hooks are installed (mod_component is loaded here).
    loaded: AtomicBool,
    session: Mutex<Option<Arc<Session>>>,
}

impl ComponentLink {
    /// Is the host served by a component (external or in-process)?
    pub fn is_external(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The connected component's session.
    pub fn session(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_connected(&self) -> bool {
        self.session().is_some()
    }

    /// Makes `session` the host's component. When one is connected already:
    /// with `kick_old` it is replaced and returned as `Err(Some(old))` for the
    /// caller to close (the new one is connected); otherwise `Err(None)` and
    /// nothing changes.
    pub fn connect(
        &self,
        session: &Arc<Session>,
        kick_old: bool,
    ) -> Result<(), Option<Arc<Session>>> {
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            None => {
                *slot = Some(session.clone());
                Ok(())
            }
            Some(_) if !kick_old => Err(None),
            Some(_) => Err(slot.replace(session.clone())),
        }
    }

    /// Forgets `session` if it is the connected one; `true` if it was.
    pub fn disconnect(&self, session: &Arc<Session>) -> bool {
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *slot = None;
            return true;
        }
        false
    }
}

/// Loads mod_component's routing on a component host (idempotent): from
/// now on the host accepts a component connection (external or
/// in-process) and routes stanzas for it.
pub fn load(host: &Arc<Host>) {
    let link = host.extension::<ComponentLink>();
    if link.loaded.swap(true, Ordering::AcqRel) {
        return;
    }
    for name in ROUTED_EVENTS {
        let link = link.clone();
        host.events.hook(name, -1, move |event| {
            handle_stanza(&link, event);
            true
        });
    }
    host.mark_module_loaded("component");
}

fn handle_stanza(link: &ComponentLink, event: &mut Event) {
    let Some(stanza) = event.stanza.take() else {
        return;
    };
    if let Some(session) = link.session() {
        // A send fails only when the connection is already gone: bounce then.
        if session.send(stanza.clone()) {
            return;
        }
    }
    let (Some(host), Some(origin)) = (event.host.clone(), event.origin.clone()) else {
        return;
    };
    let server = event.server.clone();
    if let Some(reply) = disco_info_reply(&host, &stanza) {
        origin.send(reply);
        return;
    }
    tracing::warn!(host = %host.name, "component not connected, bouncing error for <{} to={:?}>", stanza.name(), stanza.to());
    if !is_reply_type(&stanza) {
        bounce(&server, &host, &origin, &stanza);
    }
}

/// Prosody's answer while the component is away: `remote-server-timeout`
/// (wait) "Component unavailable", `by` the host unless the reply comes from
/// it, with `<not-connected xmlns='xmpp:prosody.im/protocol/component'/>`.
fn bounce(server: &Arc<Server>, host: &Arc<Host>, origin: &Arc<Session>, stanza: &Element) {
    let mut reply = StanzaError::new(ErrorType::Wait, "remote-server-timeout")
        .with_text("Component unavailable")
        .reply_to(stanza);
    let reply_from = reply.from().map(str::to_string);
    let ns = reply.ns().to_string();
    if let Some(error) = reply.get_child_mut("error", &ns) {
        if reply_from.as_deref() != Some(host.name.as_str()) {
            error.set_attr("by", Some(host.name.clone()));
        }
        error.push_child(Element::new("not-connected", NS_COMPONENT_STATUS));
    }
    if origin.kind != SessionKind::Local {
        origin.send(reply);
    } else if reply.to().is_some_and(|to| to != origin.host) {
        // A module's stanza bounced: the error goes to whom it names.
        server.post_stanza(origin, reply, false);
    }
}

/// The disco#info a disconnected component's host answers itself when its
/// section sets `name`.
fn disco_info_reply(host: &Host, stanza: &Element) -> Option<Element> {
    if stanza.name() != "iq" || stanza.type_() != Some("get") || stanza.to() != Some(&host.name) {
        return None;
    }
    let name = host.option_str("name")?;
    let query = stanza.first_child()?;
    if !query.is("query", NS_DISCO_INFO) || query.get_attr("node").is_some_and(|n| !n.is_empty()) {
        return None;
    }
    let reply = stanza.reply().child(
        Element::new("query", NS_DISCO_INFO)
            .child(
                Element::new("identity", NS_DISCO_INFO)
                    .attr("category", "component")
                    .attr("type", "generic")
                    .attr("name", name),
            )
            .child(Element::new("feature", NS_DISCO_INFO).attr("var", NS_DISCO_INFO)),
    );
    Some(reply)
}

/// A complete stanza from the parts of an [`crate::session::Outbound::Raw`].
pub(super) fn parse_raw(parts: &[bytes::Bytes]) -> Option<Element> {
    use crate::stream::{StreamEvent, StreamLimits, XmlStream};
    let mut text = String::from(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    );
    for p in parts {
        text.push_str(std::str::from_utf8(p).ok()?);
    }
    let mut xml = XmlStream::new(StreamLimits {
        max_stanza_size: text.len().saturating_add(1),
        ..StreamLimits::default()
    });
    let mut events = Vec::new();
    if let Err(e) = xml.feed(text.as_bytes(), &mut events) {
        tracing::warn!("dropping an unparsable shared stanza for a component: {e}");
        return None;
    }
    events.into_iter().find_map(|e| match e {
        StreamEvent::Stanza(s) => Some(s),
        _ => None,
    })
}
