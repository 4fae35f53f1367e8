//! What every part of the MUC shares, as Prosody's `muc/util.lib.lua`:
//! namespaces, roles and affiliations with their ranks, the errors that
//! get an occupant kicked, the filtering of MUC payloads out of stanzas,
//! timestamps and random ids.

use base64::Engine as _;
use rand::RngCore;
use xmpp_core::stanza::{Element, NS_STANZAS};

pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_MUC_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_MUC_UNIQUE: &str = "http://jabber.org/protocol/muc#unique";
pub const NS_DATA: &str = "jabber:x:data";
pub const NS_DELAY: &str = "urn:xmpp:delay";
pub const NS_LEGACY_DELAY: &str = "jabber:x:delay";
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
pub const NS_REGISTER: &str = "jabber:iq:register";
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
pub const NS_STANZA_ID: &str = "urn:xmpp:sid:0";
pub const NS_HINTS: &str = "urn:xmpp:hints";
pub const NS_PING: &str = "urn:xmpp:ping";
pub const NS_CONFERENCE: &str = "jabber:x:conference";
pub const NS_HATS: &str = "xmpp:prosody.im/protocol/hats:1";

/// The bare part of a (normalised) JID string.
pub fn bare_of(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(b, _)| b)
}

/// The domain part of a (normalised) JID string.
pub fn host_of(jid: &str) -> &str {
    let bare = bare_of(jid);
    bare.split_once('@').map_or(bare, |(_, h)| h)
}

/// A role or affiliation name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// An occupant's role; `None` is Prosody's role `none` (not in the room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Visitor,
    Participant,
    Moderator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Visitor => "visitor",
            Role::Participant => "participant",
            Role::Moderator => "moderator",
        }
    }
    /// Parses a role name; `Ok(None)` for `none`, `Err` for an unknown name.
    pub fn parse(s: &str) -> Result<Option<Role>, UnknownName> {
        match s {
            "none" => Ok(None),
            "visitor" => Ok(Some(Role::Visitor)),
            "participant" => Ok(Some(Role::Participant)),
            "moderator" => Ok(Some(Role::Moderator)),
            _ => Err(UnknownName {
                kind: "role",
                name: s.to_string(),
            }),
        }
    }
}

/// Prosody's `valid_roles` rank of a role (`none` is 0).
pub fn role_rank(role: Option<Role>) -> i32 {
    match role {
        None => 0,
        Some(Role::Visitor) => 1,
        Some(Role::Participant) => 2,
        Some(Role::Moderator) => 3,
    }
}

/// The name of a role, `none` included.
pub fn role_name(role: Option<Role>) -> &'static str {
    role.map_or("none", Role::as_str)
}

/// A (bare) JID's affiliation with a room; `None` is `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Affiliation {
    Outcast,
    Member,
    Admin,
    Owner,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Outcast => "outcast",
            Affiliation::Member => "member",
            Affiliation::Admin => "admin",
            Affiliation::Owner => "owner",
        }
    }
    /// Parses an affiliation name; `Ok(None)` for `none`.
    pub fn parse(s: &str) -> Result<Option<Affiliation>, UnknownName> {
        match s {
            "none" => Ok(None),
            "outcast" => Ok(Some(Affiliation::Outcast)),
            "member" => Ok(Some(Affiliation::Member)),
            "admin" => Ok(Some(Affiliation::Admin)),
            "owner" => Ok(Some(Affiliation::Owner)),
            _ => Err(UnknownName {
                kind: "affiliation",
                name: s.to_string(),
            }),
        }
    }
}

/// Prosody's `valid_affiliations` rank (`outcast` -1, `none` 0 ... `owner` 3).
pub fn affiliation_rank(a: Option<Affiliation>) -> i32 {
    match a {
        None => 0,
        Some(Affiliation::Outcast) => -1,
        Some(Affiliation::Member) => 1,
        Some(Affiliation::Admin) => 2,
        Some(Affiliation::Owner) => 3,
    }
}

pub fn affiliation_name(a: Option<Affiliation>) -> &'static str {
    a.map_or("none", Affiliation::as_str)
}

/// A stanza error as Prosody's `stanza:get_error()`: type, defined
/// condition and text.
pub fn get_error(stanza: &Element) -> (Option<String>, Option<String>, Option<String>) {
    let Some(error) = stanza.get_child("error", stanza.ns()) else {
        return (None, None, None);
    };
    let condition = error
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map(|c| c.name().to_string());
    let text = error.get_child_text("text", NS_STANZAS);
    (error.get_attr("type").map(str::to_string), condition, text)
}

/// Errors from an occupant's client that mean it is gone: it gets kicked.
pub fn is_kickable_error(stanza: &Element) -> bool {
    let (_, condition, _) = get_error(stanza);
    matches!(
        condition.as_deref().unwrap_or("malformed error"),
        "gone"
            | "internal-server-error"
            | "item-not-found"
            | "jid-malformed"
            | "recipient-unavailable"
            | "redirect"
            | "remote-server-not-found"
            | "remote-server-timeout"
            | "service-unavailable"
            | "malformed error"
    )
}

/// Namespaces a client may not put into what the room relays (Prosody's
/// `filtered_namespaces`: MUC payloads and hats, which only the room sets).
pub fn is_filtered_namespace(ns: &str) -> bool {
    matches!(ns, NS_MUC | NS_MUC_USER | NS_HATS)
}

/// Removes MUC payloads from a stanza (Prosody's `filter_muc_x`).
pub fn filter_muc_x(stanza: &mut Element) {
    stanza.remove_children(|c| is_filtered_namespace(c.ns()));
}

/// Prosody's `util.id.medium()`: 12 random bytes, base64url.
pub fn new_id() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A random (version 4) UUID, as Prosody's `util.uuid.generate()`.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Does a nickname pass strict resourceprep (no code point unassigned in
/// Unicode 3.2), as Prosody's `resourceprep(nick, true)`?
pub fn is_strict_nick(nick: &str) -> bool {
    match stringprep::resourceprep(nick) {
        Ok(prepped) => !prepped
            .chars()
            .any(stringprep::tables::unassigned_code_point),
        Err(_) => false,
    }
}

/// Does a room JID pass strict preparation (Prosody's `jid_prep(jid, true)`):
/// its node and domain without code points unassigned in Unicode 3.2?
pub fn is_strict_room_jid(jid: &str) -> bool {
    let bare = bare_of(jid);
    let (node, domain) = match bare.split_once('@') {
        Some((n, d)) => (Some(n), d),
        None => (None, bare),
    };
    let unassigned = |s: &str| s.chars().any(stringprep::tables::unassigned_code_point);
    if let Some(n) = node {
        match stringprep::nodeprep(n) {
            Ok(p) if !p.is_empty() && !unassigned(&p) => {}
            _ => return false,
        }
    }
    !domain.is_empty() && !unassigned(domain)
}

/// Resourceprep of a nickname (not strict), `None` if it is invalid.
pub fn prep_nick(nick: &str) -> Option<String> {
    stringprep::resourceprep(nick)
        .ok()
        .map(|n| n.into_owned())
        .filter(|n| !n.is_empty())
}

/// XEP-0082 timestamp (UTC, whole seconds) of a Unix time.
pub fn datetime(t: f64) -> String {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses a XEP-0082 date-time (`2008-08-22T21:09:04Z`, fractions and
/// offsets allowed) into Unix time.
pub fn parse_datetime(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let (time, offset) = match rest.find(['Z', '+', '-']) {
        Some(i) => rest.split_at(i),
        None => return None,
    };
    let mut tp = time.splitn(3, ':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let ss: f64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss >= 61.0 {
        return None;
    }
    let offset_secs = match offset {
        "Z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(y, m, d);
    Some((days * 86_400 + hh * 3600 + mm * 60 - offset_secs) as f64 + ss)
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip() {
        assert_eq!(datetime(1219439344.0), "2008-08-22T21:09:04Z");
        assert_eq!(parse_datetime("2008-08-22T21:09:04Z"), Some(1219439344.0));
        assert_eq!(
            parse_datetime("2008-08-22T23:09:04.5+02:00"),
            Some(1219439344.5)
        );
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn strict_nicks() {
        assert!(is_strict_nick("Romeo"));
        assert!(is_strict_nick("Ünïcödé"));
        assert!(!is_strict_nick("\u{1F916}"));
        assert!(!is_strict_nick("a\u{7}b"));
    }

    #[test]
    fn kickable_errors() {
        let e = Element::new("presence", "jabber:client")
            .attr("type", "error")
            .child(
                Element::new("error", "jabber:client")
                    .attr("type", "cancel")
                    .child(Element::new("service-unavailable", NS_STANZAS))
                    .child(Element::new("text", NS_STANZAS).text("x")),
            );
        assert!(is_kickable_error(&e));
        assert_eq!(
            get_error(&e),
            (
                Some("cancel".into()),
                Some("service-unavailable".into()),
                Some("x".into())
            )
        );
    }
}
