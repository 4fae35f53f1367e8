//! Resource binding (RFC 6120 §7, Prosody's mod_bind): the client's or a
//! random resource, Prosody's default conflict resolution (the old session
//! is replaced), `resource-bind` fired. A child of `negotiation`.

use std::sync::Arc;

use super::super::frame::Frame;
use super::{Action, C2sStream};
use crate::error::{StanzaError, StreamError, StreamErrorCondition as Cond};
use crate::hooks::Event;
use crate::host::Host;
use crate::jid::Jid;
use crate::session::Session;
use crate::stanza::{Element, NS_BIND, NS_CLIENT};

impl C2sStream {
    pub(super) fn handle_bind(
        &mut self,
        host: &Arc<Host>,
        session: &Arc<Session>,
        iq: Element,
        out: &mut Vec<Action>,
    ) {
        let username = session.username().unwrap_or_default();
        let requested = iq
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child_text("resource", NS_BIND))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        let resource = requested.unwrap_or_else(random_resource);
        let jid = match Jid::from_parts(Some(&username), &host.name, Some(&resource)) {
            Ok(j) => j,
            Err(_) => {
                let reply = StanzaError::bad_request()
                    .with_text("Invalid resource")
                    .reply_to(&iq);
                self.emit(out, Frame::Element(reply));
                return;
            }
        };
        if let Some(old) = self.server.sessions.get_full(&jid)
            && !crate::smacks::registry::destroy_hibernating(
                &self.server,
                &old,
                "Replaced by new connection",
            )
        {
            // Prosody's default conflict_resolve is kick_old (a hibernating
            // session, XEP-0198, ended above already).
            old.close(Some(StreamError::with_text(
                Cond::Conflict,
                "Replaced by new connection",
            )));
            self.server.sessions.unbind(&jid, &old);
            let mut ev = Event::new(&self.server, "resource-unbind").with_origin(&old);
            self.server.fire_on_host(host, "resource-unbind", &mut ev);
        }
        {
            let mut st = session.state();
            st.resource = jid.resource().map(str::to_string);
            st.full_jid = Some(jid.clone());
        }
        self.server.sessions.bind(&jid, session);
        self.bound = Some(jid.clone());
        let reply = Element::new("iq", NS_CLIENT)
            .attr("type", "result")
            .attr_opt("id", iq.id())
            .child(Element::new("bind", NS_BIND).text_tag("jid", jid.to_string()));
        self.emit(out, Frame::Element(reply));
        let mut ev = Event::new(&self.server, "resource-bind").with_origin(session);
        self.server.fire_on_host(host, "resource-bind", &mut ev);
    }
}

/// A random resource, as Prosody's uuid-based ones.
fn random_resource() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}
