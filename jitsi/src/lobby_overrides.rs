//! The parts of `muc_lobby_rooms` (Jitsi's mod_muc_lobby_rooms) that change
//! the main MUC's own handling and the room metadata:
//!
//! - Jitsi's `prosody_overrides`, hooked before the MUC (priority 1) on
//!   the main MUC: an admin query set applies every `<item/>` (a moderator
//!   approves several knockers with one IQ; each item is answered on its
//!   own, and the first malformed one ends it), and a normal message with
//!   several `<invite to=...>` mediates each (messages without one go on
//!   to the room as before).
//! - `jitsiMetadata.lobbyEnabled` in the room metadata (see
//!   `room_metadata`): `true` when the lobby is created (by a moderator or
//!   `create-lobby-room`), `false` when it is destroyed and the room has
//!   metadata; `room-metadata-changed` follows each change.

use std::sync::Arc;

use serde_json::Value as Json;
use xmpp_core::{Event, Host, Server};

use super::lobby_rooms::live_room;
use super::room_metadata::{metadata, set_metadata};
use muc::util::bare_of;
use muc::{MucService, Room};

/// The metadata key.
pub const LOBBY_ENABLED: &str = "lobbyEnabled";

const ADMIN_SET: &str = "iq-set/bare/http://jabber.org/protocol/muc#admin:query";

/// The room a stanza to the main MUC is for.
fn room_of_stanza(service: &MucService, event: &Event) -> Option<Arc<Room>> {
    let to = event.stanza.as_ref()?.to()?;
    live_room(service, bare_of(to))
}

/// Hooks the overrides on the main MUC host.
pub(super) fn hook_overrides(host: &Host, service: &Arc<MucService>) {
    let s = service.clone();
    host.events.hook(ADMIN_SET, 1, move |event| {
        let (Some(room), Some(origin)) = (room_of_stanza(&s, event), event.origin.clone()) else {
            return false;
        };
        let Some(stanza) = event.stanza.clone() else {
            return false;
        };
        room.handle_admin_set_items(&origin, &stanza);
        true
    });
    let s = service.clone();
    host.events.hook("message/bare", 1, move |event| {
        let (Some(room), Some(origin)) = (room_of_stanza(&s, event), event.origin.clone()) else {
            return false;
        };
        let Some(stanza) = event.stanza.clone() else {
            return false;
        };
        room.handle_mediated_invites(&origin, &stanza)
    });
}

/// Sets `lobbyEnabled` in the room's metadata; with `only_if_present`, only
/// when the room has metadata already (Jitsi's `if room.jitsiMetadata`).
pub(super) fn set_lobby_enabled(
    server: &Arc<Server>,
    main_muc: &str,
    room: &Arc<Room>,
    value: bool,
    only_if_present: bool,
) {
    let Some(muc) = server.host(main_muc) else {
        return;
    };
    if only_if_present && metadata(&muc, &room.jid).is_none() {
        return;
    }
    set_metadata(server, &muc, room, LOBBY_ENABLED, Json::Bool(value));
}
