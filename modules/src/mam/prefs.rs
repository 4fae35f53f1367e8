//! MAM preferences (Prosody's `mamprefs.lib.lua` and `mamprefsxml.lib.lua`).
//!
//! Kept in the keyval store `<archive_store>_prefs` (`archive_prefs`) as
//! Prosody's table: the key `false` holds the default (`true` always,
//! `false` never, `"roster"`), and each JID with a rule holds `true`
//! (always) or `false` (never).

use std::collections::BTreeMap;

use xmpp_core::Host;
use xmpp_core::stanza::Element;
use xmpp_core::storage::StorageResult;
use xmpp_core::value::{Table, Value};

use super::{NS_MAM, Options};

/// The default rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Always,
    Never,
    Roster,
}

impl Default {
    pub fn from_value(v: &Value) -> Option<Default> {
        match v {
            Value::Bool(true) => Some(Default::Always),
            Value::Bool(false) => Some(Default::Never),
            Value::String(s) if s == "roster" => Some(Default::Roster),
            _ => None,
        }
    }
    fn to_value(self) -> Value {
        match self {
            Default::Always => Value::Bool(true),
            Default::Never => Value::Bool(false),
            Default::Roster => Value::str("roster"),
        }
    }
    fn attr(self) -> &'static str {
        match self {
            Default::Always => "always",
            Default::Never => "never",
            Default::Roster => "roster",
        }
    }
    fn parse_attr(s: &str) -> Option<Default> {
        match s {
            "always" => Some(Default::Always),
            "never" => Some(Default::Never),
            "roster" => Some(Default::Roster),
            _ => None,
        }
    }
}

/// One account's preferences.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefs {
    pub default: Option<Default>,
    /// JID → archive (`true`) or not.
    pub rules: BTreeMap<String, bool>,
}

impl Prefs {
    pub fn with_default(default: Default) -> Prefs {
        Prefs {
            default: Some(default),
            rules: BTreeMap::new(),
        }
    }

    pub fn from_value(v: &Value) -> Prefs {
        let mut prefs = Prefs {
            default: None,
            rules: BTreeMap::new(),
        };
        if let Some(t) = v.as_table() {
            for (k, v) in &t.map {
                if k == "false" {
                    prefs.default = Default::from_value(v);
                } else if let Some(b) = v.as_bool() {
                    prefs.rules.insert(k.clone(), b);
                }
            }
        }
        prefs
    }

    pub fn to_value(&self) -> Value {
        let mut t = Table::new();
        if let Some(d) = self.default {
            t.insert("false", d.to_value());
        }
        for (jid, b) in &self.rules {
            t.insert(jid.clone(), Value::Bool(*b));
        }
        Value::Table(t)
    }

    /// `<prefs/>` as mamprefsxml's `tostanza`.
    pub fn to_element(&self) -> Element {
        let mut always = Element::new("always", NS_MAM);
        let mut never = Element::new("never", NS_MAM);
        for (jid, b) in &self.rules {
            let j = Element::new("jid", NS_MAM).text(jid.clone());
            if *b {
                always.push_child(j);
            } else {
                never.push_child(j);
            }
        }
        Element::new("prefs", NS_MAM)
            .attr_opt("default", self.default.map(Default::attr))
            .child(always)
            .child(never)
    }

    /// `fromstanza`.
    pub fn from_element(e: &Element) -> Prefs {
        let mut rules = BTreeMap::new();
        for (name, b) in [("always", true), ("never", false)] {
            if let Some(list) = e.get_child(name, NS_MAM) {
                for j in list.children().filter(|c| c.is("jid", NS_MAM)) {
                    let text = j.text_content();
                    let jid = match xmpp_core::Jid::parse(text.trim()) {
                        Ok(j) => j.to_string(),
                        Err(_) => text.trim().to_string(),
                    };
                    rules.insert(jid, b);
                }
            }
        }
        Prefs {
            default: e.get_attr("default").and_then(Default::parse_attr),
            rules,
        }
    }
}

fn store(opts: &Options) -> String {
    format!("{}_prefs", opts.archive_store)
}

/// `get_prefs(user, explicit)`: stored, or the defaults (with
/// `mam_smart_enable`, an explicit MAM action stores the global default).
pub fn get(host: &Host, opts: &Options, user: &str, explicit: bool) -> StorageResult<Prefs> {
    let kv = host.open_keyval(&store(opts))?;
    if let Some(v) = kv.get(Some(user))? {
        return Ok(Prefs::from_value(&v));
    }
    if opts.smart_enable {
        if explicit {
            let p = Prefs::with_default(opts.default_policy);
            kv.set(Some(user), Some(p.to_value()))?;
            return Ok(p);
        }
        return Ok(Prefs::with_default(Default::Never));
    }
    Ok(Prefs::with_default(opts.default_policy))
}

pub fn set(host: &Host, opts: &Options, user: &str, prefs: &Prefs) -> StorageResult<()> {
    host.open_keyval(&store(opts))?
        .set(Some(user), Some(prefs.to_value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefs_round_trip() {
        let mut p = Prefs::with_default(Default::Roster);
        p.rules.insert("romeo@montague.net".into(), true);
        p.rules.insert("tybalt@capulet.net".into(), false);
        assert_eq!(Prefs::from_value(&p.to_value()), p);
        let e = p.to_element();
        assert_eq!(e.get_attr("default"), Some("roster"));
        assert_eq!(Prefs::from_element(&e), p);
        let none = Prefs::from_element(&Element::new("prefs", NS_MAM));
        assert_eq!(none.default, None);
    }
}
