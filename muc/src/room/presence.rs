//! Presence to a room: creating it, joining, presence updates, nickname
//! changes, several sessions under one nickname, leaving, probes and error
//! bounces (Prosody's `handle_first_presence`, `handle_normal_presence`,
//! `handle_presence_to_occupant`, `handle_kickable`, `respond_to_probe`).

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Session, Value};

use super::publicise::XTemplates;
use super::{Room, affiliation::bare_of, affiliation::item};
use crate::events::{Ctx, EventExt, flag};
use crate::occupant::Occupant;
use crate::util::{NS_MUC, NS_MUC_USER, get_error};

/// Sends an error reply for `stanza` with `by` the room.
pub fn reply_error(origin: &Arc<Session>, stanza: &Element, error: StanzaError, by: &str) {
    if matches!(stanza.type_(), Some("error") | Some("result")) {
        return;
    }
    let mut reply = error.reply_to(stanza);
    if let Some(e) = reply.get_child_mut("error", stanza.ns()) {
        e.set_attr("by", Some(by.to_string()));
    }
    origin.send(reply);
}

/// What the router answers when nothing handles a stanza (Prosody's
/// `handle_unhandled_stanza`): `service-unavailable`, errors excepted.
pub(crate) fn unhandled(origin: &Arc<Session>, stanza: &Element) {
    if !matches!(stanza.type_(), Some("error") | Some("result")) {
        origin.send(StanzaError::service_unavailable().reply_to(stanza));
    }
}

fn status(code: &str) -> Element {
    Element::new("status", NS_MUC_USER).attr("code", code)
}

impl Room {
    /// Fires an occupant event (`muc-occupant-joined`, `-left`, ...).
    fn fire_occupant_event(
        self: &Arc<Self>,
        ctx: &Ctx,
        name: &str,
        occupant: &Occupant,
        origin: Option<&Arc<Session>>,
        stanza: Option<&Element>,
        extra: &[(&str, Value)],
    ) {
        let mut ev = ctx
            .room_event(name, self)
            .origin_opt(origin)
            .occupant("occupant", occupant)
            .with_field("nick", occupant.nick.as_str());
        if let Some(s) = stanza {
            ev.stanza = Some(s.clone());
        }
        for (k, v) in extra {
            ev.fields.insert(k.to_string(), v.clone());
        }
        ctx.fire(name, &mut ev);
    }

    /// `muc-occupant-left`.
    pub fn fire_left(
        self: &Arc<Self>,
        ctx: &Ctx,
        occupant: &Occupant,
        origin: Option<&Arc<Session>>,
        stanza: Option<&Element>,
    ) {
        self.fire_occupant_event(ctx, "muc-occupant-left", occupant, origin, stanza, &[]);
    }

    fn fire_joined(
        self: &Arc<Self>,
        ctx: &Ctx,
        occupant: &Occupant,
        origin: &Arc<Session>,
        stanza: &Element,
        first: bool,
    ) {
        if first {
            self.fire_occupant_event(
                ctx,
                "muc-occupant-joined",
                occupant,
                Some(origin),
                Some(stanza),
                &[],
            );
        }
        let jid = stanza.from().unwrap_or_default();
        self.fire_occupant_event(
            ctx,
            "muc-occupant-session-new",
            occupant,
            Some(origin),
            Some(stanza),
            &[("jid", Value::str(jid))],
        );
    }

    /// Fires a pre-join/pre-change/pre-leave event; `None` when a handler
    /// took the stanza, else the stanza (handlers may add to it) and the
    /// destination nickname (handlers may change it).
    fn fire_pre(
        self: &Arc<Self>,
        ctx: &Ctx,
        mut ev: Event,
        name: &str,
        dest: Option<&Occupant>,
    ) -> Option<(Element, Option<String>)> {
        if let Some(d) = dest {
            ev.fields
                .insert("dest_nick".into(), Value::str(d.nick.clone()));
        }
        if ctx.fire(name, &mut ev) {
            return None;
        }
        let stanza = ev.stanza.take()?;
        Some((stanza, ev.field_str("dest_nick").map(str::to_string)))
    }

    /// The first presence to a room that does not exist yet: creates it.
    pub(crate) fn handle_first_presence(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        if stanza.get_child("x", NS_MUC).is_none() {
            reply_error(origin, &stanza, StanzaError::item_not_found(), &self.jid);
            return;
        }
        let real_jid = stanza.from().unwrap_or_default().to_string();
        let dest_jid = stanza.to().unwrap_or_default().to_string();
        let bare_jid = bare_of(&real_jid).to_string();
        let mut ev = ctx
            .room_event("muc-room-pre-create", self)
            .with_origin(origin)
            .with_stanza(stanza);
        if ctx.fire("muc-room-pre-create", &mut ev) {
            return;
        }
        let Some(stanza) = ev.stanza.take() else {
            return;
        };
        let mut dest = self.new_occupant(&bare_jid, &dest_jid);
        let ev = ctx
            .room_event("muc-occupant-pre-join", self)
            .with_origin(origin)
            .with_stanza(stanza)
            .occupant("occupant", &dest)
            .with_field("is_first_session", true)
            .with_field("is_new_room", true);
        let Some((stanza, nick)) = self.fire_pre(ctx, ev, "muc-occupant-pre-join", Some(&dest))
        else {
            return;
        };
        let nick_changed = nick.as_deref().is_some_and(|n| n != dest.nick);
        if let Some(n) = nick {
            dest.nick = n;
        }
        dest.set_session(&real_jid, &stanza, false);
        let mut x = Element::new("x", NS_MUC_USER).child(status("201"));
        if self.get_whois() == "anyone" {
            x.push_child(status("100"));
        }
        if nick_changed {
            x.push_child(status("210"));
        }
        let dest = self.save_occupant(&dest).unwrap_or(dest);
        self.publicise_occupant_status(
            ctx,
            &dest,
            &XTemplates::single(x),
            None,
            None,
            None,
            None,
            false,
            None,
        );
        self.fire_joined(ctx, &dest, origin, &stanza, true);
        let mut ev = ctx
            .room_event("muc-room-created", self)
            .with_origin(origin)
            .with_stanza(stanza)
            .occupant("creator", &dest);
        ctx.fire("muc-room-created", &mut ev);
    }

    /// Presence to an occupant JID of the room.
    pub(crate) fn handle_presence_to_occupant(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        match stanza.type_() {
            Some("error") => self.handle_kickable(ctx, &stanza),
            None | Some("unavailable") | Some("probe") => {
                self.handle_normal_presence(ctx, origin, stanza)
            }
            Some("result") | Some("visible") | Some("invisible") => {}
            Some(_) => reply_error(origin, &stanza, StanzaError::bad_request(), &self.jid),
        }
    }

    /// Presence to the room's bare JID: some clients send their updates
    /// there; treated as to their occupant JID.
    pub(crate) fn handle_presence_to_room(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        mut stanza: Element,
    ) {
        let from = stanza.from().unwrap_or_default().to_string();
        match self.get_occupant_jid(&from) {
            Some(nick) => {
                stanza.set_attr("to", Some(nick));
                self.handle_presence_to_occupant(ctx, origin, stanza);
            }
            None => unhandled(origin, &stanza),
        }
    }

    /// A session bounced an error: it is gone from the room (status 333).
    pub(crate) fn handle_kickable(self: &Arc<Self>, ctx: &Ctx, stanza: &Element) {
        let real_jid = stanza.from().unwrap_or_default().to_string();
        let Some(mut occupant) = self.get_occupant_by_real_jid(&real_jid) else {
            return;
        };
        let (_, condition, text) = get_error(stanza);
        let mut message = format!(
            "Kicked: {}",
            condition
                .map(|c| c.replace('-', " "))
                .unwrap_or_else(|| "presence error".into())
        );
        if let Some(t) = text
            && self.get_whois() == "anyone"
        {
            message = format!("{message}: {t}");
        }
        let unavailable = Element::new("presence", NS_CLIENT)
            .attr("type", "unavailable")
            .child(Element::new("status", NS_CLIENT).text(message));
        occupant.set_session(&real_jid, &unavailable, false);
        let orig_role = occupant.role;
        let is_last_session = occupant.jid.as_deref() == Some(real_jid.as_str());
        if is_last_session {
            occupant.role = None;
        }
        let new_occupant = self.save_occupant(&occupant);
        let mut x = Element::new("x", NS_MUC_USER);
        if is_last_session {
            x.push_child(status("333"));
        }
        self.publicise_occupant_status(
            ctx,
            new_occupant.as_ref().unwrap_or(&occupant),
            &XTemplates::single(x),
            None,
            None,
            None,
            orig_role,
            false,
            None,
        );
        if is_last_session {
            self.fire_left(ctx, &occupant, None, None);
        }
    }

    fn respond_to_probe(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: &Element,
        probing: Option<Occupant>,
    ) {
        let Some(probing) = probing else {
            reply_error(
                origin,
                stanza,
                StanzaError::new(ErrorType::Cancel, "not-acceptable")
                    .with_text("You are not currently connected to this chat"),
                &self.jid,
            );
            return;
        };
        let to = stanza.to().unwrap_or_default();
        match self.get_occupant_by_nick(to) {
            None => {
                let from = stanza.from().unwrap_or_default();
                if let Some(pr) = self.build_unavailable_presence(ctx, to, from) {
                    self.route_stanza(pr);
                }
            }
            Some(probed) => self.publicise_occupant_status(
                ctx,
                &probed,
                &XTemplates::empty(),
                None,
                None,
                None,
                None,
                false,
                Some(&probing),
            ),
        }
    }

    /// Joins, presence updates, nickname changes and leaves.
    pub fn handle_normal_presence(
        self: &Arc<Self>,
        ctx: &Ctx,
        origin: &Arc<Session>,
        stanza: Element,
    ) {
        let type_ = stanza.type_().map(str::to_string);
        let real_jid = stanza.from().unwrap_or_default().to_string();
        let bare_jid = bare_of(&real_jid).to_string();
        let to = stanza.to().unwrap_or_default().to_string();
        let orig = self.get_occupant_by_real_jid(&real_jid);
        let muc_x = stanza.get_child("x", NS_MUC).is_some();

        if orig.is_none() && !muc_x && type_.is_none() {
            reply_error(
                origin,
                &stanza,
                StanzaError::item_not_found()
                    .with_text("You are not currently connected to this chat"),
                &self.jid,
            );
            return;
        }
        let mut is_first_dest_session = false;
        let mut dest: Option<Occupant> = match type_.as_deref() {
            Some("unavailable") => {
                if orig.is_none() {
                    return;
                }
                None
            }
            Some("probe") => {
                self.respond_to_probe(ctx, origin, &stanza, orig);
                return;
            }
            _ => match &orig {
                Some(o) if o.nick == to => Some(o.clone()),
                _ => match self.get_occupant_by_nick(&to) {
                    Some(d) => Some(d),
                    None => {
                        is_first_dest_session = true;
                        let mut d = self.new_occupant(&bare_jid, &to);
                        if let Some(o) = &orig {
                            d.role = o.role;
                        }
                        Some(d)
                    }
                },
            },
        };
        let is_last_orig_session = orig
            .as_ref()
            .map(|o| o.sessions.iter().filter(|s| s.jid != real_jid).count() == 0);
        let orig_nick = dest.as_ref().map(|d| d.nick.clone());

        let (name, ev) = match (&orig, &dest) {
            (None, d) => {
                let mut ev = ctx.room_event("muc-occupant-pre-join", self);
                if let Some(d) = d {
                    ev = ev.occupant("occupant", d);
                }
                ("muc-occupant-pre-join", ev)
            }
            (Some(o), None) => (
                "muc-occupant-pre-leave",
                ctx.room_event("muc-occupant-pre-leave", self)
                    .occupant("occupant", o),
            ),
            (Some(o), Some(d)) => (
                "muc-occupant-pre-change",
                ctx.room_event("muc-occupant-pre-change", self)
                    .occupant("orig_occupant", o)
                    .occupant("dest_occupant", d),
            ),
        };
        let mut ev = ev
            .with_origin(origin)
            .with_stanza(stanza)
            .with_field("is_first_session", is_first_dest_session);
        if let Some(last) = is_last_orig_session {
            ev.fields
                .insert("is_last_session".into(), Value::Bool(last));
        }
        let affiliation_before = is_first_dest_session.then(|| self.get_affiliation(&real_jid));
        let Some((stanza, new_nick)) = self.fire_pre(ctx, ev, name, dest.as_ref()) else {
            return;
        };
        if let (Some(d), Some(n)) = (dest.as_mut(), new_nick) {
            d.nick = n;
        }
        // A pre-join handler that changed the joiner's affiliation (Jitsi's
        // lobby making a whitelisted JID a member) gives the role that goes
        // with it, as its `occupant.role = ...` does in Prosody.
        if let (Some(before), Some(d)) = (affiliation_before, dest.as_mut()) {
            let now = self.get_affiliation(&real_jid);
            if now != before {
                d.role = self.get_default_role(now);
            }
        }
        let nick_changed = dest.as_ref().map(|d| d.nick.clone()) != orig_nick;

        // Nickname conflict: the nickname is someone else's.
        if let Some(d) = &dest
            && !is_first_dest_session
            && bare_jid != bare_of(&d.bare_jid)
        {
            reply_error(
                origin,
                &stanza,
                StanzaError::new(ErrorType::Cancel, "conflict"),
                &self.jid,
            );
            return;
        }

        let is_last_orig_session = is_last_orig_session.unwrap_or(false);
        if let Some(mut o) = orig.clone()
            && dest.as_ref().is_none_or(|d| d.nick != o.nick)
        {
            let mut orig_x = Element::new("x", NS_MUC_USER);
            let orig_role = o.role;
            let mut dest_nick: Option<String> = None;
            match &dest {
                None => {
                    if is_last_orig_session {
                        o.role = None;
                    }
                    o.set_session(&real_jid, &stanza, false);
                }
                Some(d) => {
                    let generated = Element::new("presence", NS_CLIENT)
                        .attr("from", o.nick.as_str())
                        .attr("to", real_jid.as_str())
                        .attr("type", "unavailable");
                    o.set_session(&real_jid, &generated, false);
                    dest_nick = Some(d.nickname().to_string());
                    if !is_first_dest_session {
                        // Swapping into another session's nickname: show that one leaving.
                        let x = Element::new("x", NS_MUC_USER).child(item(
                            self.get_affiliation(&bare_jid),
                            Some("none"),
                            None,
                            None,
                            None,
                            None,
                            None,
                        ));
                        let pr = Element::new("presence", NS_CLIENT)
                            .attr("from", d.nick.as_str())
                            .attr("to", real_jid.as_str())
                            .attr("type", "unavailable")
                            .child(Element::new("status", NS_CLIENT).text(format!(
                                "you are joining pre-existing session {}",
                                d.nickname()
                            )))
                            .child(x);
                        self.route_stanza(pr);
                    }
                    if is_first_dest_session && is_last_orig_session {
                        orig_x.push_child(status("303"));
                    } else {
                        // Only this session moves: it alone sees the nickname change.
                        o.remove_session(&real_jid);
                        let x = Element::new("x", NS_MUC_USER)
                            .child(item(
                                self.get_affiliation(&bare_jid),
                                Some(crate::util::role_name(o.role)),
                                Some(&real_jid),
                                dest_nick.as_deref(),
                                None,
                                None,
                                None,
                            ))
                            .child(status("303"))
                            .child(status("110"));
                        let mut g = generated;
                        g.push_child(x);
                        self.route_stanza(g);
                        dest_nick = None;
                    }
                }
            }
            self.save_occupant(&o);
            self.publicise_occupant_status(
                ctx,
                &o,
                &XTemplates::single(orig_x),
                dest_nick.as_deref(),
                None,
                None,
                orig_role,
                false,
                None,
            );
            if is_last_orig_session {
                self.fire_left(ctx, &o, Some(origin), Some(&stanza));
            }
        }

        let Some(mut d) = dest else { return };
        d.set_session(&real_jid, &stanza, false);
        let d = self.save_occupant(&d).unwrap_or(d);
        if orig.is_none() || muc_x {
            // The occupant list, to a newly joined (or resynchronising) session.
            let rj = real_jid.clone();
            self.send_occupant_list(ctx, &real_jid, &move |o: Option<&Occupant>| {
                o.is_none_or(|o| o.get_presence(Some(&rj)).is_none())
            });
        }
        let mut self_x = Element::new("x", NS_MUC_USER);
        if orig.is_none() && self.get_whois() == "anyone" {
            self_x.push_child(status("100"));
        }
        if nick_changed {
            self_x.push_child(status("210"));
        }
        let templates = XTemplates {
            base: Element::new("x", NS_MUC_USER),
            self_: Some(self_x),
            full: None,
            anon: None,
        };
        self.publicise_occupant_status(
            ctx,
            &d,
            &templates,
            None,
            None,
            None,
            orig.as_ref().and_then(|o| o.role),
            false,
            None,
        );
        if let Some(o) = &orig
            && o.nick != d.nick
            && !is_last_orig_session
        {
            // The session split off: show it its old nickname again.
            if let Some(o) = self.get_occupant_by_nick(&o.nick)
                && let Some(pr) = o.get_presence(None)
            {
                let mut pr = pr.clone();
                pr.set_attr("to", Some(real_jid.clone()));
                let mut x = Element::new("x", NS_MUC_USER);
                self.build_item_list(&o, &mut x, false, None, None, None, None);
                pr.push_child(x);
                self.route_stanza(pr);
            }
        }
        if orig.is_none() || muc_x {
            self.fire_joined(ctx, &d, origin, &stanza, is_first_dest_session);
        }
    }
}

/// Is this `muc-occupant-pre-join` for a room being created?
pub fn is_new_room(event: &Event) -> bool {
    flag(event, "is_new_room")
}
