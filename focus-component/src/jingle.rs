//! Jingle from participants, as Jicofo's `JingleSession` and
//! `Participant` handle it, and the batched fan-out of source changes.
//!
//! - `session-accept` / `transport-accept`: the participant's transport and
//!   sources go to the bridge; the session is up.
//! - `transport-info`: the transport goes to the bridge.
//! - `source-add` / `source-remove`: validated ([`crate::sources`]),
//!   refused with `bad-request` and the reason; accepted ones go to the
//!   bridge and, batched by the source-signaling delay, to every other
//!   participant.
//! - `session-terminate`: the endpoint expires; with `<bridge-session
//!   restart='true'>` the participant is invited again, within the restart
//!   rate limit ([`crate::restart`]; over it, the session still ends and the
//!   answer is `resource-constraint`).
//! - `session-info` with `<ice-state>failed</ice-state>` for the current
//!   `<bridge-session id>`: the session restarts as Jicofo's RestartJingle
//!   ([`crate::restart`]: session-terminate, then a new session-initiate),
//!   within the same rate limit. A stale bridge-session id is ignored.
//!
//! A request for an unknown session is `item-not-found`, contents of an
//! unknown media type `bad-request`; nothing a participant sends stops the
//! conference for the others.

use std::collections::BTreeMap;
use std::time::Instant;

use media_signalling::xml::parse_jingle_sources;
use media_signalling::{MediaKind, Source};
use xmpp_core::{Element, StanzaError};

use crate::colibri;
use crate::focus::{Focus, Pending};
use crate::ns;
use crate::offer;
use crate::participant::Allocation;

/// Sources in `new` not yet owned (by SSRC) in `mine`.
fn not_yet_known(mine: &[Source], new: Vec<Source>) -> Vec<Source> {
    new.into_iter()
        .filter_map(|mut s| {
            s.ssrcs
                .retain(|x| !mine.iter().any(|m| m.ssrcs.contains(x)));
            if s.ssrcs.is_empty() { None } else { Some(s) }
        })
        .collect()
}

/// What is in `to` and not in `from`, per owner (by SSRC, with the groups
/// over added SSRCs).
fn missing(
    from: &BTreeMap<String, Vec<Source>>,
    to: &BTreeMap<String, Vec<Source>>,
) -> BTreeMap<String, Vec<Source>> {
    let mut out = BTreeMap::new();
    for (owner, list) in to {
        let had: Vec<u32> = from
            .get(owner)
            .map(|l| l.iter().flat_map(|s| s.ssrcs.iter().copied()).collect())
            .unwrap_or_default();
        let mut diff = Vec::new();
        for s in list {
            let ssrcs: Vec<u32> = s
                .ssrcs
                .iter()
                .copied()
                .filter(|x| !had.contains(x))
                .collect();
            if ssrcs.is_empty() {
                continue;
            }
            let groups = s
                .groups
                .iter()
                .filter(|g| g.ssrcs.iter().any(|x| ssrcs.contains(x)))
                .cloned()
                .collect();
            diff.push(Source {
                ssrcs,
                groups,
                ..s.clone()
            });
        }
        if !diff.is_empty() {
            out.insert(owner.clone(), diff);
        }
    }
    out
}

impl Focus {
    pub(crate) fn on_jingle(&mut self, now: Instant, iq: &Element) {
        let Some(jingle) = iq.get_child("jingle", ns::JINGLE) else {
            return;
        };
        let from = iq.from().unwrap_or("");
        let (room, nick) = from.split_once('/').unwrap_or((from, ""));
        let room = room.to_lowercase();
        let action = jingle.get_attr("action").unwrap_or("").to_string();
        let sid = jingle.get_attr("sid").unwrap_or("");
        let known = self
            .conferences
            .get(&room)
            .and_then(|c| c.participants.get(nick))
            .and_then(|p| p.session.as_ref())
            .is_some_and(|s| s.sid == sid);
        if !known {
            self.counters.jingle_errors += 1;
            self.reply_error(
                iq,
                StanzaError::item_not_found().with_text("unknown session"),
            );
            return;
        }
        let contents: Vec<&Element> = jingle
            .children()
            .filter(|c| c.is("content", ns::JINGLE))
            .collect();
        // A content is known by its description's media type (a content
        // with only a transport, as in transport-info, may be named by its
        // mid); sources of any other media type are refused.
        for content in &contents {
            let Some(desc) = content.get_child("description", ns::JINGLE_RTP) else {
                continue;
            };
            let media = desc
                .get_attr("media")
                .or_else(|| content.get_attr("name"))
                .unwrap_or("");
            if MediaKind::parse(media).is_none() && media != "data" && media != "application" {
                self.counters.jingle_errors += 1;
                self.reply_error(
                    iq,
                    StanzaError::bad_request().with_text(format!("unknown content: {media}")),
                );
                return;
            }
        }
        let nick = nick.to_string();
        // The answer goes out before what the request caused (bridge
        // updates, re-invites).
        let answer_at = self.out.len();
        let result = match action.as_str() {
            "session-accept" | "transport-accept" => {
                self.on_accept(now, &room, &nick, iq, &contents)
            }
            "transport-info" => self.on_transport_info(now, &room, &nick, &contents),
            "source-add" => self.on_source_add(now, &room, &nick, iq, &contents),
            "source-remove" => self.on_source_remove(now, &room, &nick, iq, &contents),
            "session-terminate" => self.on_session_terminate(now, &room, &nick, jingle),
            "session-info" => {
                let ice_failed = jingle
                    .get_child("ice-state", ns::FOCUS)
                    .or_else(|| iq.get_child("ice-state", ns::FOCUS))
                    .is_some_and(|s| s.text_content().trim().eq_ignore_ascii_case("failed"));
                if ice_failed && self.is_current_bridge_session(&room, &nick, jingle) {
                    self.accept_restart_request(now, &room, &nick)
                        .map(|()| self.restart_participant(now, &room, &nick))
                } else {
                    Ok(())
                }
            }
            "transport-reject" | "content-modify" | "description-info" => Ok(()),
            other => {
                Err(StanzaError::bad_request().with_text(format!("unsupported action {other}")))
            }
        };
        let answer = match result {
            Ok(()) => iq.reply(),
            Err(e) => {
                self.counters.jingle_errors += 1;
                e.reply_to(iq)
            }
        };
        let at = answer_at.min(self.out.len());
        self.out.insert(at, answer);
        self.flush_due_sources(now);
    }

    /// The sources of Jingle contents; unnamed ones are named
    /// `<endpoint>-a<n>` / `-v<n>` as Jicofo names them.
    fn parse_sources(contents: &[&Element], nick: &str) -> Result<Vec<Source>, StanzaError> {
        let mut out: Vec<Source> = Vec::new();
        for content in contents {
            let Some(desc) = content.get_child("description", ns::JINGLE_RTP) else {
                continue;
            };
            let media = desc
                .get_attr("media")
                .or_else(|| content.get_attr("name"))
                .unwrap_or("");
            let Some(kind) = MediaKind::parse(media) else {
                continue;
            };
            let parsed = parse_jingle_sources(desc, kind)
                .map_err(|e| StanzaError::bad_request().with_text(e.to_string()))?;
            out.extend(parsed);
        }
        for kind in [MediaKind::Audio, MediaKind::Video] {
            let letter = if kind == MediaKind::Audio { 'a' } else { 'v' };
            for (n, s) in out
                .iter_mut()
                .filter(|s| s.kind == kind && s.name.is_empty())
                .enumerate()
            {
                s.name = format!("{nick}-{letter}{n}");
            }
        }
        Ok(out)
    }

    fn on_accept(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        _iq: &Element,
        contents: &[&Element],
    ) -> Result<(), StanzaError> {
        let parsed = Self::parse_sources(contents, nick)?;
        let transport = contents
            .iter()
            .find_map(|c| c.get_child("transport", ns::JINGLE_ICE_UDP))
            .cloned();
        let limits = self.options.source_limits;
        let Some(c) = self.conferences.get_mut(room) else {
            return Err(StanzaError::item_not_found());
        };
        let added = not_yet_known(c.sources.of(nick), parsed);
        c.sources
            .add(nick, added.clone(), limits)
            .map_err(|e| StanzaError::bad_request().with_text(e.to_string()))?;
        let Some(p) = c.participants.get_mut(nick) else {
            return Err(StanzaError::item_not_found());
        };
        if let Some(s) = p.session.as_mut() {
            s.active = true;
        }
        if transport.is_some() {
            p.transport = transport.clone();
        }
        // Whatever changed while the offer was out is signalled now.
        p.flush_at = Some(now);
        self.update_bridge(now, room, nick, transport.as_ref(), true);
        if !added.is_empty() {
            self.schedule_source_signaling(now, room, nick);
        }
        Ok(())
    }

    fn on_transport_info(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        contents: &[&Element],
    ) -> Result<(), StanzaError> {
        let Some(transport) = contents
            .iter()
            .find_map(|c| c.get_child("transport", ns::JINGLE_ICE_UDP))
            .cloned()
        else {
            return Err(StanzaError::bad_request().with_text("missing transport"));
        };
        if let Some(p) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.participants.get_mut(nick))
        {
            p.transport = Some(transport.clone());
        }
        self.update_bridge(now, room, nick, Some(&transport), false);
        Ok(())
    }

    fn on_source_add(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        _iq: &Element,
        contents: &[&Element],
    ) -> Result<(), StanzaError> {
        let mut parsed = Self::parse_sources(contents, nick)?;
        if parsed.is_empty() {
            return Ok(());
        }
        let limits = self.options.source_limits;
        let Some(c) = self.conferences.get_mut(room) else {
            return Err(StanzaError::item_not_found());
        };
        // A source named by the endpoint that it already has gets the new
        // SSRCs (renaming the interim names is left to the client).
        for s in parsed.iter_mut() {
            s.name = s.name.trim().to_string();
        }
        c.sources
            .add(nick, parsed, limits)
            .map_err(|e| StanzaError::bad_request().with_text(e.to_string()))?;
        self.update_bridge(now, room, nick, None, true);
        self.schedule_source_signaling(now, room, nick);
        Ok(())
    }

    fn on_source_remove(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        _iq: &Element,
        contents: &[&Element],
    ) -> Result<(), StanzaError> {
        let parsed = Self::parse_sources(contents, nick)?;
        if parsed.is_empty() {
            return Ok(());
        }
        let Some(c) = self.conferences.get_mut(room) else {
            return Err(StanzaError::item_not_found());
        };
        c.sources
            .remove(nick, &parsed)
            .map_err(|e| StanzaError::bad_request().with_text(e.to_string()))?;
        self.update_bridge(now, room, nick, None, true);
        self.schedule_source_signaling(now, room, nick);
        Ok(())
    }

    /// Whether the `<bridge-session id>` of a request (if it names one) is
    /// the one of the participant's session.
    fn is_current_bridge_session(&self, room: &str, nick: &str, jingle: &Element) -> bool {
        let Some(id) = jingle
            .get_child("bridge-session", ns::FOCUS)
            .and_then(|b| b.get_attr("id"))
        else {
            return true;
        };
        self.conferences
            .get(room)
            .and_then(|c| c.participants.get(nick))
            .and_then(|p| p.session.as_ref())
            .is_some_and(|s| s.bridge_session_id == id)
    }

    /// The participant ended its session; with `restart='true'` it is
    /// invited again when the rate limit allows (the session ends either
    /// way, as in Jicofo).
    fn on_session_terminate(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        jingle: &Element,
    ) -> Result<(), StanzaError> {
        if !self.is_current_bridge_session(room, nick, jingle) {
            return Err(StanzaError::item_not_found().with_text("not the current bridge session"));
        }
        let restart = jingle
            .get_child("bridge-session", ns::FOCUS)
            .and_then(|b| b.get_attr("restart"))
            == Some("true");
        let reinvite = if restart {
            self.accept_restart_request(now, room, nick)
        } else {
            Ok(())
        };
        self.end_session(now, room, nick, restart && reinvite.is_ok());
        reinvite
    }

    fn end_session(&mut self, now: Instant, room: &str, nick: &str, restart: bool) {
        self.expire_endpoint(now, room, nick);
        if let Some(c) = self.conferences.get_mut(room) {
            c.sources.remove_owner(nick);
            if let Some(p) = c.participants.get_mut(nick) {
                p.session = None;
                p.allocation = Allocation::None;
                p.transport = None;
            }
        }
        self.schedule_source_signaling(now, room, nick);
        if restart {
            self.invite(now, room, nick);
        }
    }

    pub(crate) fn expire_endpoint(&mut self, now: Instant, room: &str, nick: &str) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let Some(p) = c.participants.get(nick) else {
            return;
        };
        let Some(bs) = p
            .allocation
            .bridge()
            .and_then(|b| c.session(b))
            .filter(|b| b.created)
        else {
            return;
        };
        let (bridge, meeting_id) = (bs.bridge.clone(), c.meeting_id.clone());
        self.relay_endpoints_changed(now, room, nick, &bridge, crate::relays::Change::Expire);
        let id = self.id();
        let iq = colibri::conference_modify(
            &bridge,
            &id,
            &meeting_id,
            room,
            false,
            vec![colibri::endpoint_expire(nick)],
        );
        self.request(now, iq, Pending::Other);
    }

    /// Tells the bridge the participant's transport and/or all its sources.
    pub(crate) fn update_bridge(
        &mut self,
        now: Instant,
        room: &str,
        nick: &str,
        transport: Option<&Element>,
        with_sources: bool,
    ) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let Some(p) = c.participants.get(nick) else {
            return;
        };
        let Allocation::Allocated { bridge, .. } = &p.allocation else {
            return;
        };
        let sources = c.sources.of(nick).to_vec();
        let endpoint = colibri::endpoint_update(
            nick,
            p.stats_id.as_deref(),
            transport,
            with_sources.then_some(sources.as_slice()),
        );
        let (bridge, meeting_id) = (bridge.clone(), c.meeting_id.clone());
        let id = self.id();
        let iq = colibri::conference_modify(&bridge, &id, &meeting_id, room, false, vec![endpoint]);
        self.request(
            now,
            iq,
            Pending::ColibriUpdate {
                room: room.to_string(),
                bridge: bridge.clone(),
            },
        );
        if with_sources {
            self.relay_endpoints_changed(now, room, nick, &bridge, crate::relays::Change::Update);
        }
    }

    /// Every participant but `except` gets the conference's source changes
    /// after the signalling delay (one batch per delay).
    pub(crate) fn schedule_source_signaling(&mut self, now: Instant, room: &str, except: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let at = now + self.options.source_signaling_delay(c.participants.len());
        for p in c.participants.values_mut() {
            if p.endpoint_id != except && p.session.is_some() && p.flush_at.is_none() {
                p.flush_at = Some(at);
            }
        }
    }

    /// Sends the queued source changes that are due: per participant, one
    /// source-remove and one source-add with everything that changed since
    /// the last signalling.
    pub(crate) fn flush_due_sources(&mut self, now: Instant) {
        let initiator = self.options.jid.clone();
        let mut out = Vec::new();
        for (room, c) in self.conferences.iter_mut() {
            let mut nicks = Vec::new();
            for p in c.participants.values_mut() {
                if p.flush_at.is_some_and(|t| t <= now) {
                    if p.session_active() {
                        nicks.push(p.endpoint_id.clone());
                    } else {
                        // Signalled once the session is up (see on_accept).
                        p.flush_at = None;
                    }
                }
            }
            for nick in nicks {
                let desired = c.remote_sources(&nick);
                let Some(p) = c.participants.get_mut(&nick) else {
                    continue;
                };
                p.flush_at = None;
                let removed = missing(&desired, &p.signaled);
                let added = missing(&p.signaled, &desired);
                p.signaled = desired;
                let Some(s) = &p.session else { continue };
                let json = p.supports_json_sources();
                for (action, set) in [("source-remove", removed), ("source-add", added)] {
                    if set.is_empty() {
                        continue;
                    }
                    let skeleton =
                        offer::jingle_iq(&p.occupant_jid, "", action, &initiator, &s.sid);
                    out.push(offer::source_change(skeleton, &set, room, json));
                }
            }
        }
        for mut iq in out {
            let id = self.id();
            iq.set_attr("id", Some(id));
            self.counters.source_signaling += 1;
            self.request(now, iq, Pending::Other);
        }
    }
}
