//! Who may send private messages (Prosody 13's `restrict_pm` library):
//! `muc#roomconfig_allowpm` (`visitor`: everyone, `participant`,
//! `moderator`, `affiliated`, `none`) and `{xmpp:prosody.im}muc#allow_modpm`
//! (always to and from moderators).

use std::sync::Arc;

use xmpp_core::Host;
use xmpp_core::error::{ErrorType, StanzaError};

use super::{on_form, on_submit, submitted_bool, submitted_str};
use crate::events::room_of;
use crate::form::{Field, FieldValue, FormOption};
use crate::room::Room;
use crate::util::{Role, role_rank};

const ALLOW_MODPM: &str = "{xmpp:prosody.im}muc#allow_modpm";

impl Room {
    pub fn get_allow_pm(&self) -> String {
        match self.data_str("allow_pm").as_deref() {
            None | Some("everyone") => "visitor".into(),
            Some("participants") => "participant".into(),
            Some("moderators") => "moderator".into(),
            Some("members") => "affiliated".into(),
            Some(other) => other.to_string(),
        }
    }
    pub fn set_allow_pm(&self, value: &str) -> bool {
        if self.get_allow_pm() == value {
            return false;
        }
        self.set_data_str("allow_pm", Some(value));
        true
    }
    pub fn get_allow_modpm(&self) -> bool {
        self.data_bool("allow_modpm")
    }
    pub fn set_allow_modpm(&self, value: bool) -> bool {
        self.set_data_bool("allow_modpm", value)
    }
}

fn rank_of(name: &str) -> i32 {
    match Role::parse(name) {
        Ok(r) => role_rank(r),
        Err(_) => i32::MAX,
    }
}

pub fn register(host: &Arc<Host>) {
    on_form(host, 0, |room, _| {
        let current = room.get_allow_pm();
        let option = |value: &str, label: &str| FormOption {
            label: Some(label.into()),
            value: value.into(),
            default: current == value,
        };
        Some(
            Field::new("muc#roomconfig_allowpm", "list-single")
                .label("Allow private messages from")
                .options(vec![
                    option("visitor", "Everyone"),
                    option("participant", "Participants"),
                    option("moderator", "Moderators"),
                    option("affiliated", "Members"),
                    option("none", "No one"),
                ]),
        )
    });
    on_form(host, 0, |room, _| {
        Some(
            Field::new(ALLOW_MODPM, "boolean")
                .label("Always allow private messages to moderators")
                .value(Some(FieldValue::Bool(room.get_allow_modpm()))),
        )
    });
    on_submit(host, "muc#roomconfig_allowpm", |room, event| {
        submitted_str(event).is_some_and(|v| room.set_allow_pm(&v))
    });
    on_submit(host, ALLOW_MODPM, |room, event| {
        room.set_allow_modpm(submitted_bool(event))
    });

    host.events.hook("muc-private-message", 1, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        let stanza = event.stanza();
        let (Some(from), Some(to)) = (
            room.get_occupant_by_nick(stanza.from().unwrap_or_default()),
            room.get_occupant_by_nick(stanza.to().unwrap_or_default()),
        ) else {
            return false;
        };
        if to.bare_jid == from.bare_jid {
            return false;
        }
        if room.get_allow_modpm()
            && (to.role == Some(Role::Moderator) || from.role == Some(Role::Moderator))
        {
            return false;
        }
        let allowed = room.get_allow_pm();
        if allowed != "none" {
            if allowed == "affiliated" && room.get_affiliation(&from.bare_jid).is_some() {
                return false;
            }
            if role_rank(from.role) >= rank_of(&allowed) {
                return false;
            }
        }
        let who = match allowed.as_str() {
            "none" => "in this group",
            "participant" => "from guests",
            "moderator" => "from non-moderators",
            _ => "from non-members",
        };
        let error = StanzaError::new(ErrorType::Cancel, "policy-violation")
            .with_text(format!("Private messages are restricted {who}"));
        let mut reply = error.reply_to(stanza);
        if let Some(e) = reply.get_child_mut("error", stanza.ns()) {
            e.set_attr("by", Some(room.jid.clone()));
        }
        room.route_to_occupant(&from, &reply);
        true
    });
}
