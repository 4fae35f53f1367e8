//! `speakerstats_component` (Jitsi's mod_speakerstats_component), loaded as
//! a component:
//!
//! ```lua
//! Component "speakerstats.meet.example.com" "speakerstats_component"
//!     muc_component = "conference.meet.example.com"
//! ```
//!
//! - Each room of `muc_component` (and of `breakout.<muc_mapper_domain_base>`)
//!   keeps, per occupant (by real JID), the time it was the dominant
//!   speaker, its display name when it left, and its face landmarks.
//! - The client that becomes the dominant speaker tells the component:
//!   `<message to='speakerstats.…'><speakerstats xmlns='http://jitsi.org/jitmeet'
//!   room='room@conference.…' silence='false'/></message>`; the previous
//!   dominant speaker's time is closed, the sender's opened (a silent
//!   dominant speaker does not count). `<faceLandmarks faceExpression=…
//!   timestamp=… duration=…/>` is appended to the sender's landmarks.
//! - An occupant joining (not the focus, not an admin) gets the stats so
//!   far, as the json-message `{"type":"speakerstats","users":{nick:
//!   {displayName, totalDominantSpeakerTime, faceLandmarks}}}` from the
//!   component: everyone who spoke, left, is speaking now or has
//!   landmarks, with the running time included.
//! - An occupant leaving stops speaking and keeps its display name.
//! - The component is announced as the `speakerstats` identity of the main
//!   VirtualHost.
//!
//! [`SpeakerStats`] and [`RoomStats`] are sans-IO (times in milliseconds
//! come in); the hooks feed them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};
use xmpp_core::{Event, Host, Server, Value};

use super::components::ComponentConfig;
use super::meeting_id::NS_JITMEET;
use super::util::{is_admin, is_healthcheck_room};
use super::web_session::{announce_identity, get_room_from_jid, json_message};
use muc::events::{lock, occupant_of, room_of};
use muc::room::Room;

const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// One face landmark report.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceLandmark {
    pub face_expression: Option<String>,
    pub timestamp: Option<f64>,
    pub duration: Option<f64>,
}

/// One occupant's stats (Jitsi's `SpeakerStats`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerStats {
    /// The nickname (endpoint id) in the room.
    pub nick: String,
    pub context_user: Option<Value>,
    pub display_name: Option<String>,
    /// Milliseconds spent as the (non-silent) dominant speaker, closed
    /// periods only.
    pub total_dominant_speaker_time: i64,
    dominant_speaker_start: f64,
    is_dominant_speaker: bool,
    is_silent: bool,
    pub face_landmarks: Vec<FaceLandmark>,
}

impl SpeakerStats {
    pub fn new(nick: &str, context_user: Option<Value>) -> SpeakerStats {
        SpeakerStats {
            nick: nick.to_string(),
            context_user,
            display_name: None,
            total_dominant_speaker_time: 0,
            dominant_speaker_start: 0.0,
            is_dominant_speaker: false,
            is_silent: false,
            face_landmarks: Vec::new(),
        }
    }

    pub fn is_dominant_speaker(&self) -> bool {
        self.is_dominant_speaker
    }

    pub fn is_silent(&self) -> bool {
        self.is_silent
    }

    fn close_period(&mut self, now: f64) {
        self.total_dominant_speaker_time += (now - self.dominant_speaker_start).floor() as i64;
        self.dominant_speaker_start = 0.0;
    }

    /// Becomes (or stops being) the dominant speaker at `now` (ms).
    pub fn set_dominant_speaker(&mut self, now: f64, dominant: bool, silence: bool) {
        if !self.is_dominant_speaker && dominant && !silence {
            self.dominant_speaker_start = now;
        } else if self.is_dominant_speaker {
            if !dominant {
                if !self.is_silent {
                    self.close_period(now);
                }
            } else if self.is_silent && !silence {
                self.dominant_speaker_start = now;
            } else if !self.is_silent && silence {
                self.close_period(now);
            }
        }
        self.is_dominant_speaker = dominant;
        self.is_silent = silence;
    }

    /// The total at `now`, the running period included.
    pub fn total_at(&self, now: f64) -> i64 {
        let mut total = self.total_dominant_speaker_time;
        if self.is_dominant_speaker && !self.is_silent {
            total += (now - self.dominant_speaker_start).floor() as i64;
        }
        total
    }

    fn to_json(&self, now: f64) -> Json {
        let mut o = Map::new();
        if let Some(name) = &self.display_name {
            o.insert("displayName".into(), json!(name));
        }
        o.insert("totalDominantSpeakerTime".into(), json!(self.total_at(now)));
        let landmarks: Vec<Json> = self
            .face_landmarks
            .iter()
            .map(|l| {
                let mut m = Map::new();
                if let Some(e) = &l.face_expression {
                    m.insert("faceExpression".into(), json!(e));
                }
                if let Some(t) = l.timestamp {
                    m.insert("timestamp".into(), json!(t));
                }
                if let Some(d) = l.duration {
                    m.insert("duration".into(), json!(d));
                }
                Json::Object(m)
            })
            .collect();
        o.insert("faceLandmarks".into(), Json::Array(landmarks));
        Json::Object(o)
    }
}

/// A room's stats (Jitsi's `room.speakerStats`).
#[derive(Debug, Clone, Default)]
pub struct RoomStats {
    /// By the occupant's real JID.
    pub users: HashMap<String, SpeakerStats>,
    pub dominant_speaker_id: Option<String>,
    pub session_id: Option<String>,
    pub is_breakout: bool,
    pub breakout_room_id: Option<String>,
}

impl RoomStats {
    /// `from` (a real JID) is the dominant speaker now.
    pub fn dominant_speaker(&mut self, now: f64, from: &str, silence: bool) {
        if let Some(old) = self.dominant_speaker_id.clone()
            && old != from
            && let Some(s) = self.users.get_mut(&old)
        {
            s.set_dominant_speaker(now, false, false);
        }
        if let Some(s) = self.users.get_mut(from) {
            s.set_dominant_speaker(now, true, silence);
        }
        self.dominant_speaker_id = Some(from.to_string());
    }

    /// What a joining occupant is told (`None`: nothing to tell);
    /// `in_room` says whether a real JID is still an occupant.
    pub fn users_json(&self, now: f64, in_room: &dyn Fn(&str) -> bool) -> Option<Json> {
        let mut users = Map::new();
        for (jid, s) in &self.users {
            if s.nick == "focus" {
                continue;
            }
            if s.total_dominant_speaker_time > 0
                || !in_room(jid)
                || s.is_dominant_speaker
                || !s.face_landmarks.is_empty()
            {
                users.insert(s.nick.clone(), s.to_json(now));
            }
        }
        (!users.is_empty()).then(|| json!({ "type": "speakerstats", "users": users }))
    }
}

/// The stats of every room, by room JID, on the component host's
/// extension slot.
#[derive(Default)]
pub struct Store(Mutex<HashMap<String, RoomStats>>);

/// A copy of a room's stats as the component `component` keeps them
/// (`None` when the room keeps none: health checks, or rooms created
/// before the component).
pub fn room_stats(component: &Host, room_jid: &str) -> Option<RoomStats> {
    lock(&component.extension::<Store>().0)
        .get(room_jid)
        .cloned()
}

fn now_ms(server: &Server) -> f64 {
    server.clock.now() * 1000.0
}

pub fn load(
    server: &Arc<Server>,
    host: &Arc<Host>,
) -> Result<(), super::components::ComponentError> {
    let config = Arc::new(ComponentConfig::read("speakerstats_component", host)?);
    let Some(muc_name) = config.muc_component.clone() else {
        return Ok(());
    };
    tracing::info!(host = %host.name, "starting speakerstats for {muc_name}");
    let component = host.clone();
    let c = config.clone();
    host.events.hook("message/host", 0, move |event| {
        on_message(&component, &c, event)
    });
    if let Some(base) = config.domain_base.as_deref() {
        announce_identity(server, base, "speakerstats", &host.name);
    }

    if let Some(muc) = server.host(&muc_name) {
        hook_muc(host, &muc, None);
    } else {
        tracing::info!(host = %host.name, "no muc component found: {muc_name}");
    }
    if let Some(base) = &config.domain_base
        && let Some(breakout) = server.host(&format!("breakout.{base}"))
    {
        hook_muc(host, &breakout, server.host(&muc_name));
    }
    Ok(())
}

/// Hooks a MUC host's rooms; `main` is set for the breakout rooms' MUC.
fn hook_muc(component: &Arc<Host>, muc: &Arc<Host>, main: Option<Arc<Host>>) {
    let store = component.extension::<Store>();
    let s = store.clone();
    muc.events.hook("muc-room-created", -1, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if is_healthcheck_room(&room.jid) {
            return false;
        }
        let mut stats = RoomStats::default();
        match &main {
            None => stats.session_id = room.data_str("meetingId"),
            Some(main) => {
                stats.is_breakout = true;
                stats.breakout_room_id = room.jid.split('@').next().map(str::to_string);
                stats.session_id = main_room(main, &room.jid).and_then(|r| r.data_str("meetingId"));
            }
        }
        lock(&s.0).insert(room.jid.clone(), stats);
        false
    });
    let s = store.clone();
    let c = component.clone();
    muc.events.hook("muc-occupant-joined", -1, move |event| {
        occupant_joined(&c, &s, event);
        false
    });
    let s = store.clone();
    muc.events.hook("muc-occupant-pre-leave", -1, move |event| {
        let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
            return false;
        };
        let now = now_ms(&event.server);
        let mut rooms = lock(&s.0);
        if let Some(stats) = rooms.get_mut(&room.jid)
            && let Some(jid) = &occupant.jid
            && let Some(user) = stats.users.get_mut(jid)
        {
            user.set_dominant_speaker(now, false, false);
            user.display_name = occupant
                .get_presence(None)
                .and_then(|p| p.get_child_text("nick", NS_NICK));
        }
        false
    });
    muc.events.hook("muc-room-destroyed", -1, move |event| {
        if let Some(room) = room_of(event)
            && let Some(stats) = lock(&store.0).remove(&room.jid)
        {
            // Jitsi hands the stats to ext_events.speaker_stats (a stub).
            tracing::debug!(room = %room.jid, users = stats.users.len(), "speaker stats of an ended conference");
        }
        false
    });
}

/// The main room a breakout room belongs to (`_data.breakout_rooms`).
fn main_room(main: &Host, breakout_jid: &str) -> Option<Arc<Room>> {
    muc::service_for(main)?.live_rooms().into_iter().find(|r| {
        r.data_bool("breakout_rooms_active")
            && r.data_value("breakout_rooms")
                .is_some_and(|b| b.get(breakout_jid).is_some())
    })
}

fn occupant_joined(component: &Arc<Host>, store: &Store, event: &Event) {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return;
    };
    if is_healthcheck_room(&room.jid) || is_admin(component, &occupant.bare_jid) {
        return;
    }
    let Some(jid) = occupant.jid.clone() else {
        return;
    };
    let now = now_ms(&event.server);
    let nick = occupant.nickname().to_string();
    let context_user = event
        .origin
        .as_ref()
        .and_then(|o| o.state().attributes.get("jitsi_meet_context_user").cloned());
    let message = {
        let mut rooms = lock(&store.0);
        let Some(stats) = rooms.get_mut(&room.jid) else {
            return;
        };
        let in_room = |j: &str| room.get_occupant_jid(j).is_some();
        let message = stats.users_json(now, &in_room);
        stats
            .users
            .insert(jid.clone(), SpeakerStats::new(&nick, context_user));
        message
    };
    if let Some(body) = message {
        let stanza = json_message(&component.name, &jid, &body.to_string(), None);
        event.server.send_from_host(component, stanza);
    }
}

fn on_message(component: &Arc<Host>, config: &ComponentConfig, event: &mut Event) -> bool {
    let Some(stanza) = event.stanza.as_ref() else {
        return false;
    };
    if stanza.type_() == Some("error") {
        return false;
    }
    let from = stanza.from().unwrap_or_default().to_string();
    let now = now_ms(&event.server);
    let lookup = |address: &str| -> Option<Arc<Room>> {
        let room = get_room_from_jid(&event.server, &config.rewrite(address));
        if room.is_none() {
            tracing::warn!(host = %component.name, "no room found {address}");
        }
        room
    };
    if let Some(el) = stanza.get_child("speakerstats", NS_JITMEET) {
        let address = el.get_attr("room").unwrap_or_default();
        let silence = el.get_attr("silence") == Some("true");
        let Some(room) = lookup(address) else {
            return false;
        };
        let Some(occupant) = room.get_occupant_by_real_jid(&from) else {
            tracing::warn!(room = %room.jid, "no occupant {from} found");
            return false;
        };
        let store = component.extension::<Store>();
        let mut rooms = lock(&store.0);
        let Some(stats) = rooms.get_mut(&room.jid) else {
            tracing::warn!(room = %room.jid, "no speakerStats found");
            return false;
        };
        stats.dominant_speaker(now, occupant.jid.as_deref().unwrap_or(&from), silence);
    }
    if let Some(el) = stanza.get_child("faceLandmarks", NS_JITMEET) {
        let address = el.get_attr("room").unwrap_or_default();
        let Some(room) = lookup(address) else {
            return false;
        };
        let occupant = room.get_occupant_by_real_jid(&from);
        let store = component.extension::<Store>();
        let mut rooms = lock(&store.0);
        let Some(stats) = rooms.get_mut(&room.jid) else {
            tracing::warn!(room = %room.jid, "no speakerStats found");
            return false;
        };
        let Some(user) = occupant
            .and_then(|o| o.jid)
            .and_then(|j| stats.users.get_mut(&j))
        else {
            tracing::warn!(room = %room.jid, "no occupant {from} found");
            return false;
        };
        let number = |name: &str| el.get_attr(name).and_then(|v| v.trim().parse::<f64>().ok());
        user.face_landmarks.push(FaceLandmark {
            face_expression: el.get_attr("faceExpression").map(str::to_string),
            timestamp: number("timestamp"),
            duration: number("duration"),
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_speaker_time_accumulates_and_switches() {
        let mut room = RoomStats::default();
        room.users
            .insert("a@x/1".into(), SpeakerStats::new("aaaa", None));
        room.users
            .insert("b@x/1".into(), SpeakerStats::new("bbbb", None));
        room.dominant_speaker(1_000.0, "a@x/1", false);
        room.dominant_speaker(4_500.0, "b@x/1", false);
        assert_eq!(room.users["a@x/1"].total_dominant_speaker_time, 3_500);
        assert!(!room.users["a@x/1"].is_dominant_speaker());
        assert!(room.users["b@x/1"].is_dominant_speaker());
        // b's running period counts in what a joiner is told.
        let json = room.users_json(5_000.0, &|_| true).expect("stats");
        assert_eq!(json["type"], "speakerstats");
        assert_eq!(json["users"]["aaaa"]["totalDominantSpeakerTime"], 3_500);
        assert_eq!(json["users"]["bbbb"]["totalDominantSpeakerTime"], 500);
        assert_eq!(json["users"]["bbbb"]["faceLandmarks"], json!([]));
        // The same speaker again does not close its own period.
        room.dominant_speaker(6_000.0, "b@x/1", false);
        assert_eq!(room.users["b@x/1"].total_at(7_000.0), 2_500);
    }

    #[test]
    fn silence_pauses_the_count() {
        let mut s = SpeakerStats::new("n", None);
        s.set_dominant_speaker(0.0, true, false);
        s.set_dominant_speaker(1_000.0, true, true);
        assert_eq!(s.total_at(5_000.0), 1_000);
        s.set_dominant_speaker(5_000.0, true, false);
        s.set_dominant_speaker(6_000.0, false, false);
        assert_eq!(s.total_dominant_speaker_time, 2_000);
        // Silent from the start: nothing counts.
        let mut q = SpeakerStats::new("q", None);
        q.set_dominant_speaker(0.0, true, true);
        q.set_dominant_speaker(3_000.0, false, false);
        assert_eq!(q.total_dominant_speaker_time, 0);
    }

    #[test]
    fn who_a_joiner_hears_about() {
        let mut room = RoomStats::default();
        room.users
            .insert("quiet@x/1".into(), SpeakerStats::new("quiet", None));
        room.users
            .insert("focus@x/1".into(), SpeakerStats::new("focus", None));
        assert!(room.users_json(0.0, &|_| true).is_none());
        // Someone who left is reported even without speaking.
        let mut gone = SpeakerStats::new("gone", None);
        gone.display_name = Some("Gone Person".into());
        room.users.insert("gone@x/1".into(), gone);
        let json = room
            .users_json(0.0, &|j| j != "gone@x/1")
            .expect("the one who left");
        let users = json["users"].as_object().expect("users");
        assert_eq!(users.len(), 1);
        assert_eq!(users["gone"]["displayName"], "Gone Person");
        // Face landmarks make a user reported.
        room.users
            .get_mut("quiet@x/1")
            .expect("quiet")
            .face_landmarks
            .push(FaceLandmark {
                face_expression: Some("happy".into()),
                timestamp: Some(1.0),
                duration: Some(2.0),
            });
        let json = room.users_json(0.0, &|_| true).expect("stats");
        assert_eq!(
            json["users"]["quiet"]["faceLandmarks"][0]["faceExpression"],
            "happy"
        );
        assert!(json["users"].get("focus").is_none());
    }
}
