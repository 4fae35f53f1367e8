//! Who sees real JIDs (Prosody's `whois` library): `moderators`
//! (semi-anonymous, the default) or `anyone` (non-anonymous).

use std::sync::Arc;

use xmpp_core::Host;

use super::{on_disco, on_form, submitted_str};
use crate::events::room_of;
use crate::form::{Field, FormOption};
use crate::room::Room;
use crate::room::iq::add_disco_feature;
use crate::room::owner::add_status_code;
use crate::util::{NS_MUC_USER, Role};

impl Room {
    /// `moderators` or `anyone`.
    pub fn get_whois(&self) -> String {
        self.data_str("whois")
            .unwrap_or_else(|| "moderators".into())
    }
    /// Sets who sees real JIDs; `false` if unchanged or not a valid value.
    pub fn set_whois(&self, whois: &str) -> bool {
        if !matches!(whois, "moderators" | "anyone") || self.get_whois() == whois {
            return false;
        }
        self.set_data_str("whois", Some(whois));
        true
    }
}

pub fn register(host: &Arc<Host>) {
    on_disco(host, |room, event| {
        let var = if room.get_whois() != "anyone" {
            "muc_semianonymous"
        } else {
            "muc_nonanonymous"
        };
        add_disco_feature(event, var);
    });
    on_form(host, 80 - 4, |room, _| {
        let whois = room.get_whois();
        let option = |value: &str, label: &str| FormOption {
            label: Some(label.to_string()),
            value: value.to_string(),
            default: whois == value,
        };
        Some(
            Field::new("muc#roomconfig_whois", "list-single")
                .label("Addresses (JIDs) of room occupants may be viewed by:")
                .options(vec![
                    option("moderators", "Moderators only"),
                    option("anyone", "Anyone"),
                ]),
        )
    });
    host.events
        .hook("muc-config-submitted/muc#roomconfig_whois", 0, |event| {
            let Some(room) = room_of(event) else {
                return false;
            };
            let Some(value) = submitted_str(event) else {
                return false;
            };
            if room.set_whois(&value) {
                add_status_code(event, if value == "moderators" { "173" } else { "172" });
            }
            false
        });
    // In a semi-anonymous room, invitations come from the occupant JID.
    host.events.hook("muc-invite", 50, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let invitee = event.stanza().to().unwrap_or_default().to_string();
        if room.get_whois() != "moderators"
            || room.get_default_role(room.get_affiliation(&invitee)) == Some(Role::Moderator)
        {
            return false;
        }
        let Some(invite) = event
            .stanza
            .as_mut()
            .and_then(|s| s.get_child_mut("x", NS_MUC_USER))
            .and_then(|x| x.get_child_mut("invite", NS_MUC_USER))
        else {
            return false;
        };
        let from = invite.get_attr("from").unwrap_or_default().to_string();
        if let Some(nick) = room.get_occupant_jid(&from) {
            invite.set_attr("from", Some(nick));
        }
        false
    });
}
