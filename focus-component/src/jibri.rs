//! Recorder brokering (Jibri's protocol), as Jicofo's `JibriRecorder` and
//! `JibriSession` do it.
//!
//! Recorders sit in the Jibri brewery room with a `<jibri-status>` presence
//! (`busy-status` idle/busy, health healthy). A moderator asks the focus
//! (`<jibri xmlns='http://jitsi.org/protocol/jibri' action='start'
//! recording_mode='file|stream' [streamid] [app_data]/>` to the focus's
//! occupant JID); the focus picks an idle healthy recorder and sends it
//! `action='start'` with the room and a `session_id`, publishes
//! `<jibri-recording-status status='pending'>` in its room presence, and
//! answers the moderator once the recorder accepted. The recorder reports
//! `status='on'|'off'` (with `failure_reason`, `should_retry`) by IQ; a
//! failure is retried on another recorder (at most [`MAX_RETRIES`] times),
//! `action='stop'` stops it. Refusals: not a moderator `forbidden`, one
//! already running `unexpected-request`, a stream without a stream id
//! `bad-request`, no recorder free `service-unavailable`.

use std::collections::BTreeMap;
use std::time::Instant;

use xmpp_core::{Element, ErrorType, StanzaError};

use crate::focus::{Focus, Pending};
use crate::ns;
use crate::room;

/// How many other recorders a failed session is tried on.
pub const MAX_RETRIES: u32 = 2;

/// A recorder of the Jibri brewery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jibri {
    pub idle: bool,
    pub healthy: bool,
}

/// The recorders, by occupant JID in the brewery.
#[derive(Debug, Default)]
pub struct Jibris {
    pub by_jid: BTreeMap<String, Jibri>,
}

impl Jibris {
    pub fn on_presence(&mut self, from: &str, presence: &Element) {
        if presence.type_() == Some("unavailable") {
            self.by_jid.remove(from);
            return;
        }
        let Some(status) = presence.get_child("jibri-status", ns::JIBRI) else {
            return;
        };
        let idle = status
            .children()
            .find(|c| c.name() == "busy-status")
            .and_then(|c| c.get_attr("status"))
            == Some("idle");
        let healthy = status
            .children()
            .find(|c| matches!(c.name(), "health-status" | "health"))
            .and_then(|c| c.get_attr("status"))
            .is_none_or(|s| s == "healthy");
        self.by_jid
            .insert(from.to_string(), Jibri { idle, healthy });
    }

    fn pick(&self, exclude: &[String]) -> Option<String> {
        self.by_jid
            .iter()
            .find(|(j, r)| r.idle && r.healthy && !exclude.contains(j))
            .map(|(j, _)| j.clone())
    }
}

/// A recording or live stream of a conference.
#[derive(Debug, Clone)]
pub struct JibriSession {
    pub session_id: String,
    pub mode: String,
    pub stream_id: Option<String>,
    pub app_data: Option<String>,
    pub initiator: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub jibri: Option<String>,
    pub tried: Vec<String>,
    /// The moderator's start request, answered once a recorder accepts.
    pub request: Option<Element>,
}

fn jibri_error(condition: &'static str, type_: ErrorType, text: &str) -> StanzaError {
    StanzaError::new(type_, condition).with_text(text)
}

impl Focus {
    pub(crate) fn on_jibri_brewery_presence(&mut self, from: &str, presence: &Element) {
        self.jibris.on_presence(from, presence);
    }

    /// `<jibri action>` from a participant, or `<jibri status>` from a
    /// recorder.
    pub(crate) fn on_jibri_iq(&mut self, now: Instant, iq: &Element) {
        let Some(j) = iq.get_child("jibri", ns::JIBRI) else {
            return;
        };
        if j.get_attr("action").is_none() && j.get_attr("status").is_some() {
            self.on_jibri_status(now, iq, j);
            return;
        }
        let from = iq.from().unwrap_or("");
        let (room, nick) = from.split_once('/').unwrap_or((from, ""));
        let room = room.to_lowercase();
        let Some(c) = self.conferences.get(&room) else {
            self.reply_error(iq, StanzaError::item_not_found());
            return;
        };
        let Some(p) = c.participants.get(nick) else {
            self.reply_error(iq, StanzaError::forbidden());
            return;
        };
        if !(p.is_moderator() || p.granted_owner) {
            self.reply_error(
                iq,
                jibri_error("forbidden", ErrorType::Auth, "not a moderator"),
            );
            return;
        }
        match j.get_attr("action") {
            Some("start") => self.jibri_start(now, &room, from, iq, j),
            Some("stop") => self.jibri_stop(now, &room, iq),
            _ => self.reply_error(iq, StanzaError::bad_request()),
        }
    }

    fn jibri_start(&mut self, now: Instant, room: &str, from: &str, iq: &Element, j: &Element) {
        let running = self
            .conferences
            .get(room)
            .and_then(|c| c.recording.as_ref())
            .is_some_and(|s| s.status != "off");
        if running {
            self.reply_error(
                iq,
                jibri_error("unexpected-request", ErrorType::Cancel, "already running"),
            );
            return;
        }
        let mode = j.get_attr("recording_mode").unwrap_or("file").to_string();
        let stream_id = j.get_attr("streamid").map(str::to_string);
        if mode == "stream" && stream_id.as_deref().is_none_or(str::is_empty) {
            self.reply_error(
                iq,
                jibri_error(
                    "bad-request",
                    ErrorType::Modify,
                    "stream mode without a stream id",
                ),
            );
            return;
        }
        if mode != "file" && mode != "stream" {
            self.reply_error(
                iq,
                jibri_error("bad-request", ErrorType::Modify, "unknown recording_mode"),
            );
            return;
        }
        let b: [u8; 8] = rand::random();
        let session = JibriSession {
            session_id: b.iter().map(|x| format!("{x:02x}")).collect(),
            mode,
            stream_id,
            app_data: j.get_attr("app_data").map(str::to_string),
            initiator: from.to_string(),
            status: "pending".into(),
            failure_reason: None,
            jibri: None,
            tried: Vec::new(),
            request: Some(iq.clone()),
        };
        if let Some(c) = self.conferences.get_mut(room) {
            c.recording = Some(session);
        }
        self.try_next_jibri(now, room);
    }

    /// Sends the start to the next free recorder, or gives up.
    fn try_next_jibri(&mut self, now: Instant, room: &str) {
        let Some(c) = self.conferences.get_mut(room) else {
            return;
        };
        let Some(s) = c.recording.as_mut() else {
            return;
        };
        let next = if s.tried.len() as u32 > MAX_RETRIES {
            None
        } else {
            self.jibris.pick(&s.tried)
        };
        let Some(jibri) = next else {
            s.status = "off".into();
            s.failure_reason = Some("error".into());
            s.jibri = None;
            if let Some(req) = s.request.take() {
                let cond = if s.tried.is_empty() {
                    "service-unavailable"
                } else {
                    "internal-server-error"
                };
                let err = jibri_error(cond, ErrorType::Wait, "no recorder could start");
                self.send(err.reply_to(&req));
            }
            self.publish_recording_status(room);
            return;
        };
        s.tried.push(jibri.clone());
        s.jibri = Some(jibri.clone());
        if let Some(r) = self.jibris.by_jid.get_mut(&jibri) {
            r.idle = false;
        }
        let start = Element::new("jibri", ns::JIBRI)
            .attr("action", "start")
            .attr("recording_mode", s.mode.clone())
            .attr("room", room)
            .attr("session_id", s.session_id.clone())
            .attr_opt("streamid", s.stream_id.clone())
            .attr_opt("app_data", s.app_data.clone());
        let id = self.id();
        let iq = Element::new("iq", ns::CLIENT)
            .attr("to", jibri.as_str())
            .attr("type", "set")
            .attr("id", id)
            .child(start);
        self.request(
            now,
            iq,
            Pending::JibriStart {
                room: room.to_string(),
                jibri,
            },
        );
        self.publish_recording_status(room);
    }

    /// The recorder answered the start.
    pub(crate) fn jibri_start_answered(&mut self, now: Instant, room: &str, jibri: &str, ok: bool) {
        let Some(s) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.recording.as_mut())
        else {
            return;
        };
        if s.jibri.as_deref() != Some(jibri) {
            return;
        }
        if ok {
            if let Some(req) = s.request.take() {
                self.send(req.reply());
            }
            return;
        }
        self.try_next_jibri(now, room);
    }

    fn jibri_stop(&mut self, now: Instant, room: &str, iq: &Element) {
        let Some(s) = self
            .conferences
            .get_mut(room)
            .and_then(|c| c.recording.as_mut())
            .filter(|s| s.status != "off")
        else {
            self.reply_error(
                iq,
                jibri_error("item-not-found", ErrorType::Cancel, "nothing to stop"),
            );
            return;
        };
        s.status = "off".into();
        s.failure_reason = None;
        s.request = None;
        let jibri = s.jibri.take();
        let session_id = s.session_id.clone();
        self.send(iq.reply());
        if let Some(jibri) = jibri {
            let id = self.id();
            let stop = Element::new("iq", ns::CLIENT)
                .attr("to", jibri.as_str())
                .attr("type", "set")
                .attr("id", id)
                .child(
                    Element::new("jibri", ns::JIBRI)
                        .attr("action", "stop")
                        .attr("session_id", session_id),
                );
            self.request(now, stop, Pending::Other);
        }
        self.publish_recording_status(room);
    }

    /// `<jibri status='on|off' [failure_reason] [should_retry]>` from the
    /// recorder of a session.
    fn on_jibri_status(&mut self, now: Instant, iq: &Element, j: &Element) {
        let from = iq.from().unwrap_or("").to_string();
        let session_id = j.get_attr("session_id");
        let found = self.conferences.iter().find_map(|(room, c)| {
            let s = c.recording.as_ref()?;
            let matches = session_id.map_or(s.jibri.as_deref() == Some(from.as_str()), |id| {
                id == s.session_id
            });
            matches.then(|| room.clone())
        });
        let Some(room) = found else {
            self.reply_error(iq, StanzaError::item_not_found());
            return;
        };
        self.send(iq.reply());
        let status = j.get_attr("status").unwrap_or("");
        let failure = j.get_attr("failure_reason").map(str::to_string);
        let retry = j.get_attr("should_retry") == Some("true");
        let Some(s) = self
            .conferences
            .get_mut(&room)
            .and_then(|c| c.recording.as_mut())
        else {
            return;
        };
        match status {
            "on" => {
                s.status = "on".into();
                if let Some(req) = s.request.take() {
                    self.send(req.reply());
                }
                self.publish_recording_status(&room);
            }
            "off" if failure.is_some() && retry => self.try_next_jibri(now, &room),
            "off" => {
                s.status = "off".into();
                s.failure_reason = failure;
                s.jibri = None;
                self.publish_recording_status(&room);
            }
            _ => {}
        }
    }

    /// The focus's room presence with `<jibri-recording-status>`.
    fn publish_recording_status(&mut self, room: &str) {
        self.publish_focus_presence(room);
    }

    /// The focus's room presence again (its conference properties, the
    /// recording status when there is one).
    pub(crate) fn publish_focus_presence(&mut self, room: &str) {
        let Some(c) = self.conferences.get(room) else {
            return;
        };
        let mut presence = room::join_presence(&c.focus_occupant(), c.announced_bridges);
        presence.remove_children(|e| e.name() == "x");
        let Some(s) = &c.recording else {
            self.send(presence);
            return;
        };
        presence.push_child(
            Element::new("jibri-recording-status", ns::JIBRI)
                .attr("status", s.status.clone())
                .attr("recording_mode", s.mode.clone())
                .attr("session_id", s.session_id.clone())
                .attr("initiator", s.initiator.clone())
                .attr_opt("failure_reason", s.failure_reason.clone()),
        );
        self.send(presence);
    }
}
