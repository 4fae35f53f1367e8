//! `end_conference` (Jitsi's mod_end_conference), loaded as a component:
//!
//! ```lua
//! Component "endconference.meet.jitsi" "end_conference"
//!     muc_component = "muc.meet.jitsi"
//! ```
//!
//! A moderator's client sends `<message to='endconference.…'><end_conference/></message>`;
//! the room its session was opened for (`?room=` of its BOSH/WebSocket
//! URL, see [`super::web_session`]) is destroyed with the reason "The
//! meeting has been terminated", so every occupant gets the unavailable
//! presence with `<destroy><reason/></destroy>`. From anyone who is not a
//! moderator occupant of that room, or from a session without a room, the
//! message is not handled (Prosody answers `service-unavailable`).
//! Without `muc_mapper_domain_base` the component is disabled, as Jitsi's.
//! The component announces itself on the main VirtualHost
//! (`jitsi-add-identity`, type `end_conference`).

use std::sync::Arc;

use xmpp_core::{Event, Host, Server, config::OptionError};

use super::web_session::{RoomFinder, announce_identity, command_child, muc_component};

pub const END_CONFERENCE_REASON: &str = "The meeting has been terminated";

pub fn register(server: &Arc<Server>, host: &Arc<Host>) -> Result<(), OptionError> {
    let Some(muc) = muc_component(host) else {
        return Ok(());
    };
    let Some(main_host) = host
        .option_str("muc_mapper_domain_base")
        .map(str::to_string)
    else {
        tracing::warn!(host = %host.name, "No \"muc_mapper_domain_base\" option set, disabling end conference component.");
        return Ok(());
    };
    tracing::info!(host = %host.name, "Starting end_conference for {muc}");
    let finder = RoomFinder::new(host, &muc)?;
    host.events
        .hook("message/host", 0, move |event| on_message(event, &finder));
    announce_identity(server, &main_host, "end_conference", &host.name);
    Ok(())
}

fn on_message(event: &mut Event, finder: &RoomFinder) -> bool {
    let (Some(stanza), Some(origin)) = (event.stanza.as_ref(), event.origin.clone()) else {
        return false;
    };
    if stanza.type_() == Some("error") || command_child(stanza, "end_conference").is_none() {
        return false;
    }
    let from = stanza.from().unwrap_or_default();
    let Some((room, _)) = finder.room_of_moderator(&event.server, &origin, from, "end_conference")
    else {
        return false;
    };
    match room.destroy(None, Some(END_CONFERENCE_REASON), None) {
        Ok(()) => tracing::info!(room = %room.jid, "Room destroyed by occupant {from}"),
        Err(e) => {
            tracing::warn!(room = %room.jid, "destroying the room for {from} was refused: {e:?}")
        }
    }
    true
}
