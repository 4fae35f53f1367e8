//! `time`: Prosody's mod_time — XEP-0202 Entity Time (`urn:xmpp:time`) and
//! the deprecated XEP-0090 (`jabber:iq:time`), answered for the host and for
//! accounts, from `server.clock`. Also the XEP-0082 formats Prosody's
//! `util.datetime` produces, used by other modules for stamps.

use std::sync::Arc;

use xmpp_core::stanza::Element;
use xmpp_core::{Event, Host, Server};

use crate::ModuleError;

pub const NS_TIME: &str = "urn:xmpp:time";
pub const NS_LEGACY_TIME: &str = "jabber:iq:time";

pub fn load(_server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::disco::add_feature(host, NS_TIME);
    for ev in [
        "iq-get/bare/urn:xmpp:time:time",
        "iq-get/host/urn:xmpp:time:time",
    ] {
        host.events.hook(ev, 0, time_handler);
    }
    crate::disco::add_feature(host, NS_LEGACY_TIME);
    for ev in [
        "iq-get/bare/jabber:iq:time:query",
        "iq-get/host/jabber:iq:time:query",
    ] {
        host.events.hook(ev, 0, legacy_time_handler);
    }
    Ok(())
}

fn time_handler(event: &mut Event) -> bool {
    let now = event.server.clock.now();
    let reply = event.stanza().reply().child(
        Element::new("time", NS_TIME)
            .text_tag("tzo", "+00:00")
            .text_tag("utc", datetime(now)),
    );
    event.reply(reply);
    true
}

fn legacy_time_handler(event: &mut Event) -> bool {
    let now = event.server.clock.now();
    let reply = event
        .stanza()
        .reply()
        .child(Element::new("query", NS_LEGACY_TIME).text_tag("utc", legacy(now)));
    event.reply(reply);
    true
}

/// Calendar date and time of day (UTC) of a Unix time, whole seconds.
fn civil(t: f64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = if t.is_finite() { t.floor() as i64 } else { 0 };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days to year/month/day in the proleptic Gregorian calendar
    // (the era-based method: 400-year cycles of 146097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// XEP-0082 DateTime in UTC, as `util.datetime.datetime`: `2008-08-22T21:09:04Z`.
pub fn datetime(t: f64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// XEP-0082 Date in UTC: `2008-08-22`.
pub fn date(t: f64) -> String {
    let (y, mo, d, ..) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// The legacy XEP-0091 format, as `util.datetime.legacy`: `20080822T21:09:04`.
pub fn legacy(t: f64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_util_datetime() {
        // The instant Prosody's test suite fixes its clock at.
        assert_eq!(datetime(1219439344.0), "2008-08-22T21:09:04Z");
        assert_eq!(datetime(1219439344.9), "2008-08-22T21:09:04Z");
        assert_eq!(legacy(1219439344.0), "20080822T21:09:04");
        assert_eq!(date(1219439344.0), "2008-08-22");
        assert_eq!(datetime(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(datetime(951_782_400.0), "2000-02-29T00:00:00Z");
        assert_eq!(datetime(4_107_542_399.0), "2100-02-28T23:59:59Z");
        assert_eq!(datetime(-1.0), "1969-12-31T23:59:59Z");
        assert_eq!(datetime(f64::NAN), "1970-01-01T00:00:00Z");
    }
}
