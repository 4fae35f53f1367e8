//! `polls_component` (Jitsi's mod_polls_component), loaded as a component
//! (`Component "polls.meet.jitsi" "polls_component"`) that keeps the polls
//! of the rooms of the conference MUC (`<muc_mapper_domain_prefix>.<base>`)
//! and of `breakout.<base>`, so that everyone sees the same polls:
//!
//! - a client sends `<message to='polls.…'><json-message
//!   xmlns='http://jitsi.org/jitmeet'>{"type":"polls","command":"new-poll",
//!   "pollId","question","answers":[{"name"}…]}</json-message></message>`
//!   (or `"command":"answer-poll"` with `"answers":[true,false…]`) for the
//!   room its session was opened for (`?room=`; an occupant of a breakout
//!   room of it while breakout rooms are active);
//! - the poll is recorded (at most 128 a room; a `pollId` already used is
//!   refused with `cancel/not-allowed` "Poll already exists") and the
//!   command is sent to every occupant from the component, with
//!   `"senderId"` (the sender's occupant resource) and, for answers,
//!   `"senderName"` (its `<nick xmlns='http://jabber.org/protocol/nick'/>`);
//! - whoever joins a room with polls gets `{"type":"polls","command":
//!   "old-polls","polls":[{pollId,senderId,senderName,question,answers:
//!   [{name,voters:[{id,name}]}]}]}`;
//! - payloads of 1024 bytes or more, bad JSON and invalid polls are dropped;
//!   groupchat messages and messages with a body are not this module's.
//!
//! It fires `poll-created` and `answer-poll` on the room's MUC host.
//! Needs `muc_mapper_domain_base` (the main VirtualHost, where the
//! component is announced with `jitsi-add-identity`).
//!
//! When the room metadata's `permissions.pollCreationRestricted` is true,
//! only sessions whose token's features claim has `create-polls` may
//! create polls (`cancel/not-allowed` "Creation of polls not allowed for
//! user").
//!
//! Not done: visitor nodes (`main_domain`, s2s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value as Json, json};
use xmpp_core::error::StanzaError;
use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server, Session, Value, config::OptionError};

use super::meeting_id::{NS_JITMEET, json_to_value};
use super::util::is_healthcheck_room;
use super::web_session::{RoomFinder, announce_identity, get_room_from_jid, json_message};
use muc::events::{lock, occupant_of, room_of};
use muc::occupant::Occupant;
use muc::room::Room;

pub const POLLS_LIMIT: usize = 128;
pub const POLL_PAYLOAD_LIMIT: usize = 1024;
const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// One poll as kept: answers with their voters.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    pub poll_id: String,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub question: String,
    pub answers: Vec<Answer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub name: String,
    /// (occupant id, name).
    pub voters: Vec<(String, Option<String>)>,
}

impl Poll {
    fn to_json(&self) -> Json {
        let answers: Vec<Json> = self
            .answers
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("name".into(), json!(a.name));
                if !a.voters.is_empty() {
                    let voters: Vec<Json> = a
                        .voters
                        .iter()
                        .map(|(id, name)| {
                            let mut v = Map::new();
                            v.insert("id".into(), json!(id));
                            if let Some(n) = name {
                                v.insert("name".into(), json!(n));
                            }
                            Json::Object(v)
                        })
                        .collect();
                    o.insert("voters".into(), Json::Array(voters));
                }
                Json::Object(o)
            })
            .collect();
        let mut o = Map::new();
        o.insert("pollId".into(), json!(self.poll_id));
        o.insert("senderId".into(), json!(self.sender_id));
        if let Some(n) = &self.sender_name {
            o.insert("senderName".into(), json!(n));
        }
        o.insert("question".into(), json!(self.question));
        o.insert("answers".into(), Json::Array(answers));
        Json::Object(o)
    }
}

/// A room's polls, in creation order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomPolls {
    pub order: Vec<Poll>,
}

impl RoomPolls {
    fn get_mut(&mut self, id: &str) -> Option<&mut Poll> {
        self.order.iter_mut().find(|p| p.poll_id == id)
    }

    /// The `old-polls` message for a newcomer (`None` without polls).
    pub fn old_polls(&self) -> Option<String> {
        if self.order.is_empty() {
            return None;
        }
        let polls: Vec<Json> = self.order.iter().map(Poll::to_json).collect();
        Some(json!({"command": "old-polls", "polls": polls, "type": "polls"}).to_string())
    }
}

/// Jitsi's `validate_polls`.
pub fn validate(data: &Json) -> bool {
    let Some(o) = data.as_object() else {
        return false;
    };
    if o.get("type") != Some(&json!("polls")) || !o.get("pollId").is_some_and(Json::is_string) {
        return false;
    }
    let Some(answers) = o.get("answers").and_then(Json::as_array) else {
        return false;
    };
    if answers.is_empty() {
        return false;
    }
    match o.get("command").and_then(Json::as_str) {
        Some("new-poll") => {
            o.get("question").is_some_and(Json::is_string)
                && answers
                    .iter()
                    .all(|a| a.get("name").is_some_and(Json::is_string))
        }
        Some("answer-poll") => answers.iter().all(Json::is_boolean),
        _ => false,
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Send this JSON to every occupant.
    Broadcast(String),
    /// Refuse with `cancel/not-allowed` and this text.
    NotAllowed(&'static str),
    /// Dropped (logged).
    Dropped,
}

/// Applies a validated command from the occupant `(id, name)`.
pub fn apply(polls: &mut RoomPolls, mut data: Json, sender: (&str, Option<&str>)) -> Outcome {
    let (id, name) = sender;
    let Some(o) = data.as_object_mut() else {
        return Outcome::Dropped;
    };
    let poll_id = o
        .get("pollId")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let answers = o
        .get("answers")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    match o.get("command").and_then(Json::as_str) {
        Some("new-poll") => {
            if polls.order.len() >= POLLS_LIMIT {
                tracing::error!("Too many polls created");
                return Outcome::Dropped;
            }
            if polls.get_mut(&poll_id).is_some() {
                tracing::error!("Poll already exists: {poll_id}");
                return Outcome::NotAllowed("Poll already exists");
            }
            polls.order.push(Poll {
                poll_id,
                sender_id: id.to_string(),
                sender_name: name.map(str::to_string),
                question: o
                    .get("question")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                answers: answers
                    .iter()
                    .map(|a| Answer {
                        name: a
                            .get("name")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        voters: Vec::new(),
                    })
                    .collect(),
            });
            o.insert("senderId".into(), json!(id));
        }
        Some("answer-poll") => {
            let Some(poll) = polls.get_mut(&poll_id) else {
                tracing::warn!("answering inexistent poll {poll_id}");
                return Outcome::Dropped;
            };
            for (answer, vote) in poll.answers.iter_mut().zip(&answers) {
                if vote.as_bool() == Some(true) {
                    answer
                        .voters
                        .push((id.to_string(), name.map(str::to_string)));
                }
            }
            o.insert("senderId".into(), json!(id));
            match name {
                Some(n) => o.insert("senderName".into(), json!(n)),
                None => o.remove("senderName"),
            };
        }
        _ => return Outcome::Dropped,
    }
    o.insert("type".into(), json!("polls"));
    Outcome::Broadcast(data.to_string())
}

/// The component: its address, how it finds rooms, the rooms' polls.
struct Polls {
    component: String,
    finder: RoomFinder,
    rooms: Mutex<HashMap<String, RoomPolls>>,
}

impl Polls {
    fn send_to_all(&self, server: &Arc<Server>, room: &Room, json: &str) {
        let Some(host) = server.host(&self.component) else {
            return;
        };
        for occupant in room.each_occupant() {
            if let Some(jid) = &occupant.jid {
                server.send_from_host(&host, json_message(&self.component, jid, json, None));
            }
        }
    }
}

pub fn register(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), OptionError> {
    let Some(base) = host
        .option_str("muc_mapper_domain_base")
        .map(str::to_string)
    else {
        tracing::warn!(host = %host.name, "No muc_mapper_domain_base option set.");
        return Ok(());
    };
    let prefix = host
        .option_str("muc_mapper_domain_prefix")
        .unwrap_or("conference")
        .to_string();
    let muc = format!("{prefix}.{base}");
    let polls = Arc::new(Polls {
        component: host.name.clone(),
        finder: RoomFinder::new(host, &muc)?,
        rooms: Mutex::new(HashMap::new()),
    });
    let p = polls.clone();
    host.events
        .hook("message/host", 0, move |event| on_message(event, &p));
    for muc_name in [muc, format!("breakout.{base}")] {
        let Some(muc_host) = server.host(&muc_name) else {
            continue;
        };
        let p = polls.clone();
        muc_host.events.hook("muc-room-created", 0, move |event| {
            if let Some(room) = room_of(event)
                && !is_healthcheck_room(&room.jid)
            {
                lock(&p.rooms).insert(room.jid.clone(), RoomPolls::default());
            }
            false
        });
        let p = polls.clone();
        muc_host.events.hook("muc-room-destroyed", 0, move |event| {
            if let Some(room) = room_of(event) {
                lock(&p.rooms).remove(&room.jid);
            }
            false
        });
        let p = polls.clone();
        muc_host
            .events
            .hook("muc-occupant-joined", 0, move |event| {
                occupant_joined(event, &p);
                false
            });
    }
    announce_identity(server, &base, "polls", &host.name);
    Ok(())
}

fn occupant_joined(event: &Event, polls: &Polls) {
    let (Some(room), Some(occupant)) = (room_of(event), occupant_of(event, "occupant")) else {
        return;
    };
    if is_healthcheck_room(&room.jid) {
        return;
    }
    let Some(msg) = lock(&polls.rooms)
        .get(&room.jid)
        .and_then(RoomPolls::old_polls)
    else {
        return;
    };
    let (Some(jid), Some(host)) = (occupant.jid.as_deref(), event.server.host(&polls.component))
    else {
        return;
    };
    event
        .server
        .send_from_host(&host, json_message(&polls.component, jid, &msg, None));
}

/// The room and occupant a poll command comes from: the session's room, or
/// while its breakout rooms are active, the breakout room the sender is in.
fn sender_room(
    server: &Server,
    polls: &Polls,
    origin: &Session,
    from: &str,
) -> Option<(Arc<Room>, Occupant)> {
    let main = polls.finder.room_of_session(server, origin)?;
    if let Some(occupant) = main.get_occupant_by_real_jid(from) {
        return Some((main, occupant));
    }
    if !main.data_bool("breakout_rooms_active") {
        return None;
    }
    let Some(Value::Table(breakouts)) = main.data_value("breakout_rooms") else {
        return None;
    };
    breakouts.map.keys().find_map(|jid| {
        let room = get_room_from_jid(server, jid)?;
        let occupant = room.get_occupant_by_real_jid(from)?;
        Some((room, occupant))
    })
}

/// Poll creation restricted by the room metadata needs `create-polls` in
/// the session's features claim (Jitsi's `is_feature_allowed` without the
/// moderator fallback).
fn may_create(server: &Server, room: &Room, origin: &Session) -> bool {
    let restricted = server
        .host(muc::util::host_of(&room.jid))
        .and_then(|muc| super::room_metadata::metadata(&muc, &room.jid))
        .and_then(|m| {
            m.get("permissions")
                .and_then(|p| p.get("pollCreationRestricted"))
                .and_then(Json::as_bool)
        })
        .unwrap_or(false);
    !restricted
        || auth::token::session_has_feature(&origin.state().attributes, "create-polls", false)
}

/// The occupant's id (its nickname) and display name (`get_occupant_details`).
fn occupant_details(occupant: &Occupant) -> Option<(String, Option<String>)> {
    let (_, id) = occupant.nick.split_once('/')?;
    let name = occupant
        .get_presence(None)
        .and_then(|p| p.get_child_text("nick", NS_NICK));
    Some((id.to_string(), name))
}

fn on_message(event: &mut Event, polls: &Polls) -> bool {
    let (Some(stanza), Some(origin)) = (event.stanza.as_ref(), event.origin.clone()) else {
        return false;
    };
    if stanza.type_() == Some("groupchat") || stanza.children().any(|c| c.name() == "body") {
        return false;
    }
    let Some(text) = stanza
        .get_child("json-message", NS_JITMEET)
        .or_else(|| stanza.get_child("json-message", stanza.ns()))
        .map(Element::text_content)
    else {
        return false;
    };
    let from = stanza.from().unwrap_or_default().to_string();
    let server = event.server.clone();
    let Some((room, occupant)) = sender_room(&server, polls, &origin, &from) else {
        tracing::error!("Occupant sending poll msg {from} was not found in its room");
        return false;
    };
    if text.len() >= POLL_PAYLOAD_LIMIT {
        tracing::error!("Poll payload too large, discarding. Sender: {from}");
        return true;
    }
    let data: Json = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("Error decoding data error:{e} Sender: {from}");
            return true;
        }
    };
    if !matches!(
        data.get("command").and_then(Json::as_str),
        Some("new-poll" | "answer-poll")
    ) {
        return false;
    }
    if !validate(&data) {
        tracing::error!("Invalid poll data. Sender: {from} ({text})");
        return true;
    }
    let Some((id, name)) = occupant_details(&occupant) else {
        tracing::error!(room = %room.jid, "Cannot retrieve poll creator or voter id and name for {from}");
        return false;
    };
    let command = data
        .get("command")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    if command == "new-poll" && !may_create(&server, &room, &origin) {
        let e = StanzaError::not_allowed().with_text("Creation of polls not allowed for user");
        origin.send(e.reply_to(stanza));
        return true;
    }
    let fired = json_to_value(&data);
    let outcome = {
        let mut rooms = lock(&polls.rooms);
        let room_polls = rooms.entry(room.jid.clone()).or_default();
        apply(room_polls, data, (&id, name.as_deref()))
    };
    match outcome {
        Outcome::Broadcast(json) => {
            polls.send_to_all(&server, &room, &json);
            let name = if command == "new-poll" {
                "poll-created"
            } else {
                "answer-poll"
            };
            if let Some(muc) = server.host(muc::util::host_of(&room.jid)) {
                let mut ev = Event::new(&server, name)
                    .with_object("room", room.clone())
                    .with_field("room_jid", room.jid.as_str())
                    .with_field("senderId", id.as_str());
                if let Some(v) = fired {
                    ev.fields.insert("data".into(), v);
                }
                server.fire_on_host(&muc, name, &mut ev);
            }
        }
        Outcome::NotAllowed(text) => {
            origin.send(StanzaError::not_allowed().with_text(text).reply_to(stanza));
        }
        Outcome::Dropped => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_poll(id: &str) -> Json {
        json!({"type": "polls", "command": "new-poll", "pollId": id,
               "question": "Lunch?", "answers": [{"name": "yes"}, {"name": "no"}]})
    }

    #[test]
    fn validation_as_jitsi() {
        assert!(validate(&new_poll("p1")));
        assert!(validate(
            &json!({"type": "polls", "command": "answer-poll", "pollId": "p1",
                                 "answers": [true, false]})
        ));
        assert!(!validate(
            &json!({"type": "polls", "command": "answer-poll", "pollId": "p1",
                                  "answers": []})
        ));
        assert!(!validate(
            &json!({"type": "polls", "command": "answer-poll", "pollId": "p1",
                                  "answers": ["yes"]})
        ));
        assert!(!validate(
            &json!({"type": "polls", "command": "new-poll", "pollId": "p1",
                                  "answers": [{"name": "a"}]})
        ));
        assert!(!validate(
            &json!({"type": "other", "command": "new-poll", "pollId": "p1",
                                  "question": "q", "answers": [{"name": "a"}]})
        ));
        assert!(!validate(
            &json!({"type": "polls", "command": "new-poll", "pollId": 1,
                                  "question": "q", "answers": [{"name": "a"}]})
        ));
        assert!(!validate(&json!("polls")));
    }

    #[test]
    fn created_answered_and_replayed() {
        let mut polls = RoomPolls::default();
        let Outcome::Broadcast(sent) = apply(&mut polls, new_poll("p1"), ("abcd", Some("Alice")))
        else {
            panic!("not broadcast");
        };
        let sent: Json = serde_json::from_str(&sent).unwrap();
        assert_eq!(sent["senderId"], json!("abcd"));
        assert_eq!(sent["question"], json!("Lunch?"));
        assert_eq!(sent["type"], json!("polls"));
        assert_eq!(
            apply(&mut polls, new_poll("p1"), ("abcd", None)),
            Outcome::NotAllowed("Poll already exists")
        );
        let answer = json!({"type": "polls", "command": "answer-poll", "pollId": "p1",
                            "answers": [false, true]});
        let Outcome::Broadcast(sent) = apply(&mut polls, answer, ("ef01", Some("Bob"))) else {
            panic!("not broadcast");
        };
        let sent: Json = serde_json::from_str(&sent).unwrap();
        assert_eq!(sent["senderName"], json!("Bob"));
        assert_eq!(sent["answers"], json!([false, true]));
        let old: Json = serde_json::from_str(&polls.old_polls().unwrap()).unwrap();
        assert_eq!(
            old,
            json!({"command": "old-polls", "type": "polls", "polls": [{
                "pollId": "p1", "senderId": "abcd", "senderName": "Alice", "question": "Lunch?",
                "answers": [{"name": "yes"}, {"name": "no", "voters": [{"id": "ef01", "name": "Bob"}]}]
            }]})
        );
        let missing = json!({"type": "polls", "command": "answer-poll", "pollId": "nope",
                             "answers": [true]});
        assert_eq!(apply(&mut polls, missing, ("x", None)), Outcome::Dropped);
    }

    #[test]
    fn at_most_128_polls() {
        let mut polls = RoomPolls::default();
        assert_eq!(polls.old_polls(), None);
        for i in 0..POLLS_LIMIT {
            assert!(matches!(
                apply(&mut polls, new_poll(&format!("p{i}")), ("a", None)),
                Outcome::Broadcast(_)
            ));
        }
        assert_eq!(
            apply(&mut polls, new_poll("one-more"), ("a", None)),
            Outcome::Dropped
        );
    }
}
