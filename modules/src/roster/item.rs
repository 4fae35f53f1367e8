//! A user's roster as Prosody keeps it in the `roster` store.
//!
//! Prosody stores one table per user: each contact's bare JID maps to an
//! item (`subscription`, optional `ask`, `name`, `approved`, and `groups` as a
//! set `{ [group] = true }`), and the key `false` holds metadata: `version`
//! (a number bumped on every save, or `true` when versioning is off) and
//! `pending` (inbound subscription requests: JID → `true` or the request
//! stanza, preserialised). Rosters written before 0.10 kept `pending` at the
//! top level; it is moved into the metadata on load, as Prosody does.
//!
//! [`Value`] keeps Lua's non-string keys in their string form, so the
//! metadata entry `[false]` is the key [`METADATA_KEY`].

use std::collections::{BTreeMap, BTreeSet};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Table, Value};

/// The key of the metadata entry (`roster[false]` in Lua).
pub const METADATA_KEY: &str = "false";

/// The `subscription` state of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    Both,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
    pub fn parse(s: &str) -> Option<Subscription> {
        match s {
            "none" => Some(Subscription::None),
            "to" => Some(Subscription::To),
            "from" => Some(Subscription::From),
            "both" => Some(Subscription::Both),
            _ => None,
        }
    }
    /// The user is subscribed to the contact's presence (`to` or `both`).
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }
    /// The contact is subscribed to the user's presence (`from` or `both`).
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }
}

/// One contact.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterItem {
    pub subscription: Subscription,
    /// `Some("subscribe")` while an outbound request awaits an answer.
    pub ask: Option<String>,
    pub name: Option<String>,
    pub groups: BTreeSet<String>,
    /// The user pre-approved the contact's subscription (RFC 6121 §3.4);
    /// stored as the string `"true"`, as Prosody does.
    pub approved: bool,
    /// Fields other modules keep on the item, preserved as they were.
    pub extra: BTreeMap<String, Value>,
}

impl RosterItem {
    pub fn new(subscription: Subscription) -> RosterItem {
        RosterItem {
            subscription,
            ask: None,
            name: None,
            groups: BTreeSet::new(),
            approved: false,
            extra: BTreeMap::new(),
        }
    }

    /// Reads an item table; `None` if it is not one (no string `subscription`).
    pub fn from_value(v: &Value) -> Option<RosterItem> {
        let t = v.as_table()?;
        let subscription =
            Subscription::parse(t.get("subscription")?.as_str()?).unwrap_or(Subscription::None);
        let mut item = RosterItem::new(subscription);
        for (k, v) in &t.map {
            match k.as_str() {
                "subscription" => {}
                "ask" => item.ask = v.as_str().map(str::to_string),
                "name" => item.name = v.as_str().map(str::to_string),
                "approved" => {
                    item.approved = v.as_str() == Some("true") || v.as_bool() == Some(true)
                }
                "groups" => {
                    if let Some(g) = v.as_table() {
                        item.groups = g
                            .map
                            .iter()
                            .filter(|(_, on)| on.as_bool() != Some(false))
                            .map(|(k, _)| k.clone())
                            .collect();
                        // A list of names is accepted too.
                        item.groups
                            .extend(g.seq.iter().filter_map(|s| s.as_str().map(str::to_string)));
                    }
                }
                _ => {
                    item.extra.insert(k.clone(), v.clone());
                }
            }
        }
        Some(item)
    }

    /// The item table as Prosody stores it.
    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        for (k, v) in &self.extra {
            t.insert(k.clone(), v.clone());
        }
        t.insert("subscription", Value::str(self.subscription.as_str()));
        if let Some(ask) = &self.ask {
            t.insert("ask", Value::str(ask.clone()));
        }
        if let Some(name) = &self.name {
            t.insert("name", Value::str(name.clone()));
        }
        if self.approved {
            t.insert("approved", Value::str("true"));
        }
        let mut groups = Table::new();
        for g in &self.groups {
            groups.insert(g.clone(), Value::Bool(true));
        }
        t.insert("groups", Value::Table(groups));
        Value::Table(t)
    }

    /// The `<item/>` of a roster result or push.
    pub fn to_element(&self, jid: &str) -> Element {
        let mut e = Element::new("item", super::NS_ROSTER)
            .attr("jid", jid)
            .attr("subscription", self.subscription.as_str())
            .attr_opt("ask", self.ask.clone())
            .attr_opt("name", self.name.clone());
        for g in &self.groups {
            e.push_child(Element::new("group", super::NS_ROSTER).text(g.clone()));
        }
        e
    }
}

/// A whole roster with its metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Roster {
    /// Contacts by bare JID.
    pub items: BTreeMap<String, RosterItem>,
    /// `[false].version`: a number, `true` (versioning off), or unset.
    pub version: Option<Value>,
    /// Inbound subscription requests awaiting approval: JID → the request
    /// stanza when Prosody kept it, else `None` (stored as `true`).
    pub pending: BTreeMap<String, Option<Element>>,
    /// Loading failed: the roster must not be saved over the stored one.
    pub broken: bool,
    /// Other metadata fields, preserved.
    pub meta_extra: BTreeMap<String, Value>,
    /// Other top-level entries that are not items, preserved.
    pub other: BTreeMap<String, Value>,
}

impl Roster {
    /// Reads a stored roster (absent: empty). Returns the roster and whether
    /// it had a legacy top-level `pending` entry (moved into the metadata).
    pub fn from_value(v: Option<&Value>) -> (Roster, bool) {
        let mut r = Roster::default();
        let mut legacy_pending = false;
        let Some(t) = v.and_then(Value::as_table) else {
            return (r, false);
        };
        for (k, v) in &t.map {
            if k == METADATA_KEY {
                if let Some(meta) = v.as_table() {
                    for (mk, mv) in &meta.map {
                        match mk.as_str() {
                            "version" => r.version = Some(mv.clone()),
                            "pending" => r.read_pending(mv),
                            "broken" => {}
                            _ => {
                                r.meta_extra.insert(mk.clone(), mv.clone());
                            }
                        }
                    }
                }
            } else if k == "pending" && v.get("subscription").and_then(Value::as_str).is_none() {
                legacy_pending = true;
                r.read_pending(v);
            } else if let Some(item) = RosterItem::from_value(v) {
                r.items.insert(k.clone(), item);
            } else {
                tracing::warn!("roster entry {k:?} is not a roster item; keeping it untouched");
                r.other.insert(k.clone(), v.clone());
            }
        }
        (r, legacy_pending)
    }

    fn read_pending(&mut self, v: &Value) {
        let Some(t) = v.as_table() else { return };
        for (jid, req) in &t.map {
            let stanza = match req {
                Value::Table(_) => deserialize(req, NS_CLIENT),
                _ => None,
            };
            self.pending.insert(jid.clone(), stanza);
        }
    }

    /// The roster as Prosody stores it.
    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        for (k, v) in &self.other {
            t.insert(k.clone(), v.clone());
        }
        for (jid, item) in &self.items {
            t.insert(jid.clone(), item.to_value());
        }
        let mut meta = Table::new();
        for (k, v) in &self.meta_extra {
            meta.insert(k.clone(), v.clone());
        }
        if let Some(v) = &self.version {
            meta.insert("version", v.clone());
        }
        let mut pending = Table::new();
        for (jid, req) in &self.pending {
            let v = match req {
                Some(stanza) => preserialize(stanza, NS_CLIENT),
                None => Value::Bool(true),
            };
            pending.insert(jid.clone(), v);
        }
        meta.insert("pending", Value::Table(pending));
        t.insert(METADATA_KEY, Value::Table(meta));
        Value::Table(t)
    }

    /// The version as Lua's `tonumber(version or 1)` sees it (`None` when
    /// versioning is off).
    pub fn version_number(&self) -> Option<f64> {
        match &self.version {
            None => Some(1.0),
            Some(Value::Bool(_)) => None,
            Some(v) => v.as_f64(),
        }
    }

    /// The version as Lua's `tostring(version or "1")` writes it.
    pub fn version_string(&self) -> String {
        match &self.version {
            None => "1".to_string(),
            Some(v) => lua_tostring(v),
        }
    }

    /// Bumps the version before a save, unless versioning is off (`true`).
    pub fn bump_version(&mut self) {
        if matches!(self.version, Some(Value::Bool(true))) {
            return;
        }
        let n = self.version.as_ref().and_then(Value::as_i64).unwrap_or(0);
        self.version = Some(Value::Integer(n.saturating_add(1)));
    }
}

/// Lua's `tostring` for the scalar values a version can be.
pub fn lua_tostring(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(f) if f.fract() == 0.0 && f.is_finite() => format!("{f:.1}"),
        Value::Number(f) => f.to_string(),
        Value::String(s) => s.clone(),
        Value::Table(_) => "table".to_string(),
    }
}

pub use xmpp_core::stanza::preserialize::{deserialize, preserialize};

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: Vec<(&str, Value)>) -> Value {
        let mut t = Table::new();
        for (k, v) in pairs {
            t.insert(k, v);
        }
        Value::Table(t)
    }

    #[test]
    fn reads_and_writes_prosody_shape() {
        // What Prosody 0.12 writes for a roster with one contact and a pending request:
        // { [false] = { version = 3; pending = { ["c@x"] = true } };
        //   ["b@x"] = { subscription = "both"; groups = { Friends = true }; name = "Bee" } }
        let stored = table(vec![
            (
                METADATA_KEY,
                table(vec![
                    ("version", Value::Integer(3)),
                    ("pending", table(vec![("c@x", Value::Bool(true))])),
                ]),
            ),
            (
                "b@x",
                table(vec![
                    ("subscription", Value::str("both")),
                    ("groups", table(vec![("Friends", Value::Bool(true))])),
                    ("name", Value::str("Bee")),
                ]),
            ),
        ]);
        let (r, legacy) = Roster::from_value(Some(&stored));
        assert!(!legacy);
        assert_eq!(r.version_string(), "3");
        let item = &r.items["b@x"];
        assert_eq!(item.subscription, Subscription::Both);
        assert_eq!(item.name.as_deref(), Some("Bee"));
        assert!(item.groups.contains("Friends"));
        assert_eq!(r.pending.get("c@x"), Some(&None));
        assert_eq!(r.to_value(), stored);
    }

    #[test]
    fn legacy_pending_moves_into_metadata() {
        let stored = table(vec![("pending", table(vec![("c@x", Value::Bool(true))]))]);
        let (r, legacy) = Roster::from_value(Some(&stored));
        assert!(legacy);
        assert!(r.pending.contains_key("c@x"));
        assert!(r.items.is_empty());
        let v = r.to_value();
        assert!(v.get("pending").is_none());
        assert!(
            v.get(METADATA_KEY)
                .and_then(|m| m.get("pending"))
                .and_then(|p| p.get("c@x"))
                .is_some()
        );
    }

    #[test]
    fn versions_follow_lua() {
        let mut r = Roster::default();
        assert_eq!(r.version_string(), "1");
        assert_eq!(r.version_number(), Some(1.0));
        r.bump_version();
        assert_eq!(r.version, Some(Value::Integer(1)));
        r.bump_version();
        assert_eq!(r.version_string(), "2");
        r.version = Some(Value::Bool(true));
        r.bump_version();
        assert_eq!(r.version_number(), None);
        assert_eq!(r.version_string(), "true");
    }

    #[test]
    fn stanza_preserialisation_round_trips() {
        let e = Element::new("presence", NS_CLIENT)
            .attr("type", "subscribe")
            .attr("from", "a@x")
            .attr("{urn:y}k", "v")
            .child(
                Element::new("preauth", "urn:xmpp:pars:0")
                    .attr("token", "T")
                    .child(Element::new("inner", "urn:xmpp:pars:0")),
            )
            .child(Element::new("status", NS_CLIENT).text("hi & bye"));
        let v = preserialize(&e, NS_CLIENT);
        assert!(v.get("attr").and_then(|a| a.get("xmlns")).is_none());
        let pre = v.as_table().unwrap().seq[0].clone();
        assert_eq!(
            pre.get("attr")
                .and_then(|a| a.get("xmlns"))
                .and_then(Value::as_str),
            Some("urn:xmpp:pars:0")
        );
        let inner = pre.as_table().unwrap().seq[0].clone();
        assert!(
            inner.get("attr").and_then(|a| a.get("xmlns")).is_some(),
            "descendants of foreign elements carry xmlns"
        );
        assert!(v.get("attr").and_then(|a| a.get("urn:y\u{1}k")).is_some());
        let back = deserialize(&v, NS_CLIENT).unwrap();
        assert_eq!(back.get_attr("{urn:y}k"), Some("v"));
        assert_eq!(
            back.get_child("preauth", "urn:xmpp:pars:0")
                .and_then(|p| p.get_attr("token")),
            Some("T")
        );
        assert_eq!(
            back.get_child_text("status", NS_CLIENT).as_deref(),
            Some("hi & bye")
        );
        // Lua tables have no attribute order: equal once serialised again.
        assert_eq!(preserialize(&back, NS_CLIENT), v);
    }

    #[test]
    fn junk_is_kept_not_fatal() {
        let stored = table(vec![
            ("weird", Value::Integer(5)),
            ("x@y", table(vec![("no", Value::Bool(true))])),
        ]);
        let (r, _) = Roster::from_value(Some(&stored));
        assert!(r.items.is_empty());
        assert_eq!(r.other.len(), 2);
    }
}
