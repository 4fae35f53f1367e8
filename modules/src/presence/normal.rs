//! Available and unavailable presence a client broadcasts (mod_presence's
//! `handle_normal_presence`), and the helpers that send the presence of a
//! user's resources or forward to them (Prosody's sessionmanager helpers).

use std::sync::Arc;

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Event, Host, Jid, Server, Session};

use crate::roster::manager;

/// A `<presence/>` with the given attributes.
pub fn presence(attrs: &[(&str, &str)]) -> Element {
    let mut p = Element::new("presence", NS_CLIENT);
    for (k, v) in attrs {
        p.set_attr(k, Some((*v).to_string()));
    }
    p
}

/// The `<priority/>` as Prosody reads it: an integer clamped to -128..=127,
/// anything else is 0.
pub fn parse_priority(stanza: &Element) -> i32 {
    let Some(text) = stanza.get_child_text("priority", NS_CLIENT) else {
        return 0;
    };
    let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let significant = digits.trim_start_matches('0');
    // More than 4 significant digits is out of range anyway.
    let magnitude: i64 = if significant.len() > 4 {
        1000
    } else {
        significant.parse().unwrap_or(0)
    };
    let value = if text.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    value.clamp(-128, 127) as i32
}

/// `ignore_presence_priority`: a priority other than "0" becomes "0".
fn neutralise_priority(stanza: &mut Element) {
    if let Some(p) = stanza.get_child_mut("priority", NS_CLIENT)
        && p.text_content() != "0"
    {
        p.nodes_mut().clear();
        p.append_text("0");
    }
}

/// Does this session still own its full JID?
fn still_bound(server: &Server, origin: &Arc<Session>) -> bool {
    origin
        .full_jid()
        .and_then(|j| server.sessions.get_full(&j))
        .is_some_and(|s| Arc::ptr_eq(&s, origin))
}

fn set_to(stanza: &Element, to: &str) -> Element {
    let mut s = stanza.clone();
    s.set_attr("to", Some(to.to_string()));
    s
}

/// A client's broadcast presence (no `to`, type absent or `unavailable`).
pub fn handle_normal_presence(
    server: &Arc<Server>,
    host: &Arc<Host>,
    origin: &Arc<Session>,
    stanza: Element,
) {
    let mut stanza = stanza;
    stanza.set_attr("to", None);
    if host
        .option_bool("ignore_presence_priority", false)
        .unwrap_or(false)
    {
        neutralise_priority(&mut stanza);
    }
    let priority = parse_priority(&stanza);
    let (Some(user), Some(full_jid)) = (origin.username(), origin.full_jid()) else {
        return;
    };
    let Ok(bare) = Jid::from_parts(Some(&user), &host.name, None) else {
        return;
    };
    let full = full_jid.to_string();

    if still_bound(server, origin) {
        origin.send(stanza.clone());
    }
    let others: Vec<Arc<Session>> = server
        .sessions
        .resources(&bare)
        .into_iter()
        .filter(|s| !Arc::ptr_eq(s, origin) && s.is_available())
        .collect();
    for res in &others {
        if let Some(to) = res.full_jid() {
            server.post_stanza(origin, set_to(&stanza, &to.to_string()), true);
        }
    }
    for (jid, _) in manager::contacts(server, host, &user, |i| i.subscription.has_from()) {
        server.post_stanza(origin, set_to(&stanza, &jid), true);
    }

    let is_initial = stanza.type_().is_none() && !origin.is_available();
    if is_initial {
        let mut ev = Event::new(server, "presence/initial")
            .with_origin(origin)
            .with_stanza(stanza.clone());
        server.fire_on_host(host, "presence/initial", &mut ev);
        origin.state().presence = Some(stanza.clone());

        for (jid, _) in manager::contacts(server, host, &user, |i| i.subscription.has_to()) {
            server.post_stanza(
                origin,
                presence(&[("from", &full), ("type", "probe"), ("to", &jid)]),
                true,
            );
        }
        for res in server.sessions.resources(&bare) {
            if Arc::ptr_eq(&res, origin) {
                continue;
            }
            let current = res.state().presence.clone();
            if let Some(p) = current {
                server.post_stanza(&res, set_to(&p, &full), true);
            }
        }
        for (jid, request) in manager::pending_in(server, host, &user) {
            let mut subscribe = request.unwrap_or_else(|| presence(&[]));
            subscribe.set_attr("type", Some("subscribe".into()));
            subscribe.set_attr("from", Some(jid));
            origin.send(subscribe);
        }
        let bare_s = bare.to_string();
        for (jid, _) in manager::contacts(server, host, &user, |i| i.ask.is_some()) {
            server.post_stanza(
                origin,
                presence(&[("type", "subscribe"), ("from", &bare_s), ("to", &jid)]),
                true,
            );
        }
        if priority >= 0 {
            let mut ev = Event::new(server, "message/offline/broadcast").with_origin(origin);
            server.fire_on_host(host, "message/offline/broadcast", &mut ev);
        }
    }

    if stanza.type_() == Some("unavailable") {
        let directed = {
            let mut st = origin.state();
            st.presence = None;
            st.priority = 0;
            std::mem::take(&mut st.directed)
        };
        for jid in directed {
            server.post_stanza(origin, set_to(&stanza, &jid.to_string()), true);
        }
    } else {
        let stamp = crate::time::datetime(server.clock.now());
        stanza.push_child(
            Element::new("delay", "urn:xmpp:delay")
                .attr("from", host.name.as_str())
                .attr("stamp", stamp),
        );
        let mut st = origin.state();
        st.presence = Some(stanza);
        st.priority = priority;
    }
}

/// Prosody's `send_presence_of_available_resources`: each available resource
/// of `user` sends its presence (or `stanza`, from that resource) to `to`.
/// Returns how many did.
pub fn send_presence_of_available_resources(
    server: &Arc<Server>,
    host: &Host,
    user: &str,
    to: &str,
    stanza: Option<&Element>,
) -> usize {
    if host.is_component() {
        return 0;
    }
    let Ok(bare) = Jid::from_parts(Some(user), &host.name, None) else {
        return 0;
    };
    let mut count = 0;
    for session in server.sessions.resources(&bare) {
        let current = session.state().presence.clone();
        let Some(mut pres) = current else { continue };
        if let Some(s) = stanza {
            pres = s.clone();
            pres.set_attr("from", session.full_jid().map(|j| j.to_string()));
        }
        pres.set_attr("to", Some(to.to_string()));
        server.post_stanza(&session, pres, true);
        count += 1;
    }
    tracing::debug!(host = %host.name, "broadcast presence of {count} resources from {user} to {to}");
    count
}

/// Sends to the user's available resources (sessionmanager's helper).
pub fn send_to_available_resources(server: &Server, bare: &Jid, stanza: &Element) -> usize {
    server
        .sessions
        .available_resources(bare)
        .iter()
        .filter(|s| s.send(stanza.clone()))
        .count()
}

/// Sends to the user's resources that asked for the roster.
pub fn send_to_interested_resources(server: &Server, bare: &Jid, stanza: &Element) -> usize {
    server
        .sessions
        .resources(bare)
        .iter()
        .filter(|s| s.state().interested)
        .filter(|s| s.send(stanza.clone()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_priority(p: &str) -> Element {
        presence(&[]).child(Element::new("priority", NS_CLIENT).text(p))
    }

    #[test]
    fn priorities_parse_as_prosody() {
        assert_eq!(parse_priority(&presence(&[])), 0);
        assert_eq!(parse_priority(&with_priority("5")), 5);
        assert_eq!(parse_priority(&with_priority("+7")), 7);
        assert_eq!(parse_priority(&with_priority("-1")), -1);
        assert_eq!(parse_priority(&with_priority("300")), 127);
        assert_eq!(
            parse_priority(&with_priority("-99999999999999999999999")),
            -128
        );
        assert_eq!(parse_priority(&with_priority("1.5")), 0);
        assert_eq!(parse_priority(&with_priority(" 3")), 0);
        assert_eq!(parse_priority(&with_priority("")), 0);
        assert_eq!(parse_priority(&with_priority("-")), 0);
        assert_eq!(parse_priority(&with_priority("007")), 7);
    }

    #[test]
    fn ignore_priority_rewrites_to_zero() {
        let mut p = with_priority("9");
        neutralise_priority(&mut p);
        assert_eq!(parse_priority(&p), 0);
        assert_eq!(
            p.get_child_text("priority", NS_CLIENT).as_deref(),
            Some("0")
        );
    }
}
