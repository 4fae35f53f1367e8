//! The section titles of the configuration form (`fixed` fields between
//! the groups of options), as Prosody's `config_form_sections`.

use std::sync::Arc;

use xmpp_core::Host;

use super::on_form;
use crate::form::Field;

pub fn register(host: &Arc<Host>) {
    for (priority, title) in [
        (100, "Room information"),
        (90, "Access to the room"),
        (80, "Permissions in the room"),
        (70, "Other options"),
    ] {
        on_form(host, priority, move |_, _| Some(Field::fixed(title)));
    }
}
