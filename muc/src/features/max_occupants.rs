//! `muc_max_occupants` (Jitsi's mod_muc_max_occupants): a room holds at
//! most that many occupants (or its own `_data.max_occupants`), not
//! counting users or domains in `muc_access_whitelist`, who also always get
//! in. Loaded as the module `muc_max_occupants` on the component.

use std::sync::Arc;

use xmpp_core::error::StanzaError;
use xmpp_core::{Host, Value};

use crate::events::room_of;
use crate::util::{bare_of, host_of};

/// Jitsi's health-check rooms are never limited.
pub fn is_healthcheck_room(jid: &str) -> bool {
    jid.starts_with("__jicofo-health-check")
}

pub fn register(host: &Arc<Host>) -> Result<(), xmpp_core::config::OptionError> {
    let max = host.option_i64("muc_max_occupants", -1)?;
    if max <= 0 {
        return Ok(());
    }
    let whitelist = host.option_list("muc_access_whitelist");
    let listed = move |jid: &str| {
        whitelist
            .iter()
            .any(|w| w == host_of(jid) || w == bare_of(jid))
    };
    host.events.hook("muc-occupant-pre-join", 10, move |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let from = event.stanza().from().unwrap_or_default().to_string();
        if is_healthcheck_room(&room.jid) || !bare_of(&from).contains('@') || listed(&from) {
            return false;
        }
        if room.get_occupant_jid(&from).is_some() {
            return false;
        }
        let slots = room
            .data_value("max_occupants")
            .and_then(|v: Value| v.as_i64())
            .unwrap_or(max);
        let counted = room
            .each_occupant()
            .iter()
            .filter(|o| !listed(&o.bare_jid))
            .count() as i64;
        if slots - counted > 0 {
            return false;
        }
        tracing::info!(room = %room.jid, "attempt to enter a maxed out MUC");
        if let Some(origin) = event.origin.clone() {
            origin.send(StanzaError::service_unavailable().reply_to(event.stanza()));
        }
        true
    });
    Ok(())
}
