//! The sans-IO recorder: what Jibri's XmppApi and JibriManager do, for
//! many recordings at once. Stanzas and time in, stanzas (on the control
//! link, `jibri@auth.D`, or the call link, `recorder@recorder.D`), events
//! for the runtime and the next deadline out.
//!
//! - In the JibriBrewery room it shows `<jibri-status>`: busy only when
//!   [`RecorderOptions::max_concurrent`] recordings run, unhealthy when the
//!   disk is below [`RecorderOptions::min_free_bytes`].
//! - A `<jibri action='start'>` from the focus is answered `pending` (or
//!   `off` with `failure_reason` busy/error and `should_retry`), the
//!   recorder joins the conference room from the recorder domain, and once
//!   in, sends the focus an IQ set with status `on`.
//! - It stops (IQ set `off` to the focus; leaving the room) on
//!   `action='stop'` (answered `off`), when the room is destroyed, when
//!   only the focus and hidden participants are left for
//!   [`RecorderOptions::empty_timeout`], at [`RecorderOptions::max_duration`],
//!   when the disk runs low, or when the media side fails.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Map, Value};
use xmpp_core::Element;

use crate::brewery::{BreweryStatus, brewery_presence};
use crate::conference::{
    FOCUS_NICK, RoomPresence, domain_of, join_presence, leave_presence, read_presence,
    recorder_nick,
};
pub use crate::events::{Output, RecorderEvent, RecorderOptions, StopReason};
use crate::files::{Metadata, ParticipantInfo, app_data_metadata, session_dir};
use crate::jibri_iq::{Action, FailureReason, JibriIq, RecordingMode, Status};
use crate::ns;
use crate::replies::{bare, disco_info_reply, error_reply, is_ping};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Joining,
    On,
}

#[derive(Debug)]
struct Session {
    /// The focus's occupant JID in the brewery, where status IQs go.
    focus: String,
    room: String,
    nick: String,
    dir: PathBuf,
    phase: Phase,
    started: Instant,
    /// Participants in the room now (nick → display name).
    present: BTreeMap<String, Option<String>>,
    /// Everyone seen, for metadata.json, in order of arrival.
    seen: Vec<ParticipantInfo>,
    empty_since: Option<Instant>,
    meeting_url: String,
    extra: Map<String, Value>,
}

/// The recorder's protocol state.
pub struct Recorder {
    options: RecorderOptions,
    sessions: BTreeMap<String, Session>,
    out: VecDeque<Output>,
    free_bytes: Option<u64>,
    advertised: Option<BreweryStatus>,
    joined_brewery: bool,
    next_id: u64,
}

impl Recorder {
    /// A recorder whose links are up: it joins the brewery now.
    pub fn new(options: RecorderOptions, _now: Instant) -> Recorder {
        let mut r = Recorder {
            options,
            sessions: BTreeMap::new(),
            out: VecDeque::new(),
            free_bytes: None,
            advertised: None,
            joined_brewery: false,
            next_id: 0,
        };
        r.update_brewery();
        r
    }

    pub fn options(&self) -> &RecorderOptions {
        &self.options
    }

    /// Session ids of the recordings running now.
    pub fn sessions(&self) -> impl Iterator<Item = &str> {
        self.sessions.keys().map(String::as_str)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The earliest of the empty-room and maximum-duration deadlines.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| {
                let empty = s.empty_since.map(|t| t + self.options.empty_timeout);
                let max = self.options.max_duration.map(|d| s.started + d);
                [empty, max]
            })
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        for (id, s) in &self.sessions {
            if s.empty_since
                .is_some_and(|t| now >= t + self.options.empty_timeout)
            {
                due.push((id.clone(), StopReason::Empty));
            } else if self
                .options
                .max_duration
                .is_some_and(|d| now >= s.started + d)
            {
                due.push((id.clone(), StopReason::MaxDuration));
            }
        }
        for (id, reason) in due {
            self.stop(&id, reason, None, true);
        }
    }

    /// The free space on the recordings' filesystem (the runtime measures
    /// it every few seconds). Below the threshold, every recording stops
    /// cleanly and the brewery presence turns unhealthy.
    pub fn set_free_space(&mut self, _now: Instant, bytes: u64) {
        self.free_bytes = Some(bytes);
        if bytes < self.options.min_free_bytes {
            let ids: Vec<String> = self.sessions.keys().cloned().collect();
            for id in ids {
                self.stop(
                    &id,
                    StopReason::LowDiskSpace,
                    Some((FailureReason::Error, true)),
                    true,
                );
            }
        }
        self.update_brewery();
    }

    /// The media side of a recording failed: stop it with an error.
    pub fn media_failed(&mut self, _now: Instant, session_id: &str, why: &str) {
        self.stop(
            session_id,
            StopReason::Media(why.into()),
            Some((FailureReason::Error, true)),
            true,
        );
    }

    fn disk_low(&self) -> bool {
        self.free_bytes
            .is_some_and(|b| b < self.options.min_free_bytes)
    }

    fn update_brewery(&mut self) {
        let status = BreweryStatus {
            busy: self.sessions.len() >= self.options.max_concurrent,
            healthy: !self.disk_low(),
        };
        if self.advertised == Some(status) {
            return;
        }
        self.advertised = Some(status);
        let join = !self.joined_brewery;
        self.joined_brewery = true;
        self.out.push_back(Output::Control(brewery_presence(
            &self.options.jid,
            &self.options.brewery,
            &self.options.brewery_nick,
            status,
            join,
        )));
    }

    fn iq_id(&mut self) -> String {
        self.next_id += 1;
        format!("jibri-{}", self.next_id)
    }

    pub fn handle_stanza(&mut self, now: Instant, stanza: Element) {
        let to = stanza.to().unwrap_or_default();
        let to_call = bare(to).eq_ignore_ascii_case(bare(&self.options.recorder_jid))
            && !bare(&self.options.recorder_jid).eq_ignore_ascii_case(bare(&self.options.jid));
        match stanza.name() {
            "iq" if to_call => self.call_iq(stanza),
            "iq" => self.control_iq(now, stanza),
            "presence" => self.presence(now, &stanza),
            _ => {}
        }
    }

    fn control_iq(&mut self, now: Instant, iq: Element) {
        if !matches!(iq.type_(), Some("set") | Some("get")) {
            return; // results of our status IQs
        }
        if is_ping(&iq) {
            self.out.push_back(Output::Control(iq.reply()));
            return;
        }
        let Some(req) = JibriIq::from_iq(&iq).filter(|_| iq.type_() == Some("set")) else {
            self.out.push_back(Output::Control(error_reply(
                &iq,
                "cancel",
                "feature-not-implemented",
            )));
            return;
        };
        let reply = match req.action {
            Some(Action::Start) => self.start(now, &iq, &req),
            Some(Action::Stop) => {
                let id = req.session_id.clone().or_else(|| {
                    (self.sessions.len() == 1)
                        .then(|| self.sessions.keys().next().cloned())
                        .flatten()
                });
                if let Some(id) = &id {
                    self.stop(id, StopReason::Requested, None, false);
                }
                JibriIq::status(Status::Off, id.as_deref(), None)
            }
            None => {
                self.out
                    .push_back(Output::Control(error_reply(&iq, "modify", "bad-request")));
                return;
            }
        };
        let accepted = reply.status == Some(Status::Pending);
        let result = iq.reply().child(reply.to_element());
        self.out.push_back(Output::Control(result));
        if accepted {
            // A focus marks the recorder it started as in use until its
            // presence says otherwise (Jibri turns busy): say again that
            // this one, which records many at once, still takes more.
            self.advertised = None;
        }
        self.update_brewery();
    }

    /// Accepts or refuses a start request; returns the answer.
    fn start(&mut self, now: Instant, iq: &Element, req: &JibriIq) -> JibriIq {
        let session_id = req
            .session_id
            .clone()
            .unwrap_or_else(|| format!("lilt{}", self.next_id + 1));
        let refuse =
            |reason, retry| JibriIq::status(Status::Off, Some(&session_id), Some((reason, retry)));
        if req.recording_mode != Some(RecordingMode::File) {
            return refuse(FailureReason::Error, false);
        }
        let (Some(room), Some(focus)) = (req.room.clone(), iq.from()) else {
            return refuse(FailureReason::Error, false);
        };
        if self.sessions.contains_key(&session_id) {
            return JibriIq::status(Status::Pending, Some(&session_id), None);
        }
        if self.sessions.len() >= self.options.max_concurrent {
            return refuse(FailureReason::Busy, true);
        }
        if self.disk_low() {
            return refuse(FailureReason::Error, true);
        }
        let Ok(dir) = session_dir(&self.options.dir, &session_id) else {
            return refuse(FailureReason::Error, false);
        };
        let nick = recorder_nick(&session_id);
        let session = Session {
            focus: focus.to_string(),
            room: room.clone(),
            nick: nick.clone(),
            dir: dir.clone(),
            phase: Phase::Joining,
            started: now,
            present: BTreeMap::new(),
            seen: Vec::new(),
            empty_since: None,
            meeting_url: self.meeting_url(&room),
            extra: app_data_metadata(req.app_data.as_deref()),
        };
        self.sessions.insert(session_id.clone(), session);
        self.out.push_back(Output::Call(join_presence(
            &self.options.recorder_jid,
            &room,
            &nick,
            &session_id,
            RecordingMode::File.as_str(),
        )));
        self.out.push_back(Output::Event(RecorderEvent::Started {
            session_id: session_id.clone(),
            room,
            dir,
        }));
        JibriIq::status(Status::Pending, Some(&session_id), None)
    }

    fn meeting_url(&self, room: &str) -> String {
        let (name, domain) = room.split_once('@').unwrap_or((room, ""));
        let base = match &self.options.meeting_base_url {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => {
                let host = domain.split_once('.').map(|(_, d)| d).unwrap_or(domain);
                format!("https://{host}")
            }
        };
        format!("{base}/{name}")
    }

    /// Ends a session: leaves the room (unless it is gone), tells the focus
    /// (`notify`: an IQ set with status off), and tells the runtime.
    fn stop(
        &mut self,
        session_id: &str,
        reason: StopReason,
        failure: Option<(FailureReason, bool)>,
        notify: bool,
    ) {
        let Some(s) = self.sessions.remove(session_id) else {
            return;
        };
        if !matches!(
            reason,
            StopReason::RoomDestroyed | StopReason::JoinFailed(_) | StopReason::Kicked
        ) {
            self.out.push_back(Output::Call(leave_presence(
                &self.options.recorder_jid,
                &s.room,
                &s.nick,
            )));
        }
        if notify {
            let id = self.iq_id();
            let iq = Element::new("iq", ns::CLIENT)
                .attr("id", id)
                .attr("type", "set")
                .attr("from", self.options.jid.clone())
                .attr("to", s.focus.clone())
                .child(JibriIq::status(Status::Off, Some(session_id), failure).to_element());
            self.out.push_back(Output::Control(iq));
        }
        self.out.push_back(Output::Event(RecorderEvent::Stopped {
            session_id: session_id.into(),
            dir: s.dir,
            reason,
            metadata: Metadata {
                meeting_url: s.meeting_url,
                participants: s.seen,
                extra: s.extra,
            },
        }));
        self.update_brewery();
    }

    fn call_iq(&mut self, iq: Element) {
        if is_ping(&iq) {
            self.out.push_back(Output::Call(iq.reply()));
            return;
        }
        if iq.type_() == Some("get") && iq.get_child("query", ns::DISCO_INFO).is_some() {
            self.out.push_back(Output::Call(disco_info_reply(&iq)));
            return;
        }
        let from = iq.from().unwrap_or_default();
        let session = self
            .sessions
            .iter()
            .find(|(_, s)| bare(from).eq_ignore_ascii_case(&s.room))
            .map(|(id, _)| id.clone());
        match session {
            Some(session_id) if matches!(iq.type_(), Some("set") | Some("get")) => {
                self.out
                    .push_back(Output::Event(RecorderEvent::CallIq { session_id, iq }));
            }
            Some(_) => {}
            None if matches!(iq.type_(), Some("set") | Some("get")) => {
                self.out
                    .push_back(Output::Call(error_reply(&iq, "cancel", "item-not-found")));
            }
            None => {}
        }
    }

    fn presence(&mut self, now: Instant, p: &Element) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.sessions.get(&id) else {
                continue;
            };
            let Some(what) = read_presence(p, &s.room, &s.nick) else {
                continue;
            };
            self.room_presence(now, &id, what);
        }
    }

    fn is_hidden(&self, nick: &str, jid: Option<&str>) -> bool {
        nick == FOCUS_NICK
            || jid.is_some_and(|j| {
                domain_of(j).eq_ignore_ascii_case(domain_of(&self.options.recorder_jid))
            })
    }

    fn room_presence(&mut self, now: Instant, id: &str, what: RoomPresence) {
        match what {
            RoomPresence::SelfJoined => {
                let Some(s) = self.sessions.get_mut(id) else {
                    return;
                };
                if s.phase != Phase::Joining {
                    return;
                }
                s.phase = Phase::On;
                if s.present.is_empty() {
                    s.empty_since = Some(now);
                }
                let focus = s.focus.clone();
                let iq_id = self.iq_id();
                let iq = Element::new("iq", ns::CLIENT)
                    .attr("id", iq_id)
                    .attr("type", "set")
                    .attr("from", self.options.jid.clone())
                    .attr("to", focus)
                    .child(JibriIq::status(Status::On, Some(id), None).to_element());
                self.out.push_back(Output::Control(iq));
            }
            RoomPresence::SelfLeft { destroyed } => {
                let reason = if destroyed {
                    StopReason::RoomDestroyed
                } else {
                    StopReason::Kicked
                };
                self.stop(id, reason, None, true);
            }
            RoomPresence::JoinError(cond) => {
                self.stop(
                    id,
                    StopReason::JoinFailed(cond),
                    Some((FailureReason::Error, true)),
                    true,
                );
            }
            RoomPresence::Available { nick, name, jid } => {
                if self.is_hidden(&nick, jid.as_deref()) {
                    return;
                }
                let Some(s) = self.sessions.get_mut(id) else {
                    return;
                };
                s.empty_since = None;
                let new = !s.present.contains_key(&nick);
                s.present.insert(nick.clone(), name.clone());
                match s.seen.iter_mut().find(|p| p.id == nick) {
                    Some(p) => {
                        if name.is_some() {
                            p.name = name.clone();
                        }
                    }
                    None => s.seen.push(ParticipantInfo {
                        id: nick.clone(),
                        name: name.clone(),
                    }),
                }
                if new {
                    self.out
                        .push_back(Output::Event(RecorderEvent::ParticipantJoined {
                            session_id: id.into(),
                            endpoint: nick,
                            name,
                        }));
                }
            }
            RoomPresence::Unavailable { nick } => {
                let Some(s) = self.sessions.get_mut(id) else {
                    return;
                };
                if s.present.remove(&nick).is_none() {
                    return;
                }
                if s.present.is_empty() && s.phase == Phase::On {
                    s.empty_since = Some(now);
                }
                self.out
                    .push_back(Output::Event(RecorderEvent::ParticipantLeft {
                        session_id: id.into(),
                        endpoint: nick,
                    }));
            }
        }
    }
}
