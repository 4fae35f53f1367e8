//! Presence: the focus's own rooms (its self-presence, the participants
//! joining, changing and leaving), the brewery (bridges coming, changing,
//! going) and `client_proxy`'s subscription. Moderator grants as Jicofo makes
//! them: with authentication, every authenticated participant becomes an
//! owner; without, the earliest participant when the room has no owner
//! (Jicofo's `AutoOwnerRoleManager`).

use std::time::Instant;

use xmpp_core::Element;

use crate::bridges::BreweryChange;
use crate::focus::{FOCUS_NICK, Focus, Pending};
use crate::ns;
use crate::offer;
use crate::participant::{Allocation, Participant};
use crate::room::{self, status_codes};

fn split_jid(jid: &str) -> (&str, &str) {
    jid.split_once('/').unwrap_or((jid, ""))
}

impl Focus {
    pub(crate) fn on_presence(&mut self, now: Instant, presence: &Element) {
        let from = presence.from().unwrap_or("").to_string();
        if presence.type_() == Some("subscribe") {
            let subscribed = Element::new("presence", ns::CLIENT)
                .attr("to", from.as_str())
                .attr("type", "subscribed");
            self.send(subscribed);
            // The subscriber (client_proxy) learns the focus's resource.
            self.send(Element::new("presence", ns::CLIENT).attr("to", from.as_str()));
            return;
        }
        let (bare, nick) = split_jid(&from);
        let bare = bare.to_lowercase();
        if bare == self.options.brewery.to_lowercase() {
            if nick != FOCUS_NICK {
                self.on_brewery_presence(now, &from, presence);
            }
            return;
        }
        if self
            .options
            .jibri_brewery
            .as_deref()
            .is_some_and(|j| j.eq_ignore_ascii_case(&bare))
        {
            if nick != FOCUS_NICK {
                self.on_jibri_brewery_presence(&from, presence);
            }
            return;
        }
        if !self.conferences.contains_key(&bare) || nick.is_empty() {
            return;
        }
        let nick = nick.to_string();
        let codes = status_codes(presence);
        if nick == FOCUS_NICK {
            match presence.type_() {
                Some("error") => {
                    let err = presence.get_child("error", ns::CLIENT);
                    self.room_join_failed(&bare, err);
                }
                Some("unavailable") => self.end_conference(now, &bare, false),
                None if codes.iter().any(|c| c == "110") => {
                    self.room_joined(now, &bare, codes.iter().any(|c| c == "201"))
                }
                _ => {}
            }
            return;
        }
        match presence.type_() {
            Some("unavailable") => {
                let kicked = codes.iter().any(|c| c == "307");
                self.participant_left(now, &bare, &nick, kicked);
            }
            None => self.participant_presence(now, &bare, &nick, &from, presence),
            _ => {}
        }
    }

    fn on_brewery_presence(&mut self, now: Instant, from: &str, presence: &Element) {
        match self.brewery.on_presence(from, presence) {
            BreweryChange::Gone(bridge) => {
                tracing::info!(bridge, "bridge left the brewery");
                self.move_off_bridge(now, &bridge);
            }
            BreweryChange::Updated => self.retry_waiting(now),
            BreweryChange::Ignored => {}
        }
    }

    fn participant_presence(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        from: &str,
        presence: &Element,
    ) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let is_new = !c.participants.contains_key(nick);
        if is_new {
            c.joins += 1;
        }
        let order = c.joins;
        let p = c.participants.entry(nick.to_string()).or_insert_with(|| {
            let mut p = Participant::new(nick, from, now);
            p.join_order = order;
            p
        });
        p.update_from_presence(presence);
        let features_known = p.features.is_some();
        if is_new {
            self.counters.participants_joined += 1;
            if features_known {
                self.invite(now, room, nick);
            } else {
                let id = self.id();
                let disco = Element::new("iq", ns::CLIENT)
                    .attr("to", from)
                    .attr("type", "get")
                    .attr("id", id.as_str())
                    .child(Element::new("query", ns::DISCO_INFO));
                self.request(
                    now,
                    disco,
                    Pending::Disco {
                        room: room.to_string(),
                        nick: nick.to_string(),
                    },
                );
            }
        }
        self.grant_moderators(now, room);
        if is_new {
            self.apply_av_moderation_to(now, room, nick);
        }
    }

    /// The client's features are known (disco answered, or failed: `None`,
    /// Jicofo's defaults): the participant is invited.
    pub(crate) fn features_known(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        features: Option<std::collections::BTreeSet<String>>,
    ) {
        let Some(p) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.participants.get_mut(nick))
        else {
            return;
        };
        if p.features.is_none() {
            p.features = Some(features.unwrap_or_default());
        }
        if p.allocation == Allocation::None && p.session.is_none() {
            self.invite(now, room, nick);
        }
    }

    fn grant_moderators(&mut self, now: Instant, room: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let mut grants = Vec::new();
        if let Some(auth) = &self.options.authentication {
            for p in c.participants.values_mut() {
                let Some(real) = p.real_jid.clone() else {
                    continue;
                };
                let bare = split_jid(&real).0.to_string();
                let domain = bare.rsplit('@').next().unwrap_or("");
                let authenticated =
                    domain == auth.login_domain || self.authenticated.contains(&real);
                if authenticated && p.affiliation != "owner" && !p.granted_owner {
                    p.granted_owner = true;
                    grants.push(bare);
                }
            }
        } else {
            let has_owner = c
                .participants
                .values()
                .any(|p| p.affiliation == "owner" || p.granted_owner);
            if !has_owner
                && let Some(first) = c
                    .participants
                    .values_mut()
                    .filter(|p| p.real_jid.is_some())
                    .min_by_key(|p| p.joined_at)
            {
                first.granted_owner = true;
                if let Some(real) = &first.real_jid {
                    grants.push(split_jid(real).0.to_string());
                }
            }
        }
        for jid in grants {
            let id = self.id();
            let iq = room::grant_owner(room, &jid, &id);
            self.request(now, iq, Pending::Other);
        }
    }

    /// A participant left (or was kicked): its session ends, its sources
    /// leave the others, its endpoint expires; the last one out ends the
    /// conference.
    pub(crate) fn participant_left(&mut self, now: Instant, room: &str, nick: &str, kicked: bool) {
        let initiator = self.options.jid.clone();
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(p) = c.participants.remove(nick) else {
            return;
        };
        c.sources.remove_owner(nick);
        let reason_text = if kicked { "kicked" } else { "left" };
        let mut out = Vec::new();
        if let Some(s) = &p.session {
            out.push(offer::session_terminate(
                &p.occupant_jid,
                "",
                &initiator,
                &s.sid,
                "gone",
                Some(reason_text),
            ));
        }
        let bridge = p.allocation.bridge().map(str::to_string);
        let expire = bridge
            .as_deref()
            .and_then(|b| c.session(b))
            .filter(|bs| bs.created)
            .map(|bs| (bs.bridge.clone(), c.meeting_id.clone()));
        for bs in c.bridges.iter_mut() {
            bs.queued.retain(|q| q != nick);
        }
        let empty = c.participants.is_empty();
        // The last participant of a bridge takes the bridge out of the
        // conference (as Jicofo removes an empty session).
        let bridge_emptied = bridge
            .as_deref()
            .filter(|b| !empty && c.on_bridge(b).is_empty());
        let expire = match bridge_emptied {
            Some(b) => {
                let b = b.to_string();
                self.remove_session(now, room, &b);
                None
            }
            None => expire,
        };
        self.counters.participants_left += 1;
        for mut iq in out {
            let id = self.id();
            iq.set_attr("id", Some(id));
            self.request(now, iq, Pending::Other);
        }
        if let Some((bridge, meeting_id)) = expire {
            self.relay_endpoints_changed(now, room, nick, &bridge, crate::relays::Change::Expire);
            let id = self.id();
            let iq = crate::colibri::conference_modify(
                &bridge,
                &id,
                &meeting_id,
                room,
                false,
                vec![crate::colibri::endpoint_expire(nick)],
            );
            self.request(now, iq, Pending::Other);
        }
        if empty {
            self.end_conference(now, room, true);
        } else {
            self.schedule_source_signaling(now, room, nick);
            self.grant_moderators(now, room);
        }
    }

    /// Ends a conference: sessions terminated, the conference expired on
    /// the bridge, the room left (`leave`: unless the room already went).
    pub(crate) fn end_conference(&mut self, now: Instant, room: &str, leave: bool) {
        let Some(c) = self.conferences.remove(room) else {
            return;
        };
        let initiator = self.options.jid.clone();
        for p in c.participants.values() {
            if let Some(s) = &p.session {
                let id = self.id();
                let iq = offer::session_terminate(
                    &p.occupant_jid,
                    &id,
                    &initiator,
                    &s.sid,
                    "success",
                    Some("conference ended"),
                );
                self.request(now, iq, Pending::Other);
            }
        }
        for bs in c.bridges.iter().filter(|b| b.created) {
            let id = self.id();
            let iq = crate::colibri::conference_expire(&bs.bridge, &id, &c.meeting_id);
            self.request(now, iq, Pending::Other);
        }
        if leave {
            self.send(room::leave_presence(&c.focus_occupant()));
        }
        // Requests still waiting for the room: it is not there.
        for mut r in c.pending_replies {
            if let Some(conf) = r.get_child_mut("conference", ns::FOCUS) {
                conf.set_attr("ready", Some("false".into()));
            }
            self.send(r);
        }
    }
}
