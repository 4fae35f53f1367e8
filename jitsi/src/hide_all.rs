//! `muc_hide_all` (Jitsi's mod_muc_hide_all): every room is created hidden,
//! so none is listed in the component's disco#items, and a room's
//! disco#info is answered only to its occupants (others get
//! `auth/forbidden`; a room that does not exist is left to the MUC's
//! `item-not-found`).

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::error::{ErrorType, StanzaError};

use muc::events::room_of;
use muc::util::bare_of;

pub fn register(host: &Arc<Host>) {
    host.events.hook("muc-room-pre-create", -1, |event| {
        if let Some(room) = room_of(event) {
            room.set_hidden(true);
        }
        false
    });
    for name in [
        "iq-get/bare/http://jabber.org/protocol/disco#info:query",
        "iq-get/host/http://jabber.org/protocol/disco#info:query",
    ] {
        let h = host.clone();
        // Before the MUC (-2).
        host.events.hook(name, 1, move |event| {
            let Some(service) = muc::service_for(&h) else {
                return false;
            };
            let stanza = event.stanza();
            let room_jid = bare_of(stanza.to().unwrap_or_default()).to_string();
            let muc::Lookup::Live(room) = service.get_room(&room_jid) else {
                return false;
            };
            let from = stanza.from().unwrap_or_default();
            if room.get_occupant_by_real_jid(from).is_some() {
                return false;
            }
            let reply = StanzaError::new(ErrorType::Auth, "forbidden").reply_to(stanza);
            event.reply(reply);
            true
        });
    }
}
