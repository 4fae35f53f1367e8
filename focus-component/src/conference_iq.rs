//! The conference IQ (`<conference xmlns='http://jitsi.org/protocol/focus'
//! room machine-uid [session-id]>`), as Jicofo's `ConferenceIqHandler`
//! answers it.
//!
//! The request reaches the focus through `client_proxy`, from
//! `focus.D/<client's full JID>`. The focus joins (and if need be creates)
//! the room, then answers `ready='true'` with `focusjid` and the
//! properties `authentication`, `externalAuth`, `sipGatewayEnabled`. With
//! authentication configured: a user logged in on the login domain gets a
//! `session-id` and `identity`; a guest may join a room that exists, or any
//! room with a valid `session-id` (and the same `machine-uid`); otherwise
//! `not-authorized`, and an unknown session-id is `not-acceptable` with
//! `<session-invalid/>`. A malformed request is `bad-request`.

use std::time::Instant;

use xmpp_core::stanza::NS_STANZAS;
use xmpp_core::{Element, ErrorType, StanzaError};

use crate::focus::{Focus, Pending};
use crate::ns;
use crate::room::{self, Conference, RoomState};

/// A fresh random id in UUID form.
pub(crate) fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn property(name: &str, value: &str) -> Element {
    Element::new("property", ns::FOCUS)
        .attr("name", name)
        .attr("value", value)
}

impl Focus {
    /// The requester behind `client_proxy`'s rewriting of `from`.
    fn requester(&self, from: &str) -> String {
        let proxy = format!("focus.{}/", self.options.domain);
        from.strip_prefix(&proxy).unwrap_or(from).to_string()
    }

    pub(crate) fn on_conference_iq(&mut self, now: Instant, iq: &Element) {
        self.counters.conference_requests += 1;
        let Some(query) = iq.get_child("conference", ns::FOCUS) else {
            self.reply_error(iq, StanzaError::bad_request());
            return;
        };
        let room = query.get_attr("room").unwrap_or("").trim().to_lowercase();
        let valid_room = match room.split_once('@') {
            Some((node, host)) => {
                !node.is_empty() && !host.is_empty() && !host.contains('/') && !host.contains('@')
            }
            None => false,
        };
        if !valid_room {
            self.reply_error(
                iq,
                StanzaError::bad_request().with_text("the room attribute is not a room JID"),
            );
            return;
        }
        let requester = self.requester(iq.from().unwrap_or(""));
        let mut identity: Option<String> = None;
        let mut session_id: Option<String> = None;
        if let Some(auth) = self.options.authentication.clone() {
            let machine_uid = query.get_attr("machine-uid").map(str::to_string);
            let bare = requester.split('/').next().unwrap_or("").to_string();
            let domain = bare.rsplit('@').next().unwrap_or("");
            if domain == auth.login_domain {
                let Some(uid) = machine_uid else {
                    self.reply_error(
                        iq,
                        StanzaError::bad_request()
                            .with_text("missing mandatory attribute machine-uid"),
                    );
                    return;
                };
                let sid = query
                    .get_attr("session-id")
                    .filter(|s| {
                        self.auth_sessions
                            .get(*s)
                            .is_some_and(|(who, _)| *who == bare)
                    })
                    .map(str::to_string)
                    .unwrap_or_else(uuid);
                self.auth_sessions.insert(sid.clone(), (bare.clone(), uid));
                self.authenticated.insert(requester.clone());
                identity = Some(bare);
                session_id = Some(sid);
            } else if let Some(sid) = query.get_attr("session-id") {
                let valid = self
                    .auth_sessions
                    .get(sid)
                    .is_some_and(|(_, uid)| machine_uid.as_deref() == Some(uid.as_str()));
                if !valid {
                    let mut reply =
                        StanzaError::new(ErrorType::Cancel, "not-acceptable").reply_to(iq);
                    if let Some(err) = reply.get_child_mut("error", ns::CLIENT) {
                        err.push_child(Element::new("session-invalid", ns::FOCUS));
                    }
                    self.send(reply);
                    return;
                }
                identity = self.auth_sessions.get(sid).map(|(who, _)| who.clone());
                session_id = Some(sid.to_string());
                self.authenticated.insert(requester.clone());
            } else if !self.conferences.contains_key(&room) {
                self.send(
                    StanzaError::new(ErrorType::Auth, "not-authorized")
                        .with_text("not authorized user domain")
                        .reply_to(iq),
                );
                return;
            }
        }
        let mut answer = Element::new("conference", ns::FOCUS)
            .attr("room", room.clone())
            .attr("ready", "true")
            .attr("focusjid", self.options.bare_jid());
        if let Some(s) = &session_id {
            answer = answer.attr("session-id", s.clone());
        }
        if let Some(i) = &identity {
            answer = answer.attr("identity", i.clone());
        }
        let authenticating = self.options.authentication.is_some();
        answer.push_child(property("authentication", &authenticating.to_string()));
        answer.push_child(property("externalAuth", "false"));
        answer.push_child(property("sipGatewayEnabled", "false"));
        let reply = iq.reply().child(answer);
        self.ensure_conference(now, &room);
        let number = |name: &str| {
            query
                .children()
                .find(|p| p.name() == "property" && p.get_attr("name") == Some(name))
                .and_then(|p| p.get_attr("value"))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let (audio, video) = (number("startAudioMuted"), number("startVideoMuted"));
        if let Some(c) = self.conferences.get_mut(&room)
            && (audio.is_some() || video.is_some())
        {
            c.start_muted_after = (
                audio.or(c.start_muted_after.0),
                video.or(c.start_muted_after.1),
            );
        }
        match self.conferences.get_mut(&room) {
            Some(c) if c.state == RoomState::Joined => self.send(reply),
            Some(c) => c.pending_replies.push(reply),
            None => self.reply_error(iq, StanzaError::internal_server_error()),
        }
    }

    /// Joins `room` as the focus unless already there.
    pub(crate) fn ensure_conference(&mut self, now: Instant, room: &str) {
        if self.conferences.contains_key(room) {
            return;
        }
        let mut conference = Conference::new(room, uuid());
        conference.initial_deadline = Some(now + self.options.initial_timeout);
        conference.announced_bridges = self.brewery.len().min(1);
        let occupant = conference.focus_occupant();
        let bridges = conference.announced_bridges;
        self.conferences.insert(room.to_string(), conference);
        self.counters.conferences_created += 1;
        self.send(room::join_presence(&occupant, bridges));
    }

    /// The focus's self-presence in `room` arrived (`created`: status 201).
    pub(crate) fn room_joined(&mut self, now: Instant, room: &str, created: bool) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        if c.state != RoomState::Joining {
            return;
        }
        if created {
            c.state = RoomState::Configuring;
            let id = self.id();
            let form = room::config_form(room, &id);
            self.request(
                now,
                form,
                Pending::RoomConfig {
                    room: room.to_string(),
                },
            );
        } else {
            self.room_configured(room);
        }
    }

    pub(crate) fn room_configured(&mut self, room: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        c.state = RoomState::Joined;
        let replies = std::mem::take(&mut c.pending_replies);
        for r in replies {
            self.send(r);
        }
    }

    /// The focus could not join `room`: the waiting requests are refused.
    pub(crate) fn room_join_failed(&mut self, room: &str, error: Option<&Element>) {
        let Some(c) = self.conferences.remove(room) else {
            return;
        };
        let condition = error
            .and_then(|e| e.children().find(|c| c.ns() == NS_STANZAS))
            .map(|c| c.name().to_string());
        tracing::warn!(room, ?condition, "the focus could not join the room");
        for mut reply in c.pending_replies {
            if let Some(conf) = reply.get_child_mut("conference", ns::FOCUS) {
                conf.set_attr("ready", Some("false".into()));
            }
            self.send(reply);
        }
    }
}
