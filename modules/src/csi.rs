//! `csi`: Prosody's mod_csi — XEP-0352 Client State Indication, the
//! protocol part: the `<csi xmlns='urn:xmpp:csi:0'/>` stream feature
//! (after authentication, when a handler such as `csi_simple` is loaded),
//! and the client's `<active/>` / `<inactive/>` (top-level elements) turned
//! into the host events `csi-client-active` and `csi-client-inactive`. The
//! state is the session attribute [`CSI_STATE`] ("active" or "inactive").

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::value::Value;
use xmpp_core::{Event, Host, Server};

use crate::ModuleError;

pub const NS_CSI: &str = "urn:xmpp:csi:0";
/// The session attribute holding the client's last indicated state.
pub const CSI_STATE: &str = "csi_state";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    host.events.hook("stream-features", 0, |e| {
        let handled = e
            .host
            .as_ref()
            .is_some_and(|h| h.events.has_handlers("csi-client-active"));
        if handled
            && e.origin.as_ref().is_some_and(|o| o.username().is_some())
            && let Some(f) = e.stanza.as_mut()
        {
            f.push_child(Element::new("csi", NS_CSI));
        }
        false
    });
    for (state, event) in [
        ("active", "csi-client-active"),
        ("inactive", "csi-client-inactive"),
    ] {
        host.events
            .hook(&format!("stanza/{NS_CSI}:{state}"), 0, move |e| {
                refire(e, state, event)
            });
    }
    Ok(())
}

fn refire(e: &mut Event, state: &str, name: &str) -> bool {
    let (Some(host), Some(origin)) = (e.host.clone(), e.origin.clone()) else {
        return false;
    };
    if origin.username().is_none() {
        return false;
    }
    origin
        .state()
        .attributes
        .insert(CSI_STATE, Value::str(state));
    let server = e.server.clone();
    let mut ev = Event::new(&server, name).with_origin(&origin);
    server.fire_on_host(&host, name, &mut ev);
    true
}
