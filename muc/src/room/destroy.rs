//! Emptying and destroying a room (Prosody's `room:clear` and
//! `room:destroy`: everyone gets an unavailable presence with the
//! `<destroy/>` payload, then `muc-room-destroyed`).

use std::sync::Arc;

use xmpp_core::Value;
use xmpp_core::error::{ErrorType, StanzaError};
use xmpp_core::stanza::Element;

use super::Room;
use super::publicise::XTemplates;
use crate::util::NS_MUC_USER;

impl Room {
    /// Removes everyone from the room, telling them with `x`.
    pub fn clear(self: &Arc<Self>, x: Option<Element>) {
        let Some(ctx) = self.ctx() else { return };
        let x = x.unwrap_or_else(|| Element::new("x", NS_MUC_USER));
        let mut updated = Vec::new();
        for mut occupant in self.each_occupant() {
            let prev_role = occupant.role;
            occupant.role = None;
            self.save_occupant(&occupant);
            updated.push((occupant, prev_role));
        }
        for (occupant, prev_role) in updated {
            self.publicise_occupant_status(
                &ctx,
                &occupant,
                &XTemplates::single(x.clone()),
                None,
                None,
                None,
                prev_role,
                false,
                None,
            );
            self.fire_left(&ctx, &occupant, None, None);
        }
    }

    /// Destroys the room, optionally pointing to an alternate venue
    /// (`muc-pre-room-destroy` may refuse; `muc-room-destroyed` follows).
    pub fn destroy(
        self: &Arc<Self>,
        newjid: Option<&str>,
        reason: Option<&str>,
        password: Option<&str>,
    ) -> Result<(), StanzaError> {
        let Some(ctx) = self.ctx() else {
            return Err(StanzaError::internal_server_error());
        };
        let mut ev = ctx.room_event("muc-pre-room-destroy", self);
        for (k, v) in [
            ("newjid", newjid),
            ("reason", reason),
            ("password", password),
        ] {
            if let Some(v) = v {
                ev.fields.insert(k.into(), Value::str(v));
            }
        }
        ctx.fire("muc-pre-room-destroy", &mut ev);
        if ev.fields.get("allowed") == Some(&Value::Bool(false)) {
            let type_ = match ev.field_str("error") {
                Some("modify") => ErrorType::Modify,
                Some("auth") => ErrorType::Auth,
                Some("wait") => ErrorType::Wait,
                _ => ErrorType::Cancel,
            };
            return Err(StanzaError::new(type_, "not-allowed"));
        }
        let newjid = ev.field_str("newjid").map(str::to_string);
        let reason = ev.field_str("reason").map(str::to_string);
        let password = ev.field_str("password").map(str::to_string);
        let mut destroy = Element::new("destroy", NS_MUC_USER).attr_opt("jid", newjid.clone());
        if let Some(r) = &reason {
            destroy.push_child(Element::new("reason", NS_MUC_USER).text(r.clone()));
        }
        if let Some(p) = &password {
            destroy.push_child(Element::new("password", NS_MUC_USER).text(p.clone()));
        }
        self.state().destroying = Some(reason.clone());
        self.clear(Some(Element::new("x", NS_MUC_USER).child(destroy)));
        let mut ev = ctx.room_event("muc-room-destroyed", self);
        for (k, v) in [
            ("newjid", &newjid),
            ("reason", &reason),
            ("password", &password),
        ] {
            if let Some(v) = v {
                ev.fields.insert(k.into(), Value::str(v.clone()));
            }
        }
        ctx.fire("muc-room-destroyed", &mut ev);
        Ok(())
    }
}
