//! `csi_simple`: Prosody 0.12's mod_csi_simple — while a client says it is
//! inactive (XEP-0352, through [`crate::csi`]), what is not urgent is held
//! back and sent later in one go.
//!
//! Held: presence updates (available, unavailable, error), headlines, and
//! messages with nothing a person waits for. Important, and sent at once
//! together with everything held before it: IQs, subscription requests,
//! errors, sent carbons, and messages (or received carbons of messages) with
//! a body, subject, encryption, an invitation, Jingle Message Initiation, or
//! a payload named in `csi_important_payloads`. The queue is also sent when
//! it reaches `csi_queue_size` (256), when the client sends anything, and
//! when the client says it is active again. A held stanza (not an IQ) gets
//! a `<delay xmlns='urn:xmpp:delay'/>` from the account with the time it
//! was held. After a flush, stanzas go straight out for
//! `csi_resume_inactive_delay` (5) seconds before holding starts again, as
//! Prosody waits that long after its socket drained.
//!
//! lilt holds stanzas in the session's outbound filter (Prosody pauses the
//! connection's writes instead), so held stanzas are not yet counted by
//! XEP-0198; a session that ends while holding loses what it held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::{Host, Server, Session};

use crate::ModuleError;

const NS_DELAY: &str = "urn:xmpp:delay";
const NS_CARBONS: &str = "urn:xmpp:carbons:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";

#[derive(Debug, Clone)]
struct Options {
    queue_size: usize,
    resume_delay: f64,
    important_payloads: Vec<String>,
}

#[derive(Default)]
struct Held {
    inactive: bool,
    /// Flushed at this time: stanzas pass until `resume_delay` later.
    flushed_at: Option<f64>,
    queue: Vec<Element>,
}

/// Per-session state, by session id.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Held>>);

fn lock(s: &Sessions) -> MutexGuard<'_, HashMap<String, Held>> {
    s.0.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn load(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), ModuleError> {
    crate::load_module(server, host, "csi")?;
    let opts = Arc::new(Options {
        queue_size: usize::try_from(host.option_i64("csi_queue_size", 256)?.max(0)).unwrap_or(256),
        resume_delay: host
            .option("csi_resume_inactive_delay")
            .and_then(xmpp_core::value::Value::as_f64)
            .unwrap_or(5.0),
        important_payloads: host.option_list("csi_important_payloads"),
    });
    let o = opts.clone();
    host.events.hook("csi-client-inactive", 0, move |e| {
        if let (Some(host), Some(origin)) = (e.host.clone(), e.origin.clone()) {
            enable(&e.server.clone(), &host, &origin, &o);
        }
        true
    });
    host.events.hook("csi-client-active", 0, |e| {
        if let (Some(host), Some(origin)) = (e.host.clone(), e.origin.clone()) {
            flush(&host, &origin, false);
        }
        true
    });
    host.events.hook("resource-unbind", 1, |e| {
        if let (Some(host), Some(origin)) = (e.host.clone(), e.origin.clone()) {
            flush(&host, &origin, false);
            lock(&host.extension::<Sessions>()).remove(&origin.id);
        }
        false
    });
    // Anything the client sends is activity: what was held goes out.
    for name in ["message", "presence", "iq"] {
        for kind in ["bare", "full", "host"] {
            host.events.hook(&format!("pre-{name}/{kind}"), 1000, |e| {
                if let (Some(host), Some(origin)) = (e.host.clone(), e.origin.clone()) {
                    flush(&host, &origin, true);
                }
                false
            });
        }
    }
    Ok(())
}

/// Prosody's `is_important`.
pub fn is_important(stanza: &Element, important_payloads: &[String]) -> bool {
    if stanza.ns() != NS_CLIENT {
        return true; // a nonza
    }
    let t = stanza.type_();
    match stanza.name() {
        "presence" => !matches!(t, None | Some("unavailable") | Some("error")),
        "message" => {
            match t {
                Some("headline") => return false,
                Some("error") => return true,
                _ => {}
            }
            if stanza.get_child("sent", NS_CARBONS).is_some() {
                return true;
            }
            let m = stanza
                .get_child("received", NS_CARBONS)
                .and_then(|r| r.get_child("forwarded", NS_FORWARD))
                .and_then(|f| f.get_child("message", NS_CLIENT))
                .unwrap_or(stanza);
            m.get_child("body", NS_CLIENT).is_some()
                || m.get_child("subject", NS_CLIENT).is_some()
                || m.get_child("encryption", "urn:xmpp:eme:0").is_some()
                || m.get_child("x", "jabber:x:conference").is_some()
                || m.get_child("x", NS_MUC_USER)
                    .is_some_and(|x| x.get_child("invite", NS_MUC_USER).is_some())
                || m.children().any(|c| {
                    c.ns() == "urn:xmpp:jingle-message:0" || c.ns() == "urn:xmpp:jingle-message:1"
                })
                || m.children().any(|c| {
                    important_payloads
                        .iter()
                        .any(|p| p == c.ns() || *p == format!("{{{}}}{}", c.ns(), c.name()))
                })
        }
        _ => true,
    }
}

fn enable(server: &Arc<Server>, host: &Arc<Host>, origin: &Arc<Session>, opts: &Arc<Options>) {
    let sessions = host.extension::<Sessions>();
    let first = {
        let mut map = lock(&sessions);
        let first = !map.contains_key(&origin.id);
        let held = map.entry(origin.id.clone()).or_default();
        held.inactive = true;
        held.flushed_at = None;
        first
    };
    if !first {
        return;
    }
    let opts = opts.clone();
    let server = server.clone();
    let host_name = host.name.clone();
    origin.add_outbound_filter(
        1000,
        Arc::new(move |session: &Session, stanza: Element| {
            let host = server.host(&host_name)?;
            manage(&server, &host, session, stanza, &opts)
        }),
    );
}

/// The outbound filter: hold, pass, or flush the queue then pass.
fn manage(
    server: &Arc<Server>,
    host: &Arc<Host>,
    session: &Session,
    stanza: Element,
    opts: &Options,
) -> Option<Element> {
    let now = server.clock.now();
    let sessions = host.extension::<Sessions>();
    let flushed = {
        let mut map = lock(&sessions);
        let held = map.get_mut(&session.id)?;
        if !held.inactive {
            return Some(stanza);
        }
        if let Some(at) = held.flushed_at {
            if now - at < opts.resume_delay {
                return Some(stanza);
            }
            held.flushed_at = None;
        }
        if held.queue.len() < opts.queue_size && !is_important(&stanza, &opts.important_payloads) {
            let mut s = stanza;
            if s.ns() == NS_CLIENT && s.name() != "iq" {
                s.push_child(
                    Element::new("delay", NS_DELAY)
                        .attr_opt("from", session.bare_jid().map(|j| j.to_string()))
                        .attr("stamp", lua_compat::datfile::archive::datetime(now)),
                );
            }
            tracing::debug!(session = %session.id, "CSI: holding ({} held)", held.queue.len() + 1);
            held.queue.push(s);
            return None;
        }
        held.flushed_at = Some(now);
        std::mem::take(&mut held.queue)
    };
    tracing::debug!(session = %session.id, "CSI: flushing {} held stanzas", flushed.len());
    for s in flushed {
        session.send(s);
    }
    Some(stanza)
}

/// Sends what is held (`activity`: the client sent something, it stays
/// inactive; else it became active).
fn flush(host: &Arc<Host>, origin: &Arc<Session>, activity: bool) {
    let sessions = host.extension::<Sessions>();
    let queue = {
        let mut map = lock(&sessions);
        let Some(held) = map.get_mut(&origin.id) else {
            return;
        };
        if activity {
            if held.queue.is_empty() {
                return;
            }
        } else {
            held.inactive = false;
        }
        std::mem::take(&mut held.queue)
    };
    for s in queue {
        origin.send(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn importance() {
        let p = |t: Option<&str>| Element::new("presence", NS_CLIENT).attr_opt("type", t);
        assert!(!is_important(&p(None), &[]));
        assert!(!is_important(&p(Some("unavailable")), &[]));
        assert!(is_important(&p(Some("subscribe")), &[]));
        let m = |t: &str| Element::new("message", NS_CLIENT).attr("type", t);
        assert!(!is_important(&m("chat"), &[]));
        assert!(is_important(
            &m("chat").child(Element::new("body", NS_CLIENT).text("hi")),
            &[]
        ));
        assert!(!is_important(
            &m("headline").child(Element::new("body", NS_CLIENT).text("hi")),
            &[]
        ));
        let state = m("chat").child(Element::new(
            "active",
            "http://jabber.org/protocol/chatstates",
        ));
        assert!(!is_important(&state, &[]));
        assert!(is_important(
            &state,
            &["http://jabber.org/protocol/chatstates".to_string()]
        ));
        let carbon =
            m("chat").child(Element::new("received", NS_CARBONS).child(
                Element::new("forwarded", NS_FORWARD).child(
                    Element::new("message", NS_CLIENT).child(Element::new("body", NS_CLIENT)),
                ),
            ));
        assert!(is_important(&carbon, &[]));
        assert!(is_important(&Element::new("iq", NS_CLIENT), &[]));
        assert!(is_important(&Element::new("r", "urn:xmpp:sm:3"), &[]));
    }
}
