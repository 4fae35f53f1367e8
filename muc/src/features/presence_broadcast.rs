//! Whose presence is shown (Prosody's `presence_broadcast` library): the
//! roles listed in `muc#roomconfig_presencebroadcast` (by default visitor,
//! participant and moderator; `none` also shows absent members).

use std::sync::Arc;

use xmpp_core::{Host, Table, Value};

use super::{on_form, on_submit};
use crate::form::{Field, FieldValue, FormOption};
use crate::room::owner::submitted_value;
use crate::room::{Room, XTemplates};

const ROLES: [&str; 4] = ["none", "visitor", "participant", "moderator"];
const DEFAULT: [&str; 3] = ["visitor", "participant", "moderator"];

impl Room {
    /// The roles whose presence is broadcast.
    pub fn get_presence_broadcast(&self) -> Vec<String> {
        match self.data_value("presence_broadcast") {
            Some(Value::Table(t)) => ROLES
                .iter()
                .filter(|r| t.get(r) == Some(&Value::Bool(true)))
                .map(|r| r.to_string())
                .collect(),
            _ => DEFAULT.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Sets the roles whose presence is broadcast (`None`: the default);
    /// occupants who become visible or invisible are announced.
    pub fn set_presence_broadcast(self: &Arc<Self>, roles: Option<&[String]>) -> bool {
        let new: Vec<String> = match roles {
            Some(r) => ROLES
                .iter()
                .filter(|x| r.iter().any(|y| y == *x))
                .map(|x| x.to_string())
                .collect(),
            None => DEFAULT.iter().map(|r| r.to_string()).collect(),
        };
        let old = self.get_presence_broadcast();
        if old == new {
            return false;
        }
        let mut t = Table::new();
        for r in &new {
            t.insert(r.clone(), Value::Bool(true));
        }
        self.set_data_value("presence_broadcast", Some(Value::Table(t)));
        let Some(ctx) = self.ctx() else { return true };
        for occupant in self.each_occupant() {
            let role = crate::util::role_name(occupant.role);
            let shown_now = new.iter().any(|r| r == role);
            let shown_before = old.iter().any(|r| r == role);
            if shown_now != shown_before {
                self.publicise_occupant_status(
                    &ctx,
                    &occupant,
                    &XTemplates::empty(),
                    None,
                    None,
                    None,
                    None,
                    !shown_now,
                    None,
                );
            }
        }
        true
    }
}

pub fn register(host: &Arc<Host>) {
    on_form(host, 70 - 7, |room, _| {
        Some(
            Field::new("muc#roomconfig_presencebroadcast", "list-multi")
                .label("Only show participants with roles:")
                .value(Some(FieldValue::List(room.get_presence_broadcast())))
                .options(ROLES.iter().map(|r| FormOption::plain(r)).collect()),
        )
    });
    on_submit(host, "muc#roomconfig_presencebroadcast", |room, event| {
        let roles: Vec<String> = match submitted_value(event) {
            Some(Value::Table(t)) => t
                .seq
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        room.set_presence_broadcast(Some(&roles))
    });
}
