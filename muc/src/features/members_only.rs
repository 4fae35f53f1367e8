//! Members-only rooms (Prosody's `members_only` library): only affiliated
//! users get in; making a room members-only removes the others (status
//! 322); invitations may grant membership.

use std::sync::Arc;

use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;
use xmpp_core::{Host, Value};

use super::{on_disco, on_form, on_submit, submitted_bool};
use crate::events::room_of;
use crate::form::{Field, FieldValue};
use crate::room::iq::{add_disco_feature, add_disco_field};
use crate::room::{Actor, AffiliationData, Room, XTemplates, reply_error};
use crate::util::{Affiliation, NS_MUC_USER, affiliation_rank};

const ALLOW_MEMBER_INVITES: &str = "{http://prosody.im/protocol/muc}roomconfig_allowmemberinvites";

impl Room {
    pub fn get_members_only(&self) -> bool {
        if let Some(service) = self.service()
            && let Some(source) = service.members_only_source.get()
            && let Some(members_only) = source(self)
        {
            return members_only;
        }
        self.data_bool("members_only")
    }
    /// Makes the room members-only (or not); non-members present are
    /// removed with status 322.
    pub fn set_members_only(self: &Arc<Self>, members_only: bool) -> bool {
        if !self.set_data_bool("members_only", members_only) {
            return false;
        }
        if !members_only {
            return true;
        }
        let Some(ctx) = self.ctx() else { return true };
        let mut removed = Vec::new();
        for mut occupant in self.each_occupant() {
            if affiliation_rank(self.get_affiliation(&occupant.bare_jid)) <= 0 {
                occupant.role = None;
                self.save_occupant(&occupant);
                removed.push(occupant);
            }
        }
        let x = Element::new("x", NS_MUC_USER)
            .child(Element::new("status", NS_MUC_USER).attr("code", "322"));
        for occupant in removed {
            self.publicise_occupant_status(
                &ctx,
                &occupant,
                &XTemplates::single(x.clone()),
                None,
                None,
                None,
                None,
                false,
                None,
            );
            self.fire_left(&ctx, &occupant, None, None);
        }
        true
    }
    pub fn get_allow_member_invites(&self) -> bool {
        self.data_bool("allow_member_invites")
    }
    pub fn set_allow_member_invites(&self, allow: bool) -> bool {
        self.set_data_bool("allow_member_invites", allow)
    }
}

pub fn register(host: &Arc<Host>) {
    on_disco(host, |room, event| {
        let members_only = room.get_members_only();
        let member_invites = room.get_allow_member_invites();
        add_disco_feature(
            event,
            if members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
        );
        add_disco_field(
            event,
            Field::new(ALLOW_MEMBER_INVITES, "boolean")
                .label("Allow members to invite new members")
                .value(Some(FieldValue::Bool(member_invites))),
            None,
        );
        add_disco_field(
            event,
            Field::new("muc#roomconfig_allowinvites", "boolean")
                .label("Allow users to invite other users")
                .value(Some(FieldValue::Bool(!members_only || member_invites))),
            None,
        );
    });
    on_form(host, 90 - 3, |room, _| {
        Some(
            Field::new("muc#roomconfig_membersonly", "boolean")
                .label("Only allow members to join")
                .desc("Enable this to only allow access for room owners, admins and members")
                .value(room.get_members_only().then_some(FieldValue::Bool(true))),
        )
    });
    on_form(host, 90 - 3, |room, _| {
        Some(
            Field::new(ALLOW_MEMBER_INVITES, "boolean")
                .label("Allow members to invite new members")
                .value(
                    room.get_allow_member_invites()
                        .then_some(FieldValue::Bool(true)),
                ),
        )
    });
    on_submit(host, "muc#roomconfig_membersonly", |room, event| {
        room.set_members_only(submitted_bool(event))
    });
    on_submit(host, ALLOW_MEMBER_INVITES, |room, event| {
        room.set_allow_member_invites(submitted_bool(event))
    });
    // Without an affiliation, no role.
    host.events.hook("muc-get-default-role", 2, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if event.field_str("affiliation") == Some("none") && room.get_members_only() {
            event.fields.insert("role".into(), Value::str("none"));
            return true;
        }
        false
    });
    host.events.hook("muc-occupant-pre-join", -5, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if !room.get_members_only() {
            return false;
        }
        let from = event.stanza().from().unwrap_or_default();
        if affiliation_rank(room.get_affiliation(from)) > 0 {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(
                &origin,
                event.stanza(),
                StanzaError::new(ErrorType::Auth, "registration-required"),
                &room.jid,
            );
        }
        true
    });
    host.events.hook("muc-pre-invite", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if !room.get_members_only() {
            return false;
        }
        let from = event.stanza().from().unwrap_or_default();
        let required = if room.get_allow_member_invites() {
            Affiliation::Member
        } else {
            Affiliation::Admin
        };
        if affiliation_rank(room.get_affiliation(from)) >= affiliation_rank(Some(required)) {
            return false;
        }
        if let Some(origin) = event.origin.clone() {
            reply_error(&origin, event.stanza(), StanzaError::forbidden(), &room.jid);
        }
        true
    });
    // An invitation into a members-only room makes the invitee a member.
    host.events.hook("muc-invite", 0, |event| {
        let Some(room) = room_of(event) else {
            return false;
        };
        if !room.get_members_only() {
            return false;
        }
        let stanza = event.stanza();
        let invitee = stanza.to().unwrap_or_default().to_string();
        if affiliation_rank(room.get_affiliation(&invitee)) > 0 {
            return false;
        }
        let from = stanza
            .get_child("x", NS_MUC_USER)
            .and_then(|x| x.get_child("invite", NS_MUC_USER))
            .and_then(|i| i.get_attr("from"))
            .unwrap_or_default()
            .to_string();
        if let Err(e) = room.set_affiliation(
            Actor::Room,
            &invitee,
            Some(Affiliation::Member),
            Some(&format!("Invited by {from}")),
            AffiliationData::Keep,
        ) {
            tracing::debug!(room = %room.jid, "granting membership to {invitee} failed: {e}");
        }
        room.save(false);
        false
    });
}
