//! Archive items as Prosody 0.12's `mod_storage_internal` keeps them in
//! `.list` files: the preserialized stanza with `key`, `when` and `with`
//! added to the table and `stamp` (XEP-0082, UTC, whole seconds) added to
//! its attributes.

use xmpp_core::stanza::Element;
use xmpp_core::storage::ArchiveItem;

use super::stanza::{StanzaDataError, deserialize, preserialize};
use super::{DatTable, DatValue};

/// An archive item's table for a `.list` file.
pub fn item_to_dat(stanza: &Element, key: &str, when: f64, with: &str) -> DatValue {
    let mut t = preserialize(stanza);
    if let Some(DatValue::Table(attr)) = t.get_str("attr") {
        let mut attr = attr.clone();
        attr.insert_str("stamp", DatValue::str(&datetime(when)));
        t.insert_str("attr", DatValue::Table(attr));
    }
    t.insert_str("key", DatValue::str(key));
    t.insert_str("when", DatValue::Number(when));
    t.insert_str("with", DatValue::str(with));
    DatValue::Table(t)
}

/// The item at (1-based) `index` of a `.list` file. As Prosody: the key
/// defaults to the index, the time to the `stamp` attribute, and `stamp`
/// (and the legacy `stamp_legacy`) are not part of the returned stanza.
pub fn item_from_dat(v: &DatValue, index: usize) -> Result<ArchiveItem, StanzaDataError> {
    let DatValue::Table(t) = v else {
        return Err(StanzaDataError(format!(
            "item {index} is a {}",
            v.type_name()
        )));
    };
    let key = match t.get_str("key") {
        Some(k) => k
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| StanzaDataError(format!("item {index}: bad key")))?,
        None => index.to_string(),
    };
    let stamp = t
        .get_str("attr")
        .and_then(DatValue::as_table)
        .and_then(|a| a.get_str("stamp"))
        .and_then(DatValue::as_str);
    let when = t
        .get_str("when")
        .and_then(DatValue::as_f64)
        .or_else(|| stamp.and_then(parse_datetime))
        .unwrap_or(0.0);
    let with = t
        .get_str("with")
        .and_then(DatValue::as_str)
        .unwrap_or("")
        .to_string();
    let mut stanza =
        deserialize(t).map_err(|e| StanzaDataError(format!("item {index}: {}", e.0)))?;
    stanza.set_attr("stamp", None);
    stanza.set_attr("stamp_legacy", None);
    Ok(ArchiveItem {
        key,
        stanza,
        when,
        with,
    })
}

/// Just the `key` of an item (for lookups that need no stanza).
pub fn item_key(v: &DatValue, index: usize) -> String {
    v.as_table()
        .and_then(|t| t.get_str("key"))
        .and_then(DatValue::as_str)
        .map_or_else(|| index.to_string(), str::to_string)
}

/// Just the `when` of an item.
pub fn item_when(t: &DatTable) -> Option<f64> {
    t.get_str("when").and_then(DatValue::as_f64).or_else(|| {
        t.get_str("attr")
            .and_then(DatValue::as_table)
            .and_then(|a| a.get_str("stamp"))
            .and_then(DatValue::as_str)
            .and_then(parse_datetime)
    })
}

/// XEP-0082 date-time in UTC, whole seconds (`util.datetime.datetime`).
pub fn datetime(when: f64) -> String {
    let secs = if when.is_finite() {
        when.floor() as i64
    } else {
        0
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses XEP-0082 date-times as `util.datetime.parse` does (fractions are
/// dropped; `Z` or a `±hh[:mm]` offset).
pub fn parse_datetime(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let num = |n: usize, pos: &mut usize| -> Option<i64> {
        let part = b.get(*pos..*pos + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *pos += n;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let opt = |c: u8, pos: &mut usize| {
        if b.get(*pos) == Some(&c) {
            *pos += 1;
        }
    };
    let must =
        |c: u8, pos: &mut usize| -> Option<()> { (b.get(*pos) == Some(&c)).then(|| *pos += 1) };
    let year = num(4, &mut pos)?;
    opt(b'-', &mut pos);
    let month = num(2, &mut pos)?;
    opt(b'-', &mut pos);
    let day = num(2, &mut pos)?;
    must(b'T', &mut pos)?;
    let hour = num(2, &mut pos)?;
    must(b':', &mut pos)?;
    let min = num(2, &mut pos)?;
    must(b':', &mut pos)?;
    let sec = num(2, &mut pos)?;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
    }
    let tzd = &s[pos..];
    let offset = if tzd.is_empty() || tzd == "Z" {
        0
    } else {
        let sign = match tzd.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let rest = &tzd[1..];
        let h: i64 = rest.get(..2)?.parse().ok()?;
        let m_part = rest[2..].trim_start_matches(':');
        let m: i64 = if m_part.len() == 2 {
            m_part.parse().unwrap_or(0)
        } else {
            0
        };
        sign * (h * 3600 + m * 60)
    };
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + min * 60 + sec - offset) as f64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_core::stanza::NS_CLIENT;

    #[test]
    fn datetimes() {
        assert_eq!(datetime(1795241225.0), "2026-11-21T06:07:05Z");
        assert_eq!(datetime(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime(951_782_400.9), "2000-02-29T00:00:00Z");
        assert_eq!(parse_datetime("2026-11-21T06:07:05Z"), Some(1795241225.0));
        assert_eq!(
            parse_datetime("20261121T06:07:05.123+01:00"),
            Some(1795241225.0 - 3600.0)
        );
        assert_eq!(
            parse_datetime("2026-11-21T06:07:05-0130"),
            Some(1795241225.0 + 5400.0)
        );
        assert_eq!(parse_datetime("yesterday"), None);
    }

    #[test]
    fn items_round_trip() {
        let stanza = Element::new("message", NS_CLIENT)
            .attr("id", "m1")
            .child(Element::new("body", NS_CLIENT).text("x"));
        let dat = item_to_dat(&stanza, "k1", 1795241225.0, "bob@example.com");
        let item = item_from_dat(&dat, 1).unwrap();
        assert_eq!(item.key, "k1");
        assert_eq!(item.when, 1795241225.0);
        assert_eq!(item.with, "bob@example.com");
        assert_eq!(item.stanza, stanza);
        let stamp = dat
            .as_table()
            .and_then(|t| t.get_str("attr"))
            .and_then(DatValue::as_table)
            .and_then(|a| a.get_str("stamp"));
        assert_eq!(
            stamp.and_then(DatValue::as_str),
            Some("2026-11-21T06:07:05Z")
        );
    }

    #[test]
    fn items_without_key_or_when_use_index_and_stamp() {
        let mut attr = DatTable::new();
        attr.insert_str("stamp", DatValue::str("2026-11-21T06:07:05Z"));
        let mut t = DatTable::new();
        t.insert_str("name", DatValue::str("message"));
        t.insert_str("attr", DatValue::Table(attr));
        let item = item_from_dat(&DatValue::Table(t), 7).unwrap();
        assert_eq!((item.key.as_str(), item.when), ("7", 1795241225.0));
        assert_eq!(item.stanza.get_attr("stamp"), None);
    }
}
