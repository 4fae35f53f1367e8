//! Occupant presence as the room shows it: Prosody's
//! `publicise_occupant_status` (one occupant's presence to everyone, with
//! real JIDs to those who may see them, the occupant's own sessions getting
//! status 110), `send_occupant_list` (everyone's presence to a joining
//! session) and the presence of absent registered members.

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Value};

use super::Room;
use super::affiliation::item;
use crate::broadcast::{Deliverer, send_one};
use crate::events::{Ctx, EventExt, lock, mutable_of};
use crate::occupant::{Occupant, OccupantSession};
use crate::util::{NS_MUC_USER, Role, role_name};

/// The `<x xmlns='muc#user'/>` a presence gets, per audience (Prosody's
/// `x` or `{ base, self, full, anon }`).
#[derive(Debug, Clone)]
pub struct XTemplates {
    pub base: Element,
    pub self_: Option<Element>,
    pub full: Option<Element>,
    pub anon: Option<Element>,
}

impl XTemplates {
    pub fn single(x: Element) -> XTemplates {
        XTemplates {
            base: x,
            self_: None,
            full: None,
            anon: None,
        }
    }
    pub fn empty() -> XTemplates {
        XTemplates::single(Element::new("x", NS_MUC_USER))
    }
}

/// May an occupant see real JIDs under this `whois`?
pub fn can_see_real_jids(whois: &str, occupant: &Occupant) -> bool {
    match whois {
        "anyone" => true,
        "moderators" => occupant.role == Some(Role::Moderator),
        _ => false,
    }
}

impl Room {
    /// Appends the `<item/>`s describing `occupant` to `x`: one without JID
    /// when anonymous, else one per session.
    #[allow(clippy::too_many_arguments)]
    pub fn build_item_list(
        &self,
        occupant: &Occupant,
        x: &mut Element,
        is_anonymous: bool,
        nick: Option<&str>,
        actor_nick: Option<&str>,
        actor_jid: Option<&str>,
        reason: Option<&str>,
    ) {
        let affiliation = self.get_affiliation(&occupant.bare_jid);
        let role = Some(role_name(occupant.role));
        if is_anonymous {
            x.push_child(item(
                affiliation,
                role,
                None,
                nick,
                actor_nick,
                actor_jid,
                reason,
            ));
        } else {
            for jid in occupant.session_jids() {
                x.push_child(item(
                    affiliation,
                    role,
                    Some(jid),
                    nick,
                    actor_nick,
                    actor_jid,
                    reason,
                ));
            }
        }
    }

    /// Is `jid` to be shown occupants without their real JIDs?
    pub fn is_anonymous_for(&self, jid: &str) -> bool {
        let whois = self.get_whois();
        if whois == "anyone" {
            return false;
        }
        if matches!(
            self.get_affiliation(jid),
            Some(crate::util::Affiliation::Admin | crate::util::Affiliation::Owner)
        ) {
            return false;
        }
        !self
            .get_occupant_by_real_jid(jid)
            .is_some_and(|o| can_see_real_jids(&whois, &o))
    }

    /// Fires `muc-build-occupant-presence` on `stanza` (hats and the like).
    fn build_occupant_presence(
        self: &Arc<Self>,
        ctx: &Ctx,
        occupant: Option<&Occupant>,
        stanza: Element,
    ) -> Element {
        let mut ev = ctx
            .room_event("muc-build-occupant-presence", self)
            .with_stanza(stanza);
        if let Some(o) = occupant {
            ev = ev
                .occupant("occupant", o)
                .with_field("bare_jid", o.bare_jid.as_str());
        }
        ctx.fire("muc-build-occupant-presence", &mut ev);
        ev.stanza
            .take()
            .unwrap_or_else(|| Element::new("presence", NS_CLIENT))
    }

    /// Tells the room about an occupant's presence (Prosody's
    /// `publicise_occupant_status`). With `recipient`, only to that occupant.
    #[allow(clippy::too_many_arguments)]
    pub fn publicise_occupant_status(
        self: &Arc<Self>,
        ctx: &Ctx,
        occupant: &Occupant,
        x: &XTemplates,
        nick: Option<&str>,
        actor: Option<&str>,
        reason: Option<&str>,
        prev_role: Option<Role>,
        force_unavailable: bool,
        recipient: Option<&Occupant>,
    ) {
        let base_presence = match occupant.get_presence(None) {
            Some(pr)
                if (occupant.role.is_some() || pr.type_() == Some("unavailable"))
                    && !force_unavailable =>
            {
                pr.clone()
            }
            _ => Element::new("presence", NS_CLIENT)
                .attr("from", occupant.nick.as_str())
                .attr("type", "unavailable"),
        };
        let mut ev = ctx
            .room_event("muc-build-occupant-presence", self)
            .with_stanza(base_presence)
            .occupant("occupant", occupant)
            .with_field("bare_jid", occupant.bare_jid.as_str())
            .mutable("x", x.base.clone());
        set_opt(&mut ev, "nick", nick);
        set_opt(&mut ev, "actor", actor);
        set_opt(&mut ev, "reason", reason);
        ctx.fire("muc-build-occupant-presence", &mut ev);
        if recipient.is_none() {
            ctx.fire("muc-broadcast-presence", &mut ev);
        }
        let base_presence = ev
            .stanza
            .take()
            .unwrap_or_else(|| Element::new("presence", NS_CLIENT));
        let base_x =
            mutable_of::<Element>(&ev, "x").map_or_else(|| x.base.clone(), |m| lock(&m).clone());
        let nick = ev.field_str("nick").map(str::to_string);
        let actor = ev.field_str("actor").map(str::to_string);
        let reason = ev.field_str("reason").map(str::to_string);
        let (nick, actor, reason) = (nick.as_deref(), actor.as_deref(), reason.as_deref());

        let whois = self.get_whois();
        let actor_nick = actor
            .and_then(|a| self.get_occupant_jid(a))
            .and_then(|n| n.split_once('/').map(|(_, r)| r.to_string()));
        let actor_nick = actor_nick.as_deref();

        let build = |template: Option<&Element>, anonymous: bool, actor_jid: Option<&str>| {
            let mut x = template.unwrap_or(&base_x).clone();
            self.build_item_list(
                occupant, &mut x, anonymous, nick, actor_nick, actor_jid, reason,
            );
            x
        };
        let mut self_x = build(x.self_.as_ref(), false, None);
        let with_x = |x: Element| {
            let mut p = base_presence.clone();
            p.push_child(x);
            p
        };

        // 0: full, 1: anonymous, 2: own other sessions (as self, no 110).
        let variant = |rec: &Occupant| {
            if can_see_real_jids(&whois, rec) {
                0
            } else if occupant.bare_jid == rec.bare_jid {
                2
            } else {
                1
            }
        };
        let make = |v: usize| match v {
            0 => with_x(build(x.full.as_ref(), false, actor)),
            1 => with_x(build(x.anon.as_ref(), true, None)),
            _ => with_x(self_x.clone()),
        };

        if let Some(rec) = recipient {
            let pr = make(variant(rec));
            let mut d = Deliverer::new(ctx, &pr);
            for s in &rec.sessions {
                d.deliver(s);
            }
            return;
        }

        let broadcast_roles = self.get_presence_broadcast();
        let shown = |r: Option<Role>| broadcast_roles.iter().any(|b| b == role_name(r));
        let unavailable = if shown(occupant.role) || force_unavailable {
            Some(false)
        } else if prev_role.is_some() && shown(prev_role) {
            Some(true)
        } else {
            None
        };
        if let Some(make_unavailable) = unavailable {
            let mut groups: [Vec<OccupantSession>; 3] = Default::default();
            for rec in self.each_occupant() {
                if rec.nick != occupant.nick {
                    groups[variant(&rec)].extend(rec.sessions);
                }
            }
            for (v, sessions) in groups.iter().enumerate() {
                if sessions.is_empty() {
                    continue;
                }
                let mut pr = make(v);
                if make_unavailable {
                    pr.set_attr("type", Some("unavailable".into()));
                }
                let mut d = Deliverer::new(ctx, &pr);
                for s in sessions {
                    d.deliver(s);
                }
            }
        }

        self_x.push_child(Element::new("status", NS_MUC_USER).attr("code", "110"));
        if occupant.role.is_none() {
            let pr = with_x(self_x);
            let mut d = Deliverer::new(ctx, &pr);
            for s in &occupant.sessions {
                d.deliver(s);
            }
        } else {
            for s in &occupant.sessions {
                let pr = self.build_occupant_presence(ctx, Some(occupant), (*s.presence).clone());
                let mut pr = pr;
                pr.set_attr("to", Some(s.jid.clone()));
                pr.push_child(self_x.clone());
                Deliverer::new(ctx, &pr).deliver(s);
            }
        }
    }

    /// Sends every occupant's presence (those `filter` keeps) to a real
    /// JID, and with presence broadcast for role `none`, that of affiliated
    /// users who are not in the room (Prosody's `send_occupant_list`).
    pub fn send_occupant_list(
        self: &Arc<Self>,
        ctx: &Ctx,
        to: &str,
        filter: &dyn Fn(Option<&Occupant>) -> bool,
    ) {
        let to_bare = crate::room::affiliation::bare_of(to).to_string();
        let broadcast_roles = self.get_presence_broadcast();
        let shown = |r: &str| broadcast_roles.iter().any(|b| b == r);
        let is_anonymous = self.is_anonymous_for(to);
        let to_jid = xmpp_core::Jid::parse(to).ok();
        let mut present = std::collections::HashSet::new();
        for occupant in self.each_occupant() {
            present.insert(occupant.bare_jid.clone());
            if !filter(Some(&occupant)) {
                continue;
            }
            let mut x = Element::new("x", NS_MUC_USER);
            self.build_item_list(
                &occupant,
                &mut x,
                is_anonymous && to_bare != occupant.bare_jid,
                None,
                None,
                None,
                None,
            );
            let Some(pres) = occupant.get_presence(None).cloned() else {
                continue;
            };
            let mut pres = pres;
            pres.set_attr("to", Some(to.to_string()));
            pres.push_child(x);
            let pres = self.build_occupant_presence(ctx, Some(&occupant), pres);
            if to_bare == occupant.bare_jid || shown(role_name(occupant.role)) {
                send_one(ctx, to_jid.as_ref(), pres);
            }
        }
        if shown("none") {
            for (jid, affiliation, data) in self.each_affiliation(None) {
                let nick = data
                    .as_ref()
                    .and_then(|d| d.get("reserved_nickname"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if (nick.is_none() && is_anonymous) || present.contains(&jid) || !filter(None) {
                    continue;
                }
                let from = match &nick {
                    Some(n) => format!("{}/{n}", self.jid),
                    None => self.jid.clone(),
                };
                let pres = Element::new("presence", NS_CLIENT)
                    .attr("to", to)
                    .attr("from", from)
                    .attr("type", "unavailable")
                    .child(Element::new("x", NS_MUC_USER).child(item(
                        Some(affiliation),
                        Some("none"),
                        (!is_anonymous).then_some(jid.as_str()),
                        nick.as_deref(),
                        None,
                        None,
                        None,
                    )));
                self.route_stanza(pres);
            }
        }
    }

    /// The unavailable presence of a registered nickname whose user is not
    /// in the room, for a probe (`None` if the nickname is not registered).
    pub fn build_unavailable_presence(
        self: &Arc<Self>,
        ctx: &Ctx,
        from_muc_jid: &str,
        to_jid: &str,
    ) -> Option<Element> {
        let nick = from_muc_jid.split_once('/').map(|(_, r)| r)?;
        let from_jid = self.get_registered_jid(nick)?;
        let is_anonymous = self.is_anonymous_for(to_jid);
        let affiliation = self.get_affiliation(&from_jid);
        let pr = Element::new("presence", NS_CLIENT)
            .attr("to", to_jid)
            .attr("from", from_muc_jid)
            .attr("type", "unavailable")
            .child(Element::new("x", NS_MUC_USER).child(item(
                affiliation,
                Some("none"),
                (!is_anonymous).then_some(from_jid.as_str()),
                Some(nick),
                None,
                None,
                None,
            )));
        let mut ev = ctx
            .room_event("muc-build-occupant-presence", self)
            .with_stanza(pr)
            .with_field("bare_jid", from_jid.as_str())
            .with_field("nick", nick);
        ctx.fire("muc-build-occupant-presence", &mut ev);
        ev.stanza.take()
    }
}

fn set_opt(ev: &mut Event, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        ev.fields.insert(key.to_string(), Value::str(v));
    }
}
