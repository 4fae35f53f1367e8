//! Delivery of what a room sends to occupants, serialised once.
//!
//! A stanza going to many sessions differs per recipient only in its `to`.
//! [`Deliverer`] serialises it once without `to`, split where the attribute
//! goes, and hands each local client session the same two shared buffers
//! with its own ` to='...'` between them ([`xmpp_core::Outbound::Raw`]).
//!
//! That skips the router's `message/full`/`presence/full` event on the
//! recipient's host, so it is only done where the result is the same: the
//! recipient is a bound client session of a local VirtualHost on which the
//! delivery handler is the only one hooked (any module that wants to see
//! such stanzas turns the shortcut off by hooking the event). Everything
//! else, and any session the bytes cannot be queued to, goes through the
//! router as Prosody's `module:send` would.

use bytes::Bytes;
use xmpp_core::stanza::Element;
use xmpp_core::{HostKind, Jid, SessionKind};

use crate::events::Ctx;
use crate::occupant::OccupantSession;

/// A stanza serialised without `to`: `head` + ` to='...'` + `tail`.
#[derive(Debug, Clone)]
pub struct Shared {
    head: Bytes,
    tail: Bytes,
}

impl Shared {
    pub fn new(stanza: &Element) -> Shared {
        let mut s = stanza.clone();
        s.set_attr("to", None);
        let xml = s.to_xml_in("");
        // `<name xmlns='ns'` is where `to` goes: the namespace of a stanza
        // has no quote in it (the serialiser escapes them).
        let split = xml
            .find("xmlns='")
            .and_then(|i| xml[i + 7..].find('\'').map(|j| i + 7 + j + 1))
            .unwrap_or(1 + s.name().len());
        let bytes = Bytes::from(xml);
        Shared {
            head: bytes.slice(..split),
            tail: bytes.slice(split..),
        }
    }

    /// The parts for one recipient.
    pub fn parts(&self, to_attr: &Bytes) -> Vec<Bytes> {
        vec![self.head.clone(), to_attr.clone(), self.tail.clone()]
    }
}

/// Delivers one stanza to many occupant sessions.
pub struct Deliverer<'a> {
    ctx: &'a Ctx,
    stanza: &'a Element,
    shared: Option<Shared>,
    /// Per recipient domain: may the shortcut be taken?
    fast: Vec<(String, bool)>,
}

impl<'a> Deliverer<'a> {
    pub fn new(ctx: &'a Ctx, stanza: &'a Element) -> Deliverer<'a> {
        Deliverer {
            ctx,
            stanza,
            shared: None,
            fast: Vec::new(),
        }
    }

    fn fast_allowed(&mut self, domain: &str) -> bool {
        if let Some((_, ok)) = self.fast.iter().find(|(d, _)| d == domain) {
            return *ok;
        }
        let ok = fast_allowed(self.ctx, domain, self.stanza.name());
        self.fast.push((domain.to_string(), ok));
        ok
    }

    /// Sends the stanza to one session.
    pub fn deliver(&mut self, session: &OccupantSession) {
        if let Some(jid) = session.parsed.as_ref().filter(|j| j.is_full())
            && self.fast_allowed(jid.domain())
            && let Some(target) = self.ctx.server.sessions.get_full(jid)
            && target.kind == SessionKind::C2s
        {
            let stanza = self.stanza;
            let shared = self.shared.get_or_insert_with(|| Shared::new(stanza));
            if target.send_raw(shared.parts(&session.to_attr)) {
                return;
            }
        }
        self.route(&session.jid);
    }

    /// Sends the stanza to a real JID through the router.
    pub fn route(&self, to: &str) {
        let mut s = self.stanza.clone();
        s.set_attr("to", Some(to.to_string()));
        route_stanza(self.ctx, s);
    }
}

/// May a `<name/>` stanza to a full JID on `domain` skip the router?
fn fast_allowed(ctx: &Ctx, domain: &str, name: &str) -> bool {
    let event = format!("{name}/full");
    ctx.server
        .host(domain)
        .is_some_and(|h| h.kind == HostKind::VirtualHost && h.events.handler_count(&event) == 1)
}

/// Sends a stanza of its own (one recipient: nothing to share) to a real
/// JID, straight to the client session where the router would do just that.
pub fn send_one(ctx: &Ctx, to: Option<&Jid>, stanza: Element) {
    if let Some(jid) = to.filter(|j| j.is_full())
        && fast_allowed(ctx, jid.domain(), stanza.name())
        && let Some(target) = ctx.server.sessions.get_full(jid)
        && target.kind == SessionKind::C2s
    {
        // A presence the session cannot take is dropped by the router too.
        if stanza.name() == "presence" {
            target.send(stanza);
            return;
        }
        if target.send(stanza.clone()) {
            return;
        }
    }
    route_stanza(ctx, stanza);
}

/// Prosody's `room:route_stanza` (`module:send`): the stanza goes through the
/// router from the component host.
pub fn route_stanza(ctx: &Ctx, stanza: Element) {
    ctx.server
        .post_stanza(&ctx.host.local_session, stanza, false);
}

/// The text a client session gets for `parts` (for tests).
pub fn raw_text(parts: &[Bytes]) -> String {
    parts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stanza::NS_CLIENT;

    #[test]
    fn serialised_once_with_to_in_between() {
        let m = Element::new("message", NS_CLIENT)
            .attr("from", "r@muc/A")
            .attr("to", "ignored@x")
            .attr("type", "groupchat")
            .child(Element::new("body", NS_CLIENT).text("it's <b>"));
        let shared = Shared::new(&m);
        let text = raw_text(&shared.parts(&Bytes::from_static(b" to='b@x/1'")));
        assert_eq!(
            text,
            "<message xmlns='jabber:client' to='b@x/1' from='r@muc/A' type='groupchat'>\
             <body>it&apos;s &lt;b&gt;</body></message>"
        );
    }
}
