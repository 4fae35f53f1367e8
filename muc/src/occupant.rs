//! An occupant, as Prosody's `muc/occupant.lib.lua`: one nickname in a
//! room (its occupant JID), the real JID of the user behind it, a role, and
//! one or more sessions (real full JIDs), each with its last presence.
//!
//! Occupants are values: the room hands out copies and takes them back with
//! `save_occupant`, as Prosody does. A copy keeps the sessions that are
//! available, and the primary session whatever its state.

use std::sync::Arc;

use bytes::Bytes;
use xmpp_core::stanza::{Element, escape};
use xmpp_core::{Jid, Value};

use crate::util::{Role, filter_muc_x};

/// One session (real full JID) of an occupant.
#[derive(Debug, Clone)]
pub struct OccupantSession {
    /// The real full JID, normalised.
    pub jid: String,
    /// The same, parsed (None if it did not parse, e.g. a bare JID).
    pub parsed: Option<Jid>,
    /// The session's last presence to the room, MUC payloads removed,
    /// `from` the occupant JID and `to` the real JID (shared by copies).
    pub presence: Arc<Element>,
    /// ` to='jid'` as bytes, for broadcasts serialised once.
    pub to_attr: Bytes,
}

impl OccupantSession {
    pub fn is_available(&self) -> bool {
        self.presence.type_().is_none()
    }
}

/// An occupant of a room.
#[derive(Debug, Clone)]
pub struct Occupant {
    /// The occupant JID (`room@service/Nick`).
    pub nick: String,
    /// The real bare JID of the user.
    pub bare_jid: String,
    pub role: Option<Role>,
    /// The primary session's real JID.
    pub jid: Option<String>,
    pub sessions: Vec<OccupantSession>,
    /// Join order within the room.
    pub(crate) seq: u64,
}

impl Occupant {
    pub fn new(bare_jid: &str, nick: &str) -> Occupant {
        Occupant {
            nick: nick.to_string(),
            bare_jid: bare_jid.to_string(),
            role: None,
            jid: None,
            sessions: Vec::new(),
            seq: 0,
        }
    }

    /// The nickname: the resource of the occupant JID.
    pub fn nickname(&self) -> &str {
        self.nick.split_once('/').map_or("", |(_, r)| r)
    }

    /// A copy as Prosody's `copy_occupant`: unavailable sessions are dropped,
    /// except the primary one.
    pub fn copied(&self) -> Occupant {
        let mut o = self.clone();
        let primary = o.jid.clone();
        o.sessions
            .retain(|s| s.is_available() || Some(&s.jid) == primary.as_ref());
        o
    }

    /// Another session to be the primary one (an available one).
    pub fn choose_new_primary(&self) -> Option<String> {
        self.sessions
            .iter()
            .find(|s| s.is_available())
            .map(|s| s.jid.clone())
    }

    /// Records `presence` as the session's presence (MUC payloads removed,
    /// addressed from the occupant to the real JID).
    pub fn set_session(&mut self, real_jid: &str, presence: &Element, replace_primary: bool) {
        let mut pr = presence.clone();
        filter_muc_x(&mut pr);
        pr.set_attr("from", Some(self.nick.clone()));
        pr.set_attr("to", Some(real_jid.to_string()));
        let available = pr.type_().is_none();
        match self.sessions.iter_mut().find(|s| s.jid == real_jid) {
            Some(s) => s.presence = Arc::new(pr),
            None => self.sessions.push(OccupantSession {
                jid: real_jid.to_string(),
                parsed: Jid::parse(real_jid).ok(),
                presence: Arc::new(pr),
                to_attr: Bytes::from(format!(" to='{}'", escape(real_jid))),
            }),
        }
        if replace_primary {
            self.jid = Some(real_jid.to_string());
        } else if self.jid.is_none() || (!available && self.jid.as_deref() == Some(real_jid)) {
            // An unavailable session stays primary only when there is no other.
            self.jid = Some(
                self.choose_new_primary()
                    .unwrap_or_else(|| real_jid.to_string()),
            );
        }
    }

    pub fn remove_session(&mut self, real_jid: &str) {
        self.sessions.retain(|s| s.jid != real_jid);
        if self.jid.as_deref() == Some(real_jid) {
            self.jid = self.choose_new_primary();
        }
    }

    /// The presence of `real_jid`, or of the primary session.
    pub fn get_presence(&self, real_jid: Option<&str>) -> Option<&Element> {
        let jid = real_jid.or(self.jid.as_deref())?;
        self.sessions
            .iter()
            .find(|s| s.jid == jid)
            .map(|s| &*s.presence)
    }

    pub fn session(&self, real_jid: &str) -> Option<&OccupantSession> {
        self.sessions.iter().find(|s| s.jid == real_jid)
    }

    /// The real JIDs of the sessions.
    pub fn session_jids(&self) -> impl Iterator<Item = &str> {
        self.sessions.iter().map(|s| s.jid.as_str())
    }

    /// The occupant as a Lua-shaped table (`nick`, `bare_jid`, `role`,
    /// `jid`), for event fields.
    pub fn to_value(&self) -> Value {
        let mut t = xmpp_core::Table::new();
        t.insert("nick", Value::str(self.nick.clone()));
        t.insert("bare_jid", Value::str(self.bare_jid.clone()));
        if let Some(r) = self.role {
            t.insert("role", Value::str(r.as_str()));
        }
        if let Some(j) = &self.jid {
            t.insert("jid", Value::str(j.clone()));
        }
        Value::Table(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stanza::NS_CLIENT;

    fn pres(t: Option<&str>) -> Element {
        Element::new("presence", NS_CLIENT)
            .attr_opt("type", t)
            .child(Element::new("x", crate::util::NS_MUC))
            .child(Element::new("show", NS_CLIENT).text("away"))
    }

    #[test]
    fn sessions_and_primary() {
        let mut o = Occupant::new("a@x", "r@muc/A");
        o.set_session("a@x/1", &pres(None), false);
        o.set_session("a@x/2", &pres(None), false);
        assert_eq!(o.jid.as_deref(), Some("a@x/1"));
        let p = o.get_presence(None).unwrap();
        assert!(p.get_child("x", crate::util::NS_MUC).is_none());
        assert_eq!(p.from(), Some("r@muc/A"));
        o.set_session("a@x/1", &pres(Some("unavailable")), false);
        assert_eq!(o.jid.as_deref(), Some("a@x/2"));
        assert_eq!(o.copied().sessions.len(), 1);
        o.remove_session("a@x/2");
        assert_eq!(o.jid, None);
    }
}
