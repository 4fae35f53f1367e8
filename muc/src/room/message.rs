//! Messages: groupchat to the room, private messages between occupants,
//! mediated invitations and declines, and voice requests (Prosody's
//! `handle_message_to_room`, `handle_groupchat_to_room`,
//! `handle_message_to_occupant`, `handle_mediated_invite`/`_decline`).

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Jid, Session};

use super::Room;
use super::presence::{reply_error, unhandled};
use crate::events::{Ctx, EventExt};
use crate::form::form_type;
use crate::util::{NS_DATA, NS_MUC_USER, filter_muc_x, is_kickable_error, new_id};

impl Room {
    pub(crate) fn handle_message_to_room(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        match stanza.type_() {
            Some("groupchat") => self.handle_groupchat_to_room(ctx, origin, stanza),
            Some("error") if is_kickable_error(&stanza) => self.handle_kickable(ctx, &stanza),
            None | Some("normal") => {
                if let Some(x) = stanza.get_child("x", NS_MUC_USER) {
                    match x.first_child() {
                        None => {}
                        Some(p) if p.name() == "invite" && p.get_attr("to").is_some() => {
                            return self.handle_mediated_invite(ctx, origin, stanza);
                        }
                        Some(p) if p.name() == "decline" && p.get_attr("to").is_some() => {
                            return self.handle_mediated_decline(ctx, origin, stanza);
                        }
                        Some(_) => {}
                    }
                    origin.send(StanzaError::bad_request().reply_to(&stanza));
                    return;
                }
                if let Some(form) = stanza.get_child("x", NS_DATA)
                    && form_type(form).as_deref() == Some("http://jabber.org/protocol/muc#request")
                {
                    let form = form.clone();
                    crate::features::request::handle_request(self, ctx, origin, &stanza, &form);
                    return;
                }
                unhandled(origin, &stanza);
            }
            _ => unhandled(origin, &stanza),
        }
    }

    /// A groupchat message: `muc-occupant-groupchat` (permission checks,
    /// subject changes, ...), then broadcast from the occupant JID.
    fn handle_groupchat_to_room(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        mut stanza: Element,
    ) {
        let from = stanza.from().unwrap_or_default().to_string();
        let occupant = self.get_occupant_by_real_jid(&from);
        if stanza.id().is_none() {
            stanza.set_attr("id", Some(new_id()));
        }
        let mut ev = ctx
            .room_event("muc-occupant-groupchat", self)
            .with_origin(origin)
            .with_stanza(stanza)
            .with_field("from", from.as_str());
        if let Some(o) = &occupant {
            ev = ev.occupant("occupant", o);
        }
        if ctx.fire("muc-occupant-groupchat", &mut ev) {
            return;
        }
        let Some(mut stanza) = ev.stanza.take() else {
            return;
        };
        let sender = occupant.map_or_else(|| self.jid.clone(), |o| o.nick);
        stanza.set_attr("from", Some(sender));
        self.broadcast_message(stanza);
    }

    /// A private message to an occupant, from an occupant.
    pub(crate) fn handle_message_to_occupant(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        let from = stanza.from().unwrap_or_default().to_string();
        let to = stanza.to().unwrap_or_default().to_string();
        let type_ = stanza.type_().map(str::to_string);
        let Some(current_nick) = self.get_occupant_jid(&from) else {
            if type_.as_deref() != Some("error") {
                reply_error(
                    origin,
                    &stanza,
                    StanzaError::new(ErrorType::Cancel, "not-acceptable")
                        .with_text("You are not currently connected to this chat"),
                    &self.jid,
                );
            }
            return;
        };
        match type_.as_deref() {
            Some("groupchat") => {
                reply_error(origin, &stanza, StanzaError::bad_request(), &self.jid);
                return;
            }
            Some("error") if is_kickable_error(&stanza) => {
                self.handle_kickable(ctx, &stanza);
                return;
            }
            _ => {}
        }
        let Some(recipient) = self.get_occupant_by_nick(&to) else {
            reply_error(
                origin,
                &stanza,
                StanzaError::item_not_found().with_text("Recipient not in room"),
                &self.jid,
            );
            return;
        };
        let mut pm = stanza;
        filter_muc_x(&mut pm);
        pm.push_child(Element::new("x", NS_MUC_USER));
        pm.set_attr("from", Some(current_nick));
        let mut ev = ctx
            .room_event("muc-private-message", self)
            .with_origin(origin)
            .with_stanza(pm);
        if ctx.fire("muc-private-message", &mut ev) {
            return;
        }
        if let Some(pm) = ev.stanza.take() {
            self.route_to_occupant(&recipient, &pm);
        }
    }

    fn handle_mediated_invite(self: &Arc<Self>, ctx: &Ctx, origin: &Arc<Session>, stanza: Element) {
        if let Some(invite) = self.mediate(ctx, origin, stanza, "invite") {
            self.route_stanza(invite);
        }
    }

    /// Jitsi's override of `handle_message_to_room` (its lobby invites
    /// several approved knockers in one message): every `<invite to=...>`
    /// of a normal message's `<x xmlns='muc#user'>` is mediated on its own.
    /// `false` when the message has none (left to the room).
    pub fn handle_mediated_invites(
        self: &Arc<Self>,
        origin: &Arc<Session>,
        stanza: &Element,
    ) -> bool {
        if !matches!(stanza.type_(), None | Some("normal")) {
            return false;
        }
        let Some(x) = stanza.get_child("x", NS_MUC_USER) else {
            return false;
        };
        let invites: Vec<Element> = x
            .children()
            .filter(|p| p.name() == "invite" && p.get_attr("to").is_some())
            .cloned()
            .collect();
        if invites.is_empty() {
            return false;
        }
        let Some(ctx) = self.ctx() else {
            return false;
        };
        for invite in invites {
            // The message as if it carried this invite alone.
            let mut single = stanza.clone();
            single.remove_children(|c| c.name() == "x" && c.ns() == NS_MUC_USER);
            single.push_child(Element::new("x", NS_MUC_USER).child(invite));
            self.handle_mediated_invite(&ctx, origin, single);
        }
        true
    }

    fn handle_mediated_decline(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        let Some(decline) = self.mediate(ctx, origin, stanza, "decline") else {
            return;
        };
        let to = decline.to().unwrap_or_default().to_string();
        let occupant = (crate::room::affiliation::bare_of(&to) == self.jid)
            .then(|| self.get_occupant_by_nick(&to))
            .flatten();
        match occupant {
            Some(o) => self.route_to_occupant(&o, &decline),
            None => self.route_stanza(decline),
        }
    }

    /// A mediated `invite` or `decline` (XEP-0045 §7.8.2): checked, passed
    /// through `muc-pre-<kind>` and `muc-<kind>`, and rewritten as coming
    /// from the room. `None` when refused or taken by a handler.
    fn mediate(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
        kind: &str,
    ) -> Option<Element> {
        let payload = stanza
            .get_child("x", NS_MUC_USER)
            .and_then(|x| x.get_child(kind, NS_MUC_USER));
        let Some(target) = payload
            .and_then(|p| p.get_attr("to"))
            .and_then(|t| Jid::parse(t).ok())
        else {
            origin.send(StanzaError::jid_malformed().reply_to(&stanza));
            return None;
        };
        let reason = payload.and_then(|p| p.get_child_text("reason", NS_MUC_USER));
        let pre = format!("muc-pre-{kind}");
        let mut ev = ctx
            .room_event(&pre, self)
            .with_origin(origin)
            .with_stanza(stanza.clone());
        if ctx.fire(&pre, &mut ev) {
            return None;
        }
        let mut out = stanza.clone();
        filter_muc_x(&mut out);
        out.set_attr("from", Some(self.jid.clone()));
        out.set_attr("to", Some(target.to_string()));
        out.push_child(
            Element::new("x", NS_MUC_USER).child(
                Element::new(kind, NS_MUC_USER)
                    .attr_opt("from", stanza.from())
                    .child(Element::new("reason", NS_MUC_USER).text(reason.unwrap_or_default())),
            ),
        );
        let name = format!("muc-{kind}");
        let mut ev = ctx
            .room_event(&name, self)
            .with_origin(origin)
            .with_stanza(out)
            .mutable("incoming", stanza);
        if ctx.fire(&name, &mut ev) {
            return None;
        }
        ev.stanza.take()
    }
}

/// A `<body/>` for clients that do not understand the payload.
pub(crate) fn add_body(stanza: &mut Element, text: String) {
    if stanza.get_child("body", NS_CLIENT).is_none() {
        stanza.push_child(Element::new("body", NS_CLIENT).text(text));
    }
}
