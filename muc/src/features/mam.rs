//! `muc_mam`: Prosody 0.12's mod_muc_mam — XEP-0313 Message Archive
//! Management for rooms, loaded on the MUC component.
//!
//! - What is archived: every groupchat message the room keeps in history
//!   (`muc-add-history`), in the archive store `muc_log` under the room's
//!   node, with `with` = `message<groupchat` (`presence`,
//!   `presence<unavailable` for joins and leaves when `muc_log_presences`
//!   is on). In rooms where anyone sees real JIDs, the stored copy carries
//!   `<x xmlns='muc#user'><item affiliation role jid/></x>` naming the
//!   sender; elsewhere that element is removed before an item is served.
//! - The broadcast message gets the archive's id as its
//!   `<stanza-id by='room'/>` (replacing the random one the room gives
//!   messages when nothing is archived).
//! - Queries to the room (`iq-set/bare/urn:xmpp:mam:2:query`, the form with
//!   `iq-get`) page with RSM as mod_mam's do ([`modules::mam::query`]);
//!   outcasts, and non-members of members-only rooms, are refused with
//!   `auth/forbidden`; the form's `with` is ignored (Prosody uses the
//!   field for the type tag).
//! - History for joining occupants comes from the archive when the room's
//!   memory holds fewer messages than asked for (after a restart), as
//!   Prosody's `muc-get-history` at priority 1.
//! - Which rooms: `muc_log_all_rooms` (false) archives all; otherwise the
//!   room option `muc#roomconfig_enablearchiving` (stored as `_data.archiving`,
//!   status 170/171 when submitted), default `muc_log_by_default` (true).
//! - `muc_log_expires_after` ("1w"; "never" keeps all): as lilt's mod_mam,
//!   expiry is lazy, the first message archived for a room on a new day
//!   records the day in the map store `muc_log_cleanup` and removes older
//!   items. `max_archive_query_results` (50), `muc_log_include_total`
//!   (true; `mam_include_total`, false, when nothing expires).
//! - A destroyed room's archive is deleted.

use std::sync::Arc;

use modules::mam::query::{Page, answer, parse_request, query_form};
use modules::mam::{NS_MAM, expire_daily, expiry_option};
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::{Element, NS_CLIENT};
use xmpp_core::storage::ArchiveQuery;
use xmpp_core::{Event, Host, Value};

use super::on_disco;
use crate::events::{lock, mutable_of, room_of};
use crate::form::{Field, FieldValue};
use crate::room::Room;
use crate::room::iq::add_disco_feature;
use crate::room::owner::{add_config_field, add_status_code, submitted_value};
use crate::util::{Affiliation, NS_DELAY, NS_MUC, NS_MUC_USER, NS_STANZA_ID, bare_of, datetime};
use crate::{Lookup, service_for};

/// The archive store (Prosody's `archive_store` of mod_muc_mam).
pub const STORE: &str = "muc_log";
/// The map store of the days rooms got messages.
pub const CLEANUP_STORE: &str = "muc_log_cleanup";
/// The room configuration field.
pub const FIELD_ENABLE: &str = "muc#roomconfig_enablearchiving";
/// Archived messages' type tag.
const WITH_GROUPCHAT: &str = "message<groupchat";
const DEFAULT_MAX_RESULTS: i64 = 50;

/// Why `muc_mam` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum MucMamError {
    #[error("mod_muc_mam should be loaded only on a MUC component, not on {0}")]
    NotMuc(String),
    #[error(transparent)]
    Option(#[from] xmpp_core::config::OptionError),
}

/// The module's options on one component.
#[derive(Debug, Clone)]
pub struct Options {
    pub log_all_rooms: bool,
    pub log_by_default: bool,
    /// Seconds; `None`: "never".
    pub expires_after: Option<f64>,
    pub max_results: usize,
    pub include_total: bool,
    pub log_presences: bool,
}

impl Options {
    pub fn read(host: &Host) -> Result<Options, MucMamError> {
        let expires_after = expiry_option(host, "muc_log_expires_after")?;
        let include_total = match expires_after {
            Some(_) => host.option_bool("muc_log_include_total", true)?,
            None => host.option_bool("mam_include_total", false)?,
        };
        let max = host.option_i64("max_archive_query_results", DEFAULT_MAX_RESULTS)?;
        Ok(Options {
            log_all_rooms: host.option_bool("muc_log_all_rooms", false)?,
            log_by_default: host.option_bool("muc_log_by_default", true)?,
            expires_after,
            max_results: usize::try_from(max.max(0)).unwrap_or(50),
            include_total,
            log_presences: host.option_bool("muc_log_presences", false)?,
        })
    }

    /// Prosody's `archiving_enabled(room)`.
    pub fn archiving_enabled(&self, room: &Room) -> bool {
        if self.log_all_rooms {
            return true;
        }
        match room.data_value("archiving") {
            Some(Value::Bool(b)) => b,
            _ => self.log_by_default,
        }
    }
}

/// Loads `muc_mam` on a MUC component (after `muc`).
pub fn load(host: &Arc<Host>) -> Result<(), MucMamError> {
    if !host.is_component() || service_for(host).is_none() {
        return Err(MucMamError::NotMuc(host.name.clone()));
    }
    let opts = Arc::new(Options::read(host)?);

    if !opts.log_all_rooms {
        let o = opts.clone();
        host.events.hook("muc-config-form", 0, move |event| {
            if let Some(room) = room_of(event) {
                add_config_field(
                    event,
                    Field::new(FIELD_ENABLE, "boolean")
                        .label("Enable archiving?")
                        .value(Some(FieldValue::Bool(o.archiving_enabled(&room)))),
                );
            }
            false
        });
        host.events.hook(
            &format!("muc-config-submitted/{FIELD_ENABLE}"),
            0,
            |event| {
                let Some(room) = room_of(event) else {
                    return false;
                };
                let on = matches!(submitted_value(event), Some(Value::Bool(true)));
                room.set_data_value("archiving", Some(Value::Bool(on)));
                add_status_code(event, if on { "170" } else { "171" });
                false
            },
        );
    }

    host.events
        .hook(&format!("iq-get/bare/{NS_MAM}:query"), 0, |event| {
            let reply = event.stanza().reply().child(query_form());
            event.reply(reply);
            true
        });
    let o = opts.clone();
    host.events
        .hook(&format!("iq-set/bare/{NS_MAM}:query"), 0, move |event| {
            handle_query(event, &o)
        });

    let o = opts.clone();
    host.events.hook("muc-get-history", 1, move |event| {
        history_from_archive(event, &o)
    });

    let o = opts.clone();
    host.events.hook("muc-add-history", 0, move |event| {
        if let (Some(room), Some(host)) = (room_of(event), event.host.clone())
            && let Some(stanza) = event.stanza.as_mut()
        {
            save_to_history(&host, &room, &o, stanza);
        }
        false
    });

    if opts.log_presences {
        for (name, unavailable) in [("muc-occupant-joined", false), ("muc-occupant-left", true)] {
            let o = opts.clone();
            host.events.hook(name, 0, move |event| {
                let (Some(room), Some(host)) = (room_of(event), event.host.clone()) else {
                    return false;
                };
                let nick = event.field_str("nick").unwrap_or_default().to_string();
                let mut p = Element::new("presence", NS_CLIENT).attr("from", nick);
                if unavailable {
                    p.set_attr("type", Some("unavailable".into()));
                } else {
                    p.push_child(Element::new("x", NS_MUC));
                }
                save_to_history(&host, &room, &o, &mut p);
                false
            });
        }
    }

    host.events.hook("muc-room-destroyed", 0, |event| {
        let (Some(room), Some(host)) = (room_of(event), event.host.clone()) else {
            return false;
        };
        if let Err(e) = host
            .open_archive(STORE)
            .and_then(|a| a.delete(Some(room.node()), &ArchiveQuery::default()))
        {
            tracing::error!(room = %room.jid, "could not delete the room's archive: {e}");
        }
        false
    });

    host.events.hook("host-disco-info", 0, |event| {
        if let Some(q) = event
            .stanza
            .as_mut()
            .and_then(|iq| iq.get_child_mut("query", crate::util::NS_DISCO_INFO))
        {
            q.push_child(Element::new("feature", crate::util::NS_DISCO_INFO).attr("var", NS_MAM));
        }
        false
    });
    on_disco(host, move |room, event| {
        if opts.archiving_enabled(room) {
            add_disco_feature(event, NS_MAM);
        }
    });
    Ok(())
}

/// Removes the `<x xmlns='muc#user'/>` naming the sender, unless the room
/// shows real JIDs to anyone.
fn strip_real_jid(room: &Room, stanza: &mut Element) {
    if room.get_whois() != "anyone" {
        stanza.remove_children(|c| c.is("x", NS_MUC_USER));
    }
}

/// Prosody's `save_to_history`: archives `stanza` (a message being
/// broadcast, or a join or leave presence) and stamps the message with the
/// archive's `<stanza-id/>`.
fn save_to_history(host: &Arc<Host>, room: &Arc<Room>, opts: &Options, stanza: &mut Element) {
    let mut stored = stanza.clone();
    stored.set_attr("to", None);
    stored.remove_children(|c| {
        c.is("stanza-id", NS_STANZA_ID) && c.get_attr("by") == Some(&room.jid)
    });
    if stanza.name() == "message"
        && room.get_whois() == "anyone"
        && let Some(occupant) = stanza.from().and_then(|f| room.get_occupant_by_nick(f))
    {
        let actor = occupant.bare_jid.clone();
        let affiliation = room.get_affiliation(&actor);
        // Prosody asks the role of the bare JID, which has none: the
        // affiliation's default role.
        let role = room.get_default_role(affiliation);
        stored.push_child(
            Element::new("x", NS_MUC_USER).child(
                Element::new("item", NS_MUC_USER)
                    .attr(
                        "affiliation",
                        affiliation.map_or("none", Affiliation::as_str),
                    )
                    .attr("role", role.map_or("none", |r| r.as_str()))
                    .attr("jid", actor),
            ),
        );
    }
    if !opts.archiving_enabled(room) {
        return;
    }
    let with = match stanza.type_() {
        Some(t) => format!("{}<{t}", stanza.name()),
        None => stanza.name().to_string(),
    };
    let Some(ctx) = room.ctx() else { return };
    // Whole seconds, as Prosody's `os.time()`.
    let now = ctx.server.clock.now().floor();
    let node = room.node().to_string();
    if let Some(after) = opts.expires_after {
        expire_daily(host, STORE, CLEANUP_STORE, &node, after, now);
    }
    let archive = match host.open_archive(STORE) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(room = %room.jid, "could not open the room archive: {e}");
            return;
        }
    };
    let mut result = archive.append(Some(&node), &stored, now, &with);
    if let Err(e) = &result
        && e.to_string().contains(modules::storage::QUOTA_LIMIT)
        && let Some(after) = opts.expires_after
    {
        let q = ArchiveQuery {
            end: Some(now - after),
            ..Default::default()
        };
        if archive.delete(Some(&node), &q).is_ok() {
            result = archive.append(Some(&node), &stored, now, &with);
        }
    }
    match result {
        Ok(id) => {
            stanza.remove_children(|c| {
                c.is("stanza-id", NS_STANZA_ID) && c.get_attr("by") == Some(&room.jid)
            });
            stanza.push_child(
                Element::new("stanza-id", NS_STANZA_ID)
                    .attr("by", room.jid.as_str())
                    .attr("id", id),
            );
        }
        Err(e) => tracing::error!(room = %room.jid, "could not archive stanza: {e}"),
    }
}

/// An archive query to a room.
fn handle_query(event: &mut Event, opts: &Options) -> bool {
    let Some(host) = event.host.clone() else {
        return false;
    };
    let stanza = event.stanza().clone();
    let Some(query) = stanza.get_child("query", NS_MAM) else {
        return false;
    };
    let room = service_for(&host).and_then(|s| {
        match s.get_room(bare_of(stanza.to().unwrap_or_default())) {
            Lookup::Live(r) | Lookup::Creating(r) => Some(r),
            _ => None,
        }
    });
    let Some(room) = room else {
        event.reply(StanzaError::new(ErrorType::Cancel, "item-not-found").reply_to(&stanza));
        return true;
    };
    let from = bare_of(stanza.from().unwrap_or_default()).to_string();
    let affiliation = room.get_affiliation(&from);
    if affiliation == Some(Affiliation::Outcast)
        || (room.get_members_only() && affiliation.is_none())
    {
        event.reply(StanzaError::forbidden().reply_to(&stanza));
        return true;
    }
    let req = match parse_request(query) {
        Ok(r) => r,
        Err(text) => {
            event.reply(
                StanzaError::new(ErrorType::Modify, "bad-request")
                    .with_text(text)
                    .reply_to(&stanza),
            );
            return true;
        }
    };
    let archive = match host.open_archive(STORE) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(room = %room.jid, "could not open the room archive: {e}");
            event.reply(
                StanzaError::new(ErrorType::Cancel, "internal-server-error").reply_to(&stanza),
            );
            return true;
        }
    };
    let page = Page {
        owner: room.node(),
        with: Some(WITH_GROUPCHAT.to_string()),
        max_results: opts.max_results,
        include_total: opts.include_total,
    };
    let present = |m: &mut Element| {
        strip_real_jid(&room, m);
        m.set_attr("to", None);
    };
    match answer(archive.as_ref(), &stanza, &req, &page, present) {
        Ok((messages, reply)) => {
            for m in messages {
                event.reply(m);
            }
            event.reply(reply);
        }
        Err(error) => event.reply(error),
    }
    true
}

/// `muc-get-history` (priority 1): the history from the archive when the
/// room's memory has fewer messages than asked for.
fn history_from_archive(event: &mut Event, opts: &Options) -> bool {
    let (Some(room), Some(host)) = (room_of(event), event.host.clone()) else {
        return false;
    };
    if !opts.archiving_enabled(&room) {
        return false;
    }
    let num = |k: &str| event.fields.get(k).and_then(Value::as_f64);
    let (maxchars, maxstanzas, since) = (num("maxchars"), num("maxstanzas"), num("since"));
    if maxstanzas == Some(0.0) || maxchars == Some(0.0) {
        return false;
    }
    let length = room.get_historylength().max(0) as usize;
    let maxstanzas = match maxstanzas {
        Some(m) if m >= 0.0 && (m as usize) < length => m as usize,
        _ => length,
    };
    if room.state().history.len() >= maxstanzas {
        return false;
    }
    let q = ArchiveQuery {
        limit: Some(maxstanzas),
        start: since,
        reverse: true,
        with: Some(WITH_GROUPCHAT.to_string()),
        ..ArchiveQuery::default()
    };
    let items = match host
        .open_archive(STORE)
        .and_then(|a| a.find(Some(room.node()), &q))
    {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(room = %room.jid, "could not fetch history: {e}");
            return false;
        }
    };
    let mut chars_left = maxchars;
    let mut newest_first = Vec::new();
    for item in items {
        let mut m = item.stanza;
        m.set_ns(NS_CLIENT);
        m.push_child(
            Element::new("delay", NS_DELAY)
                .attr("from", room.jid.as_str())
                .attr("stamp", datetime(item.when)),
        );
        m.push_child(
            Element::new("stanza-id", NS_STANZA_ID)
                .attr("by", room.jid.as_str())
                .attr("id", item.key),
        );
        strip_real_jid(&room, &mut m);
        if let Some(left) = chars_left.as_mut() {
            let chars = m.to_xml().len() as f64;
            if *left - chars < 0.0 {
                break;
            }
            *left -= chars;
        }
        newest_first.push(m);
    }
    newest_first.reverse();
    if let Some(out) = mutable_of::<Vec<Element>>(event, "history") {
        *lock(&out) = newest_first;
    }
    true
}
